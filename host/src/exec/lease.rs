//! The lease a process holds on the run it executes, and the heartbeat that renews it:
//! when the process dies, the lease runs out and the run shows as interrupted.

use std::time::Duration;

use crate::state::{Lease, StateStore};

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

/// Renews the lease every third of its lifetime until stopped (or dropped).
pub(super) struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    pub(super) fn start(
        state: StateStore,
        run_id: String,
        lease: Lease,
        ttl: Duration,
    ) -> Heartbeat {
        let task = tokio::spawn(async move {
            let mut lease = lease;
            loop {
                tokio::time::sleep(ttl / 3).await;
                lease.until = expiry(ttl);
                match state.renew_lease(&run_id, &lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(target: "runbook::lease", %run_id, "lost the run's lease");
                        break;
                    }
                    // A slow or briefly unavailable store: try again next beat.
                    Err(e) => {
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

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}
