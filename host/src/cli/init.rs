//! `runbook init`: a new workspace — the commented starter `runbook.toml`
//! ([`crate::spec::config::STARTER`]) and the runbook and plugin folders it names. An
//! existing `runbook.toml` is never replaced without `--force`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::exit;
use super::output::{self, DIM, OK, say};
use crate::spec::config::{CONFIG_FILE, Config, STARTER};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to set up (created if missing)
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Replace an existing runbook.toml
    #[arg(long)]
    force: bool,
    /// Print JSON: the file written and the folders created
    #[arg(long)]
    json: bool,
}

/// What went wrong, and the exit code it means.
#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error("{0} already exists; `runbook init --force` replaces it")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the starter configuration does not read back: {0}")]
    Starter(String),
}

impl InitError {
    fn code(&self) -> u8 {
        match self {
            InitError::Exists(_) => exit::INVALID,
            InitError::Write { .. } | InitError::Starter(_) => exit::FAILED,
        }
    }
}

/// `runbook init` ignores `--config`: it writes `<dir>/runbook.toml`, wherever a
/// configuration would otherwise be found.
pub fn init(args: InitArgs) -> u8 {
    match write_workspace(&args.dir, args.force) {
        Ok((config, created)) => {
            if args.json {
                output::json(&json!({ "config": config, "created": created }));
            } else {
                say!("{OK}wrote{OK:#} {}", config.display());
                for dir in &created {
                    say!("{OK}created{OK:#} {}/", dir.display());
                }
                say!(
                    "{DIM}next: put plugins in the plugin folder and runbooks in the runbook folder, then `runbook validate` and `runbook db init`{DIM:#}"
                );
            }
            exit::SUCCESS
        }
        Err(e) => {
            output::error(&e.to_string());
            e.code()
        }
    }
}

/// Writes the starter file (refusing to replace one unless `force`), then creates the
/// folders it names; returns the file and the folders that were created.
fn write_workspace(dir: &Path, force: bool) -> Result<(PathBuf, Vec<PathBuf>), InitError> {
    let path = dir.join(CONFIG_FILE);
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Write { path, source }
    };
    // Read back first, so that nothing is written from a starter that does not parse.
    let config = Config::from_text(CONFIG_FILE, STARTER, dir, Some(&path))
        .map_err(|e| InitError::Starter(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(force)
        // Without --force an existing file is refused by the open itself: no window
        // between a check and the write.
        .create_new(!force)
        .open(&path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => InitError::Exists(path.clone()),
            _ => write_error(&path)(source),
        })?;
    file.write_all(STARTER.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error(&path))?;
    let mut created = Vec::new();
    for folder in config.runbook_dirs.iter().chain(&config.plugin_dirs) {
        if !folder.is_dir() {
            std::fs::create_dir_all(folder).map_err(write_error(folder))?;
            created.push(folder.clone());
        }
    }
    Ok((path, created))
}

#[cfg(test)]
mod tests {
    use super::{InitError, write_workspace};
    use crate::spec::config::STARTER;

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let (path, created) = write_workspace(dir.path(), false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), STARTER);
        assert_eq!(
            created,
            [dir.path().join("runbooks"), dir.path().join("plugins")]
        );
        std::fs::write(&path, "# mine\n").unwrap();
        assert!(matches!(
            write_workspace(dir.path(), false),
            Err(InitError::Exists(p)) if p == path
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
        let (_, created) = write_workspace(dir.path(), true).unwrap();
        assert!(created.is_empty(), "{created:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), STARTER);
    }
}
