//! `runbook approve`, `reject`, `resume` and `rollback`: acting on a run after `exec`
//! returned — decisions on a paused run, continuing it, or undoing it.

use std::io::IsTerminal;
use std::path::Path;

use clap::Args;

use super::exec::{Engine, Progress, finish, operator, report_error};
use super::exit;
use super::output;
use super::output::{say, say_inline};
use super::session::Reported;
use crate::exec::{PendingUndo, may_approve};
use crate::state::{ApprovalDecision, Decision, NewAuditEntry, RunDetail, RunStatus, StateStore};

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Run id: the id, a unique prefix of at least 8 characters, `last`, or `last:<runbook>`
    run_id: String,
    /// Who approves (must be an approver of the waiting step)
    #[arg(long = "as", value_name = "NAME", env = "RUNBOOK_OPERATOR")]
    actor: Option<String>,
    /// Recorded with the approval in the audit log
    #[arg(long)]
    comment: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// Run id: the id, a unique prefix of at least 8 characters, `last`, or `last:<runbook>`
    run_id: String,
    /// Who rejects (must be an approver of the waiting step)
    #[arg(long = "as", value_name = "NAME", env = "RUNBOOK_OPERATOR")]
    actor: Option<String>,
    /// Why (recorded in the audit log)
    #[arg(long)]
    reason: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Run id: the id, a unique prefix of at least 8 characters, `last`, or `last:<runbook>`
    run_id: String,
    /// Who resumes (recorded; answers approvals at the terminal if allowed)
    #[arg(long = "as", value_name = "NAME", env = "RUNBOOK_OPERATOR")]
    actor: Option<String>,
    /// Print the run report as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Run id: the id, a unique prefix of at least 8 characters, `last`, or `last:<runbook>`
    run_id: String,
    /// Who rolls back (recorded in the audit log)
    #[arg(long = "as", value_name = "NAME", env = "RUNBOOK_OPERATOR")]
    actor: Option<String>,
    /// Undo without asking (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub async fn approve(config: Option<&Path>, args: ApproveArgs) -> u8 {
    let decision = (Decision::Approve, args.comment);
    decide(config, &args.run_id, args.actor, decision, args.json)
        .await
        .unwrap_or_else(|Reported(code)| code)
}

pub async fn reject(config: Option<&Path>, args: RejectArgs) -> u8 {
    let decision = (Decision::Reject, Some(args.reason));
    decide(config, &args.run_id, args.actor, decision, args.json)
        .await
        .unwrap_or_else(|Reported(code)| code)
}

async fn decide(
    config: Option<&Path>,
    run_id: &str,
    actor: Option<String>,
    (decision, comment): (Decision, Option<String>),
    json: bool,
) -> Result<u8, Reported> {
    let session = super::session::Session::open(config)?;
    let state = session.state().await?;
    let actor = operator(actor)?;
    let detail = load_run(&state, run_id).await?;
    let Some(record) = detail.pending_approval.clone() else {
        output::error(&format!(
            "run {} is not waiting for an approval (it is {})",
            detail.run.id, detail.state
        ));
        return Err(Reported(exit::INVALID));
    };
    if let Some(deadline) = record.request.deadline
        && deadline <= chrono::Utc::now()
    {
        output::error(&format!(
            "the approval timed out at {deadline}; `runbook resume {}` applies its timeout rule",
            detail.run.id
        ));
        return Err(Reported(exit::INVALID));
    }
    if let Err(why) = may_approve(
        &record,
        &actor,
        &detail.run.operator,
        &session.config.groups,
    ) {
        output::error(&why.to_string());
        return Err(Reported(exit::INVALID));
    }
    let step_id = detail
        .steps
        .iter()
        .find(|s| s.index == record.request.step_index)
        .map_or_else(String::new, |s| s.step_id.clone());
    let action = match decision {
        Decision::Approve => "approval.granted",
        Decision::Reject => "approval.rejected",
    };
    let audit = NewAuditEntry {
        at: chrono::Utc::now(),
        actor: actor.clone(),
        run_id: Some(detail.run.id.clone()),
        step_id: Some(step_id.clone()),
        plugin: None,
        plugin_digest: None,
        action: action.into(),
        target: format!("step:{step_id}"),
        detail: serde_json::json!({ "comment": comment }).to_string(),
    };
    state
        .decide(
            &detail.run.id,
            record.request.step_index,
            &ApprovalDecision {
                actor: actor.clone(),
                decision,
                comment,
                at: chrono::Utc::now(),
            },
            &audit,
        )
        .await
        .map_err(|e| {
            output::error(&e.to_string());
            Reported(exit::INVALID)
        })?;
    let approvals = record
        .decisions
        .iter()
        .filter(|d| d.decision == Decision::Approve)
        .count()
        + usize::from(decision == Decision::Approve);
    let ready = decision == Decision::Reject || approvals as i64 >= record.request.required;
    if json {
        output::json(&serde_json::json!({
            "run_id": detail.run.id,
            "step": step_id,
            "decision": decision,
            "actor": actor,
            "approvals": approvals,
            "required": record.request.required,
            "ready_to_resume": ready,
        }));
    } else {
        let verb = if decision == Decision::Approve {
            "approved"
        } else {
            "rejected"
        };
        say!(
            "{} step `{}` of run {} as {} ({} of {} approvals)",
            verb,
            step_id,
            detail.run.id,
            actor,
            approvals,
            record.request.required
        );
        if ready {
            say!("continue with: runbook resume {}", detail.run.id);
        }
    }
    Ok(exit::SUCCESS)
}

