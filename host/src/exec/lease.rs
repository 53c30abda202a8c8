//! The lease a process holds on the run it executes, and the heartbeat that renews it:
//! when the process dies, or a step overruns its deadline past saving, the lease runs out
//! and the run shows as interrupted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::state::{Lease, StateError, StateStore};

/// A lease for this process, valid for `ttl` from now.
pub(super) fn new_lease(ttl: Duration) -> Lease {
    Lease {
        owner: format!(
            "pid {} ({})",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        until: expiry(ttl),
    }
}

/// The same lease, extended by `ttl` from now.
pub(super) fn renewed(lease: &Lease, ttl: Duration) -> Lease {
    Lease {
        owner: lease.owner.clone(),
        until: expiry(ttl),
    }
}

fn expiry(ttl: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(15))
}

/// How long past its deadline a plugin attempt may still be finishing (the runtime's
/// backstop, stopping its statement, rolling back) before this process counts the step
/// as abandoned and stops vouching for the run.
pub(super) const OVERRUN_GRACE: Duration = Duration::from_secs(5);

/// The deadline of the plugin attempt in flight, shared by the step loop and the
/// heartbeat: a process whose step hangs past it must not keep the run to itself.
#[derive(Clone, Default)]
pub(super) struct StepWatch(Arc<Mutex<Option<Instant>>>);

impl StepWatch {
    /// Watches an attempt that must end by `deadline`, until the guard is dropped.
    pub(super) fn attempt(&self, deadline: Instant) -> Watching {
        self.set(Some(deadline));
        Watching(self.clone())
    }

    /// Whether the attempt in flight is more than [`OVERRUN_GRACE`] past its deadline.
    pub(super) fn overrun_at(&self, now: Instant) -> bool {
        let deadline = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        deadline.is_some_and(|d| now > d + OVERRUN_GRACE)
    }

    fn set(&self, deadline: Option<Instant>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
    }
}

/// An attempt being watched; dropping it (the attempt ended) ends the watch.
pub(super) struct Watching(StepWatch);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

/// Renews the lease every third of its lifetime until stopped (or dropped), except while
/// the step in flight has overrun its deadline: then the lease is left to run out, so
/// another process can resume the run if this one never comes back.
pub(super) struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    pub(super) fn start(
        state: StateStore,
        run_id: String,
        lease: Lease,
        ttl: Duration,
        watch: StepWatch,
    ) -> Heartbeat {
        let task = tokio::spawn(async move {
            let mut lease = lease;
            let mut overran = false;
            loop {
                tokio::time::sleep(ttl / 3).await;
                match beat(&state, &run_id, &mut lease, ttl, &watch).await {
                    Beat::Renewed => overran = false,
                    Beat::Overrun => {
                        if !overran {
                            tracing::error!(target: "runbook::lease", %run_id, "the step in flight overran its deadline: no longer renewing the run's lease");
                        }
                        overran = true;
                    }
                    Beat::Lost => {
                        tracing::warn!(target: "runbook::lease", %run_id, "lost the run's lease");
                        break;
                    }
                    // A slow or briefly unavailable store: try again next beat.
                    Beat::Failed(e) => {
                        tracing::warn!(target: "runbook::lease", %run_id, "lease renewal failed: {e}")
                    }
                }
            }
        });
        Heartbeat { task }
    }

    pub(super) fn stop(self) {
        self.task.abort();
    }
}

/// What one heartbeat did.
enum Beat {
    Renewed,
    /// Not renewed: the step in flight overran its deadline.
    Overrun,
    /// Not ours any more.
    Lost,
    Failed(StateError),
}

/// Renews the lease unless the step in flight overran its deadline.
async fn beat(
    state: &StateStore,
    run_id: &str,
    lease: &mut Lease,
    ttl: Duration,
    watch: &StepWatch,
) -> Beat {
    if watch.overrun_at(Instant::now()) {
        return Beat::Overrun;
    }
    lease.until = expiry(ttl);
    match state.renew_lease(run_id, lease).await {
        Ok(true) => Beat::Renewed,
        Ok(false) => Beat::Lost,
        Err(e) => Beat::Failed(e),
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RunState;
    use crate::state::testutil::{new_run, on_all_backends};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_beat_during_an_overrun_step_leaves_the_lease_to_run_out() {
        on_all_backends(|label, url| async move {
            let state = StateStore::open(&url).await.unwrap();
            // A lease that has just run out: only a renewal makes the run `running` again.
            let mut lease = new_lease(Duration::from_secs(60));
            lease.until = chrono::Utc::now() - chrono::Duration::seconds(1);
            let mut run = new_run("run-overrun", "2026-12-05T10:00:00Z");
            run.lease = Some(lease.clone());
            state.create_run_with(&run, &[]).await.unwrap();
            let run_state = |state: StateStore| async move {
                state.run("run-overrun").await.unwrap().unwrap().state
            };
            assert_eq!(
                run_state(state.clone()).await,
                RunState::Interrupted,
                "{label}"
            );

            let watch = StepWatch::default();
            let overrun = watch.attempt(Instant::now() - OVERRUN_GRACE * 2);
            let ttl = Duration::from_secs(60);
            let beat1 = beat(&state, "run-overrun", &mut lease, ttl, &watch).await;
            assert!(matches!(beat1, Beat::Overrun), "{label}");
            assert_eq!(
                run_state(state.clone()).await,
                RunState::Interrupted,
                "{label}: another process may resume it"
            );

            drop(overrun);
            let beat2 = beat(&state, "run-overrun", &mut lease, ttl, &watch).await;
            assert!(matches!(beat2, Beat::Renewed), "{label}");
            assert_eq!(run_state(state.clone()).await, RunState::Running, "{label}");
        })
        .await;
    }

    #[test]
    fn only_an_attempt_past_its_deadline_and_the_grace_is_an_overrun() {
        let watch = StepWatch::default();
        let now = Instant::now();
        assert!(
            !watch.overrun_at(now + Duration::from_secs(3600)),
            "no attempt"
        );
        let deadline = now + Duration::from_secs(1);
        let guard = watch.attempt(deadline);
        assert!(!watch.overrun_at(deadline));
        assert!(!watch.overrun_at(deadline + OVERRUN_GRACE));
        assert!(watch.overrun_at(deadline + OVERRUN_GRACE + Duration::from_millis(1)));
        drop(guard);
        assert!(
            !watch.overrun_at(deadline + OVERRUN_GRACE * 2),
            "an attempt that ended is not watched"
        );
    }
}
