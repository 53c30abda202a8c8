//! `runbook grants [runbook] [--diff <rev>] [--deny warnings|widenings] [--json]`: the
//! security review of what every step may do (see `crate::review`), for a person or,
//! with `--json`, for a script; `--deny` makes it a CI gate.

use std::path::Path;

use clap::{Args, ValueEnum};

use super::exit;
use super::output::{self, BOLD, DIM, FAIL, OK, WARN, say};
use super::session::{Reported, Session};
use crate::capability::{ImpliedEffects, Lint, Severity};
use crate::review::{self, GrantDiff, GrantReview, Revision, Role, StepReview};
use crate::runtime::Runtime;
use crate::spec::lock::lock_path;
use crate::target::TargetDb;

pub const AFTER_HELP: &str = "\
Lints (see the README for how to fix each):
  unneeded-grant           granted, but the plugin's manifest never declares needing it
  write-without-approval   the step may change things and no approval step comes before it
  ddl-granted              the step may create, alter, drop or truncate tables
  unbounded-stripe-writes  Stripe writes without max_writes (refunds: without their caps)
  wildcard-recipient       an email recipient pattern with `*`
  no-lockfile              no runbook.lock: plugins are not pinned
  implied-unknown          the target's schema could not be read: cascades and triggers
                           are not reviewed
  implied-not-granted      (error) a write the step may make cascades or fires a trigger
                           or rule the step is not granted; exec refuses it
  not-locked, lock-drift   (errors) exec would refuse the plugin: not in runbook.lock, or
                           another digest than the locked one

Exit codes:
  0  reviewed (findings are printed, not failed on, unless --deny says so)
  1  --deny warnings found a lint, or --deny widenings found a widening
  2  invalid input: configuration, unknown runbook, not a git repository, unknown revision,
     --deny widenings without --diff";

#[derive(Debug, Args)]
pub struct GrantsArgs {
    /// Review only this runbook (name or file stem) [default: every runbook]
    runbook: Option<String>,
    /// Compare with the runbooks and plugins at this git revision and list what the
    /// current workspace widens (and narrows)
    #[arg(long, value_name = "GIT-REV")]
    diff: Option<String>,
    /// Exit 1 when any lint (`warnings`) or, with --diff, any widening (`widenings`) is
    /// found; repeatable
    #[arg(long, value_enum, value_name = "WHAT")]
    deny: Vec<Deny>,
    /// Print JSON: the review, or with --diff the differences
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Deny {
    Warnings,
    Widenings,
}

pub async fn grants(config: Option<&Path>, args: GrantsArgs) -> u8 {
    run(config, args)
        .await
        .unwrap_or_else(|Reported(code)| code)
}

async fn run(config: Option<&Path>, args: GrantsArgs) -> Result<u8, Reported> {
    // A gate that can never fail is a misconfigured gate.
    if args.deny.contains(&Deny::Widenings) && args.diff.is_none() {
        output::error("--deny widenings needs --diff <git-rev> to compare with");
        return Err(Reported(exit::INVALID));
    }
    let session = Session::open(config)?;
    let plugins = session.plugins();
    let lock = session.lockfile()?;
    let runtime = Runtime::new(session.config.cache_dir.clone()).map_err(|e| {
        output::error(&e.to_string());
        Reported(exit::FAILED)
    })?;
    let path = lock_path(&session.config);
    let files = session.runbook_files();
    let mut now = review::current(&session.config, &files, &plugins, &runtime, lock);
    now.schema = Some(schema_of_target(&session).await);
    let mut current = review::review(&now);
    if let Some(name) = &args.runbook {
        current.retain_runbook(name);
        if current.runbooks.is_empty() {
            output::error(&session.no_runbook(name));
            return Err(Reported(exit::INVALID));
        }
    }
    let diff = match &args.diff {
        Some(rev) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            let revision = Revision::open(dir, rev).map_err(|e| {
                output::error(&e.to_string());
                Reported(exit::INVALID)
            })?;
            let then = review::at_revision(&revision, &session.config, &now, &plugins, &runtime)
                .map_err(|e| {
                    output::error(&e.to_string());
                    Reported(exit::INVALID)
                })?;
            let mut old = review::review(&then);
            if let Some(name) = &args.runbook {
                old.retain_runbook(name);
            }
            Some(review::diff(rev, then.notes, &old, &current))
        }
        None => None,
    };
    match (&diff, args.json) {
        (Some(diff), true) => output::json(diff),
        (None, true) => output::json(&current),
        (Some(diff), false) => {
            show_review(&current);
            show_diff(diff);
        }
        (None, false) => show_review(&current),
    }
    let lints = current.all_lints().count();
    let widens = diff.as_ref().is_some_and(GrantDiff::widens);
    let denied = (args.deny.contains(&Deny::Warnings) && lints > 0)
        || (args.deny.contains(&Deny::Widenings) && widens);
    Ok(if denied { exit::FAILED } else { exit::SUCCESS })
}

