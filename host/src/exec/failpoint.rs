//! Crash-safety failpoints for crash tests and recovery drills.

use crate::failpoint;

/// Crash-safety failpoint: `RUNBOOK_FAILPOINT=after-step:<id>` sends the process
/// SIGKILL the moment step `<id>` is recorded, as `kill -9` or a power cut would, so
/// tests (and operators rehearsing recovery) can check that `runbook resume` continues
/// with the next step.
pub(super) fn failpoint_after_step(step_id: &str) -> bool {
    failpoint::armed("after-step", step_id)
}

pub(super) fn die_by_failpoint(step_id: &str) -> ! {
    failpoint::die("after-step", step_id)
}
