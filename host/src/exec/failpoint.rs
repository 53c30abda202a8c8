//! Crash-safety failpoints for crash tests and recovery drills.

/// Crash-safety failpoint: `RUNBOOK_FAILPOINT=after-step:<id>` sends the process
/// SIGKILL the moment step `<id>` is recorded, as `kill -9` or a power cut would, so
/// tests (and operators rehearsing recovery) can check that `runbook resume` continues
/// with the next step.
pub(super) fn failpoint_after_step(step_id: &str) -> bool {
    std::env::var("RUNBOOK_FAILPOINT")
        .is_ok_and(|point| point.strip_prefix("after-step:") == Some(step_id))
}

pub(super) fn die_by_failpoint(step_id: &str) -> ! {
    eprintln!("failpoint after-step:{step_id}: kill -9");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    // Should `kill` be missing, die anyway, just as abruptly.
    std::process::abort();
}
