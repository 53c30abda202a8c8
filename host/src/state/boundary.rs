//! The step-boundary commit, the unit of durability: the previous step's outcome, its
//! calls and audit entries are stored with the next step's start, or with the run's end,
//! in one transaction each.

use chrono::Utc;
use sqlx::AnyConnection;

use super::audit::{NewAuditEntry, append_in_tx, append_spool_in_tx};
use super::codec::{format_ts, is_unique_violation, to_json};
use super::journal::{CallRecord, insert_calls};
use super::runs::{RunStatus, current_run_status};
use super::spool::AuditSpool;
use super::steps::{StepOutcome, StepStart, StepStatus, step_status};
use super::{StateError, StateStore};

/// A step's outcome with everything it recorded, stored in one transaction.
#[derive(Debug)]
pub struct StepFinish {
    pub index: i64,
    pub outcome: StepOutcome,
    /// Audit entries the step recorded, appended to the chain with the outcome.
    pub audit: AuditSpool,
    /// Calls of the step's last attempt not yet in the journal.
    pub calls: Vec<CallRecord>,
}

/// How a run ended, stored in one transaction by [`StateStore::end_run`].
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub status: RunStatus,
    pub error: Option<String>,
    /// Set when the run's completed steps were rolled back.
    pub rollback: Option<super::RunState>,
    /// The lease to release (this process's owner name).
    pub lease_owner: Option<String>,
    pub audit: Vec<NewAuditEntry>,
}

/// A step start with its text columns encoded, before any transaction is opened.
struct EncodedStart {
    input: String,
    started_at: String,
    /// When the lease must still be valid: now.
    lease_valid_at: String,
}

impl EncodedStart {
    fn new(step: &StepStart) -> Result<EncodedStart, StateError> {
        Ok(EncodedStart {
            input: to_json("step input", &step.input)?,
            started_at: format_ts("step start time", &step.started_at)?,
            lease_valid_at: format_ts("lease check time", &Utc::now())?,
        })
    }
}

async fn insert_start(
    conn: &mut AnyConnection,
    run_id: &str,
    step: &StepStart,
    encoded: EncodedStart,
) -> Result<(), StateError> {
    // One statement, so a run cannot finish (or change hands) between the check and the
    // insert.
    let sql = if step.lease_owner.is_some() {
        "INSERT INTO steps (run_id, step_index, step_id, plugin, plugin_digest, status, \
         input, logs, started_at, attempts) \
         SELECT $1, $2, $3, $4, $5, 'running', $6, '[]', $7, $8 \
         WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND status = 'running' \
         AND lease_owner = $9 AND lease_expires_at > $10)"
    } else {
        "INSERT INTO steps (run_id, step_index, step_id, plugin, plugin_digest, status, \
         input, logs, started_at, attempts) \
         SELECT $1, $2, $3, $4, $5, 'running', $6, '[]', $7, $8 \
         WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND status = 'running')"
    };
    let mut query = sqlx::query(sql)
        .bind(run_id)
        .bind(step.index)
        .bind(&step.step_id)
        .bind(&step.plugin)
        .bind(&step.plugin_digest)
        .bind(encoded.input)
        .bind(encoded.started_at)
        .bind(step.attempts);
    if let Some(owner) = &step.lease_owner {
        query = query.bind(owner).bind(encoded.lease_valid_at);
    }
    match query.execute(&mut *conn).await {
        Ok(r) if r.rows_affected() == 1 => Ok(()),
        Ok(_) => Err(match current_run_status(conn, run_id).await? {
            None => StateError::RunNotFound(run_id.to_owned()),
            Some(RunStatus::Running) => StateError::LeaseLost {
                run_id: run_id.to_owned(),
            },
            Some(status) => StateError::RunNotRunning {
                run_id: run_id.to_owned(),
                status,
            },
        }),
        Err(e) if is_unique_violation(&e) => Err(StateError::StepExists {
            run_id: run_id.to_owned(),
            index: step.index,
        }),
        Err(e) => Err(e.into()),
    }
}

/// A step finish with its text columns encoded, before any transaction is opened.
struct EncodedFinish {
    finish: StepFinish,
    output: Option<String>,
    logs: String,
    finished_at: String,
}

