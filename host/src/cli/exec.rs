//! `runbook exec`: run a runbook with progress on a terminal and a summary at the end.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use clap::Args;

use super::exit;
use super::output::{self, BOLD, DIM, FAIL, OK, WARN};
use super::output::{say, say_err, say_inline};
use super::session::{Reported, Session};
use crate::capability::AnalysisCache;
use crate::capability::Services;
use crate::exec::{
    ExecError, Executor, Plan, RunObserver, RunReport, StepReport, may_approve, parse_cli_params,
};
use crate::runtime::Runtime;
use crate::spec::runbook::{Runbook, Step};
use crate::state::{ApprovalRecord, ApprovalRequest, Decision, RunState};
use crate::state::{RunStatus, StepStatus};
use crate::target::TargetDb;
use crate::template::Templates;

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
    /// Answer approval steps as the operator without asking (refused unless the operator
    /// may approve every approval step of the runbook)
    #[arg(long, short = 'y')]
    yes: bool,
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

/// What running, resuming and rolling back need: opened once per command.
pub(super) struct Engine {
    pub session: Session,
    pub plugins: crate::plugin::PluginDirectory,
    pub state: crate::state::StateStore,
    pub target: TargetDb,
    pub runtime: Runtime,
    pub lock: Option<crate::spec::lock::Lockfile>,
}

impl Engine {
    pub async fn open(config: Option<&Path>) -> Result<Engine, Reported> {
        let session = Session::open(config)?;
        let plugins = session.plugins();
        let lock = session.lockfile()?;
        let state = session.state().await?;
        let target = TargetDb::connect_existing(session.config.target_url.expose())
            .await
            .map_err(|e| {
                output::error(&format!(
                    "target database {}: {e}",
                    session.config.target_url
                ));
                Reported(exit::INVALID)
            })?;
        let runtime = Runtime::new(session.config.cache_dir.clone()).map_err(|e| {
            output::error(&e.to_string());
            Reported(exit::FAILED)
        })?;
        Ok(Engine {
            session,
            plugins,
            state,
            target,
            runtime,
            lock,
        })
    }

    pub fn executor(&self, dry_run: bool) -> Executor<'_> {
        Executor {
            runtime: &self.runtime,
            plugins: &self.plugins,
            target: Some(self.target.clone()),
            state: &self.state,
            limits: self.session.config.limits,
            analysis: Arc::new(AnalysisCache::default()),
            templates: Templates::new(),
            services: Arc::new(Services::from_config(&self.session.config)),
            dry_run,
            groups: self.session.config.groups.clone(),
            lease_ttl: self.session.config.lease,
            lock: self.lock.clone(),
        }
    }
}

/// The exit code and report of a run that ended (or paused), printed as asked.
pub(super) fn finish(report: &RunReport, json: bool) -> u8 {
    if json {
        output::json(report);
    } else {
        print_summary(report);
    }
    match report.state {
        RunState::Succeeded => exit::SUCCESS,
        RunState::AwaitingApproval => exit::PAUSED,
        _ => exit::FAILED,
    }
}

pub(super) fn report_error(e: &ExecError) -> Reported {
    output::error(&e.to_string());
    Reported(if e.is_invalid_input() {
        exit::INVALID
    } else {
        exit::FAILED
    })
}

/// Who is acting: `--as`, else `RUNBOOK_OPERATOR` (clap reads both into `given`), else
/// the OS login name (`$USER`, `$LOGNAME`, the account database). Never blank: the audit log names a person for every act, so an
/// empty name (or one with control characters) is refused, not recorded.
pub(super) fn operator(given: Option<String>) -> Result<String, Reported> {
    let login = || {
        ["USER", "LOGNAME"]
            .into_iter()
            .find_map(|var| std::env::var(var).ok())
            // A container often sets neither; the account database still knows.
            .or_else(|| whoami::username().ok())
            .filter(|v| !v.trim().is_empty())
    };
    let name = match given {
        Some(name) => name,
        None => login().ok_or_else(|| {
            output::error("cannot tell who is acting: give --as NAME or set RUNBOOK_OPERATOR");
            Reported(exit::INVALID)
        })?,
    };
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().any(char::is_control) {
        output::error(&format!(
            "operator name {:?} is refused: give --as NAME (not empty, no control characters)",
            output::escape(&name)
        ));
        return Err(Reported(exit::INVALID));
    }
    Ok(name)
}

