//! `runbook:plugin/db`: grant-checked SQL against the target database, inside the step's
//! transaction. The grant (`grant.rs`) lists tables per statement kind; the host impl
//! (`host.rs`) analyses every statement and checks it before it reaches the database;
//! successful statements are journaled as counts per statement text (`journal.rs`);
//! what the database does implicitly on a write (cascades, triggers, rules, views) must
//! be granted too (`implied/`).

mod caps;
mod grant;
mod host;
pub mod implied;
mod journal;
mod plan;
pub mod sql;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

pub use grant::{DbGrant, Denied, RawDbGrant};
pub use implied::{ImpliedEffects, ImpliedError, ImpliedNeed, Need};
pub use plan::RowChanges;
pub use sql::{AnalysisCache, SqlAccess, SqlDialect, SqlError, StatementKind};

use super::calls::CallSession;
use super::{Capability, Grants, HasCapabilities, PlanSection};
use crate::contract::db;
use crate::state::CallRecord;
use crate::target::{ResultCaps, StepTransaction, TargetDb};
use journal::StatementTotals;

pub struct Db;

impl Capability for Db {
    fn interface(&self) -> &'static str {
        "db"
    }

    fn granted(&self, grants: &Grants) -> bool {
        grants.db.as_ref().is_some_and(|g| !g.is_empty())
    }

    fn link<T: HasCapabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        db::add_to_linker::<T, Db>(linker, |t| {
            let c = t.capabilities();
            DbHost {
                calls: &mut c.calls,
                grant: &c.db.grant,
                implied: &mut c.db.implied,
                db: &mut c.db.session,
                statements: &mut c.db.statements,
            }
        })
    }

    fn plan(
        &self,
        calls: &[&CallRecord],
        step_name: &dyn Fn(i64) -> String,
    ) -> Option<PlanSection> {
        Some(plan::plan(calls, step_name))
    }
}

impl HasData for Db {
    type Data<'a> = DbHost<'a>;
}

/// The step's view of the target database. The transaction is opened on first use so a
/// step that never touches the database holds no connection.
pub struct DbSession {
    pub target: Option<TargetDb>,
    pub tx: Option<StepTransaction>,
    pub analysis: Arc<AnalysisCache>,
    /// Set when a statement failed: the rest of the step's statements are refused.
    pub poisoned: Option<String>,
    /// The step's deadline (its timeout from the start of the attempt): a statement
    /// still running then is stopped in the database and the step ends as timed out.
    pub deadline: Option<std::time::Instant>,
    /// How large one call's statement, parameters and result may be (the step's limits).
    pub caps: DbCaps,
}

/// The size caps on one `db` call: checked on the request before anything is parsed or
/// sent, and on the result while it streams in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbCaps {
    pub statement_bytes: u64,
    pub param_bytes: u64,
    pub params_bytes: u64,
    pub result: ResultCaps,
}

/// The `db` capability's state for one step.
pub struct DbStep {
    grant: DbGrant,
    pub session: DbSession,
    /// What the target does implicitly, read on the step's first write (once per step;
    /// again after the step's own DDL).
    implied: Option<Arc<ImpliedEffects>>,
    /// Successful statements, counted per statement text.
    statements: StatementTotals,
}

impl DbStep {
    pub(super) fn new(grant: DbGrant, session: DbSession) -> DbStep {
        DbStep {
            grant,
            session,
            implied: None,
            statements: StatementTotals::default(),
        }
    }

    /// The counted statements as journal records (see `journal.rs`).
    pub(super) fn take_statement_records(
        &mut self,
        step_index: i64,
        attempt: i64,
    ) -> Vec<CallRecord> {
        std::mem::take(&mut self.statements).into_records(step_index, attempt)
    }
}

/// What a `db` call sees of the store.
pub struct DbHost<'a> {
    calls: &'a mut CallSession,
    grant: &'a DbGrant,
    implied: &'a mut Option<Arc<ImpliedEffects>>,
    db: &'a mut DbSession,
    statements: &'a mut StatementTotals,
}
