//! The append-only, hash-chained audit log. Record every change a plugin makes; the host
//! adds who ran it, when, and which run, step and plugin digest it came from.
//!
//! Actions are `noun.verb` (`quota.reset`, `incident.assessed`); targets name what was
//! acted on (`organization:42`, `usage_quotas:api_calls`).

use serde::Serialize;

use crate::__private::wit::runbook::plugin::audit as wit;

/// Record `action` on `target` with a free-text `detail`.
pub fn record(action: &str, target: &str, detail: &str) {
    wit::record(action, target, detail);
}

/// Record `action` on `target` with a JSON `detail`, the form to prefer: the audit log is
/// read by tools as much as by people.
pub fn record_json<T: Serialize + ?Sized>(action: &str, target: &str, detail: &T) {
    // Serializing plain data cannot fail; if a custom Serialize impl does, the record
    // still gets written (an audit gap is worse than an odd detail).
    let detail = serde_json::to_string(detail).unwrap_or_else(|e| {
        serde_json::json!({ "unserializable_detail": e.to_string() }).to_string()
    });
    wit::record(action, target, &detail);
}
