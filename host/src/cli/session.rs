//! What most commands need: the configuration, the plugins, the state store, the target
//! database and runbook lookup, each opened only when asked for.

use std::path::{Path, PathBuf};

use crate::plugin::PluginDirectory;
use crate::spec::config::Config;
use crate::spec::lock::{Lockfile, load_lockfile, lock_path};
use crate::spec::runbook::{Runbook, load_runbook};
use crate::spec::values::closest;
use crate::state::StateStore;

use super::exit;
use super::output;
use super::output::{WARN, say_err};

pub struct Session {
    pub config: Config,
}

/// A failure that has been reported to the user; carries the exit code.
pub struct Reported(pub u8);

impl Session {
    pub fn open(config: Option<&Path>) -> Result<Session, Reported> {
        Config::load(config)
            .map(|config| Session { config })
            .map_err(|e| {
                // Each problem with its snippet and caret, as for runbooks and manifests.
                match e.diagnostics() {
                    Some(diagnostics) => output::diagnostics(diagnostics),
                    None => output::error(&e.to_string()),
                }
                Reported(exit::INVALID)
            })
    }

    pub fn plugins(&self) -> PluginDirectory {
        let plugins = PluginDirectory::scan(&self.config.plugin_dirs);
        for problem in &plugins.problems {
            say_err!("{WARN}warning{WARN:#}: {}", problem);
        }
        plugins
    }

    /// `runbook.lock` beside `runbook.toml`; `None` when there is none. A lockfile that
    /// does not parse is reported (exit 2): pinning must not silently switch off.
    pub fn lockfile(&self) -> Result<Option<Lockfile>, Reported> {
        load_lockfile(&lock_path(&self.config)).map_err(|d| {
            output::diagnostics(&d);
            Reported(exit::INVALID)
        })
    }

    pub async fn state(&self) -> Result<StateStore, Reported> {
        StateStore::open_existing(self.config.state_url.expose())
            .await
            .map_err(|e| self.state_error(&e))
    }

    /// The state store, created if it does not exist yet (`runbook db init`).
    pub async fn create_state(&self) -> Result<StateStore, Reported> {
        StateStore::open(self.config.state_url.expose())
            .await
            .map_err(|e| self.state_error(&e))
    }

    fn state_error(&self, e: &crate::state::StateError) -> Reported {
        match e {
            crate::state::StateError::Missing(_) => output::error(&e.to_string()),
            _ => output::error(&format!(
                "cannot open the state store {}: {e}",
                self.config.state_url
            )),
        }
        Reported(exit::INVALID)
    }

    /// All runbook files in the runbook folders, sorted by path.
    pub fn runbook_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .config
            .runbook_dirs
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flat_map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())))
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        files.sort();
        files
    }

    /// A runbook by name (`<name>.toml` in a runbook folder) or by path.
    pub fn find_runbook(&self, name_or_path: &str) -> Option<PathBuf> {
        let as_path = Path::new(name_or_path);
        if name_or_path.ends_with(".toml") && as_path.is_file() {
            return Some(as_path.to_path_buf());
        }
        self.config
            .runbook_dirs
            .iter()
            .map(|dir| dir.join(format!("{name_or_path}.toml")))
            .find(|p| p.is_file())
    }

    pub fn load_runbook(
        &self,
        name_or_path: &str,
        plugins: &PluginDirectory,
    ) -> Result<Runbook, Reported> {
        let Some(path) = self.find_runbook(name_or_path) else {
            output::error(&self.no_runbook(name_or_path));
            return Err(Reported(exit::INVALID));
        };
        load_runbook(&path, plugins).map_err(|d| {
            output::diagnostics(&d);
            Reported(exit::INVALID)
        })
    }

    /// "no runbook named `x`", with the closest runbook name, or the ones there are.
    pub fn no_runbook(&self, name: &str) -> String {
        let known: Vec<String> = self
            .runbook_files()
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        match closest(name, known.iter().map(String::as_str)) {
            Some(k) => format!("no runbook named `{name}`; did you mean `{k}`?"),
            None if known.is_empty() => {
                format!("no runbook named `{name}` (no runbooks in the runbook folders)")
            }
            None => format!("no runbook named `{name}` (known: {})", known.join(", ")),
        }
    }
}
