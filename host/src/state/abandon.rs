//! The last write for a run whose outcome could not be recorded (a row the store refused,
//! a value that would not serialise, a lost connection): end it as failed with the
//! reason, so it is never left `running` behind a process that has given up on it.

use chrono::Utc;

use super::audit::{NewAuditEntry, append_in_tx};
use super::codec::format_ts;
use super::control::release_lease_in;
use super::runs::{RunStatus, current_run_status};
use super::{StateError, StateStore};

/// Longest reason stored: the reason is an error message, and this write must not fail
/// the way the one it replaces did.
const MAX_REASON: usize = 4 * 1024;

impl StateStore {
    /// Ends run `run_id`, still held by `lease_owner`, as failed because of `reason`, in
    /// one small transaction: every step still `running` is marked failed (its logs and
    /// output stay as stored), the run gets its status, finish time and reason, the lease
    /// is released and `audit` (the run's closing entry) is appended. Nothing that comes
    /// from a plugin is written, so the write cannot hit the limits that made the
    /// outcome unrecordable.
    pub async fn abandon_run(
        &self,
        run_id: &str,
        lease_owner: &str,
        reason: &str,
        audit: Option<NewAuditEntry>,
    ) -> Result<(), StateError> {
        let reason = short_reason(reason);
        let step_error = format!("the step's outcome could not be recorded: {reason}");
        let now = format_ts("run finish time", &Utc::now())?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE steps SET status = 'failed', error = $1, finished_at = $2 \
             WHERE run_id = $3 AND status = 'running'",
        )
        .bind(&step_error)
        .bind(&now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        // Only while this process still holds the run: another that took it over decides.
        let updated = sqlx::query(
            "UPDATE runs SET status = 'failed', finished_at = $1, error = $2 \
             WHERE id = $3 AND status = 'running' AND lease_owner = $4",
        )
        .bind(&now)
        .bind(&reason)
        .bind(run_id)
        .bind(lease_owner)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(match current_run_status(&mut tx, run_id).await? {
                None => StateError::RunNotFound(run_id.to_owned()),
                Some(RunStatus::Running) => StateError::LeaseLost {
                    run_id: run_id.to_owned(),
                },
                Some(status) => StateError::RunNotRunning {
                    run_id: run_id.to_owned(),
                    status,
                },
            });
        }
        release_lease_in(&mut tx, run_id, lease_owner).await?;
        append_in_tx(&mut tx, self.backend, audit.as_slice()).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }
}

/// `reason`, at most [`MAX_REASON`] bytes, without NUL characters (PostgreSQL refuses
/// them in text).
fn short_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut short = reason[..end].replace('\0', "\u{FFFD}");
    if end < reason.len() {
        short.push_str(" (truncated)");
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testutil::{RUN_A, audit, new_run, on_all_backends, step_start};
    use crate::state::{AuditVerification, Lease, RunState, StepStatus};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_run_is_failed_with_its_reason_and_lets_go() {
        on_all_backends(|label, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            let lease = Lease {
                owner: "pid 1 (test)".to_owned(),
                until: Utc::now() + chrono::Duration::seconds(60),
            };
            let mut run = new_run(RUN_A, "2025-06-01T10:00:00Z");
            run.lease = Some(lease.clone());
            store.create_run_with(&run, &[]).await.unwrap();
            store
                .start_step(RUN_A, &step_start(0, "big"))
                .await
                .unwrap();

            // Someone else's lease: refused, nothing changes.
            assert!(matches!(
                store.abandon_run(RUN_A, "pid 2", "x", None).await,
                Err(StateError::LeaseLost { .. })
            ));
            assert_eq!(
                store.run(RUN_A).await.unwrap().unwrap().state,
                RunState::Running
            );

            let reason = format!("string or blob too big\0{}", "é".repeat(4000));
            store
                .abandon_run(RUN_A, &lease.owner, &reason, Some(audit(RUN_A, "closing")))
                .await
                .unwrap();
            let detail = store.run(RUN_A).await.unwrap().unwrap();
            assert_eq!(detail.run.status, RunStatus::Failed, "{label}");
            assert_eq!(detail.state, RunState::Failed, "{label}");
            let error = detail.run.error.unwrap();
            assert!(error.starts_with("string or blob too big"), "{error}");
            assert!(error.len() < MAX_REASON + 20, "{}", error.len());
            assert_eq!(detail.steps[0].status, StepStatus::Failed);
            assert!(
                detail.steps[0]
                    .error
                    .as_deref()
                    .unwrap()
                    .contains("could not be recorded")
            );
            assert!(matches!(
                store.verify_audit().await.unwrap(),
                AuditVerification::Intact { entries: 1, .. }
            ));
            // A second try finds the run finished.
            assert!(matches!(
                store.abandon_run(RUN_A, &lease.owner, "again", None).await,
                Err(StateError::RunNotRunning { .. })
            ));
        })
        .await;
    }
}