async fn run(config: Option<&Path>, args: ExecArgs) -> Result<u8, Reported> {
    let engine = Engine::open(config).await?;
    let runbook = engine
        .session
        .load_runbook(&args.runbook, &engine.plugins)?;
    let given = parse_cli_params(&runbook, &args.params).map_err(|errors| {
        // One line each: the messages are the host's own, the names the operator typed
        // are escaped within them.
        output::error("invalid parameters:");
        for line in &errors {
            say_err!("  {}", line);
        }
        Reported(exit::INVALID)
    })?;
    let operator = operator(args.operator)?;
    if args.yes {
        refuse_yes_unless_approver(&runbook, &operator, &engine.session.config.groups)?;
    }
    let executor = engine.executor(args.dry_run);
    let mut progress = Progress::new(&runbook, args.json, args.dry_run, args.yes);
    let result = executor
        .execute(&runbook, &given, &operator, &mut progress)
        .await;
    engine.target.close().await;
    let report = result.map_err(|e| report_error(&e))?;
    Ok(finish(&report, args.json))
}

/// `--yes` answers approvals for the operator, so it is only accepted from someone who
/// may approve every approval step of the runbook.
fn refuse_yes_unless_approver(
    runbook: &Runbook,
    operator: &str,
    groups: &crate::exec::Groups,
) -> Result<(), Reported> {
    for step in &runbook.steps {
        let Some(approval) = &step.approval else {
            continue;
        };
        let probe = ApprovalRecord {
            request: ApprovalRequest {
                step_index: 0,
                message: String::new(),
                approvers: approval.approvers.clone(),
                required: i64::from(approval.required),
                allow_self: approval.allow_self,
                requested_at: chrono::Utc::now(),
                deadline: None,
                on_timeout: approval.on_timeout.as_str().into(),
            },
            decisions: Vec::new(),
        };
        // The operator starts the run, so self-approval rules apply to them.
        if let Err(why) = may_approve(&probe, operator, operator, groups) {
            output::error(&format!(
                "--yes is refused: approval step `{}`: {why}",
                step.id
            ));
            return Err(Reported(exit::INVALID));
        }
        if approval.required > 1 {
            output::error(&format!(
                "--yes is refused: approval step `{}` needs {} distinct approvers",
                step.id, approval.required
            ));
            return Err(Reported(exit::INVALID));
        }
    }
    Ok(())
}

pub(super) struct Progress {
    dry_run: bool,
    enabled: bool,
    terminal: bool,
    total: usize,
    /// `--yes`: approve as the operator without asking (checked to be allowed).
    yes: bool,
}

impl Progress {
    pub(super) fn new(runbook: &Runbook, json: bool, dry_run: bool, yes: bool) -> Progress {
        Progress {
            dry_run,
            enabled: !json,
            terminal: output::stdout_is_terminal(),
            total: runbook.steps.len(),
            yes,
        }
    }
}

impl RunObserver for Progress {
    fn run_started(&mut self, run_id: &str, runbook: &Runbook) {
        if self.enabled {
            if self.dry_run {
                say!(
                    "{BOLD}{}{BOLD:#} {WARN}dry run{WARN:#} {DIM}run {}{DIM:#}",
                    runbook.name,
                    run_id
                );
            } else {
                say!("{BOLD}{}{BOLD:#} {DIM}run {}{DIM:#}", runbook.name, run_id);
            }
        }
    }

    fn step_started(&mut self, index: usize, step: &Step) {
        if self.enabled && self.terminal {
            say_inline!(
                "  [{}/{}] {} {DIM}running…{DIM:#}",
                index + 1,
                self.total,
                label(&step.id, step.name.as_deref())
            );
        }
    }

    fn step_finished(&mut self, index: usize, report: &StepReport) {
        if !self.enabled {
            return;
        }
        if self.terminal {
            // Overwrite the "running…" line.
            output::clear_line();
        }
        let (style, word) = match report.status {
            StepStatus::Succeeded => (OK, "ok"),
            StepStatus::Skipped => (WARN, "skipped"),
            StepStatus::Failed => (FAIL, "FAILED"),
            StepStatus::Running => (WARN, "running"),
        };
        say!(
            "  [{}/{}] {} {style}{}{style:#} {DIM}{} ms{DIM:#}",
            index + 1,
            self.total,
            label(&report.id, report.name.as_deref()),
            word,
            report.duration_ms
        );
        if let Some(error) = &report.error {
            say!("        {FAIL}{}{FAIL:#}", error);
        }
    }

