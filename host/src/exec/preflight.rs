//! Checks before anything runs: approver groups exist, every plugin the runbook names
//! (rollback plugins too) is installed and loads, and each step's grant covers what its
//! component really imports. A refusal is audited and nothing runs.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::json;

use super::{ExecError, Executor};
use crate::runtime::LoadedPlugin;
use crate::spec::runbook::Runbook;
use crate::state::NewAuditEntry;

/// The run's plugins, loaded and checked, by name.
pub(super) type Plugins = HashMap<String, LoadedPlugin>;

impl Executor<'_> {
    /// Everything `exec` and `resume` check before the first step.
    pub(super) async fn preflight(
        &self,
        runbook: &Runbook,
        actor: &str,
    ) -> Result<Plugins, ExecError> {
        self.check_groups(runbook)?;
        self.load_plugins(runbook, actor).await
    }

    /// Every `group:<name>` an approval names must exist in `runbook.toml`.
    fn check_groups(&self, runbook: &Runbook) -> Result<(), ExecError> {
        for step in &runbook.steps {
            let Some(approval) = &step.approval else {
                continue;
            };
            for approver in &approval.approvers {
                if let Some(group) = approver.strip_prefix("group:")
                    && !self.groups.contains_key(group)
                {
                    return Err(ExecError::UnknownGroup {
                        step: step.id.clone(),
                        group: group.to_string(),
                    });
                }
            }
        }
        Ok(())
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
                    slot.insert(self.runtime.load(name, &entry.wasm_path)?)
                }
            };
            let ungranted = plugin.ungranted_imports(grants);
            if !ungranted.is_empty() {
                let detail = json!({
                    "runbook": runbook.name,
                    "step": step.id,
                    "plugin_digest": plugin.digest,
                    "ungranted_interfaces": ungranted,
                });
                self.state
                    .append_audit(&[NewAuditEntry {
                        at: chrono::Utc::now(),
                        actor: operator.to_string(),
                        run_id: None,
                        step_id: Some(step.id.clone()),
                        plugin: Some(name.clone()),
                        plugin_digest: Some(plugin.digest.clone()),
                        action: "plugin.refused".into(),
                        target: format!("plugin:{name}"),
                        detail: detail.to_string(),
                    }])
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
}
