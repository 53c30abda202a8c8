//! Running a runbook. `preflight.rs` checks everything before anything runs (approver
//! groups, plugins, each step's grant against its component's imports, `implied.rs`
//! against what the target does implicitly); `run.rs` opens a
//! run three ways (new, resumed, rolled back on demand); `drive.rs` is the step loop;
//! `step.rs` one plugin step and its attempts, `approval.rs` an approval gate,
//! `rollback.rs` undoing completed steps; `lease.rs` the run's lease and heartbeat;
//! `report.rs` and `plan.rs` what a run reports.

mod approval;
mod completion;
mod drive;
mod error;
mod implied;
mod lease;
mod plan;
mod preflight;
mod report;
mod rollback;
mod run;
mod step;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use approval::{Groups, NotEligible, may_approve};
pub use error::{ErrorKind, ExecError};
pub use plan::Plan;
pub use preflight::host_problems;
pub use report::{AwaitingApproval, RollbackReport, RunReport, StepReport};
pub use rollback::PendingUndo;

use preflight::Plugins;

use crate::capability::AnalysisCache;
use crate::capability::{RunBudget, Services};
use crate::plugin::PluginDirectory;
use crate::runtime::{Runtime, StepLimits};
use crate::spec::lock::Lockfile;
use crate::spec::runbook::{Runbook, Step};
use crate::state::{LogLine, StateStore};
use crate::target::{StepTransaction, TargetDb};
use crate::template::Templates;

/// Progress callbacks for a terminal or a log, and the person at the terminal.
pub trait RunObserver {
    fn run_started(&mut self, _run_id: &str, _runbook: &Runbook) {}
    fn step_started(&mut self, _index: usize, _step: &Step) {}
    fn step_finished(&mut self, _index: usize, _report: &StepReport) {}
    /// An approval step needs a decision. `eligible` says whether `actor` may give it
    /// (and if not, why). `None`: nobody here can or will decide; the run pauses.
    fn ask_approval(
        &mut self,
        _step: &Step,
        _request: &crate::state::ApprovalRequest,
        _actor: &str,
        _eligible: Result<(), NotEligible>,
    ) -> Option<(crate::state::Decision, Option<String>)> {
        None
    }
}

/// An observer that shows nothing.
pub struct Silent;
impl RunObserver for Silent {}

pub struct Executor<'a> {
    pub runtime: &'a Runtime,
    pub plugins: &'a PluginDirectory,
    pub target: Option<TargetDb>,
    pub state: &'a StateStore,
    pub limits: StepLimits,
    pub analysis: Arc<AnalysisCache>,
    pub templates: Templates,
    pub services: Arc<Services>,
    /// Plan instead of act: database writes are rolled back at the end of the run,
    /// Stripe and webhook writes and emails are recorded, not sent.
    pub dry_run: bool,
    /// Approver groups from `runbook.toml`.
    pub groups: Groups,
    /// How long a run's lease lasts without a heartbeat before it counts as interrupted.
    pub lease_ttl: Duration,
    /// `runbook.lock`, when there is one: every plugin must have its locked digest.
    pub lock: Option<Lockfile>,
}

/// Per-run things every step shares.
pub(crate) struct RunScope {
    run_id: String,
    /// The run's plugins, loaded and checked by the preflight.
    plugins: Arc<Plugins>,
    /// Who started the run.
    operator: String,
    /// Who is acting in this process (the operator, or whoever resumed the run).
    actor: String,
    dry_run: bool,
    budget: Arc<RunBudget>,
    /// Dry run only: the one transaction all steps write in, rolled back at the end.
    dry_tx: Option<StepTransaction>,
    /// This process's lease on the run (renewed by the heartbeat), checked whenever a
    /// step starts.
    lease: Option<crate::state::Lease>,
    /// The deadline of the plugin attempt in flight, which the heartbeat watches.
    watch: lease::StepWatch,
}

impl RunScope {
    /// Whose lease must still hold when the next step starts.
    fn lease_owner(&self) -> Option<String> {
        self.lease.as_ref().map(|l| l.owner.clone())
    }
}

/// A line of the step log written by the host (not the plugin).
fn host_line(level: &str, message: String) -> LogLine {
    LogLine {
        at: chrono::Utc::now(),
        level: level.into(),
        stream: "host".into(),
        message,
        fields: Default::default(),
    }
}

/// Parameters given on the command line, as `name=value` text, typed by the runbook.
pub fn parse_cli_params(
    runbook: &Runbook,
    pairs: &[String],
) -> Result<std::collections::BTreeMap<String, Value>, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for pair in pairs {
        let Some((name, raw)) = pair.split_once('=') else {
            errors.push(format!("`{pair}` is not name=value"));
            continue;
        };
        match runbook.params.iter().find(|p| p.name == name) {
            Some(_) if out.contains_key(name) => {
                errors.push(format!("--param {name} is given twice"));
            }
            Some(param) => match param.kind.parse_value(raw) {
                Ok(v) => {
                    out.insert(name.to_string(), v);
                }
                Err(e) => errors.push(format!("--param {name}: {e}")),
            },
            None => {
                let known = runbook.params.iter().map(|p| p.name.as_str());
                errors.push(match crate::spec::values::closest(name, known) {
                    Some(known) => format!(
                        "`{name}` is not a parameter of runbook `{}`; did you mean `{known}`?",
                        runbook.name
                    ),
                    None => format!("`{name}` is not a parameter of runbook `{}`", runbook.name),
                });
            }
        }
    }
    if errors.is_empty() {
        return Ok(out);
    }
    // What can be given, so the next attempt needs no `show`.
    errors.push(format!("parameters of `{}`:", runbook.name));
    for p in &runbook.params {
        let default = p
            .default
            .as_ref()
            .map_or(String::new(), |d| format!(" = {d}"));
        let required = if p.required { " (required)" } else { "" };
        errors.push(format!("  {}: {:?}{default}{required}", p.name, p.kind));
    }
    if runbook.params.is_empty() {
        errors.push("  (none)".to_string());
    }
    Err(errors)
}
