//! `runbook:plugin/audit`: a plugin's own audit records, stamped by the host with who,
//! when, and which run, step and plugin digest they came from.

use wasmtime::component::Linker;

use super::calls::CallSession;
use super::{CallsView, Capability, Grants, HasCapabilities, truncate};
use crate::contract::audit;

/// Records per step; a plugin that writes more is stopped (trap), since an audit trail
/// that silently drops entries would be worse than a failed step. Records wait on disk
/// (see `state::AuditSpool`), so this bounds the spool file, not memory: a bulk job
/// auditing each of a million rows fits.
const MAX_AUDIT_RECORDS: usize = 5_000_000;

/// Always granted: it only records, and recording is the point.
pub struct Audit;

impl Capability for Audit {
    fn interface(&self) -> &'static str {
        "audit"
    }

    fn granted(&self, _: &Grants) -> bool {
        true
    }

    fn link<T: HasCapabilities>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        audit::add_to_linker::<T, CallsView>(linker, |t| &mut t.capabilities().calls)
    }
}

impl audit::Host for CallSession {
    async fn record(
        &mut self,
        action: String,
        target: String,
        detail: String,
    ) -> wasmtime::Result<()> {
        if self.recording.audit.len() >= MAX_AUDIT_RECORDS {
            wasmtime::bail!("plugin wrote more than {MAX_AUDIT_RECORDS} audit records in one step");
        }
        let entry = self.audit_entry(
            &truncate(&action, 200),
            &truncate(&target, 500),
            truncate(&detail, 64 * 1024),
        );
        self.recording.audit.push(entry);
        Ok(())
    }
}
