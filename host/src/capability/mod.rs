//! Host implementations of the plugin API, one capability per WIT interface. A capability
//! is a folder (or, without grant or configuration, a file): its host impl on its own
//! per-step state, its grant and how a call is checked against it, and the service it
//! reaches (built per run from `runbook.toml`). The [`registry`] names each capability
//! once; `runtime/` links plugins through it and knows no capability by name.
//!
//! What every call shares whatever its interface (identity, call numbering, the journal
//! and replay, denials, budgets) is in [`calls`]; the step's audit entries and log lines,
//! under its volume caps, in [`recording`].

mod audit;
mod budget;
mod calls;
pub mod db;
pub mod delivery;
pub mod email;
mod grants;
mod log;
mod plan;
mod recording;
mod redact;
mod services;
pub mod stripe;
pub mod webhook;

use wasmtime::component::{HasData, Linker};

pub use budget::RunBudget;
pub use calls::{CallSession, StepContext};
pub use db::{
    AnalysisCache, DbCaps, DbGrant, DbSession, ImpliedEffects, ImpliedError, ImpliedNeed, Need,
    RawDbGrant, SqlAccess, SqlDialect, SqlError, StatementKind,
};
pub use email::{EmailGrant, RawEmailGrant, RawEmailNeeds, glob_match};
pub use grants::{
    GrantTable, Grants, Interface, Lint, Missing, RawGrants, RawNeeds, Severity, budget_widened,
};
pub use plan::{PlanEntry, PlanSection, PlannedCall};
pub use recording::{AuditLimitReached, RecordingLimits, StepAudit, StepLog, StepRecording};
pub use redact::redact;
pub use services::{ServiceConfig, Services};
pub use stripe::{
    RawStripeGrant, StripeGrant, StripeOperation, stripe_operation, stripe_operation_names,
};
pub use webhook::{RawWebhookGrant, WebhookGrant};

use crate::contract::types;
use crate::state::CallRecord;

/// One host interface offered to plugins. The phases follow a plugin step's life: the
/// host links the interface once per process; a runbook step's grant says whether a
/// component importing it may be loaded at all; each call is then checked by the host
/// impl against the step's state (see [`StepCapabilities::prepare`]).
pub trait Capability: Sync {
    /// The WIT interface, as in `runbook:plugin/<name>`.
    fn interface(&self) -> &'static str;

    /// Whether a step with these grants may load a component importing this interface.
    fn granted(&self, grants: &Grants) -> bool;

    /// Adds the interface's host functions to the linker, each call served by this
    /// capability's view of the store.
    fn link<T: HasCapabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()>
    where
        Self: Sized;

    /// The section of a dry run's plan that lists what this interface's calls would have
    /// done, from the run's journaled calls of this interface that the grants allowed;
    /// `None` for an interface with no effects to plan.
    fn plan(
        &self,
        _calls: &[&CallRecord],
        _step_name: &dyn Fn(i64) -> String,
    ) -> Option<PlanSection> {
        None
    }
}

/// Store data that holds a step's capability states. `runtime/` implements it for its
/// store; capabilities see nothing else of the store.
pub trait HasCapabilities: Send + 'static {
    fn capabilities(&mut self) -> &mut StepCapabilities;
}

/// The registry: every capability the host offers, each named once. The order is the
/// order in which interfaces are listed (`runbook plugins`, refusals).
pub mod registry {
    use super::*;

    /// Each entry is a capability, with `{ field: Grant }` when it has a grant table
    /// (the field names its table in `[steps.grants]` and `[capabilities]`).
    macro_rules! registry {
        ($($capability:path $({ $field:ident: $grant:ty })?),* $(,)?) => {
            /// Every capability, in registry order.
            pub static ALL: &[&dyn Capability] = &[$(&$capability),*];

            /// Links every capability's interface (and the shared `types`).
            pub fn link<T: HasCapabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
                types::add_to_linker::<T, CallsView>(linker, |t| &mut t.capabilities().calls)?;
                $(<$capability as Capability>::link(linker)?;)*
                Ok(())
            }

            super::grants::grant_tables!($($($field: $grant,)?)*);
        };
    }

    registry!(
        db::Db { db: db::DbGrant },
        audit::Audit,
        log::Log,
        stripe::Stripe {
            stripe: stripe::StripeGrant
        },
        email::Email {
            email: email::EmailGrant
        },
        webhook::Webhook {
            webhook: webhook::WebhookGrant
        },
    );
}

/// The store's view for interfaces served by the shared call session alone.
pub(crate) struct CallsView;

impl HasData for CallsView {
    type Data<'a> = &'a mut CallSession;
}

/// The `types` interface has no functions; the generated trait still needs an impl.
impl types::Host for CallSession {}

/// One step's capability states, kept in its store: the shared call session and one
/// field per capability that has a grant or a service.
pub struct StepCapabilities {
    pub calls: CallSession,
    pub db: db::DbStep,
    pub stripe: stripe::StripeStep,
    pub email: email::EmailStep,
    pub webhook: webhook::WebhookStep,
}

impl StepCapabilities {
    /// Each capability's state for one step, from the step's grants and the run's services.
    pub fn prepare(
        calls: CallSession,
        grants: Grants,
        services: &Services,
        db: DbSession,
    ) -> StepCapabilities {
        StepCapabilities {
            calls,
            db: db::DbStep::new(grants.db.unwrap_or_default(), db),
            stripe: stripe::StripeStep::new(grants.stripe, services.stripe.clone()),
            email: email::EmailStep::new(grants.email, services.email.clone()),
            webhook: webhook::WebhookStep::new(grants.webhook, services.webhook.clone()),
        }
    }

    /// Every call of the attempt not yet stored, in call order.
    pub fn take_calls(&mut self) -> Vec<CallRecord> {
        let mut calls = std::mem::take(&mut self.calls.pending);
        calls.extend(
            self.db
                .take_statement_records(self.calls.step_index, self.calls.attempt),
        );
        calls.sort_by_key(|c| c.seq);
        calls
    }
}

/// Caps a plugin-supplied string before it is stored, so one call cannot bloat the
/// state store or the audit log.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}