impl EncodedFinish {
    fn new(finish: StepFinish) -> Result<EncodedFinish, StateError> {
        let outcome = &finish.outcome;
        if outcome.status == StepStatus::Running {
            return Err(StateError::InvalidInput {
                what: "step outcome",
                reason: "a finished step cannot be running".to_owned(),
            });
        }
        Ok(EncodedFinish {
            output: outcome
                .output
                .as_ref()
                .map(|o| to_json("step output", o))
                .transpose()?,
            logs: to_json("step logs", &outcome.logs)?,
            finished_at: format_ts("step finish time", &outcome.finished_at)?,
            finish,
        })
    }
}

async fn write_finish(
    conn: &mut AnyConnection,
    backend: super::Backend,
    run_id: &str,
    encoded: EncodedFinish,
) -> Result<(), StateError> {
    let EncodedFinish {
        finish,
        output,
        logs,
        finished_at,
    } = encoded;
    let step_index = finish.index;
    // Only a running step may finish: a second outcome must not silently overwrite the
    // first.
    let updated = sqlx::query(
        "UPDATE steps SET status = $1, output = $2, error = $3, logs = $4, \
         finished_at = $5, duration_ms = $6 \
         WHERE run_id = $7 AND step_index = $8 AND status = 'running'",
    )
    .bind(finish.outcome.status.as_str())
    .bind(output)
    .bind(&finish.outcome.error)
    .bind(logs)
    .bind(finished_at)
    .bind(finish.outcome.duration_ms)
    .bind(run_id)
    .bind(step_index)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM steps WHERE run_id = $1 AND step_index = $2")
                .bind(run_id)
                .bind(step_index)
                .fetch_optional(&mut *conn)
                .await?;
        return Err(match status {
            None => StateError::StepNotFound {
                run_id: run_id.to_owned(),
                index: step_index,
            },
            Some(s) => StateError::StepNotRunning {
                run_id: run_id.to_owned(),
                index: step_index,
                status: step_status(
                    || format!("steps row ({run_id:?}, {step_index}), column status"),
                    &s,
                )?,
            },
        });
    }
    insert_calls(conn, run_id, &finish.calls).await?;
    append_spool_in_tx(conn, backend, finish.audit).await
}

impl StateStore {
    /// Records that step `step.index` of a running run has started.
    pub async fn start_step(&self, run_id: &str, step: &StepStart) -> Result<(), StateError> {
        self.start_step_after(run_id, None, step).await
    }

    /// Records the outcome of the step before (if any) and the start of the next one in
    /// one transaction: one commit per step boundary instead of two. The outcome is
    /// stored even when the lease turns out to be lost ([`StateError::LeaseLost`]); the
    /// start then is not.
    pub async fn start_step_after(
        &self,
        run_id: &str,
        previous: Option<StepFinish>,
        step: &StepStart,
    ) -> Result<(), StateError> {
        let start = EncodedStart::new(step)?;
        let previous = previous.map(EncodedFinish::new).transpose()?;
        let mut tx = self.begin_write().await?;
        if let Some(previous) = previous {
            write_finish(&mut tx, self.backend, run_id, previous).await?;
        }
        match insert_start(&mut tx, run_id, step, start).await {
            Err(lost @ StateError::LeaseLost { .. }) => {
                crate::state::store::commit_write(tx).await?;
                Err(lost)
            }
            other => {
                other?;
                crate::state::store::commit_write(tx).await?;
                Ok(())
            }
        }
    }

    /// Records the outcome of a running step and appends `audit` to the chain,
    /// in one transaction: either both are stored or neither is.
    pub async fn finish_step(
        &self,
        run_id: &str,
        step_index: i64,
        outcome: &StepOutcome,
        audit: &[NewAuditEntry],
    ) -> Result<(), StateError> {
        self.finish_step_with(
            run_id,
            StepFinish {
                index: step_index,
                outcome: outcome.clone(),
                audit: audit.to_vec().into(),
                calls: Vec::new(),
            },
        )
        .await
    }

    /// Records the outcome of a running step, the calls of its last attempt and the
    /// audit entries it recorded, in one transaction: all are stored or none is.
    pub async fn finish_step_with(
        &self,
        run_id: &str,
        finish: StepFinish,
    ) -> Result<(), StateError> {
        let finish = EncodedFinish::new(finish)?;
        let mut tx = self.begin_write().await?;
        write_finish(&mut tx, self.backend, run_id, finish).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }

