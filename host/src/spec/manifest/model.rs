//! A validated plugin manifest, and the catalog of installed plugins runbooks are
//! validated against.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::capability::Grants;

/// A validated plugin manifest.
#[derive(Debug, Clone, Serialize)]
pub struct PluginManifest {
    pub name: String,
    pub version: String,
    pub description: String,
    /// What a step must grant for this plugin to run; checked when a runbook is loaded.
    pub needs: Grants,
}

/// The installed plugins, as runbook validation sees them.
pub trait PluginCatalog {
    fn manifest(&self, name: &str) -> Option<&PluginManifest>;
    fn names(&self) -> Vec<String>;
}

impl PluginCatalog for BTreeMap<String, PluginManifest> {
    fn manifest(&self, name: &str) -> Option<&PluginManifest> {
        self.get(name)
    }

    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}
