//! `cargo xtask pyenv`: the Python virtualenv the integration tests start their servers
//! from (localstripe, aiosmtpd, the official `stripe` library; see tests/servers/).
//!
//! `target/py` is created with `python3 -m venv` (or `$PYTHON -m venv`) when missing or
//! broken, and the pinned `tests/servers/requirements.txt` is installed into it. A stamp
//! file holding the requirements it was installed from makes the next call a no-op until
//! the requirements change.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::{root, run};

const STAMP: &str = ".runbook-requirements";

/// The venv's interpreter, the one tests/support/servers.rs looks for.
fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

pub fn pyenv() -> Result<()> {
    let root = root();
    let venv = root.join("target/py");
    let python = venv_python(&venv);
    let requirements_file = root.join("tests/servers/requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_file)
        .with_context(|| format!("cannot read {}", requirements_file.display()))?;
    let stamp = venv.join(STAMP);

    if !runs(&python) {
        if venv.exists() {
            eprintln!("{} is unusable: recreating it", venv.display());
            std::fs::remove_dir_all(&venv)
                .with_context(|| format!("cannot remove {}", venv.display()))?;
        }
        let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        run(Command::new(&system_python)
            .arg("-m")
            .arg("venv")
            .arg(&venv))
        .with_context(|| {
            format!(
                "the tests' servers need a Python 3 with the venv module \
                     (Debian/Ubuntu: apt-get install python3-venv); set PYTHON to use \
                     another interpreter than `{system_python}`"
            )
        })?;
    }

    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str()) {
        eprintln!("{} is up to date", venv.display());
        return Ok(());
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--requirement")
        .arg(&requirements_file))?;
    std::fs::write(&stamp, &requirements)
        .with_context(|| format!("cannot write {}", stamp.display()))?;
    eprintln!("{} is ready", venv.display());
    Ok(())
}

/// Whether the interpreter exists and starts (a venv breaks when its base Python goes).
fn runs(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args(["-c", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}
