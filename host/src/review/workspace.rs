//! What a review is built from: the runbooks, each plugin's facts (manifest needs,
//! digest, imports) and the lockfile, gathered from the files as they are now or from a
//! git revision. Imports are read by loading the component, as `exec` does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::git::{GitError, Revision};
use crate::capability::ImpliedEffects;
use crate::capability::{Grants, Interface};
use crate::plugin::PluginDirectory;
use crate::plugin::lock::digest;
use crate::runtime::{Runtime, sha256_hex};
use crate::spec::config::{CONFIG_FILE, Config};
use crate::spec::lock::{Lockfile, lock_path};
use crate::spec::manifest::{PluginManifest, parse_plugin_manifest};
use crate::spec::runbook::{Runbook, load_runbook, parse_runbook};

/// Everything one review needs.
#[derive(Debug, Default)]
pub struct Inputs {
    pub runbooks: Vec<RunbookSource>,
    pub plugins: BTreeMap<String, PluginFacts>,
    /// What of `runbook.toml` widens a grant or a gate without touching a runbook.
    pub settings: Settings,
    pub lock: Option<Lockfile>,
    /// Where the lockfile is (or would be).
    pub lock_path: Option<String>,
    /// What could not be compared, for the reader of a diff.
    pub notes: Vec<String>,
    /// What the target database does implicitly (cascades, triggers, rules), read by the
    /// caller: the review itself opens no database. `None`: not asked for (a revision);
    /// `Some(Err)`: why it could not be read.
    pub schema: Option<Result<ImpliedEffects, String>>,
}

/// The parts of `runbook.toml` a grant or a gate points at by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Webhook endpoint name → URL.
    pub endpoints: BTreeMap<String, String>,
    /// Approver group → members.
    pub groups: BTreeMap<String, Vec<String>>,
}

impl Settings {
    pub fn of(config: &Config) -> Settings {
        Settings {
            endpoints: config
                .webhooks
                .iter()
                .map(|(name, endpoint)| (name.clone(), endpoint.url.clone()))
                .collect(),
            groups: config.groups.clone(),
        }
    }
}

/// A runbook file, read or not.
#[derive(Debug)]
pub struct RunbookSource {
    pub name: String,
    pub file: String,
    /// The runbook, or its problems, one line each.
    pub loaded: Result<Runbook, Vec<String>>,
}

/// What the review knows of one installed plugin.
#[derive(Debug, Clone, Default)]
pub struct PluginFacts {
    /// The manifest's declared needs.
    pub needs: Option<Grants>,
    pub digest: Option<String>,
    /// `None`: the component could not be loaded (or is not at hand).
    pub imports: Option<BTreeSet<Interface>>,
}

/// The workspace as it is: `files` are the runbook files (the session lists them).
pub fn current(
    config: &Config,
    files: &[PathBuf],
    plugins: &PluginDirectory,
    runtime: &Runtime,
    lock: Option<Lockfile>,
) -> Inputs {
    let mut facts = BTreeMap::new();
    for entry in plugins.entries() {
        let loaded = runtime.load(&entry.manifest.name, &entry.wasm_path).ok();
        facts.insert(
            entry.manifest.name.clone(),
            PluginFacts {
                needs: Some(entry.manifest.needs.clone()),
                digest: loaded
                    .as_ref()
                    .map(|p| p.digest.clone())
                    .or_else(|| digest(entry).ok()),
                imports: loaded.map(|p| p.imports),
            },
        );
    }
    let runbooks = files
        .iter()
        .map(|file| RunbookSource {
            name: stem(file),
            file: file.display().to_string(),
            loaded: load_runbook(file, plugins).map_err(|d| messages(&d)),
        })
        .collect();
    Inputs {
        runbooks,
        plugins: facts,
        settings: Settings::of(config),
        lock,
        lock_path: Some(lock_path(config).display().to_string()),
        notes: Vec::new(),
        schema: None,
    }
}

