//! `cargo xtask docs`: the shell completion scripts (`target/completions/`) and the manual
//! pages (`target/man/runbook.1`, one per subcommand beside it), written by the `runbook`
//! binary itself (`runbook completions <shell>`, `runbook man --dir`). `cargo xtask test` writes them before the tests,
//! so CI fails when either comes out empty.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, describe, root, run};

/// Each shell clap_complete supports, with the file name its completion loader expects.
const SHELLS: [(&str, &str); 5] = [
    ("bash", "runbook.bash"),
    ("zsh", "_runbook"),
    ("fish", "runbook.fish"),
    ("elvish", "runbook.elv"),
    ("powershell", "_runbook.ps1"),
];

/// Builds the binary, then writes the scripts and the pages.
pub fn docs() -> Result<()> {
    let root = root();
    run(cargo()
        .current_dir(&root)
        .args(["build", "--package", "runbook"]))?;
    write_docs(&root.join("target/debug/runbook"))
}

/// Writes the scripts and the pages with `runbook`, an already built binary.
pub fn write_docs(runbook: &Path) -> Result<()> {
    let root = root();
    let completions = root.join("target/completions");
    std::fs::create_dir_all(&completions)?;
    for (shell, file) in SHELLS {
        write_output(runbook, &["completions", shell], &completions.join(file))?;
    }
    let man = root.join("target/man");
    // Pages of commands since removed must not linger.
    if man.exists() {
        std::fs::remove_dir_all(&man)?;
    }
    run(Command::new(runbook).arg("man").arg("--dir").arg(&man))?;
    let mut pages = 0;
    for page in std::fs::read_dir(&man)? {
        let page = page?.path();
        if std::fs::read(&page)?.iter().all(u8::is_ascii_whitespace) {
            bail!("{} is empty", page.display());
        }
        pages += 1;
    }
    if pages == 0 || !man.join("runbook.1").is_file() {
        bail!(
            "`runbook man --dir` wrote no runbook.1 in {}",
            man.display()
        );
    }
    eprintln!(
        "completions in {}, {pages} manual pages in {}",
        completions.display(),
        man.display()
    );
    Ok(())
}

/// `runbook <args>` into `out`; an error when it fails or prints nothing.
fn write_output(runbook: &Path, args: &[&str], out: &Path) -> Result<()> {
    let mut command = Command::new(runbook);
    command.args(args).env("NO_COLOR", "1");
    eprintln!("$ {} > {}", describe(&command), out.display());
    let output = command
        .output()
        .with_context(|| format!("cannot start {}", describe(&command)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed with {}: {}",
            describe(&command),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        bail!("`{}` printed nothing", describe(&command));
    }
    std::fs::write(out, &output.stdout).with_context(|| format!("cannot write {}", out.display()))
}
