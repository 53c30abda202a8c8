//! The crash torture suite (issue 19, exactly once across crashes): runs money-moving
//! runbooks with `RUNBOOK_FAILPOINT=nth:<N>`, so the process kills itself (SIGKILL) at
//! the N-th crash site it crosses (before and after every state-store commit, target
//! commit and effect), resumes the run, itself possibly killed again, until it ends, and
//! compares what it left behind with an uncrashed reference run on a fresh world: the
//! target's rows, Stripe writes (distinct idempotency keys), emails (by Message-ID), the
//! effects' audit entries, the audit chain, and the run's final state.
//!
//! Bounded and seeded: `RUNBOOK_TORTURE_SEED` (default 19) picks the kills,
//! `RUNBOOK_TORTURE_CASES` (default 6) how many crashed runs per runbook. A failing case
//! is printed with its seed and kill sequence; `cargo xtask soak` runs many more.

mod support;

use std::collections::BTreeMap;
use std::process::Output;

use support::world::{STRIPE_KEY, WEBHOOK_SECRET, World};
use support::{Backend, stderr, stdout};

/// One runbook invocation the suite tortures.
struct Scenario {
    name: &'static str,
    backend: Backend,
    exec: &'static [&'static str],
    /// Who approves the run's approval step, if it has one.
    approver: Option<&'static str>,
    /// Fixture changes on a fresh world before the run.
    prepare: fn(&World),
    /// Target figures (one integer each) that must equal the reference run's.
    figures: &'static [&'static str],
}

const MONEY_FIGURES: &[&str] = &[
    "SELECT COUNT(*) FROM payment_events",
    "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM payment_events",
    "SELECT COUNT(*) FROM payment_events WHERE event_type = 'refunded'",
    "SELECT COUNT(*) FROM subscriptions WHERE status = 'canceled'",
    "SELECT COUNT(*) FROM organizations WHERE plan_tier = 'free'",
    "SELECT COUNT(*) FROM subscriptions",
    "SELECT COUNT(*) FROM organizations",
    "SELECT COUNT(*) FROM runbook_step_commits",
];

fn nothing(_: &World) {}

fn grace_fixture(w: &World) {
    let driftwood = w.customer("driftwood")["subscription"].as_str().unwrap();
    w.ws.target_execute(&format!(
        "UPDATE subscriptions SET stripe_subscription_id = 'sub_demo104' WHERE id = 104;
         UPDATE subscriptions SET stripe_subscription_id = '{driftwood}' WHERE id = 106;"
    ));
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "issue-refund (PostgreSQL, with notice)",
        backend: Backend::Postgres,
        exec: &[
            "issue-refund",
            "-p",
            "organization_id=2",
            "-p",
            "amount=1500",
            "-p",
            "notify=true",
        ],
        approver: None,
        prepare: nothing,
        figures: MONEY_FIGURES,
    },
    Scenario {
        name: "refund-and-downgrade (PostgreSQL, approved)",
        backend: Backend::Postgres,
        exec: &["refund-and-downgrade", "-p", "organization_id=4"],
        approver: Some("lead-a"),
        prepare: nothing,
        figures: MONEY_FIGURES,
    },
    Scenario {
        name: "grace-period-expirations (PostgreSQL)",
        backend: Backend::Postgres,
        exec: &["grace-period-expirations", "-p", "as_of=2026-11-22"],
        approver: None,
        prepare: grace_fixture,
        figures: MONEY_FIGURES,
    },
    Scenario {
        name: "issue-refund (SQLite)",
        backend: Backend::Sqlite,
        exec: &[
            "issue-refund",
            "-p",
            "organization_id=2",
            "-p",
            "amount=1500",
        ],
        approver: None,
        prepare: nothing,
        figures: MONEY_FIGURES,
    },
];

