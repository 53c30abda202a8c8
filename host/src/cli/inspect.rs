//! `runbook list|show|validate|plugins`: read-only views of runbooks and plugins
//! (`validate` also compares the plugins with runbook.lock).

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};

use super::exit;
use super::output::{self, BOLD, DIM, FAIL, OK, WARN};
use super::output::{say, say_err};
use super::session::{Reported, Session};
use crate::capability::{Grants, Interface, Services};
use crate::exec::host_problems;
use crate::plugin::PluginDirectory;
use crate::plugin::lock::{check, digests};
use crate::runtime::Runtime;
use crate::spec::lock::{load_lockfile, lock_path};
use crate::spec::runbook::load_runbook;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Runbook name or path
    runbook: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Runbook files to check [default: every runbook in the runbook folders]
    files: Vec<PathBuf>,
    /// Check only the files, not what depends on this host: whether the services the
    /// grants call on can be used here (the Stripe key, webhook secrets, mail settings)
    #[arg(long)]
    offline: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `runbook plugins` lists; `runbook plugins lock` writes or checks runbook.lock.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PluginsArgs {
    #[command(subcommand)]
    pub command: Option<super::lock::PluginsCommand>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub async fn list(config: Option<&Path>, args: ListArgs) -> u8 {
    let Ok(session) = Session::open(config) else {
        return exit::INVALID;
    };
    let plugins = session.plugins();
    let mut rows = Vec::new();
    for file in session.runbook_files() {
        let entry = match load_runbook(&file, &plugins) {
            Ok(rb) => {
                json!({ "name": rb.name, "description": rb.description, "steps": rb.steps.len(), "file": file, "valid": true })
            }
            Err(d) => {
                json!({ "name": file.file_stem().map(|s| s.to_string_lossy()), "file": file, "valid": false, "errors": d.len() })
            }
        };
        rows.push(entry);
    }
    if args.json {
        output::json(&rows);
        return exit::SUCCESS;
    }
    for row in &rows {
        let name = row["name"].as_str().unwrap_or("?");
        if row["valid"] == Value::Bool(true) {
            say!(
                "{BOLD}{:<28}{BOLD:#} {} {DIM}({}){DIM:#}",
                name,
                row["description"].as_str().unwrap_or(""),
                output::count(row["steps"].as_i64().unwrap_or(0), "step")
            );
        } else {
            say!(
                "{BOLD}{:<28}{BOLD:#} {FAIL}invalid{FAIL:#} {DIM}(runbook validate {}){DIM:#}",
                name,
                row["file"].as_str().unwrap_or("")
            );
        }
    }
    exit::SUCCESS
}

pub async fn show(config: Option<&Path>, args: ShowArgs) -> u8 {
    let result: Result<u8, Reported> = (|| {
        let session = Session::open(config)?;
        let plugins = session.plugins();
        let runbook = session.load_runbook(&args.runbook, &plugins)?;
        if args.json {
            output::json(&runbook);
            return Ok(exit::SUCCESS);
        }
        say!("{BOLD}{}{BOLD:#} — {}", runbook.name, runbook.description);
        say!("{DIM}{} sha256:{}{DIM:#}", runbook.source, runbook.digest);
        if !runbook.params.is_empty() {
            say!("\n{BOLD}parameters{BOLD:#}");
            for p in &runbook.params {
                let default = p
                    .default
                    .as_ref()
                    .map_or(String::new(), |d| format!(" = {d}"));
                let required = if p.required { " (required)" } else { "" };
                say!(
                    "  {}: {:?}{}{}  {DIM}{}{DIM:#}",
                    p.name,
                    p.kind,
                    default,
                    required,
                    p.description.as_deref().unwrap_or("")
                );
            }
        }
        say!("\n{BOLD}steps{BOLD:#}");
        for (i, step) in runbook.steps.iter().enumerate() {
            let what = match &step.approval {
                Some(_) => "approval gate".to_string(),
                None => format!("plugin {}", step.plugin),
            };
            say!(
                "  {}. {BOLD}{}{BOLD:#} {}{}",
                i + 1,
                step.id,
                step.name
                    .as_deref()
                    .map(|n| format!("({n}) "))
                    .unwrap_or_default(),
                what
            );
            if let Some(when) = &step.when {
                say!("     when: {}", when);
            }
            if let Some(approval) = &step.approval {
                say!(
                    "     approvers: {} of {}{}",
                    approval.required,
                    approval.approvers.join(", "),
                    if approval.allow_self {
                        " (the operator may approve)"
                    } else {
                        ""
                    }
                );
                if let Some(timeout) = approval.timeout {
                    say!(
                        "     on timeout after {}: {}",
                        humantime_secs(timeout),
                        approval.on_timeout.as_str()
                    );
                }
            }
            if !step.plugin.is_empty() {
                for line in grant_lines(&step.grants) {
                    say!("     grant: {}", line);
                }
            }
            if let Some(rollback) = &step.rollback {
                say!("     rollback: plugin {}", rollback.plugin);
                for line in grant_lines(&rollback.grants) {
                    say!("       grant: {}", line);
                }
            }
        }
        if !runbook.rollback_approvers.is_empty() {
            say!(
                "\n{BOLD}rollback{BOLD:#} on demand by {}",
                runbook.rollback_approvers.join(", ")
            );
        }
        Ok(exit::SUCCESS)
    })();
    result.unwrap_or_else(|Reported(code)| code)
}

/// `90s`, `15m`, `2h`: the way a timeout is written in a runbook.
fn humantime_secs(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One line per thing granted, the way a security reviewer reads them.
pub fn grant_lines(grants: &Grants) -> Vec<String> {
    let mut lines = grants.describe();
    if lines.is_empty() {
        lines.push("none (audit and log only)".into());
    }
    lines
}

/// What a manifest declares, one line per need that names something: a plugin that
/// needs nothing but audit and log has no line, and a need whose list the step's grant
/// fills in (`webhook endpoints:`) shows only in `imports`.
fn need_lines(needs: &Grants) -> Vec<String> {
    needs
        .describe()
        .into_iter()
        .filter(|line| !line.trim_end().ends_with(':'))
        .collect()
}

pub async fn validate(config: Option<&Path>, args: ValidateArgs) -> u8 {
    let Ok(session) = Session::open(config) else {
        return exit::INVALID;
    };
    let plugins = session.plugins();
    let files = if args.files.is_empty() {
        session.runbook_files()
    } else {
        args.files
    };
    let mut results = Vec::new();
    let mut all_ok = true;
    let services = (!args.offline).then(|| Services::from_config(&session.config));
    for file in &files {
        match load_runbook(file, &plugins) {
            Ok(runbook) => {
                // What `exec` would refuse on this host before the first step.
                let problems: Vec<Value> =
                    host_problems(&runbook, &session.config.groups, services.as_ref())
                        .iter()
                        .map(|problem| json!({ "file": file, "message": problem.to_string() }))
                        .collect();
                if !args.json {
                    for problem in &problems {
                        output::error(&format!(
                            "{}: {}",
                            file.display(),
                            problem["message"].as_str().unwrap_or_default()
                        ));
                    }
                }
                all_ok &= problems.is_empty();
                results.push(
                    json!({ "file": file, "valid": problems.is_empty(), "errors": problems }),
                );
            }
            Err(diagnostics) => {
                all_ok = false;
                if !args.json {
                    output::diagnostics(&diagnostics);
                }
                results
                    .push(json!({ "file": file, "valid": false, "errors": diagnostics.to_json() }));
            }
        }
    }
    if let Some(entry) = validate_lock(&session, &plugins, args.json) {
        all_ok = false;
        results.push(entry);
    }
    if args.json {
        output::json(&results);
    } else {
        for r in &results {
            if r["valid"] == Value::Bool(true) {
                say!("{OK}ok{OK:#}      {}", r["file"].as_str().unwrap_or(""));
            } else {
                say!(
                    "{FAIL}invalid{FAIL:#} {} ({})",
                    r["file"].as_str().unwrap_or(""),
                    output::count(
                        r["errors"].as_array().map_or(0, |a| a.len() as i64),
                        "error"
                    )
                );
            }
        }
    }
    if all_ok { exit::SUCCESS } else { exit::INVALID }
}

/// The installed plugins against runbook.lock: `None` when they match (or there is no
/// lockfile, which is only warned about); otherwise an entry of `validate`'s result list
/// for the lockfile, its problems as errors.
fn validate_lock(session: &Session, plugins: &PluginDirectory, json: bool) -> Option<Value> {
    let path = lock_path(&session.config);
    let errors: Vec<Value> = match load_lockfile(&path) {
        Ok(None) => {
            say_err!(
                "{WARN}warning{WARN:#}: no {}: plugins are not pinned (write one with `runbook plugins lock`)",
                path.display()
            );
            return None;
        }
        Ok(Some(lock)) => {
            let (installed, unreadable) = digests(plugins);
            let result = check(&lock, &installed, unreadable);
            if !json {
                for problem in result.problems() {
                    output::error(&format!("{}: {problem}", path.display()));
                }
            }
            result
                .problems()
                .into_iter()
                .map(|message| json!({ "file": path, "message": message }))
                .collect()
        }
        Err(diagnostics) => {
            if !json {
                output::diagnostics(&diagnostics);
            }
            diagnostics
                .to_json()
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    (!errors.is_empty()).then(|| json!({ "file": path, "valid": false, "errors": errors }))
}

pub async fn plugins(config: Option<&Path>, args: PluginsArgs) -> u8 {
    let Ok(session) = Session::open(config) else {
        return exit::INVALID;
    };
    let plugins = session.plugins();
    let runtime = match Runtime::new(session.config.cache_dir.clone()) {
        Ok(r) => r,
        Err(e) => {
            output::error(&e.to_string());
            return exit::FAILED;
        }
    };
    let mut rows = Vec::new();
    let mut code = exit::SUCCESS;
    for entry in plugins.entries() {
        let m = &entry.manifest;
        let loaded = runtime.load(&m.name, &entry.wasm_path);
        let (digest, imports, problem) = match &loaded {
            Ok(p) => {
                // A component that imports more than its manifest declares is lying to
                // reviewers; flag it.
                let undeclared: Vec<Interface> = p
                    .imports
                    .iter()
                    .copied()
                    .filter(|c| !m.needs.allows_interface(*c))
                    .collect();
                let problem = (!undeclared.is_empty())
                    .then(|| format!("imports {undeclared:?} not declared in its manifest"));
                (
                    Some(p.digest.clone()),
                    p.imports.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                    problem,
                )
            }
            Err(e) => (None, Vec::new(), Some(e.to_string())),
        };
        if problem.is_some() {
            code = exit::FAILED;
        }
        rows.push(json!({
            "name": m.name, "version": m.version, "description": m.description,
            "wasm": entry.wasm_path, "sha256": digest, "imports": imports,
            "needs": m.needs, "problem": problem,
        }));
    }
    if args.json {
        output::json(&rows);
        return code;
    }
    for (row, entry) in rows.iter().zip(plugins.entries()) {
        say!(
            "{BOLD}{}{BOLD:#} {} — {}",
            row["name"].as_str().unwrap_or(""),
            row["version"].as_str().unwrap_or(""),
            row["description"].as_str().unwrap_or("")
        );
        say!(
            "  {DIM}sha256:{}{DIM:#}",
            row["sha256"].as_str().unwrap_or("?")
        );
        let imports: Vec<&str> = row["imports"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        say!(
            "  imports: {}",
            if imports.is_empty() {
                "none".to_string()
            } else {
                imports.join(", ")
            }
        );
        for line in need_lines(&entry.manifest.needs) {
            say!("  needs:   {}", line);
        }
        if let Some(problem) = row["problem"].as_str() {
            say!("  {FAIL}problem{FAIL:#}: {}", problem);
        }
    }
    code
}
