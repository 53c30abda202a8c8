//! `runbook runs` and `runbook status`: run history from the state store.

use std::path::Path;

use clap::Args;

use super::exit;
use super::output::{self, BOLD, DIM, FAIL, OK, WARN};
use chrono::{DateTime, NaiveDate, Utc};

use crate::spec::values::parse_duration;
use crate::state::{CallDecision, RunFilter, RunState};

fn parse_state(text: &str) -> Result<RunState, String> {
    RunState::ALL
        .into_iter()
        .find(|s| s.to_string() == text)
        .ok_or_else(|| {
            let names: Vec<String> = RunState::ALL.iter().map(ToString::to_string).collect();
            format!("expected one of {}", names.join(", "))
        })
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    let age = parse_duration(text).map_err(|_| {
        "expected a date (2026-12-01), an RFC 3339 time, or an age (90m, 24h, 7d)".to_string()
    })?;
    let age = chrono::Duration::from_std(age).map_err(|e| e.to_string())?;
    Ok(Utc::now() - age)
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err("expected NAME=VALUE".to_string()),
    }
}

fn decision_label(decision: CallDecision) -> String {
    match decision {
        CallDecision::Allowed => "allowed".to_string(),
        CallDecision::Denied => format!("{FAIL}denied{FAIL:#}"),
        CallDecision::Replayed => format!("{WARN}replayed from journal{WARN:#}"),
        CallDecision::DryRun => format!("{WARN}dry run{WARN:#}"),
        CallDecision::Intent => format!("{WARN}intent, no outcome recorded{WARN:#}"),
        CallDecision::Unknown => format!("{WARN}unknown, possibly sent{WARN:#}"),
    }
}
use super::output::{say, say_err};
use super::run_ref::load_run;
use super::session::{Reported, Session};

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// How many runs to show, newest first
    #[arg(long, default_value_t = 20)]
    limit: i64,
    /// Only runs waiting for approval (same as --status awaiting-approval)
    #[arg(long)]
    pending: bool,
    /// Only runs in this state (repeatable): running, awaiting-approval, interrupted,
    /// succeeded, failed, rolled-back, rollback-failed
    #[arg(long = "status", value_name = "STATE", value_parser = parse_state)]
    states: Vec<RunState>,
    /// Only runs of this runbook
    #[arg(long, value_name = "NAME")]
    runbook: Option<String>,
    /// Only runs started by this operator
    #[arg(long, value_name = "NAME")]
    operator: Option<String>,
    /// Only runs started since a time: `2026-12-01`, an RFC 3339 time, or an age
    /// such as `90m`, `24h`, `7d`
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
    /// Only runs with this parameter value (repeatable): `-p organization_id=2`
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Run id: the id, a unique prefix of at least 8 characters, `last`, or `last:<runbook>`
    run_id: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub async fn runs(config: Option<&Path>, args: RunsArgs) -> u8 {
    let result: Result<u8, Reported> = async {
        let session = Session::open(config)?;
        let state = session.state().await?;
        let mut states = args.states;
        if args.pending {
            states.push(RunState::AwaitingApproval);
        }
        let filter = RunFilter {
            runbook: args.runbook,
            operator: args.operator,
            since: args.since,
            states,
            params: args.params,
        };
        let runs = state.find_runs(&filter, args.limit).await.map_err(|e| {
            output::error(&e.to_string());
            Reported(exit::FAILED)
        })?;
        if args.json {
            output::json(&runs);
            return Ok(exit::SUCCESS);
        }
        if runs.is_empty() {
            say!("no runs");
            // An empty history is an answer; a mistyped runbook name is a question.
            if let Some(name) = &filter.runbook
                && session.find_runbook(name).is_none()
            {
                say_err!("{WARN}warning{WARN:#}: {}", session.no_runbook(name));
            }
            return Ok(exit::SUCCESS);
        }
        say!(
            "{BOLD}{:<36}  {:<24} {:<17} {:>9} {:>10}  {:<19}  {}{BOLD:#}",
            "RUN",
            "RUNBOOK",
            "STATE",
            "STEPS",
            "DURATION",
            "STARTED (UTC)",
            "OPERATOR"
        );
        for run in runs {
            let style = output::status_style(&run.state.to_string());
            say!(
                "{:<36}  {:<24} {style}{:<17}{style:#} {:>9} {:>10}  {}  {DIM}{}{DIM:#}",
                run.id,
                run.runbook,
                run.state.to_string(),
                run.steps_total,
                run.duration_ms
                    .map_or("-".to_string(), |d| format!("{d} ms")),
                run.started_at.format("%Y-%m-%d %H:%M:%S"),
                run.operator
            );
        }
        Ok(exit::SUCCESS)
    }
    .await;
    result.unwrap_or_else(|Reported(code)| code)
}

