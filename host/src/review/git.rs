//! Reading files at a git revision for `runbook grants --diff <rev>`, through the git
//! command line (`rev-parse`, `ls-tree`, `show`) in the workspace's repository.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a revision cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("{dir} is not in a git repository ({message})")]
    NotARepo { dir: PathBuf, message: String },
    #[error("unknown git revision {rev:?} ({message})")]
    UnknownRev { rev: String, message: String },
    #[error("git {command}: {message}")]
    Failed { command: String, message: String },
}

/// One commit of the repository holding the workspace.
#[derive(Debug)]
pub struct Revision {
    /// As the user wrote it.
    name: String,
    commit: String,
    /// The repository's top folder, canonical.
    root: PathBuf,
}

impl Revision {
    /// The revision `rev` of the repository that holds `dir`.
    pub fn open(dir: &Path, rev: &str) -> Result<Revision, GitError> {
        if rev.starts_with('-') || rev.is_empty() {
            return Err(GitError::UnknownRev {
                rev: rev.to_string(),
                message: "a revision does not start with `-`".to_string(),
            });
        }
        let top = git(dir, &["rev-parse", "--show-toplevel"]).map_err(|e| match e {
            GitError::Failed { message, .. } => GitError::NotARepo {
                dir: dir.to_path_buf(),
                message,
            },
            other => other,
        })?;
        let root = PathBuf::from(String::from_utf8_lossy(&top).trim());
        let root = root.canonicalize().unwrap_or(root);
        let spec = format!("{rev}^{{commit}}");
        let commit =
            git(&root, &["rev-parse", "--verify", "--quiet", &spec]).map_err(|e| match e {
                GitError::Failed { message, .. } => GitError::UnknownRev {
                    rev: rev.to_string(),
                    message: if message.is_empty() {
                        "not a commit in this repository".to_string()
                    } else {
                        message
                    },
                },
                other => other,
            })?;
        Ok(Revision {
            name: rev.to_string(),
            commit: String::from_utf8_lossy(&commit).trim().to_string(),
            root,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The files directly in `dir` whose names end in `.<ext>`, at this revision, as
    /// paths relative to the repository; `None` when `dir` is outside the repository.
    pub fn list(&self, dir: &Path, ext: &str) -> Result<Option<Vec<PathBuf>>, GitError> {
        let Some(relative) = self.relative(dir) else {
            return Ok(None);
        };
        // `dir/` lists the folder's entries; the top folder is `.`.
        let mut folder = relative.display().to_string();
        if folder.is_empty() {
            folder.push('.');
        } else {
            folder.push('/');
        }
        let out = git(
            &self.root,
            &["ls-tree", "--name-only", &self.commit, "--", &folder],
        )?;
        let suffix = format!(".{ext}");
        Ok(Some(
            String::from_utf8_lossy(&out)
                .lines()
                .filter(|l| l.ends_with(&suffix))
                .map(PathBuf::from)
                .collect(),
        ))
    }

    /// A file's bytes at this revision (`path` relative to the repository); `None` when
    /// the revision does not have it.
    pub fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, GitError> {
        let object = format!("{}:{}", self.commit, path.display());
        match git(&self.root, &["cat-file", "-e", &object]) {
            Ok(_) => git(&self.root, &["show", &object]).map(Some),
            Err(GitError::Failed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `dir` relative to the repository's top folder, if it is inside.
    fn relative(&self, dir: &Path) -> Option<PathBuf> {
        let absolute = canonical(dir);
        absolute
            .strip_prefix(&self.root)
            .ok()
            .map(Path::to_path_buf)
    }
}

/// `path` made absolute with symlinks resolved as far as it exists (a folder may exist
/// only at the revision).
fn canonical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut missing = Vec::new();
    let mut existing = absolute.as_path();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return missing.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Runs `git args` in `dir`; stdout on success.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(GitError::Spawn)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(GitError::Failed {
            command: args.first().copied().unwrap_or("").to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
