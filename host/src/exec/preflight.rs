//! Checks before anything runs: approver groups exist, every plugin the runbook names
//! (rollback plugins too) is installed, loads and has the digest `runbook.lock` pins (when
//! there is a lockfile), and each step's grant covers what its component really imports
//! and what the target database does implicitly (`implied.rs`). A refusal is audited and
//! nothing runs.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::json;

use super::{ExecError, Executor, Groups};
use crate::capability::Services;
use crate::runtime::{LoadedPlugin, RuntimeError};
use crate::spec::runbook::{Runbook, Step};
use crate::state::NewAuditEntry;

/// The run's plugins, loaded and checked, by name.
pub(super) type Plugins = HashMap<String, LoadedPlugin>;

/// What this host's settings do not give a runbook, each as the error `exec` stops on:
/// approver groups it names that `runbook.toml` does not define, and services its
/// grants call on that cannot be used here (`services`; `None` for a dry run, which
/// sends nothing) — a missing Stripe key or webhook secret stops a run before its
/// first step, not at a later one after its approvals. `runbook validate` reports the
/// same list.
pub fn host_problems(
    runbook: &Runbook,
    groups: &Groups,
    services: Option<&Services>,
) -> Vec<ExecError> {
    let mut problems = Vec::new();
    let named = runbook
        .steps
        .iter()
        .flat_map(|step| {
            let approvers = step.approval.iter().flat_map(|a| a.approvers.iter());
            approvers.map(move |a| (step.id.as_str(), a))
        })
        .chain(
            runbook
                .rollback_approvers
                .iter()
                .map(|a| ("rollback_approvers", a)),
        );
    for (step, approver) in named {
        if let Some(group) = approver.strip_prefix("group:")
            && !groups.contains_key(group)
        {
            problems.push(ExecError::UnknownGroup {
                step: step.to_string(),
                group: group.to_string(),
            });
        }
    }
    if let Some(services) = services {
        for step in &runbook.steps {
            let rollback = step.rollback.as_ref().map(|r| &r.grants);
            let mut reasons: Vec<String> = std::iter::once(&step.grants)
                .chain(rollback)
                .flat_map(|grants| services.unavailable_for(grants))
                .collect();
            reasons.dedup();
            if !reasons.is_empty() {
                problems.push(ExecError::ServiceUnavailable {
                    step: step.id.clone(),
                    reasons,
                });
            }
        }
    }
    problems
}

impl Executor<'_> {
    /// Everything `exec` and `resume` check before the first step.
    pub(super) async fn preflight(
        &self,
        runbook: &Runbook,
        actor: &str,
    ) -> Result<Plugins, ExecError> {
        let services = (!self.dry_run).then_some(&*self.services);
        if let Some(problem) = host_problems(runbook, &self.groups, services)
            .into_iter()
            .next()
        {
            return Err(problem);
        }
        let plugins = self.load_plugins(runbook, actor).await?;
        self.check_implied(runbook, actor).await?;
        // Where a step's completion record goes (a dry run commits nothing).
        if !self.dry_run
            && let Some(target) = &self.target
        {
            target.ensure_step_commits().await?;
        }
        Ok(plugins)
    }

    /// Loads every plugin the runbook uses (rollback plugins too) and compares each
    /// step's grant with what the component really imports. A refusal is audited and
    /// stops the run before it starts.
    pub(super) async fn load_plugins(
        &self,
        runbook: &Runbook,
        operator: &str,
    ) -> Result<Plugins, ExecError> {
        let mut loaded = Plugins::new();
        let uses = runbook.steps.iter().flat_map(|step| {
            let main = (!step.plugin.is_empty()).then_some((step, &step.plugin, &step.grants));
            let undo = step.rollback.as_ref().map(|r| (step, &r.plugin, &r.grants));
            main.into_iter().chain(undo)
        });
        for (step, name, grants) in uses {
            let plugin = match loaded.entry(name.clone()) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(slot) => {
                    let entry = self
                        .plugins
                        .get(name)
                        .ok_or_else(|| ExecError::MissingPlugin {
                            step: step.id.clone(),
                            plugin: name.clone(),
                        })?;
                    match self.runtime.load(name, &entry.wasm_path) {
                        Ok(plugin) => slot.insert(plugin),
                        Err(RuntimeError::UnknownImport { plugin, import }) => {
                            // As much a refusal as an ungranted import, and audited alike.
                            let detail = json!({
                                "runbook": runbook.name,
                                "step": step.id,
                                "unknown_import": import,
                            });
                            self.audit_refusal(operator, step, name, None, detail)
                                .await?;
                            return Err(RuntimeError::UnknownImport { plugin, import }.into());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            // The digest of the bytes just loaded, so what runs is what was compared.
            if let Some(lock) = &self.lock {
                let locked = lock.plugins.get(name.as_str());
                if locked != Some(&plugin.digest) {
                    let detail = json!({
                        "runbook": runbook.name,
                        "step": step.id,
                        "plugin_digest": plugin.digest,
                        "locked_digest": locked,
                    });
                    let digest = Some(plugin.digest.clone());
                    self.audit_refusal(operator, step, name, digest, detail)
                        .await?;
                    return Err(ExecError::NotLocked {
                        step: step.id.clone(),
                        plugin: name.clone(),
                        locked: locked.cloned(),
                        actual: plugin.digest.clone(),
                    });
                }
            }
            let ungranted = plugin.ungranted_imports(grants);
            if !ungranted.is_empty() {
                let detail = json!({
                    "runbook": runbook.name,
                    "step": step.id,
                    "plugin_digest": plugin.digest,
                    "ungranted_interfaces": ungranted,
                });
                let digest = Some(plugin.digest.clone());
                self.audit_refusal(operator, step, name, digest, detail)
                    .await?;
                return Err(ExecError::Refused {
                    step: step.id.clone(),
                    plugin: name.clone(),
                    interfaces: ungranted,
                });
            }
        }
        Ok(loaded)
    }

    /// A `plugin.refused` audit entry: a plugin was not loaded for `step`, and why.
    pub(super) async fn audit_refusal(
        &self,
        operator: &str,
        step: &Step,
        plugin: &str,
        digest: Option<String>,
        detail: serde_json::Value,
    ) -> Result<(), ExecError> {
        self.state
            .append_audit(&[NewAuditEntry {
                at: chrono::Utc::now(),
                actor: operator.to_string(),
                run_id: None,
                step_id: Some(step.id.clone()),
                plugin: Some(plugin.to_string()),
                plugin_digest: digest,
                action: "plugin.refused".into(),
                target: format!("plugin:{plugin}"),
                detail: detail.to_string(),
            }])
            .await?;
        Ok(())
    }
}