pub async fn status(config: Option<&Path>, args: StatusArgs) -> u8 {
    let result: Result<u8, Reported> = async {
        let state = Session::open(config)?.state().await?;
        let detail = load_run(&state, &args.run_id).await?;
        if args.json {
            output::json(&detail);
            return Ok(exit::SUCCESS);
        }
        let run = &detail.run;
        say!("{BOLD}run{BOLD:#}      {}", run.id);
        say!(
            "{BOLD}runbook{BOLD:#}  {} {DIM}sha256:{}{DIM:#}",
            run.runbook,
            &run.runbook_digest
        );
        let mode = if run.dry_run { " (dry run)" } else { "" };
        let style = output::status_style(&detail.state.to_string());
        say!(
            "{BOLD}status{BOLD:#}   {style}{}{style:#}{}",
            detail.state,
            mode
        );
        if let Some(pending) = &detail.pending_approval {
            let approved: Vec<&str> = pending
                .decisions
                .iter()
                .filter(|d| d.decision == crate::state::Decision::Approve)
                .map(|d| d.actor.as_str())
                .collect();
            say!(
                "{BOLD}waiting{BOLD:#}  approval by {} ({} of {}: {})",
                pending.request.approvers.join(", "),
                approved.len(),
                pending.request.required,
                if approved.is_empty() {
                    "none yet".to_string()
                } else {
                    approved.join(", ")
                }
            );
            for line in pending.request.message.lines() {
                say!("         {}", line);
            }
        }
        say!("{BOLD}operator{BOLD:#} {}", run.operator);
        say!("{BOLD}params{BOLD:#}   {}", run.params);
        say!("{BOLD}started{BOLD:#}  {}", run.started_at.to_rfc3339());
        if let Some(error) = &run.error {
            say!("{BOLD}error{BOLD:#}    {}", error);
        }
        for step in &detail.steps {
            let style = output::status_style(&step.status.to_string());
            say!(
                "\n{BOLD}step {}{BOLD:#} {DIM}{} sha256:{}{DIM:#} {style}{}{style:#} {} ms",
                step.step_id,
                step.plugin,
                &step.plugin_digest.get(..12).unwrap_or(&step.plugin_digest),
                step.status,
                step.duration_ms.unwrap_or(0)
            );
            if step.attempts > 1 {
                say!("  attempts: {}", step.attempts);
            }
            say!("  input:  {}", step.input);
            if let Some(output) = &step.output {
                say!("  output: {}", output);
            }
            if let Some(error) = &step.error {
                say!("  error:  {}", error);
            }
            for call in detail.calls.iter().filter(|c| c.step_index == step.index) {
                let outcome = if call.ok {
                    format!("{OK}ok{OK:#}")
                } else {
                    format!("{FAIL}error{FAIL:#}")
                };
                let executions = call.params["executions"].as_u64().unwrap_or(1);
                say!(
                    "  {DIM}call{DIM:#} #{}{} {}.{}{} {} {} {DIM}{} µs{DIM:#}{}{}",
                    call.seq,
                    if call.attempt > 1 {
                        format!(" (attempt {})", call.attempt)
                    } else {
                        String::new()
                    },
                    call.interface,
                    call.operation,
                    if executions > 1 {
                        format!(" ×{executions}")
                    } else {
                        String::new()
                    },
                    decision_label(call.decision),
                    outcome,
                    call.duration_us,
                    call.idempotency_key
                        .as_ref()
                        .map_or(String::new(), |k| format!(" key {k}")),
                    call.error
                        .as_ref()
                        .map_or(String::new(), |e| format!(": {e}"))
                );
            }
            for line in &step.logs {
                say!(
                    "  {DIM}{} {:<5} {:<6}{DIM:#} {}{}",
                    line.at.format("%H:%M:%S%.3f"),
                    line.level,
                    line.stream,
                    line.message,
                    if line.fields.is_empty() {
                        String::new()
                    } else {
                        format!(" {:?}", line.fields)
                    }
                );
            }
        }
        for rollback in &detail.rollbacks {
            let name = detail
                .steps
                .iter()
                .find(|s| s.index == rollback.step_index)
                .map_or("?", |s| s.step_id.as_str());
            let (style, word) = if rollback.succeeded {
                (OK, "rolled back")
            } else {
                (FAIL, "rollback failed")
            };
            say!(
                "\n{BOLD}rollback of {}{BOLD:#} {style}{}{style:#} {} ms",
                name,
                word,
                rollback.duration_ms
            );
            if let Some(output) = &rollback.output {
                say!("  output: {}", output);
            }
            if let Some(error) = &rollback.error {
                say!("  error:  {}", error);
            }
        }
        Ok(exit::SUCCESS)
    }
    .await;
    result.unwrap_or_else(|Reported(code)| code)
}