/// The workspace at `rev`: runbook files and plugin manifests and components from git
/// where their folders are tracked there, the current ones (with a note) where not.
pub fn at_revision(
    rev: &Revision,
    config: &Config,
    now: &Inputs,
    plugins_now: &PluginDirectory,
    runtime: &Runtime,
) -> Result<Inputs, GitError> {
    let mut notes = Vec::new();
    let mut facts: BTreeMap<String, PluginFacts> = BTreeMap::new();
    let mut manifests: BTreeMap<String, PluginManifest> = BTreeMap::new();
    for dir in &config.plugin_dirs {
        let tracked = rev.list(dir, "toml")?;
        if tracked.as_ref().is_none_or(Vec::is_empty) {
            notes.push(format!(
                "plugin folder {} is not tracked in git at {}: its manifests and components are compared as they are now",
                dir.display(),
                rev.name()
            ));
            for entry in plugins_now.entries() {
                let name = entry.manifest.name.clone();
                manifests
                    .entry(name.clone())
                    .or_insert(entry.manifest.clone());
                if let Some(f) = now.plugins.get(&name) {
                    facts.entry(name).or_insert(f.clone());
                }
            }
            continue;
        }
        let mut untracked_wasm = false;
        for path in tracked.unwrap_or_default() {
            let Some(text) = rev.read(&path)? else {
                continue;
            };
            let source = format!("{}:{}", rev.name(), path.display());
            let Ok(manifest) = parse_plugin_manifest(&source, &String::from_utf8_lossy(&text))
            else {
                continue;
            };
            if manifests.contains_key(&manifest.name) {
                continue;
            }
            let wasm = rev.read(&path.with_extension("wasm"))?;
            untracked_wasm |= wasm.is_none();
            let (digest, imports) = match wasm {
                Some(bytes) => {
                    let digest = sha256_hex(&bytes);
                    let imports = match now.plugins.get(&manifest.name) {
                        Some(f) if f.digest.as_deref() == Some(digest.as_str()) => {
                            f.imports.clone()
                        }
                        _ => imports_of(runtime, &manifest.name, &bytes),
                    };
                    (Some(digest), imports)
                }
                None => (None, None),
            };
            facts.insert(
                manifest.name.clone(),
                PluginFacts {
                    needs: Some(manifest.needs.clone()),
                    digest,
                    imports,
                },
            );
            manifests.insert(manifest.name.clone(), manifest);
        }
        if untracked_wasm {
            notes.push(format!(
                "components in {} are not tracked in git at {}: plugin digests and imports are not compared, only manifests",
                dir.display(),
                rev.name()
            ));
        }
    }
    let mut runbooks = Vec::new();
    for dir in &config.runbook_dirs {
        let Some(files) = rev.list(dir, "toml")? else {
            notes.push(format!(
                "runbook folder {} is outside the repository: its runbooks are compared as they are now",
                dir.display()
            ));
            let inside = |s: &&RunbookSource| Path::new(&s.file).parent() == Some(dir.as_path());
            for source in now.runbooks.iter().filter(inside) {
                let loaded = load_runbook(Path::new(&source.file), &manifests);
                runbooks.push(RunbookSource {
                    name: source.name.clone(),
                    file: source.file.clone(),
                    loaded: loaded.map_err(|d| messages(&d)),
                });
            }
            continue;
        };
        for path in files {
            let Some(bytes) = rev.read(&path)? else {
                continue;
            };
            let source = format!("{}:{}", rev.name(), path.display());
            let loaded = match String::from_utf8(bytes) {
                Ok(text) => parse_runbook(&source, &text, &manifests).map_err(|d| messages(&d)),
                Err(_) => Err(vec!["the file is not valid UTF-8 text".to_string()]),
            };
            runbooks.push(RunbookSource {
                name: stem(&path),
                file: source,
                loaded,
            });
        }
    }
    let settings = settings_at(rev, config, &mut notes)?;
    Ok(Inputs {
        runbooks,
        plugins: facts,
        settings,
        lock: None,
        lock_path: None,
        notes,
        schema: None,
    })
}

/// Endpoints and groups from `runbook.toml` at `rev`; the current ones (with a note)
/// when it is not tracked there or does not read.
fn settings_at(
    rev: &Revision,
    config: &Config,
    notes: &mut Vec<String>,
) -> Result<Settings, GitError> {
    let now = Settings::of(config);
    let Some(source) = &config.source else {
        return Ok(now);
    };
    let file = source.file_name().unwrap_or_default();
    let dir = source
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tracked = rev.list(dir, "toml")?.unwrap_or_default();
    let Some(path) = tracked.iter().find(|p| p.file_name() == Some(file)) else {
        notes.push(format!(
            "{} is not tracked in git at {}: its webhook endpoints and approver groups are compared as they are now",
            source.display(),
            rev.name()
        ));
        return Ok(now);
    };
    let Some(text) = rev.read(path)? else {
        return Ok(now);
    };
    // Read the old text the way the file is read; paths in it are not used.
    let loaded = tempfile::tempdir().ok().and_then(|tmp| {
        let copy = tmp.path().join(CONFIG_FILE);
        std::fs::write(&copy, &text).ok()?;
        Config::from_file(&copy).ok()
    });
    Ok(match loaded {
        Some(old) => Settings::of(&old),
        None => {
            notes.push(format!(
                "{} at {} does not read: its webhook endpoints and approver groups are compared as they are now",
                source.display(),
                rev.name()
            ));
            now
        }
    })
}

/// A component's imports, loaded from bytes through a temporary file.
fn imports_of(runtime: &Runtime, name: &str, bytes: &[u8]) -> Option<BTreeSet<Interface>> {
    let file = tempfile::Builder::new().suffix(".wasm").tempfile().ok()?;
    std::fs::write(file.path(), bytes).ok()?;
    runtime.load(name, file.path()).ok().map(|p| p.imports)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn messages(diagnostics: &crate::spec::Diagnostics) -> Vec<String> {
    diagnostics
        .iter()
        .map(|d| match (d.line, d.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}: {}", d.file, d.message),
            _ => format!("{}: {}", d.file, d.message),
        })
        .collect()
}