pub async fn resume(config: Option<&Path>, args: ResumeArgs) -> u8 {
    let result: Result<u8, Reported> = async {
        let engine = Engine::open(config).await?;
        let detail = load_run(&engine.state, &args.run_id).await?;
        let runbook = engine
            .session
            .load_runbook(&detail.run.runbook, &engine.plugins)?;
        let actor = operator(args.actor)?;
        let mut progress = Progress::new(&runbook, args.json, false, false);
        let result = engine
            .executor(false)
            .resume(&runbook, &detail.run.id, &actor, &mut progress)
            .await;
        engine.target.close().await;
        let report = result.map_err(|e| report_error(&e))?;
        Ok(finish(&report, args.json))
    }
    .await;
    result.unwrap_or_else(|Reported(code)| code)
}

pub async fn rollback(config: Option<&Path>, args: RollbackArgs) -> u8 {
    let result: Result<u8, Reported> = async {
        let engine = Engine::open(config).await?;
        let detail = load_run(&engine.state, &args.run_id).await?;
        let runbook = engine
            .session
            .load_runbook(&detail.run.runbook, &engine.plugins)?;
        let actor = operator(args.actor)?;
        let pending = PendingUndo::of(&runbook, &detail);
        // A finished run with nothing to undo is left exactly as it is; an unfinished
        // one is still ended by the rollback.
        if pending.undo.is_empty() && detail.run.status != RunStatus::Running {
            nothing_to_undo(&detail, &pending, args.json);
            return Ok(exit::SUCCESS);
        }
        if !args.yes && !confirm_undo(&detail.run.id, &pending)? {
            say!("nothing undone");
            return Err(Reported(exit::INVALID));
        }
        let result = engine
            .executor(false)
            .roll_back_run(&runbook, &detail.run.id, &actor)
            .await;
        engine.target.close().await;
        let report = result.map_err(|e| report_error(&e))?;
        // What was asked for is the rollback: it succeeding is success.
        Ok(match finish(&report, args.json) {
            _ if report.state == crate::state::RunState::RolledBack => exit::SUCCESS,
            code => code,
        })
    }
    .await;
    result.unwrap_or_else(|Reported(code)| code)
}

fn nothing_to_undo(detail: &RunDetail, pending: &PendingUndo, json: bool) {
    if json {
        output::json(&serde_json::json!({
            "run_id": detail.run.id,
            "state": detail.state,
            "nothing_to_undo": true,
            "without_rollback": pending.without_rollback,
        }));
        return;
    }
    say!("nothing to undo: run {} is {}", detail.run.id, detail.state);
    if pending.without_rollback.is_empty() {
        say!("  no completed step is left to undo");
    } else {
        say!(
            "  completed without a rollback: {}",
            pending.without_rollback.join(", ")
        );
    }
}

/// Asks the person at the terminal; without one, `--yes` must say it.
fn confirm_undo(run_id: &str, pending: &PendingUndo) -> Result<bool, Reported> {
    if !std::io::stdin().is_terminal() {
        output::error(&format!(
            "rolling back run {run_id} undoes {}; stdin is not a terminal to ask, so pass --yes",
            pending.undo.join(", ")
        ));
        return Err(Reported(exit::INVALID));
    }
    say!(
        "roll back run {}: undo {} (newest first)",
        run_id,
        pending.undo.join(", ")
    );
    if !pending.without_rollback.is_empty() {
        say!(
            "  left as they are (no rollback): {}",
            pending.without_rollback.join(", ")
        );
    }
    say_inline!("undo? [y/N] ");
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).unwrap_or(0) == 0 {
        return Ok(false);
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

async fn load_run(state: &StateStore, run_id: &str) -> Result<crate::state::RunDetail, Reported> {
    super::run_ref::load_run(state, run_id).await
}