    fn ask_approval(
        &mut self,
        step: &Step,
        request: &ApprovalRequest,
        actor: &str,
        eligible: Result<(), crate::exec::NotEligible>,
    ) -> Option<(Decision, Option<String>)> {
        if self.terminal && self.enabled {
            output::clear_line();
        }
        if let Err(why) = eligible {
            if self.enabled {
                say!("  {WARN}approval needed{WARN:#} for `{}`: {}", step.id, why);
            }
            return None;
        }
        if self.yes {
            return Some((Decision::Approve, Some("--yes".into())));
        }
        // Only a person at a terminal can be asked.
        if !(self.enabled && self.terminal && std::io::stdin().is_terminal()) {
            return None;
        }
        say!("\n  {BOLD}Approval needed{BOLD:#} ({})", step.id);
        for line in request.message.lines() {
            say!("    {}", line);
        }
        loop {
            say_inline!(
                "  Approve as {}? [y]es / [n]o (reject) / [w]ait for others: ",
                actor
            );
            let mut answer = String::new();
            if std::io::stdin().read_line(&mut answer).ok()? == 0 {
                return None;
            }
            match answer.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" => return Some((Decision::Approve, None)),
                "n" | "no" => {
                    say_inline!("  Reason: ");
                    let mut reason = String::new();
                    std::io::stdin().read_line(&mut reason).ok()?;
                    return Some((Decision::Reject, Some(reason.trim().to_string())));
                }
                "w" | "wait" | "" => return None,
                _ => continue,
            }
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
        say!("\n{BOLD}Output of step `{}`{BOLD:#}", step);
        // Pretty JSON keeps its lines; each is escaped on its own.
        for line in serde_json::to_string_pretty(output)
            .unwrap_or_default()
            .lines()
        {
            say!("{}", line);
        }
    }
    if let Some(plan) = &report.plan {
        print_plan(plan);
    }
    for rollback in &report.rollbacks {
        let (style, word) = if rollback.succeeded {
            (OK, "rolled back")
        } else {
            (FAIL, "ROLLBACK FAILED")
        };
        say!("  {style}{}{style:#} {}", word, rollback.step);
        if let Some(output) = &rollback.output {
            say!("        {DIM}{}{DIM:#}", output);
        }
        if let Some(error) = &rollback.error {
            say!("        {FAIL}{}{FAIL:#}", error);
        }
    }
    if let Some(waiting) = &report.awaiting {
        say!(
            "\n{WARN}awaiting approval{WARN:#} at step `{}` ({} of {} approvals{})",
            waiting.step,
            waiting.approved_by.len(),
            waiting.required,
            waiting.deadline.map_or(String::new(), |d| format!(
                ", until {}",
                d.format("%Y-%m-%d %H:%M UTC")
            ))
        );
        for line in waiting.message.lines() {
            say!("  {}", line);
        }
        say!("approvers: {}", waiting.approvers.join(", "));
        say!("approve:   runbook approve {} --as <name>", report.run_id);
        say!("then:      runbook resume {}", report.run_id);
        return;
    }
    let style = output::status_style(&report.state.to_string());
    say!(
        "\n{style}{}{style:#} {} in {} ms ({})",
        report.state,
        report.runbook,
        report.duration_ms,
        output::count(report.steps.len() as i64, "step")
    );
    say!("{DIM}details: runbook status {}{DIM:#}", report.run_id);
}

fn print_plan(plan: &Plan) {
    say!("\n{BOLD}Dry run: planned effects (nothing was changed){BOLD:#}");
    if plan.is_empty() {
        say!("  none");
    }
    for section in plan.sections.iter().filter(|s| !s.entries.is_empty()) {
        say!(
            "  {BOLD}{}{BOLD:#} {DIM}({}){DIM:#}",
            section.title,
            section.note
        );
        for entry in &section.entries {
            say!("    {} {DIM}{}{DIM:#}", entry.line, entry.detail);
        }
    }
    if !plan.denied.is_empty() {
        say!("  {FAIL}denied by grants{FAIL:#}");
        for call in &plan.denied {
            say!(
                "    {} {DIM}step {}{DIM:#} {}",
                call.operation,
                call.step,
                call.reason.as_deref().unwrap_or_default()
            );
        }
    }
}
