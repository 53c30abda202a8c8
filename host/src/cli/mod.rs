//! The `runbook` command line: argument parsing, dispatch, and the exit-code contract.

mod audit;
mod completions;
mod control;
mod db;
mod exec;
mod grants;
mod init;
mod inspect;
mod lock;
mod man;
mod output;
mod run_ref;
mod runs;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    /// Everything succeeded.
    pub const SUCCESS: u8 = 0;
    /// A step failed (or the audit chain is broken, for `audit verify`).
    pub const FAILED: u8 = 1;
    /// Invalid input or configuration: nothing ran.
    pub const INVALID: u8 = 2;
    /// The run is paused, waiting for approval (`runbook approve`, then `runbook resume`).
    pub const PAUSED: u8 = 3;
}

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a step failed (exec), or the audit chain is broken (audit verify)
  2  invalid input or configuration; nothing ran
  3  the run is paused waiting for approval (approve, then resume)

Environment:
  RUNBOOK_OPERATOR   who is running (default for --as; falls back to $USER)
  NO_COLOR           disables colour (colour is only ever used on a terminal)
  RUST_LOG           tracing filter for diagnostics on stderr (e.g. runbook=debug)";

#[derive(Debug, Parser)]
#[command(
    name = "runbook",
    version,
    about = "Run billing operations runbooks as sandboxed, audited WebAssembly plugins",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Configuration file [default: the nearest runbook.toml in this folder or a parent
    /// folder, else built-in SQLite defaults]
    #[arg(long, global = true, value_name = "FILE", env = "RUNBOOK_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up a workspace: a commented starter runbook.toml and the runbook and plugin
    /// folders it names (an existing runbook.toml is kept unless --force)
    Init(init::InitArgs),
    /// List the runbooks in the runbook folders
    List(inspect::ListArgs),
    /// Show a runbook: parameters, steps, plugins and the grants each step gets
    Show(inspect::ShowArgs),
    /// Check runbook files (all of them by default) without running anything
    Validate(inspect::ValidateArgs),
    /// List installed plugins with their digest, imported interfaces and declared needs;
    /// `plugins lock` pins their digests in runbook.lock
    Plugins(inspect::PluginsArgs),
    /// Review what every step may do: grants, writes and lints; `--diff <rev>` shows what
    /// a change widens
    #[command(after_help = grants::AFTER_HELP)]
    Grants(grants::GrantsArgs),
    /// Run a runbook
    #[command(after_help = EXIT_CODES)]
    Exec(exec::ExecArgs),
    /// Approve the approval step a paused run waits for
    Approve(control::ApproveArgs),
    /// Reject the approval step a paused run waits for (the run then fails and rolls back)
    Reject(control::RejectArgs),
    /// Continue a paused or interrupted run from where it stopped
    #[command(after_help = EXIT_CODES)]
    Resume(control::ResumeArgs),
    /// Undo a run: roll back its completed steps, newest first
    Rollback(control::RollbackArgs),
    /// List recent runs
    Runs(runs::RunsArgs),
    /// Show one run: every step's input, output, status, timing and log
    Status(runs::StatusArgs),
    /// Inspect and verify the hash-chained audit log
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Prepare the target database: the reference billing schema, and optionally demo data
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell)
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff): `runbook man | man -l -`
    Man(man::ManArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::FAILED);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    ExitCode::from(code)
}

async fn dispatch(cli: Cli) -> u8 {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Init(args) => init::init(args),
        Command::List(args) => inspect::list(config, args).await,
        Command::Show(args) => inspect::show(config, args).await,
        Command::Validate(args) => inspect::validate(config, args).await,
        Command::Plugins(args) => match args.command {
            Some(lock::PluginsCommand::Lock(lock_args)) => lock::lock(config, lock_args).await,
            None => inspect::plugins(config, args).await,
        },
        Command::Grants(args) => grants::grants(config, args).await,
        Command::Exec(args) => exec::exec(config, args).await,
        Command::Approve(args) => control::approve(config, args).await,
        Command::Reject(args) => control::reject(config, args).await,
        Command::Resume(args) => control::resume(config, args).await,
        Command::Rollback(args) => control::rollback(config, args).await,
        Command::Runs(args) => runs::runs(config, args).await,
        Command::Status(args) => runs::status(config, args).await,
        Command::Audit(command) => audit::audit(config, command).await,
        Command::Db(command) => db::db(config, command).await,
        Command::Completions(args) => completions::completions(Cli::command(), args),
        Command::Man(args) => man::man(Cli::command(), args),
    }
}
