//! An on-demand rollback's hold on its run: the lease it takes before undoing anything (so
//! two rollbacks never run the same compensations), the check before each compensation,
//! and the one transaction that ends it.

use chrono::{DateTime, Utc};
use sqlx::{Any, Transaction};

use super::audit::append_in_tx;
use super::codec::{col, format_ts, parse_ts};
use super::control::{Lease, RunState, release_lease_in, set_rollback_status_in};
use super::runs::run_status;
use super::{Backend, NewAuditEntry, RunStatus, StateError, StateStore};

/// How an on-demand rollback ends, written in one transaction with the release of its
/// lease.
#[derive(Debug, Clone)]
pub struct RollbackEnd {
    /// For a run that was still unfinished (abandoned by its process): the reason it now
    /// ends as failed.
    pub fail_unfinished: Option<String>,
    /// `rolled-back` or `rollback-failed`.
    pub state: RunState,
    pub audit: Vec<NewAuditEntry>,
}

/// Whether a claim needs the run to be unfinished (resume) or takes any run (rollback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClaimFor {
    Resume,
    Rollback,
}

/// Takes `lease` on a run nobody else holds, in `tx`. The run's row is locked first, so
/// of two processes claiming at once exactly one wins and the other sees it held.
pub(super) async fn claim_in(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    run_id: &str,
    lease: &Lease,
    now: DateTime<Utc>,
    purpose: ClaimFor,
) -> Result<(), StateError> {
    // SQLite's write transaction (BEGIN IMMEDIATE) already excludes other writers;
    // PostgreSQL's READ COMMITTED needs the row lock, or two claimers both see it free.
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT status, lease_owner, lease_expires_at FROM runs WHERE id = $1{lock}"
    )))
    .bind(run_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StateError::RunNotFound(run_id.to_owned()))?;
    let loc = || format!("runs row {run_id:?}");
    let status: String = col(&row, "status", loc)?;
    let status = run_status(|| format!("runs row {run_id:?}, column status"), &status)?;
    if purpose == ClaimFor::Resume && status != RunStatus::Running {
        return Err(StateError::RunNotRunning {
            run_id: run_id.to_owned(),
            status,
        });
    }
    let owner: Option<String> = col(&row, "lease_owner", loc)?;
    let until: Option<String> = col(&row, "lease_expires_at", loc)?;
    if let (Some(owner), Some(until)) = (owner, until) {
        let expires = parse_ts(|| format!("runs row {run_id:?}, lease"), &until)?;
        if expires > now && owner != lease.owner {
            return Err(StateError::RunHeld {
                run_id: run_id.to_owned(),
                owner,
                until,
            });
        }
    }
    sqlx::query("UPDATE runs SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3")
        .bind(&lease.owner)
        .bind(format_ts("lease", &lease.until)?)
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl StateStore {
    /// Claims a run, finished or not, for an on-demand rollback; refused with
    /// [`StateError::RunHeld`] while another process (a step loop, a resume or another
    /// rollback) holds it.
    pub async fn claim_for_rollback(
        &self,
        run_id: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut tx = self.begin_write().await?;
        claim_in(
            &mut tx,
            self.backend,
            run_id,
            lease,
            now,
            ClaimFor::Rollback,
        )
        .await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }

    /// Whether `owner` still holds the run's lease at `now`: checked before each
    /// compensation, so a rollback that stalled past its lease stops instead of racing
    /// whoever took the run next.
    pub async fn holds_lease(
        &self,
        run_id: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let row = sqlx::query("SELECT lease_owner, lease_expires_at FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StateError::RunNotFound(run_id.to_owned()))?;
        let loc = || format!("runs row {run_id:?}");
        let holder: Option<String> = col(&row, "lease_owner", loc)?;
        let until: Option<String> = col(&row, "lease_expires_at", loc)?;
        match (holder, until) {
            (Some(holder), Some(until)) if holder == owner => {
                Ok(parse_ts(|| format!("runs row {run_id:?}, lease"), &until)? > now)
            }
            _ => Ok(false),
        }
    }

    /// Ends an on-demand rollback in one transaction: the run's end (if it was still
    /// unfinished), its rollback state, the release of `owner`'s lease and the closing
    /// audit entries. [`StateError::LeaseLost`] (and nothing written) if `owner` no
    /// longer holds the run.
    pub async fn end_rollback(
        &self,
        run_id: &str,
        owner: &str,
        end: &RollbackEnd,
    ) -> Result<(), StateError> {
        let finished_at = format_ts("run finish time", &Utc::now())?;
        let mut tx = self.begin_write().await?;
        if !release_lease_in(&mut tx, run_id, owner).await? {
            return Err(StateError::LeaseLost {
                run_id: run_id.to_owned(),
            });
        }
        if let Some(reason) = &end.fail_unfinished {
            sqlx::query(
                "UPDATE runs SET status = $1, finished_at = $2, error = $3 \
                 WHERE id = $4 AND status = 'running'",
            )
            .bind(RunStatus::Failed.as_str())
            .bind(finished_at)
            .bind(reason)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        }
        set_rollback_status_in(&mut tx, run_id, end.state).await?;
        append_in_tx(&mut tx, self.backend, &end.audit).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testutil::{RUN_A, new_run, on_all_backends};

    fn lease(owner: &str, secs: i64) -> Lease {
        Lease {
            owner: owner.to_owned(),
            until: Utc::now() + chrono::Duration::seconds(secs),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claimed_run_is_refused_to_a_second_rollback_until_released() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            store
                .create_run(&new_run(RUN_A, "2025-06-01T10:00:00Z"))
                .await
                .unwrap();
            store
                .finish_run(RUN_A, RunStatus::Failed, Some("boom"))
                .await
                .unwrap();
            let first = lease("first", 60);
            store
                .claim_for_rollback(RUN_A, &first, Utc::now())
                .await
                .unwrap();
            assert!(store.holds_lease(RUN_A, "first", Utc::now()).await.unwrap());
            let second = lease("second", 60);
            assert!(matches!(
                store.claim_for_rollback(RUN_A, &second, Utc::now()).await,
                Err(StateError::RunHeld { owner, .. }) if owner == "first"
            ));
            assert!(matches!(
                store
                    .end_rollback(
                        RUN_A,
                        "second",
                        &RollbackEnd {
                            fail_unfinished: None,
                            state: RunState::RolledBack,
                            audit: Vec::new(),
                        },
                    )
                    .await,
                Err(StateError::LeaseLost { .. })
            ));
            store
                .end_rollback(
                    RUN_A,
                    "first",
                    &RollbackEnd {
                        fail_unfinished: None,
                        state: RunState::RollbackFailed,
                        audit: Vec::new(),
                    },
                )
                .await
                .unwrap();
            assert!(!store.holds_lease(RUN_A, "first", Utc::now()).await.unwrap());
            assert_eq!(
                store.run_state(RUN_A, Utc::now()).await.unwrap(),
                RunState::RollbackFailed
            );
            store
                .claim_for_rollback(RUN_A, &second, Utc::now())
                .await
                .unwrap();
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ending_a_rollback_of_an_unfinished_run_fails_it_and_releases_the_lease() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            store
                .create_run(&new_run(RUN_A, "2025-06-01T10:00:00Z"))
                .await
                .unwrap();
            let mine = lease("mine", 60);
            store
                .claim_for_rollback(RUN_A, &mine, Utc::now())
                .await
                .unwrap();
            store
                .end_rollback(
                    RUN_A,
                    "mine",
                    &RollbackEnd {
                        fail_unfinished: Some("rolled back on demand".into()),
                        state: RunState::RolledBack,
                        audit: Vec::new(),
                    },
                )
                .await
                .unwrap();
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.run.status, RunStatus::Failed);
            assert_eq!(detail.run.error.as_deref(), Some("rolled back on demand"));
            assert_eq!(detail.state, RunState::RolledBack);
            // The lease is gone: anyone may claim it now, even with an expired clock.
            store
                .claim_for_rollback(RUN_A, &lease("other", 60), Utc::now())
                .await
                .unwrap();
        })
        .await;
    }
}
