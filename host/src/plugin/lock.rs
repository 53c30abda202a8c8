//! The installed plugins against `runbook.lock`: which differ from their locked digest,
//! which are not locked, which lock entries have no plugin; and a fresh lock of what is
//! installed. Digests are the sha256 the runtime computes when it loads a component.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{PluginDirectory, PluginEntry};
use crate::runtime::sha256_hex;
use crate::spec::lock::Lockfile;

/// A plugin whose component is not the one locked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub plugin: String,
    pub locked: String,
    pub actual: String,
}

/// How the installed plugins differ from a lockfile. Empty means they match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LockCheck {
    /// Locked, installed, with another digest.
    pub drift: Vec<Drift>,
    /// Installed but not in the lockfile: exec refuses them.
    pub unlocked: Vec<String>,
    /// In the lockfile but not installed.
    pub stale: Vec<String>,
    /// Installed plugins whose component could not be read: `(plugin, error)`.
    pub unreadable: Vec<(String, String)>,
}

impl LockCheck {
    pub fn is_clean(&self) -> bool {
        self.drift.is_empty()
            && self.unlocked.is_empty()
            && self.stale.is_empty()
            && self.unreadable.is_empty()
    }

    /// One sentence per difference, for a person.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .drift
            .iter()
            .map(|d| {
                format!(
                    "plugin `{}` is sha256:{}, but runbook.lock has sha256:{}",
                    d.plugin, d.actual, d.locked
                )
            })
            .collect();
        out.extend(
            self.unlocked
                .iter()
                .map(|p| format!("plugin `{p}` is installed but not in runbook.lock")),
        );
        out.extend(
            self.stale
                .iter()
                .map(|p| format!("runbook.lock names plugin `{p}`, which is not installed")),
        );
        out.extend(
            self.unreadable
                .iter()
                .map(|(p, e)| format!("plugin `{p}`: cannot read its component: {e}")),
        );
        out
    }
}

/// The sha256 (hex) of a plugin's component, as the runtime computes it.
pub fn digest(entry: &PluginEntry) -> std::io::Result<String> {
    std::fs::read(&entry.wasm_path).map(|bytes| sha256_hex(&bytes))
}

/// Every installed plugin's digest, by name, and the plugins that could not be read.
pub fn digests(plugins: &PluginDirectory) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let mut found = BTreeMap::new();
    let mut unreadable = Vec::new();
    for entry in plugins.entries() {
        match digest(entry) {
            Ok(hex) => {
                found.insert(entry.manifest.name.clone(), hex);
            }
            Err(e) => unreadable.push((entry.manifest.name.clone(), e.to_string())),
        }
    }
    (found, unreadable)
}

/// Compares the installed plugins (their digests, from [`digests`]) with `lock`.
pub fn check(
    lock: &Lockfile,
    installed: &BTreeMap<String, String>,
    unreadable: Vec<(String, String)>,
) -> LockCheck {
    let mut out = LockCheck {
        unreadable,
        ..LockCheck::default()
    };
    for (name, actual) in installed {
        match lock.plugins.get(name) {
            Some(locked) if locked == actual => {}
            Some(locked) => out.drift.push(Drift {
                plugin: name.clone(),
                locked: locked.clone(),
                actual: actual.clone(),
            }),
            None => out.unlocked.push(name.clone()),
        }
    }
    let unreadable: Vec<&String> = out.unreadable.iter().map(|(p, _)| p).collect();
    out.stale = lock
        .plugins
        .keys()
        .filter(|name| !installed.contains_key(*name) && !unreadable.contains(name))
        .cloned()
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn drift_unlocked_and_stale_are_told_apart() {
        let lock = Lockfile {
            plugins: map(&[("same", "aa"), ("changed", "bb"), ("gone", "cc")]),
        };
        let installed = map(&[("same", "aa"), ("changed", "dd"), ("new", "ee")]);
        let check = check(&lock, &installed, Vec::new());
        assert_eq!(
            check.drift,
            [Drift {
                plugin: "changed".into(),
                locked: "bb".into(),
                actual: "dd".into()
            }]
        );
        assert_eq!(check.unlocked, ["new"]);
        assert_eq!(check.stale, ["gone"]);
        assert!(!check.is_clean());
        let problems = check.problems();
        assert_eq!(
            problems[0],
            "plugin `changed` is sha256:dd, but runbook.lock has sha256:bb"
        );
        assert_eq!(problems.len(), 3);
    }

    #[test]
    fn a_matching_lock_is_clean() {
        let installed = map(&[("a", "11")]);
        let lock = Lockfile {
            plugins: installed.clone(),
        };
        assert!(check(&lock, &installed, Vec::new()).is_clean());
    }

    #[test]
    fn the_digest_is_the_runtimes_sha256_of_the_component() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.wasm"), b"component").unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "name = \"p\"\nversion = \"0.1.0\"\ndescription = \"x\"\n",
        )
        .unwrap();
        let plugins = PluginDirectory::scan(&[dir.path().to_path_buf()]);
        let (found, unreadable) = digests(&plugins);
        assert!(unreadable.is_empty());
        assert_eq!(found["p"], sha256_hex(b"component"));
    }
}
