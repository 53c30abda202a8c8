//! `runbook:plugin/audit`: a plugin's own audit records, stamped by the host with who,
//! when, and which run, step and plugin digest they came from.

use wasmtime::component::Linker;

use super::calls::CallSession;
use super::{CallsView, Capability, Grants, HasCapabilities, truncate};
use crate::contract::audit;

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
        let entry = self.audit_entry(
            &storable(&truncate(&action, 200)),
            &storable(&truncate(&target, 500)),
            storable(&truncate(&detail, 64 * 1024)),
        );
        // Past the step's audit caps the step fails (see `StepAudit::record` for why an
        // entry is never dropped): the plugin is trapped, after one host entry with the
        // counts. Records wait on disk (`state::AuditSpool`), so memory stays flat.
        let Err(reached) = self.recording.audit.record(entry) else {
            return Ok(());
        };
        if self.recording.audit.note_limit_once() {
            let detail = serde_json::json!({
                "entries": reached.entries,
                "bytes": reached.bytes,
                "max_audit_entries": reached.max_entries,
                "max_audit_bytes": reached.max_bytes,
                "refused_bytes": reached.refused_bytes,
            })
            .to_string();
            let target = format!("step:{}", self.context.step_id);
            let note = self.audit_entry("audit.limit_reached", &target, detail);
            self.recording.audit.push(note);
        }
        wasmtime::bail!("{reached}")
    }
}

/// `text` as every state store can keep it: PostgreSQL refuses NUL in text, and an entry
/// the store refuses would take the step's whole outcome (and its evidence) with it. A
/// NUL becomes U+FFFD, which the chain then hashes like any other character.
fn storable(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::storable;

    #[test]
    fn nul_characters_become_replacement_characters() {
        assert_eq!(storable("a\0b"), "a\u{FFFD}b");
        assert_eq!(storable("plain"), "plain");
    }
}
