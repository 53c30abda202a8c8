//! Build automation: `cargo xtask plugins|demo|lint|pyenv|docs|test|bench|soak`. Plain std::process, no
//! magic: every step prints the command it runs.

mod bench;
mod docs;
mod pyenv;
mod soak;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  plugins   build every plugin (plugins/ and tests/plugins/) for wasm32-wasip2
            into target/plugins and target/test-plugins
  demo      build everything, load the demo billing database (SQLite) with its live
            webhook incident, and run `runbook exec webhook-failure` on it
  lint      layout rules (tidy: `//!` lines, file sizes, module dependencies), then
            cargo fmt --check and clippy -D warnings on the host and the plugins
  pyenv     the Python virtualenv target/py with the tests' servers (localstripe,
            aiosmtpd, stripe; pinned in tests/servers/requirements.txt)
  docs      the shell completion scripts (target/completions/) and the manual page
            (target/man/runbook.1), written by `runbook completions` and `runbook man`
  test      the whole suite: pyenv, lint, plugins, docs, then every test (what CI runs)
  bench     [whole|micro|bulk] the figures of BENCHMARKS.md as Markdown tables:
            whole-process `runbook exec` (cold/warm cache, overhead per step on SQLite
            and PostgreSQL state, peak RSS), criterion micro-benchmarks (instantiation,
            host-call overhead against direct sqlx), the bulk job against native sqlx
  soak      [--kills N] the crash torture suite (tests/torture.rs) under fresh seeds
            until at least N kills (default 2000): kills, runs, failures, seeds";

fn main() -> Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    match command.as_str() {
        "plugins" => plugins(),
        "demo" => demo(),
        "lint" => lint(),
        "pyenv" => pyenv::pyenv(),
        "docs" => docs::docs(),
        "test" => test(),
        "bench" => bench::bench(std::env::args().nth(2).as_deref()),
        "soak" => soak::soak(&std::env::args().skip(2).collect::<Vec<_>>()),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown command `{command}`")
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(command: &mut Command) -> Result<()> {
    eprintln!("$ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

const WASM_TARGET: &str = "wasm32-wasip2";

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET) =>
        {
            Ok(())
        }
        Ok(_) => run(Command::new("rustup").args(["target", "add", WASM_TARGET])),
        // Without rustup the toolchain must already have the target; cargo will say if not.
        Err(_) => Ok(()),
    }
}

/// Builds one plugin workspace and copies each `<name>.wasm` with its manifest.
fn build_plugin_workspace(workspace: &Path, out: &Path) -> Result<()> {
    let root = root();
    run(cargo()
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", root.join("target/wasm"))
        .args(["build", "--release", "--target", WASM_TARGET, "--workspace"]))?;
    std::fs::create_dir_all(out)?;
    let built = root.join("target/wasm").join(WASM_TARGET).join("release");
    let mut count = 0;
    for manifest in find_manifests(workspace)? {
        let text = std::fs::read_to_string(&manifest)?;
        let name = manifest_name(&text)
            .with_context(|| format!("{} has no `name`", manifest.display()))?;
        let crate_dir = manifest.parent().expect("a file has a folder");
        let lib = crate_dir
            .file_name()
            .map(|n| n.to_string_lossy().replace('-', "_"))
            .unwrap_or_default();
        let wasm = built.join(format!("{lib}.wasm"));
        if !wasm.is_file() {
            bail!("{} was not built (expected {})", name, wasm.display());
        }
        std::fs::copy(&wasm, out.join(format!("{name}.wasm")))?;
        std::fs::copy(&manifest, out.join(format!("{name}.toml")))?;
        count += 1;
    }
    eprintln!("{count} plugins in {}", out.display());
    Ok(())
}

fn find_manifests(workspace: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(workspace)? {
        let path = entry?.path().join("plugin.toml");
        if path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The manifest's `name = "..."`; the host parses manifests properly, this only needs
/// the file name to copy to.
fn manifest_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "name").then(|| value.trim().trim_matches('"').to_string())
    })
}

fn plugins() -> Result<()> {
    ensure_wasm_target()?;
    let root = root();
    build_plugin_workspace(&root.join("plugins"), &root.join("target/plugins"))?;
    build_plugin_workspace(
        &root.join("tests/plugins"),
        &root.join("target/test-plugins"),
    )
}

fn demo() -> Result<()> {
    plugins()?;
    let root = root();
    run(cargo()
        .current_dir(&root)
        .args(["build", "--package", "runbook"]))?;
    let dir = root.join("target/demo");
    std::fs::create_dir_all(&dir)?;
    // A fresh incident every time; the run history in state.db is kept.
    for stale in ["target.db", "target.db-wal", "target.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    std::fs::write(
        dir.join("runbook.toml"),
        "# Written by `cargo xtask demo`: embedded SQLite for everything, no servers.\n\
         [target]\nurl = \"sqlite://target.db\"\n\n[state]\nurl = \"sqlite://state.db\"\n\n\
         [paths]\nplugins = [\"../plugins\"]\nrunbooks = [\"../../runbooks\"]\ncache = \"cache\"\n",
    )?;
    let runbook = root.join("target/debug/runbook");
    let config = dir.join("runbook.toml");
    run(Command::new(&runbook)
        .current_dir(&root)
        .arg("--config")
        .arg(&config)
        .args(["db", "init", "--demo", "--schema", "runbooks/schema"]))?;
    // Pin the plugins just built, so the demo runs a locked workspace.
    run(Command::new(&runbook)
        .current_dir(&root)
        .arg("--config")
        .arg(&config)
        .args(["plugins", "lock"]))?;
    run(Command::new(&runbook)
        .current_dir(&root)
        .arg("--config")
        .arg(&config)
        .args(["exec", "webhook-failure", "--as", "demo-operator"]))?;
    eprintln!(
        "\nTry next:\n  {r} --config {c} runs\n  {r} --config {c} grants\n  {r} --config {c} exec billing-report\n  {r} --config {c} audit verify",
        r = "target/debug/runbook",
        c = "target/demo/runbook.toml"
    );
    Ok(())
}

fn lint() -> Result<()> {
    let root = root();
    tidy::check(&root)?;
    run(cargo().current_dir(&root).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    ensure_wasm_target()?;
    for workspace in ["plugins", "tests/plugins"] {
        let dir = root.join(workspace);
        run(cargo().current_dir(&dir).args(["fmt", "--all", "--check"]))?;
        run(cargo()
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", root.join("target/wasm"))
            .args([
                "clippy",
                "--workspace",
                "--target",
                WASM_TARGET,
                "--",
                "-D",
                "warnings",
            ]))?;
    }
    Ok(())
}

fn test() -> Result<()> {
    // First: a machine without Python's venv module fails now, not after the builds.
    pyenv::pyenv()?;
    lint()?;
    plugins()?;
    let root = root();
    // The binary the tests run writes the completions and the manual page first, so an
    // empty one fails CI; building it here is the build the tests would do anyway.
    run(cargo()
        .current_dir(&root)
        .args(["test", "--workspace", "--no-run"]))?;
    docs::write_docs(&root.join("target/debug/runbook"))?;
    run(cargo().current_dir(&root).args(["test", "--workspace"]))?;
    // The SDK's pure parts and the plugins' business logic are unit-tested natively.
    run(cargo()
        .current_dir(root.join("plugins"))
        .env("CARGO_TARGET_DIR", root.join("target/plugins-native"))
        .args(["test", "--workspace"]))
}
