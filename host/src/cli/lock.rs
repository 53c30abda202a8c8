//! `runbook plugins lock [--check]`: pin every installed plugin's digest in runbook.lock,
//! or check the installed plugins against it.

use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::json;

use super::exit;
use super::output::{self, FAIL, OK, say};
use super::session::Session;
use crate::plugin::lock::{LockCheck, check, digests};
use crate::spec::lock::{Lockfile, lock_path};

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Write runbook.lock (beside runbook.toml): every installed plugin's sha256. `exec`
    /// then refuses a plugin whose digest differs or is not listed.
    Lock(LockArgs),
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Do not write: compare the installed plugins with runbook.lock and exit 1 if they
    /// differ (2 if there is no lockfile)
    #[arg(long)]
    check: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub async fn lock(config: Option<&Path>, args: LockArgs) -> u8 {
    let Ok(session) = Session::open(config) else {
        return exit::INVALID;
    };
    let plugins = session.plugins();
    let (installed, unreadable) = digests(&plugins);
    let path = lock_path(&session.config);
    if args.check {
        let Ok(existing) = session.lockfile() else {
            return exit::INVALID;
        };
        let Some(existing) = existing else {
            output::error(&format!(
                "no lockfile at {} (write one with `runbook plugins lock`)",
                path.display()
            ));
            return exit::INVALID;
        };
        let result = check(&existing, &installed, unreadable);
        return report_check(&path, &result, args.json);
    }
    if !unreadable.is_empty() {
        for (plugin, e) in &unreadable {
            output::error(&format!(
                "plugin `{plugin}`: cannot read its component: {e}"
            ));
        }
        return exit::FAILED;
    }
    let lock = Lockfile { plugins: installed };
    if let Err(e) = std::fs::write(&path, lock.render()) {
        output::error(&format!("cannot write {}: {e}", path.display()));
        return exit::FAILED;
    }
    if args.json {
        let plugins: serde_json::Map<String, serde_json::Value> = lock
            .plugins
            .iter()
            .map(|(name, hex)| (name.clone(), json!(format!("sha256:{hex}"))))
            .collect();
        output::json(&json!({ "lockfile": path, "plugins": plugins }));
    } else {
        say!(
            "{OK}locked{OK:#} {} in {}",
            output::count(lock.plugins.len() as i64, "plugin"),
            path.display()
        );
    }
    exit::SUCCESS
}

fn report_check(path: &Path, result: &LockCheck, json: bool) -> u8 {
    let code = if result.is_clean() {
        exit::SUCCESS
    } else {
        exit::FAILED
    };
    if json {
        output::json(&json!({
            "lockfile": path,
            "clean": result.is_clean(),
            "drift": result.drift,
            "unlocked": result.unlocked,
            "stale": result.stale,
            "unreadable": result.unreadable,
        }));
        return code;
    }
    if result.is_clean() {
        say!(
            "{OK}ok{OK:#} the installed plugins match {}",
            path.display()
        );
    }
    for problem in result.problems() {
        say!("{FAIL}drift{FAIL:#} {}", problem);
    }
    code
}