    /// Marks a running run finished now, as `status` (succeeded or failed).
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        self.end_run(
            run_id,
            None,
            &RunEnd {
                status,
                error: error.map(str::to_owned),
                rollback: None,
                lease_owner: None,
                audit: Vec::new(),
            },
        )
        .await
    }

    /// Ends a running run in one transaction: the outcome of its last step (if not yet
    /// stored), its status, how it was rolled back, the release of this process's lease
    /// and the run's closing audit entries.
    pub async fn end_run(
        &self,
        run_id: &str,
        last_step: Option<StepFinish>,
        end: &RunEnd,
    ) -> Result<(), StateError> {
        if end.status == RunStatus::Running {
            return Err(StateError::InvalidInput {
                what: "run status",
                reason: "a finished run cannot be running".to_owned(),
            });
        }
        let last_step = last_step.map(EncodedFinish::new).transpose()?;
        let finished_at = format_ts("run finish time", &Utc::now())?;
        let mut tx = self.begin_write().await?;
        if let Some(last_step) = last_step {
            write_finish(&mut tx, self.backend, run_id, last_step).await?;
        }
        let updated = sqlx::query(
            "UPDATE runs SET status = $1, finished_at = $2, error = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(end.status.as_str())
        .bind(finished_at)
        .bind(&end.error)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(match current_run_status(&mut tx, run_id).await? {
                None => StateError::RunNotFound(run_id.to_owned()),
                Some(status) => StateError::RunNotRunning {
                    run_id: run_id.to_owned(),
                    status,
                },
            });
        }
        if let Some(rollback) = end.rollback {
            super::control::set_rollback_status_in(&mut tx, run_id, rollback).await?;
        }
        if let Some(owner) = &end.lease_owner {
            super::control::release_lease_in(&mut tx, run_id, owner).await?;
        }
        append_in_tx(&mut tx, self.backend, &end.audit).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::AuditVerification;
    use crate::state::testutil::{RUN_A, audit, log, new_run, on_all_backends, step_start, t};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lifecycle_errors_name_what_is_missing() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            assert!(matches!(
                store.start_step("ghost", &step_start(0, "x")).await,
                Err(StateError::RunNotFound(id)) if id == "ghost"
            ));
            assert!(matches!(
                store.finish_run("ghost", RunStatus::Succeeded, None).await,
                Err(StateError::RunNotFound(id)) if id == "ghost"
            ));
            store
                .create_run(&new_run(RUN_A, "2025-06-01T10:00:00Z"))
                .await
                .unwrap();
            let outcome = StepOutcome {
                status: StepStatus::Succeeded,
                output: None,
                error: None,
                logs: vec![],
                finished_at: t("2025-06-01T10:00:01Z"),
                duration_ms: 1,
            };
            assert!(matches!(
                store
                    .finish_step(RUN_A, 7, &outcome, &[audit(RUN_A, "x")])
                    .await,
                Err(StateError::StepNotFound { index: 7, .. })
            ));
            assert!(matches!(
                store.finish_run(RUN_A, RunStatus::Running, None).await,
                Err(StateError::InvalidInput { .. })
            ));
            let mut running = outcome.clone();
            running.status = StepStatus::Running;
            assert!(matches!(
                store.finish_step(RUN_A, 0, &running, &[]).await,
                Err(StateError::InvalidInput { .. })
            ));
            assert!(matches!(
                store.create_run(&new_run("", "2025-06-01T10:00:00Z")).await,
                Err(StateError::InvalidInput { what: "run id", .. })
            ));
            // Refused writes appended nothing.
            assert!(store.audit_entries(None, 10).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finish_step_is_atomic_with_its_audit_entries() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            store
                .create_run(&new_run(RUN_A, "2025-06-01T10:00:00Z"))
                .await
                .unwrap();
            store
                .start_step(RUN_A, &step_start(0, "lookup"))
                .await
                .unwrap();
            let outcome = StepOutcome {
                status: StepStatus::Succeeded,
                output: Some(json!(1)),
                error: None,
                logs: vec![log("hi")],
                finished_at: t("2025-06-01T10:00:01Z"),
                duration_ms: 5,
            };
            // The second entry cannot be stored (its time is out of range),
            // after the step update and the first entry were written.
            let mut bad = audit(RUN_A, "bad");
            bad.at = chrono::TimeZone::with_ymd_and_hms(&Utc, 10000, 1, 1, 0, 0, 0).unwrap();
            assert!(matches!(
                store
                    .finish_step(RUN_A, 0, &outcome, &[audit(RUN_A, "good"), bad])
                    .await,
                Err(StateError::InvalidInput {
                    what: "audit entry time",
                    ..
                })
            ));
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.steps[0].status, StepStatus::Running);
            assert_eq!(detail.steps[0].output, None);
            assert!(store.audit_entries(None, 10).await.unwrap().is_empty());

            // And the store is still usable afterwards.
            store
                .finish_step(RUN_A, 0, &outcome, &[audit(RUN_A, "good")])
                .await
                .unwrap();
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.steps[0].status, StepStatus::Succeeded);
            assert_eq!(store.audit_entries(None, 10).await.unwrap().len(), 1);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_boundary_is_one_transaction_and_spooled_audit_chains_in_order() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            let lease = super::super::Lease {
                owner: "pid 1 (test)".to_owned(),
                until: Utc::now() + chrono::Duration::seconds(60),
            };
            let mut run = new_run(RUN_A, "2025-06-01T10:00:00Z");
            run.lease = Some(lease.clone());
            store
                .create_run_with(&run, &[audit(RUN_A, "run.started")])
                .await
                .unwrap();
            let mut first = step_start(0, "lookup");
            first.lease_owner = Some(lease.owner.clone());
            first.attempts = 1;
            store.start_step(RUN_A, &first).await.unwrap();

            // Far more entries than the spool keeps in memory: most come back from its file.
            let mut spool = AuditSpool::new();
            for i in 0..3_000 {
                spool.push(audit(RUN_A, &format!("entry {i}")));
            }
            let outcome = StepOutcome {
                status: StepStatus::Succeeded,
                output: Some(json!({"rows": 3000})),
                error: None,
                logs: vec![],
                finished_at: t("2025-06-01T10:00:02Z"),
                duration_ms: 7,
            };
            let finish = StepFinish {
                index: 0,
                outcome,
                audit: spool,
                calls: Vec::new(),
            };
            let mut second = step_start(1, "refund");
            second.lease_owner = Some(lease.owner.clone());
            store
                .start_step_after(RUN_A, Some(finish), &second)
                .await
                .unwrap();
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.steps[0].status, StepStatus::Succeeded);
            assert_eq!(detail.steps[0].attempts, 1);
            assert_eq!(detail.steps[1].status, StepStatus::Running);
            let entries = store.audit_entries(Some(RUN_A), 5_000).await.unwrap();
            assert_eq!(entries.len(), 3_001);
            assert_eq!(entries[0].detail, "run.started");
            assert_eq!(entries[1].detail, "entry 0");
            assert_eq!(entries[3_000].detail, "entry 2999");
            assert!(matches!(
                store.verify_audit().await.unwrap(),
                AuditVerification::Intact { entries: 3_001, .. }
            ));

            // Another process took the run over: the outcome is kept, the start refused.
            let thief = super::super::Lease {
                owner: "pid 2 (resume)".to_owned(),
                until: Utc::now() + chrono::Duration::seconds(60),
            };
            store.release_lease(RUN_A, &lease.owner).await.unwrap();
            store.take_over(RUN_A, &thief, Utc::now()).await.unwrap();
            let finish = StepFinish {
                index: 1,
                outcome: StepOutcome {
                    status: StepStatus::Failed,
                    output: None,
                    error: Some("declined".into()),
                    logs: vec![],
                    finished_at: t("2025-06-01T10:00:03Z"),
                    duration_ms: 1,
                },
                audit: vec![audit(RUN_A, "step 1")].into(),
                calls: Vec::new(),
            };
            let mut third = step_start(2, "notify");
            third.lease_owner = Some(lease.owner.clone());
            assert!(matches!(
                store.start_step_after(RUN_A, Some(finish), &third).await,
                Err(StateError::LeaseLost { .. })
            ));
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.steps.len(), 2);
            assert_eq!(detail.steps[1].status, StepStatus::Failed);

            // The run ends in one transaction: status, rollback state, lease, audit.
            store
                .end_run(
                    RUN_A,
                    None,
                    &RunEnd {
                        status: RunStatus::Failed,
                        error: Some("step `refund` failed".into()),
                        rollback: Some(super::super::RunState::RolledBack),
                        lease_owner: Some(thief.owner.clone()),
                        audit: vec![audit(RUN_A, "run.finished")],
                    },
                )
                .await
                .unwrap();
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.run.status, RunStatus::Failed);
            assert_eq!(detail.state, super::super::RunState::RolledBack);
            let entries = store.audit_entries(Some(RUN_A), 5_000).await.unwrap();
            assert_eq!(entries.last().unwrap().detail, "run.finished");
        })
        .await;
    }
}
