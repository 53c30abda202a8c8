//! `runbook:plugin/audit`: a plugin's own audit records, stamped by the host with who,
//! when, and which run, step and plugin digest they came from.

use super::truncate;
use crate::runtime::StepState;
use crate::runtime::audit_bindings;

/// Records per step; a plugin that writes more is stopped (trap), since an audit trail
/// that silently drops entries would be worse than a failed step. Records wait on disk
/// (see `state::AuditSpool`), so this bounds the spool file, not memory: a bulk job
/// auditing each of a million rows fits.
const MAX_AUDIT_RECORDS: usize = 5_000_000;

impl audit_bindings::Host for StepState {
    async fn record(
        &mut self,
        action: String,
        target: String,
        detail: String,
    ) -> wasmtime::Result<()> {
        if self.record.audit.len() >= MAX_AUDIT_RECORDS {
            wasmtime::bail!("plugin wrote more than {MAX_AUDIT_RECORDS} audit records in one step");
        }
        let entry = self.audit_entry(
            &truncate(&action, 200),
            &truncate(&target, 500),
            truncate(&detail, 64 * 1024),
        );
        self.record.audit.push(entry);
        Ok(())
    }
}
