//! The security review behind `runbook grants`: for every runbook, every step and every
//! rollback, what its plugin is (digest, imports, declared needs), what the step grants,
//! what that lets it change, and the lints a reviewer should look at. [`GrantReview`] is
//! the `--json` shape. `diff.rs` compares two reviews (`--diff <rev>`), `git.rs` reads a
//! revision, `workspace.rs` gathers what a review is built from (now or at a revision).
//!
//! What each capability's grant means (writes, its own lints, what is unneeded or
//! widened) is the capability's own knowledge (`capability::GrantTable`); this module
//! only adds the lints that need the runbook around a step: `unneeded-grant` (against
//! the manifest), `write-without-approval` (against the steps before it) and the
//! lockfile's.

mod diff;
mod git;
mod workspace;

#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::capability::{Grants, ImpliedNeed, Interface, Lint};
use crate::spec::lock::Lockfile;
use crate::spec::runbook::Runbook;

pub use diff::{GrantDiff, StepDiff, diff};
pub use git::{GitError, Revision};
pub use workspace::{Inputs, PluginFacts, RunbookSource, Settings, at_revision, current};

/// What `runbook grants --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct GrantReview {
    /// The lockfile the digests were compared with; `None`: there is none.
    pub lockfile: Option<String>,
    /// Lints about the workspace as a whole (`no-lockfile`).
    pub lints: Vec<Lint>,
    pub runbooks: Vec<RunbookReview>,
    /// Endpoint URLs and approver groups, for `--diff`.
    #[serde(skip)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunbookReview {
    pub name: String,
    pub file: String,
    /// Why the runbook could not be read; its steps are then not reviewed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// In run order; a step's rollback follows it as its own entry.
    pub steps: Vec<StepReview>,
}

/// Whether an entry is a step's plugin, its rollback, or an approval gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Step,
    Rollback,
    Approval,
}

/// One entry of the review. New facts about a step (FK-implied tables, say) are a new
/// field here filled in [`review_step`], and a lint code in the README's table.
#[derive(Debug, Clone, Serialize)]
pub struct StepReview {
    pub step: String,
    pub role: Role,
    /// Empty for an approval gate.
    pub plugin: String,
    /// sha256 (hex) of the installed component; `None` when it could not be read.
    pub digest: Option<String>,
    /// The `runbook:plugin` interfaces the component imports; `None` when it could not be
    /// loaded (not installed, not a component).
    pub imports: Option<Vec<Interface>>,
    /// The plugin manifest's declared needs, described; empty when not installed.
    pub declares: Vec<String>,
    /// What the step grants, described.
    pub grants: Vec<String>,
    /// What the grant lets the step change.
    pub writes: Vec<String>,
    /// What the database would do implicitly because of what the step may write
    /// (cascading foreign keys, triggers, rules, views' base tables, partitions), each
    /// marked granted or not; empty when the target's schema was not read.
    pub implied: Vec<ImpliedNeed>,
    pub lints: Vec<Lint>,
    /// Who must approve, for an approval gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// The grants themselves, for `--diff`.
    #[serde(skip)]
    pub granted: Grants,
    /// Whether an approval gate is at or before this step.
    #[serde(skip)]
    pub gated: bool,
}

/// An approval gate as the review shows it: who, how many, and what a timeout does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gate {
    /// People and `group:<name>` entries.
    pub approvers: Vec<String>,
    pub required: u32,
    pub allow_self: bool,
    /// `reject` or `continue`.
    pub on_timeout: &'static str,
}

impl GrantReview {
    /// Every lint, the workspace's and every step's.
    pub fn all_lints(&self) -> impl Iterator<Item = &Lint> {
        self.lints.iter().chain(
            self.runbooks
                .iter()
                .flat_map(|r| r.steps.iter().flat_map(|s| s.lints.iter())),
        )
    }

    /// Only the runbooks called `name` (by name or file stem).
    pub fn retain_runbook(&mut self, name: &str) {
        self.runbooks.retain(|r| {
            r.name == name
                || std::path::Path::new(&r.file)
                    .file_stem()
                    .is_some_and(|s| s == name)
        });
    }
}

/// The review of everything in `inputs`.
pub fn review(inputs: &Inputs) -> GrantReview {
    let mut lints = Vec::new();
    if let Some(Err(why)) = &inputs.schema {
        lints.push(Lint::warning(
            "implied-unknown",
            format!("the target database's schema could not be read ({why}): what it does implicitly (cascades, triggers) is not reviewed"),
        ));
    }
    if inputs.lock.is_none() {
        lints.push(Lint::warning(
            "no-lockfile",
            "no runbook.lock: plugins are not pinned, any component with the right name runs (write one with `runbook plugins lock`)",
        ));
    }
    let runbooks = inputs
        .runbooks
        .iter()
        .map(|source| match &source.loaded {
            Ok(runbook) => review_runbook(&source.file, runbook, inputs),
            Err(errors) => RunbookReview {
                name: source.name.clone(),
                file: source.file.clone(),
                errors: errors.clone(),
                steps: Vec::new(),
            },
        })
        .collect();
    GrantReview {
        lockfile: inputs.lock_path.clone().filter(|_| inputs.lock.is_some()),
        lints,
        runbooks,
        settings: inputs.settings.clone(),
    }
}

