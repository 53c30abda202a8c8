//! Crash-safety failpoints (`RUNBOOK_FAILPOINT=<point>:<step id>`): the process kills
//! itself with SIGKILL at a named point, as `kill -9` or a power cut would, so crash
//! tests and recovery drills hit a crash window deterministically. Here (not in exec/)
//! because capabilities have failpoints of their own (`after-send`).

/// Whether `RUNBOOK_FAILPOINT` names `point` for step `step_id`.
pub fn armed(point: &str, step_id: &str) -> bool {
    std::env::var("RUNBOOK_FAILPOINT").is_ok_and(|value| {
        value
            .split_once(':')
            .is_some_and(|(p, id)| p == point && id == step_id)
    })
}

/// Kills the process at once, without unwinding or flushing anything.
pub fn die(point: &str, step_id: &str) -> ! {
    eprintln!("failpoint {point}:{step_id}: kill -9");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    // Should `kill` be missing, die anyway, just as abruptly.
    std::process::abort();
}

/// `after-send:<step>`: right after an email or webhook delivery left and before its
/// outcome is journaled (the window the write-ahead intent covers).
pub fn after_send(step_id: &str) {
    if armed("after-send", step_id) {
        die("after-send", step_id);
    }
}

/// `after-target-commit:<step>`: right after the step's target transaction (its writes
/// and its completion record) committed, before the state store records the step (the
/// window the completion record covers).
pub fn after_target_commit(step_id: &str) {
    if armed("after-target-commit", step_id) {
        die("after-target-commit", step_id);
    }
}
