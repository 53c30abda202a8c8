//! Crash-safety failpoints (`RUNBOOK_FAILPOINT`): the process kills itself with SIGKILL
//! at a chosen instant, as `kill -9` or a power cut would, so crash tests, the crash
//! torture suite and recovery drills hit a crash window deterministically. A leaf every
//! layer may call: its sites sit in the state store, the executor and the capabilities.
//!
//! Two forms: `<point>:<step id>` (`after-step`, `after-send`, `after-target-commit`)
//! names one window of one step; `nth:<N>` kills at the N-th crossing of any counted
//! [`site`] (before and after every state-store commit, every target commit and every
//! effect), in the order this process crosses them. `trace` kills nothing and prints each
//! crossing (`failpoint site <n>: <name>`), which is how the torture suite learns where
//! the commits and effects of a run fall.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// What `RUNBOOK_FAILPOINT` asks for, read once: sites are crossed on hot paths.
#[derive(Debug, PartialEq)]
enum Armed {
    Off,
    Named { point: String, step_id: String },
    Nth(u64),
    Trace,
}

fn parse(value: Option<&str>) -> Armed {
    let Some(value) = value else {
        return Armed::Off;
    };
    if value == "trace" {
        return Armed::Trace;
    }
    match value.split_once(':') {
        Some(("nth", n)) => n.parse().map_or(Armed::Off, Armed::Nth),
        Some((point, step_id)) => Armed::Named {
            point: point.to_owned(),
            step_id: step_id.to_owned(),
        },
        None => Armed::Off,
    }
}

fn armed_now() -> &'static Armed {
    static ARMED: OnceLock<Armed> = OnceLock::new();
    ARMED.get_or_init(|| parse(std::env::var("RUNBOOK_FAILPOINT").ok().as_deref()))
}

/// Sites crossed so far by this process.
static CROSSED: AtomicU64 = AtomicU64::new(0);

/// Whether `RUNBOOK_FAILPOINT` names `point` for step `step_id`.
pub fn armed(point: &str, step_id: &str) -> bool {
    matches!(armed_now(), Armed::Named { point: p, step_id: id } if p == point && id == step_id)
}

/// Kills the process at once, without unwinding or flushing anything.
pub fn die(point: &str, detail: &str) -> ! {
    eprintln!("failpoint {point}:{detail}: kill -9");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    // Should `kill` be missing, die anyway, just as abruptly.
    std::process::abort();
}

/// One counted crash site: `name` says which boundary (`state.commit.before`, ...).
/// Costs one load of a `OnceLock` when `RUNBOOK_FAILPOINT` is unset.
pub fn site(name: &str) {
    match armed_now() {
        Armed::Nth(n) => {
            if CROSSED.fetch_add(1, Ordering::SeqCst) + 1 == *n {
                die("nth", &format!("{n} ({name})"));
            }
        }
        Armed::Trace => {
            let crossed = CROSSED.fetch_add(1, Ordering::SeqCst) + 1;
            eprintln!("failpoint site {crossed}: {name}");
        }
        Armed::Off | Armed::Named { .. } => {}
    }
}

/// `after-send:<step>`: right after an email or webhook delivery left and before its
/// outcome is journaled (the window the write-ahead intent covers). Also a counted site.
pub fn after_send(step_id: &str) {
    site("delivery.sent");
    if armed("after-send", step_id) {
        die("after-send", step_id);
    }
}

/// `after-target-commit:<step>`: right after the step's target transaction (its writes
/// and its completion record) committed, before the state store records the step (the
/// window the completion record covers). Also a counted site.
pub fn after_target_commit(step_id: &str) {
    site("target.commit.after");
    if armed("after-target-commit", step_id) {
        die("after-target-commit", step_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form_and_ignores_nonsense() {
        assert_eq!(parse(None), Armed::Off);
        assert_eq!(parse(Some("trace")), Armed::Trace);
        assert_eq!(parse(Some("nth:17")), Armed::Nth(17));
        assert_eq!(parse(Some("nth:x")), Armed::Off);
        assert_eq!(parse(Some("junk")), Armed::Off);
        assert_eq!(
            parse(Some("after-send:notify")),
            Armed::Named {
                point: "after-send".into(),
                step_id: "notify".into()
            }
        );
    }
}
