//! `runbook exec`: run a runbook with progress on a terminal and a summary at the end.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use clap::Args;

use super::exit;
use super::output::{self, BOLD, DIM, FAIL, OK, WARN};
use super::session::{Reported, Session, redact_url};
use crate::capability::Services;
use crate::exec::{Executor, Plan, RunObserver, StepReport, parse_cli_params};
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
    /// Plan, do not act: database writes run in a transaction that is rolled back at the
    /// end, Stripe and webhook writes are not sent, emails are rendered but not sent.
    /// Reads go through. Ends with the plan of every effect.
    #[arg(long)]
    dry_run: bool,
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
        services: Arc::new(Services::from_config(&session.config)),
        dry_run: args.dry_run,
    };
    let mut progress = Progress {
        dry_run: args.dry_run,
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
            return Err(Reported(if e.is_invalid_input() {
                exit::INVALID
            } else {
                exit::FAILED
            }));
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
    dry_run: bool,
    enabled: bool,
    terminal: bool,
    total: usize,
}

impl RunObserver for Progress {
    fn run_started(&mut self, run_id: &str, runbook: &Runbook) {
        if self.enabled {
            let mode = if self.dry_run {
                format!(" {WARN}dry run{WARN:#}")
            } else {
                String::new()
            };
            anstream::println!(
                "{BOLD}{}{BOLD:#}{mode} {DIM}run {run_id}{DIM:#}",
                runbook.name
            );
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
    if let Some(plan) = &report.plan {
        print_plan(plan);
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

fn print_plan(plan: &Plan) {
    anstream::println!("\n{BOLD}Dry run: planned effects (nothing was changed){BOLD:#}");
    if plan.is_empty() {
        println!("  none");
    }
    if !plan.db.is_empty() {
        anstream::println!("  {BOLD}database{BOLD:#} {DIM}(rolled back){DIM:#}");
        for change in &plan.db {
            anstream::println!(
                "    {:>6} row(s) {:<7} {:<24} {DIM}step {} · {}× {}{DIM:#}",
                change.rows,
                change.statement,
                change.table,
                change.step,
                change.executions,
                one_line(&change.sql, 80)
            );
        }
    }
    for (title, calls) in [("stripe", &plan.stripe), ("webhooks", &plan.webhooks)] {
        if calls.is_empty() {
            continue;
        }
        anstream::println!("  {BOLD}{title}{BOLD:#} {DIM}(not sent){DIM:#}");
        for call in calls {
            anstream::println!(
                "    {} {} {DIM}step {}{DIM:#}",
                call.operation,
                call.params,
                call.step
            );
        }
    }
    if !plan.emails.is_empty() {
        anstream::println!("  {BOLD}email{BOLD:#} {DIM}(rendered, not sent){DIM:#}");
        for mail in &plan.emails {
            anstream::println!(
                "    to {} \"{}\" {DIM}template {} · step {}{DIM:#}",
                mail.to.join(", "),
                mail.subject,
                mail.template,
                mail.step
            );
        }
    }
    if !plan.denied.is_empty() {
        anstream::println!("  {FAIL}denied by grants{FAIL:#}");
        for call in &plan.denied {
            anstream::println!(
                "    {} {DIM}step {}{DIM:#} {}",
                call.operation,
                call.step,
                call.reason.as_deref().unwrap_or_default()
            );
        }
    }
}

fn one_line(sql: &str, max: usize) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}