/// splitmix64: small, seedable, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `1..=n` (`n` ≥ 1).
    fn upto(&mut self, n: u64) -> u64 {
        1 + self.next() % n.max(1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How one CLI invocation ended.
enum Ended {
    Killed,
    Exited(i32),
}

/// Runs `runbook <args>` on `w` as `who`, with `failpoint` as `RUNBOOK_FAILPOINT`.
fn invoke(w: &World, who: &str, args: &[&str], failpoint: Option<String>) -> (Ended, Output) {
    let mut cmd = w.ws.command();
    cmd.env("RUNBOOK_OPERATOR", who)
        .env("RUNBOOK_TEST_STRIPE_KEY", STRIPE_KEY)
        .env("RUNBOOK_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .args(args);
    match failpoint {
        Some(fp) => cmd.env("RUNBOOK_FAILPOINT", fp),
        None => cmd.env_remove("RUNBOOK_FAILPOINT"),
    };
    let out = cmd.output().unwrap();
    let ended = match out.status.code() {
        None => Ended::Killed,
        Some(code) => Ended::Exited(code),
    };
    (ended, out)
}

/// The newest run's id, if a run was created at all.
fn latest_run(w: &World) -> Option<String> {
    let runs = w.ws.json(&["runs", "--json"]);
    runs.as_array()?.first()?["id"].as_str().map(str::to_owned)
}

/// Drives the scenario's run to its end. `arms[i]` arms the i-th invocation (exec,
/// approve or resume); later ones run unarmed. Returns the run id and how many
/// invocations were killed, or why the run did not end.
fn drive(w: &World, sc: &Scenario, arms: &[Option<u64>]) -> Result<(String, u32), String> {
    let mut kills = 0;
    let mut approved = false;
    let mut log = Vec::new();
    for step in 0..40 {
        let fp = arms
            .get(step)
            .copied()
            .flatten()
            .map(|n| format!("nth:{n}"));
        let run = latest_run(w);
        let state = match &run {
            None => "none".to_owned(),
            Some(id) => w.status(id)["state"].as_str().unwrap_or("?").to_owned(),
        };
        let (who, args): (&str, Vec<&str>) = match (state.as_str(), &run) {
            ("none", _) => {
                let mut args = vec!["exec"];
                args.extend(sc.exec);
                args.push("--json");
                ("test-operator", args)
            }
            ("awaiting-approval", Some(id)) if !approved => {
                let who = sc
                    .approver
                    .ok_or("an approval the scenario did not expect")?;
                (who, vec!["approve", id, "--comment", "checked"])
            }
            ("awaiting-approval" | "running" | "interrupted", Some(id)) => {
                // The killed process cannot renew its lease; let it lapse now.
                w.ws.state_execute(&format!(
                    "UPDATE runs SET lease_expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = '{id}'"
                ));
                ("test-operator", vec!["resume", id, "--json"])
            }
            (_, Some(id)) => return Ok((id.clone(), kills)),
            _ => unreachable!(),
        };
        let (ended, out) = invoke(w, who, &args, fp.clone());
        log.push(format!("{} {}", args[0], fp.as_deref().unwrap_or("-")));
        match ended {
            Ended::Killed => {
                if !stderr(&out).contains("failpoint nth:") {
                    return Err(format!("died without its failpoint: {}", stderr(&out)));
                }
                kills += 1;
            }
            Ended::Exited(_) if args[0] == "approve" => {
                // A killed approve may have been recorded: approving again is refused.
                approved = true;
            }
            Ended::Exited(code) if code > 3 => {
                return Err(format!(
                    "`{}` exited {code} after {log:?}: {}\n{}",
                    args.join(" "),
                    stderr(&out),
                    stdout(&out)
                ));
            }
            Ended::Exited(..) => {}
        }
    }
    Err(format!("the run did not end after 40 invocations: {log:?}"))
}

/// What a finished run left behind, in terms that do not depend on ids or times.
#[derive(Debug, PartialEq)]
struct Outcome {
    state: String,
    figures: Vec<i64>,
    /// (method, path kind) → distinct Stripe writes (a retry under the same
    /// idempotency key is the same write).
    stripe_writes: BTreeMap<String, usize>,
    /// Audit actions of the run's effects → entries.
    effects_audited: BTreeMap<String, usize>,
}

/// Audit actions a crash legitimately adds or that describe the run, not an effect.
fn lifecycle(action: &str) -> bool {
    action.starts_with("run.") || action.starts_with("step.") || action.starts_with("approval.")
}

fn outcome(w: &World, sc: &Scenario, run_id: &str) -> Outcome {
    let state = w.status(run_id)["state"].as_str().unwrap_or("?").to_owned();
    let figures = sc.figures.iter().map(|q| w.ws.scalar_i64(q)).collect();
    let mut keys: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (i, r) in w.stripe.requests().into_iter().enumerate() {
        if r.method == "GET" {
            continue;
        }
        let kind: Vec<&str> = r.path.split('/').take(3).collect();
        let key = r.idempotency_key.unwrap_or_else(|| format!("unkeyed #{i}"));
        keys.entry(format!("{} {}", r.method, kind.join("/")))
            .or_default()
            .insert(key);
    }
    let stripe_writes = keys.into_iter().map(|(k, v)| (k, v.len())).collect();
    let mut effects_audited = BTreeMap::new();
    for entry in
        w.ws.json(&["audit", "show", "--run", run_id, "--json"])
            .as_array()
            .unwrap()
    {
        let action = entry["action"].as_str().unwrap_or("?").to_owned();
        // `<effect>.unknown`: an at-most-once delivery a crash left possibly sent; the
        // emails are checked for it (at most the reference's, never twice).
        if !lifecycle(&action) && !action.ends_with(".unknown") {
            *effects_audited.entry(action).or_insert(0) += 1;
        }
    }
    Outcome {
        state,
        figures,
        stripe_writes,
        effects_audited,
    }
}

/// Everything checked of one crashed run against the reference; `Err` says what broke.
fn check(
    w: &World,
    sc: &Scenario,
    run_id: &str,
    reference: &Outcome,
    mails: usize,
) -> Result<(), String> {
    let got = outcome(w, sc, run_id);
    let mut ids = BTreeMap::new();
    for m in w.smtp.messages() {
        *ids.entry(m.message_id.unwrap_or_default()).or_insert(0) += 1;
    }
    if let Some((id, n)) = ids.iter().find(|(_, n)| **n > 1) {
        return Err(format!("email {id} delivered {n} times"));
    }
    let delivered: usize = ids.values().sum();
    let unknown =
        w.ws.json(&["audit", "show", "--run", run_id, "--json"])
            .to_string()
            .contains("unknown");
    if delivered > mails || (!unknown && delivered != mails) {
        return Err(format!("{delivered} emails, the reference sent {mails}"));
    }
    let verify = w.ws.run(&["audit", "verify"]);
    if verify.status.code() != Some(0) {
        return Err(format!("audit chain broken: {}", stdout(&verify)));
    }
    let runs = w.ws.json(&["runs", "--json"]);
    if runs.to_string().contains("\"running\"") {
        return Err(format!("a run is left running: {runs}"));
    }
    if got != *reference {
        return Err(format!(
            "differs from the reference:\n got {got:?}\nwant {reference:?}"
        ));
    }
    Ok(())
}

fn world(sc: &Scenario) -> World {
    let w = World::on(sc.backend);
    (sc.prepare)(&w);
    w
}

/// The uncrashed run: what it left behind, the emails it sent, and the crash sites its
/// busiest invocation crossed (`RUNBOOK_FAILPOINT=trace`), the range kills are drawn from.
fn reference(sc: &Scenario) -> (Outcome, usize, u64) {
    let w = world(sc);
    let sites = drive_traced(&w, sc);
    let run_id = latest_run(&w).unwrap_or_else(|| panic!("{}: the reference made no run", sc.name));
    let reference = outcome(&w, sc, &run_id);
    (reference, w.smtp.messages().len(), sites)
}

/// Runs the scenario uncrashed with `RUNBOOK_FAILPOINT=trace`; the most sites one
/// invocation crossed.
fn drive_traced(w: &World, sc: &Scenario) -> u64 {
    let mut args = vec!["exec"];
    args.extend(sc.exec);
    args.push("--json");
    let mut most = 0;
    let (_, out) = invoke(w, "test-operator", &args, Some("trace".into()));
    most = most.max(stderr(&out).matches("failpoint site").count() as u64);
    if let Some(approver) = sc.approver {
        let id = latest_run(w).unwrap();
        invoke(w, approver, &["approve", &id, "--comment", "checked"], None);
        let (_, out) = invoke(
            w,
            "test-operator",
            &["resume", &id, "--json"],
            Some("trace".into()),
        );
        most = most.max(stderr(&out).matches("failpoint site").count() as u64);
    }
    most
}

fn torture(sc: &Scenario) {
    let seed = env_u64("RUNBOOK_TORTURE_SEED", 19);
    let cases = env_u64("RUNBOOK_TORTURE_CASES", 6);
    let (want, mails, sites) = reference(sc);
    assert!(sites > 0, "{}: no crash site crossed", sc.name);
    let mut rng = Rng(seed ^ sc.name.len() as u64 ^ (sc.name.as_bytes()[0] as u64) << 32);
    let (mut kills, mut failures) = (0, Vec::new());
    for case in 0..cases {
        // The first kill lands on the exec or, with an approval, on the resume after it.
        // (exec, approve, resume: two in three kills go to the resume that moves money).
        let first = if sc.approver.is_some() && !rng.next().is_multiple_of(3) {
            2
        } else {
            0
        };
        let mut arms = vec![None; first];
        arms.push(Some(rng.upto(sites)));
        for _ in 0..rng.upto(3) {
            arms.push(rng.next().is_multiple_of(2).then(|| rng.upto(sites)));
        }
        let w = world(sc);
        let result = drive(&w, sc, &arms).and_then(|(run_id, k)| {
            kills += k;
            check(&w, sc, &run_id, &want, mails)
        });
        if let Err(e) = result {
            failures.push(format!(
                "{}: seed {seed} case {case} kills {arms:?}: {e}",
                sc.name
            ));
        }
    }
    eprintln!(
        "torture summary: {} | seed {seed} | sites {sites} | runs {cases} | kills {kills} | failures {}",
        sc.name,
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn issue_refund_on_postgres_survives_kills_at_every_commit_and_effect() {
    torture(&SCENARIOS[0]);
}

#[test]
fn refund_and_downgrade_survives_kills_after_its_approval() {
    torture(&SCENARIOS[1]);
}

#[test]
fn grace_period_expirations_survives_kills() {
    torture(&SCENARIOS[2]);
}

#[test]
fn issue_refund_on_sqlite_survives_kills() {
    torture(&SCENARIOS[3]);
}
