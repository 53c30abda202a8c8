//! `runbook db init`: apply the reference billing schema (and demo data) to the target.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::exit;
use super::output::say;
use super::output::{self, OK};
use super::session::{Reported, Session};
use crate::target::TargetDb;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply the schema migrations to the target database (idempotent); creates the target
    /// and the state store if they do not exist
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder with the schema (`migrations/` and `demo.sql`)
    #[arg(long, default_value = "runbooks/schema")]
    schema: PathBuf,
    /// Also load the demo data set (it contains a live webhook incident)
    #[arg(long)]
    demo: bool,
}

pub async fn db(config: Option<&Path>, command: DbCommand) -> u8 {
    let DbCommand::Init(args) = command;
    let result: Result<u8, Reported> = async {
        let session = Session::open(config)?;
        let url = &session.config.target_url;
        let target = TargetDb::connect(url.expose()).await.map_err(|e| {
            output::error(&format!("target database {url}: {e}"));
            Reported(exit::INVALID)
        })?;
        let failed = |e: crate::target::TargetError| {
            output::error(&e.to_string());
            Reported(exit::FAILED)
        };
        target
            .migrate(&args.schema.join("migrations"))
            .await
            .map_err(failed)?;
        // The host's own table, part of every target's schema (see ARCHITECTURE).
        target.ensure_step_commits().await.map_err(failed)?;
        if args.demo {
            let demo = args.schema.join("demo.sql");
            let sql = std::fs::read_to_string(&demo).map_err(|e| {
                output::error(&format!("cannot read {}: {e}", demo.display()));
                Reported(exit::INVALID)
            })?;
            target.run_script(&sql).await.map_err(failed)?;
        }
        target.close().await;
        // The run history starts here too, so that every later command finds it.
        session.create_state().await?;
        say!(
            "{OK}ready{OK:#}: {} (schema{}); state store {}",
            url,
            if args.demo { " and demo data" } else { "" },
            session.config.state_url
        );
        Ok(exit::SUCCESS)
    }
    .await;
    result.unwrap_or_else(|Reported(code)| code)
}
