//! What a run produced, for the terminal summary and `--json`.

use serde::Serialize;
use serde_json::Value;

use crate::runbook::Step;
use crate::runtime::{CacheOutcome, LoadedPlugin};
use crate::state::{RunStatus, StepStatus};

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub runbook: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub dry_run: bool,
    pub steps: Vec<StepReport>,
    /// A dry run's planned effects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<super::Plan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub name: Option<String>,
    pub plugin: String,
    pub plugin_digest: String,
    /// Whether the plugin came from the precompiled cache or was compiled for this run.
    pub plugin_cache: CacheOutcome,
    pub status: StepStatus,
    pub duration_ms: i64,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub audit_records: usize,
    /// Attempts made (more than one only when the plugin faulted and `attempts` allows).
    pub attempts: u32,
}

impl StepReport {
    pub(super) fn new(step: &Step, plugin: &LoadedPlugin) -> StepReport {
        StepReport {
            id: step.id.clone(),
            name: step.name.clone(),
            plugin: step.plugin.clone(),
            plugin_digest: plugin.digest.clone(),
            plugin_cache: plugin.cache,
            status: StepStatus::Running,
            duration_ms: 0,
            output: None,
            error: None,
            audit_records: 0,
            attempts: 0,
        }
    }
}
