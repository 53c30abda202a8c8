//! Plugins on disk: each is `<name>.wasm` (a component) with its manifest `<name>.toml`
//! beside it, in one of the configured plugin folders; [`lock`] compares them with
//! `runbook.lock`.

pub mod lock;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::spec::manifest::{PluginCatalog, PluginManifest, parse_plugin_manifest};

#[derive(Debug, Clone)]
pub struct PluginEntry {
    pub manifest: PluginManifest,
    pub manifest_path: PathBuf,
    pub wasm_path: PathBuf,
}

/// Every plugin found in the plugin folders. The first folder wins on a name clash.
#[derive(Debug, Default)]
pub struct PluginDirectory {
    plugins: BTreeMap<String, PluginEntry>,
    /// Manifests that did not parse or did not match their file name.
    pub problems: Vec<String>,
}

impl PluginDirectory {
    pub fn scan(dirs: &[PathBuf]) -> PluginDirectory {
        let mut found = PluginDirectory::default();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut manifests: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            manifests.sort();
            for path in manifests {
                found.add(&path);
            }
        }
        found
    }

    fn add(&mut self, manifest_path: &Path) {
        let wasm_path = manifest_path.with_extension("wasm");
        if !wasm_path.is_file() {
            return;
        }
        let text = match std::fs::read_to_string(manifest_path) {
            Ok(text) => text,
            Err(e) => {
                self.problems
                    .push(format!("{}: {e}", manifest_path.display()));
                return;
            }
        };
        let source = manifest_path.display().to_string();
        let manifest = match parse_plugin_manifest(&source, &text) {
            Ok(m) => m,
            Err(diagnostics) => {
                self.problems.push(diagnostics.render(false));
                return;
            }
        };
        let stem = manifest_path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("");
        if manifest.name != stem {
            self.problems.push(format!(
                "{source}: the manifest names plugin `{}` but the file is `{stem}.toml`",
                manifest.name
            ));
            return;
        }
        self.plugins
            .entry(manifest.name.clone())
            .or_insert(PluginEntry {
                manifest,
                manifest_path: manifest_path.to_path_buf(),
                wasm_path,
            });
    }

    pub fn get(&self, name: &str) -> Option<&PluginEntry> {
        self.plugins.get(name)
    }

    pub fn entries(&self) -> impl Iterator<Item = &PluginEntry> {
        self.plugins.values()
    }
}

impl PluginCatalog for PluginDirectory {
    fn manifest(&self, name: &str) -> Option<&PluginManifest> {
        self.plugins.get(name).map(|e| &e.manifest)
    }

    fn names(&self) -> Vec<String> {
        self.plugins.keys().cloned().collect()
    }
}