fn review_runbook(file: &str, runbook: &Runbook, inputs: &Inputs) -> RunbookReview {
    let mut steps = Vec::new();
    let mut gated = false;
    for step in &runbook.steps {
        if let Some(approval) = &step.approval {
            gated = true;
            steps.push(StepReview {
                step: step.id.clone(),
                role: Role::Approval,
                plugin: String::new(),
                digest: None,
                imports: None,
                declares: Vec::new(),
                grants: Vec::new(),
                writes: Vec::new(),
                implied: Vec::new(),
                lints: Vec::new(),
                gate: Some(Gate {
                    approvers: approval.approvers.clone(),
                    required: approval.required,
                    allow_self: approval.allow_self,
                    on_timeout: approval.on_timeout.as_str(),
                }),
                granted: Grants::default(),
                gated,
            });
        }
        if !step.plugin.is_empty() {
            let entry = Entry {
                step: &step.id,
                role: Role::Step,
                plugin: &step.plugin,
                grants: &step.grants,
                gated,
            };
            steps.push(review_step(&entry, inputs));
        }
        // A rollback runs after a later failure, within the same run's approvals.
        if let Some(rollback) = &step.rollback {
            let entry = Entry {
                step: &step.id,
                role: Role::Rollback,
                plugin: &rollback.plugin,
                grants: &rollback.grants,
                gated,
            };
            steps.push(review_step(&entry, inputs));
        }
    }
    RunbookReview {
        name: runbook.name.clone(),
        file: file.to_string(),
        errors: Vec::new(),
        steps,
    }
}

/// One plugin entry as the runbook gives it.
struct Entry<'a> {
    step: &'a str,
    role: Role,
    plugin: &'a str,
    grants: &'a Grants,
    gated: bool,
}

fn review_step(entry: &Entry<'_>, inputs: &Inputs) -> StepReview {
    let facts = inputs.plugins.get(entry.plugin);
    let writes = entry.grants.writes();
    let mut lints = entry.grants.lints();
    if let Some(needs) = facts.and_then(|f| f.needs.as_ref()) {
        lints.extend(entry.grants.unneeded(needs).into_iter().map(|u| {
            Lint::warning(
                "unneeded-grant",
                format!(
                    "{u} is granted, but plugin `{}` does not declare needing it",
                    entry.plugin
                ),
            )
        }));
    }
    if !writes.is_empty() && !entry.gated {
        lints.push(Lint::warning(
            "write-without-approval",
            format!(
                "the step may change things ({}) and no approval step comes before it",
                writes.join("; ")
            ),
        ));
    }
    let implied = match (&inputs.schema, &entry.grants.db) {
        (Some(Ok(schema)), Some(db)) => schema.implied_by(db),
        _ => Vec::new(),
    };
    // What exec refuses before the first step.
    lints.extend(implied.iter().filter(|i| !i.granted).map(|i| {
        Lint::error(
            "implied-not-granted",
            format!(
                "{}: {} would also write {}, which is not granted (exec refuses it); add {}",
                i.reason,
                i.source,
                i.need,
                i.help()
            ),
        )
    }));
    let digest = facts.and_then(|f| f.digest.clone());
    lints.extend(lock_lints(
        entry.plugin,
        digest.as_deref(),
        inputs.lock.as_ref(),
    ));
    StepReview {
        step: entry.step.to_string(),
        role: entry.role,
        plugin: entry.plugin.to_string(),
        digest,
        imports: facts
            .and_then(|f| f.imports.as_ref())
            .map(|i| i.iter().copied().collect()),
        declares: facts
            .and_then(|f| f.needs.as_ref())
            .map(Grants::describe)
            .unwrap_or_default(),
        grants: entry.grants.describe(),
        writes,
        implied,
        lints,
        gate: None,
        granted: entry.grants.clone(),
        gated: entry.gated,
    }
}

/// The plugin against runbook.lock: a digest it does not pin is what `exec` refuses.
fn lock_lints(plugin: &str, digest: Option<&str>, lock: Option<&Lockfile>) -> Vec<Lint> {
    let Some(lock) = lock else {
        return Vec::new();
    };
    match (lock.plugins.get(plugin), digest) {
        (None, _) => vec![Lint::error(
            "not-locked",
            format!("plugin `{plugin}` is not in runbook.lock: exec refuses it"),
        )],
        (Some(locked), Some(actual)) if locked != actual => vec![Lint::error(
            "lock-drift",
            format!(
                "plugin `{plugin}` is sha256:{actual}, but runbook.lock has sha256:{locked}: exec refuses it"
            ),
        )],
        _ => Vec::new(),
    }
}
