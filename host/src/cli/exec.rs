//! `runbook exec`: run a runbook with progress on a terminal and a summary at the end.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use clap::Args;

use super::exit;
use super::output::{self, BOLD, DIM, FAIL, OK, WARN};
use super::session::{Reported, Session, redact_url};
use crate::exec::{ExecError, Executor, RunObserver, StepReport, parse_cli_params};
use crate::grant::AnalysisCache;
use crate::runbook::Templates;
use crate::runbook::{Runbook, Step};
use crate::runtime::Runtime;
use crate::state::{RunStatus, StepStatus};
use crate::target::TargetDb;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Runbook name (a file `<name>.toml` in a runbook folder) or path to a runbook file
    runbook: String,
    /// A parameter, as name=value (repeatable)
    #[arg(short, long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Who is running this (recorded on the run and every audit entry)
    #[arg(long = "as", value_name = "OPERATOR", env = "RUNBOOK_OPERATOR")]
    operator: Option<String>,
    /// Print the run report as JSON on stdout instead of progress and a summary
    #[arg(long)]
    json: bool,
}

pub async fn exec(config: Option<&Path>, args: ExecArgs) -> u8 {
    match run(config, args).await {
        Ok(code) | Err(Reported(code)) => code,
    }
}

async fn run(config: Option<&Path>, args: ExecArgs) -> Result<u8, Reported> {
    let session = Session::open(config)?;
    let plugins = session.plugins();
    let runbook = session.load_runbook(&args.runbook, &plugins)?;
    let given = parse_cli_params(&runbook, &args.params).map_err(|errors| {
        output::error(&format!("invalid parameters:\n  {}", errors.join("\n  ")));
        Reported(exit::INVALID)
    })?;
    let operator = args
        .operator
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_string());

    let state = session.state().await?;
    let target = TargetDb::connect(&session.config.target_url)
        .await
        .map_err(|e| {
            output::error(&format!(
                "target database {}: {e}",
                redact_url(&session.config.target_url)
            ));
            Reported(exit::INVALID)
        })?;
    let runtime = Runtime::new(session.config.cache_dir.clone()).map_err(|e| {
        output::error(&e.to_string());
        Reported(exit::FAILED)
    })?;
    let executor = Executor {
        runtime: &runtime,
        plugins: &plugins,
        target: Some(target.clone()),
        state: &state,
        limits: session.config.limits,
        analysis: Arc::new(AnalysisCache::default()),
        templates: Templates::new(),
    };
    let mut progress = Progress {
        enabled: !args.json,
        terminal: output::stdout_is_terminal(),
        total: runbook.steps.len(),
    };
    let result = executor
        .execute(&runbook, &given, &operator, &mut progress)
        .await;
    target.close().await;
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            output::error(&e.to_string());
            let code = match e {
                ExecError::State(_) => exit::FAILED,
                ref other if other.is_invalid_input() => exit::INVALID,
                _ => exit::FAILED,
            };
            return Err(Reported(code));
        }
    };

    if args.json {
        output::json(&report);
    } else {
        print_summary(&report);
    }
    Ok(match report.status {
        RunStatus::Succeeded => exit::SUCCESS,
        _ => exit::FAILED,
    })
}

struct Progress {
    enabled: bool,
    terminal: bool,
    total: usize,
}

impl RunObserver for Progress {
    fn run_started(&mut self, run_id: &str, runbook: &Runbook) {
        if self.enabled {
            anstream::println!("{BOLD}{}{BOLD:#} {DIM}run {run_id}{DIM:#}", runbook.name);
        }
    }

    fn step_started(&mut self, index: usize, step: &Step) {
        if self.enabled && self.terminal {
            anstream::print!(
                "  [{}/{}] {} {DIM}running…{DIM:#}",
                index + 1,
                self.total,
                label(&step.id, step.name.as_deref())
            );
            let _ = std::io::stdout().flush();
        }
    }

    fn step_finished(&mut self, index: usize, report: &StepReport) {
        if !self.enabled {
            return;
        }
        if self.terminal {
            // Overwrite the "running…" line.
            print!("\r\x1b[2K");
        }
        let (style, word) = match report.status {
            StepStatus::Succeeded => (OK, "ok"),
            StepStatus::Skipped => (WARN, "skipped"),
            StepStatus::Failed => (FAIL, "FAILED"),
            StepStatus::Running => (WARN, "running"),
        };
        anstream::println!(
            "  [{}/{}] {} {style}{word}{style:#} {DIM}{} ms{DIM:#}",
            index + 1,
            self.total,
            label(&report.id, report.name.as_deref()),
            report.duration_ms
        );
        if let Some(error) = &report.error {
            anstream::println!("        {FAIL}{error}{FAIL:#}");
        }
    }
}

fn label(id: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{id} ({name})"),
        None => id.to_string(),
    }
}

fn print_summary(report: &crate::exec::RunReport) {
    let last_output = report
        .steps
        .iter()
        .rev()
        .find_map(|s| s.output.as_ref().map(|o| (s.id.as_str(), o)));
    if let (RunStatus::Succeeded, Some((step, output))) = (report.status, last_output) {
        anstream::println!("\n{BOLD}Output of step `{step}`{BOLD:#}");
        println!(
            "{}",
            serde_json::to_string_pretty(output).unwrap_or_default()
        );
    }
    let style = output::status_style(&report.status.to_string());
    anstream::println!(
        "\n{style}{}{style:#} {} in {} ms ({} steps)",
        report.status,
        report.runbook,
        report.duration_ms,
        report.steps.len()
    );
    anstream::println!("{DIM}details: runbook status {}{DIM:#}", report.run_id);
}
