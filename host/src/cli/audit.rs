//! `runbook audit show|verify`: read and check the hash-chained audit log.

use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::json;

use super::exit;
use super::output::say;
use super::output::{self, DIM, FAIL, OK};
use super::run_ref::no_run;
use super::session::{Reported, Session};
use crate::state::AuditVerification;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show audit entries, oldest first
    Show(ShowArgs),
    /// Recompute the hash chain; exit 1 and name the first bad entry if it was tampered with
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Only entries of this run
    #[arg(long = "run", value_name = "RUN_ID")]
    run_id: Option<String>,
    /// At most this many (the newest)
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub async fn audit(config: Option<&Path>, command: AuditCommand) -> u8 {
    let result: Result<u8, Reported> = async {
        let state = Session::open(config)?.state().await?;
        let fail = |e: crate::state::StateError| {
            output::error(&e.to_string());
            Reported(exit::FAILED)
        };
        match command {
            AuditCommand::Show(args) => {
                // A prefix names its run; an id no run and no entry has is a mistake to
                // report, not an empty trail (a run refused before it opened has entries
                // but no run row).
                let run_id = match &args.run_id {
                    None => None,
                    Some(id) => match state.run(id).await {
                        Ok(Some(detail)) => Some(detail.run.id),
                        Ok(None) | Err(_) => Some(id.clone()),
                    },
                };
                let entries = state
                    .audit_entries(run_id.as_deref(), args.limit)
                    .await
                    .map_err(fail)?;
                if let Some(id) = &run_id
                    && entries.is_empty()
                {
                    output::error(&no_run(&state, id, " and no audit entry for it").await);
                    return Err(Reported(exit::INVALID));
                }
                if args.json {
                    output::json(&entries);
                    return Ok(exit::SUCCESS);
                }
                for e in entries {
                    say!(
                        "{DIM}#{:<6} {}{DIM:#} {:<12} {:<22} {} {DIM}{}{DIM:#}",
                        e.seq,
                        e.at.format("%Y-%m-%d %H:%M:%S"),
                        e.actor,
                        e.action,
                        e.target,
                        e.detail
                    );
                }
                Ok(exit::SUCCESS)
            }
            AuditCommand::Verify(args) => {
                let verification = state.verify_audit().await.map_err(fail)?;
                let code = match &verification {
                    AuditVerification::Intact { .. } => exit::SUCCESS,
                    AuditVerification::Broken { .. } => exit::FAILED,
                };
                if args.json {
                    output::json(&match &verification {
                        AuditVerification::Intact { entries, head } => {
                            json!({ "status": "intact", "entries": entries, "head": head })
                        }
                        AuditVerification::Broken { seq, reason } => {
                            json!({ "status": "broken", "first_bad_seq": seq, "reason": reason })
                        }
                    });
                } else {
                    match verification {
                        AuditVerification::Intact { entries, head } => say!(
                            "{OK}intact{OK:#}: {}, head {}",
                            output::count(entries, "entry"),
                            head.as_deref().unwrap_or("(empty)")
                        ),
                        AuditVerification::Broken { seq, reason } => {
                            say!("{FAIL}broken{FAIL:#} at entry #{}: {}", seq, reason)
                        }
                    }
                }
                Ok(code)
            }
        }
    }
    .await;
    result.unwrap_or_else(|Reported(code)| code)
}