/// What the target database does implicitly, read from its catalog; why not, otherwise
/// (the review still shows everything else).
async fn schema_of_target(session: &Session) -> Result<ImpliedEffects, String> {
    let target = TargetDb::connect_existing(session.config.target_url.expose())
        .await
        .map_err(|e| e.to_string())?;
    let effects = ImpliedEffects::load(&target)
        .await
        .map_err(|e| e.to_string());
    target.close().await;
    effects
}

fn show_review(review: &GrantReview) {
    for lint in &review.lints {
        show_lint(lint, "");
    }
    for runbook in &review.runbooks {
        say!(
            "\n{BOLD}{}{BOLD:#} {DIM}{}{DIM:#}",
            runbook.name,
            runbook.file
        );
        for error in &runbook.errors {
            say!("  {FAIL}invalid{FAIL:#}: {}", error);
        }
        for step in &runbook.steps {
            show_step(step);
        }
    }
    let lints: Vec<&Lint> = review.all_lints().collect();
    let errors = lints
        .iter()
        .filter(|l| l.severity == Severity::Error)
        .count();
    if lints.is_empty() {
        say!("\n{OK}no findings{OK:#}");
    } else {
        say!(
            "\n{WARN}{}{WARN:#} ({}) in {}",
            output::count(lints.len() as i64, "finding"),
            output::count(errors as i64, "error"),
            output::count(review.runbooks.len() as i64, "runbook")
        );
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Step => "step",
        Role::Rollback => "rollback of",
        Role::Approval => "approval",
    }
}

fn show_step(step: &StepReview) {
    let role = role_name(step.role);
    if let Some(gate) = &step.gate {
        say!(
            "  {DIM}{}{DIM:#} {BOLD}{}{BOLD:#}: {} of {}{}, on timeout {}",
            role,
            step.step,
            gate.required,
            gate.approvers.join(", "),
            if gate.allow_self {
                " (self-approval allowed)"
            } else {
                ""
            },
            gate.on_timeout
        );
        return;
    }
    say!(
        "  {DIM}{}{DIM:#} {BOLD}{}{BOLD:#}: plugin {} {DIM}sha256:{}{DIM:#}",
        role,
        step.step,
        step.plugin,
        step.digest.as_deref().unwrap_or("?")
    );
    let imports = match &step.imports {
        Some(list) => list.iter().map(|i| i.name()).collect::<Vec<_>>().join(", "),
        None => "? (the component could not be loaded)".to_string(),
    };
    say!("    imports:  {}", imports);
    for line in or_none(&step.declares) {
        say!("    declares: {}", line);
    }
    for line in or_none(&step.grants) {
        say!("    grants:   {}", line);
    }
    for line in or_none(&step.writes) {
        say!("    writes:   {}", line);
    }
    for implied in &step.implied {
        say!(
            "    implies:  {} {DIM}({}; {}){DIM:#}",
            implied.need,
            implied.reason,
            if implied.granted {
                "granted"
            } else {
                "NOT granted"
            }
        );
    }
    for lint in &step.lints {
        show_lint(lint, "    ");
    }
}

fn or_none(lines: &[String]) -> Vec<&str> {
    if lines.is_empty() {
        vec!["none"]
    } else {
        lines.iter().map(String::as_str).collect()
    }
}

fn show_lint(lint: &Lint, indent: &str) {
    let (style, label) = match lint.severity {
        Severity::Warning => (WARN, "warning"),
        Severity::Error => (FAIL, "error"),
    };
    say!(
        "{}{style}{}[{}]{style:#}: {}",
        indent,
        label,
        lint.code,
        lint.message
    );
}

fn show_diff(diff: &GrantDiff) {
    say!("\n{BOLD}since {}{BOLD:#}", diff.rev);
    for note in &diff.notes {
        say!("  {DIM}note: {}{DIM:#}", note);
    }
    if diff.steps.is_empty() {
        say!("  {OK}no differences{OK:#}");
        return;
    }
    for step in &diff.steps {
        say!(
            "  {BOLD}{}{BOLD:#} {} {BOLD}{}{BOLD:#}",
            step.runbook,
            role_name(step.role),
            step.step
        );
        for w in &step.widened {
            say!("    {WARN}widened{WARN:#}:  {}", w);
        }
        for n in &step.narrowed {
            say!("    {OK}narrowed{OK:#}: {}", n);
        }
        for c in &step.changed {
            say!("    changed:  {}", c);
        }
    }
    if !diff.widens() {
        say!("  {OK}nothing widened{OK:#}");
    }
}
