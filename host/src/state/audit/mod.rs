//! The append-only, hash-chained audit log: its entry types here, the hash encoding in
//! [`chain`], appending under a lock in [`append`], reading and verifying in [`verify`].
//!
//! Entry `seq` (1, 2, 3, ... with no gaps) stores `prev_hash`, the hash of
//! entry `seq - 1` ([`GENESIS_HASH`] for entry 1), and
//! `hash = hex(sha256(canonical_encoding(entry)))`; see [`chain::entry_hash`] for the
//! exact bytes. Because every hash covers the previous one, editing, deleting,
//! reordering or re-hashing any entry breaks the chain at that entry, which
//! [`StateStore::verify_audit`](super::StateStore::verify_audit) reports.
//!
//! What the chain cannot show on its own: someone with write access to the
//! database who rewrites every entry from some point on (recomputing all
//! later hashes), or who deletes entries from the end. Both change the head
//! hash, so operators who need that guarantee record the head reported by
//! `verify_audit` somewhere the database's writers cannot reach and compare.

mod append;
mod chain;
mod verify;

pub(super) use append::{append_in_tx, append_spool_in_tx};

use chrono::{DateTime, Utc};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub plugin: Option<String>,
    pub plugin_digest: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    /// Stored with microsecond precision.
    pub at: DateTime<Utc>,
    pub actor: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub plugin: Option<String>,
    pub plugin_digest: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum AuditVerification {
    /// Every entry checked out; `head` is the last entry's hash (None when empty).
    Intact { entries: i64, head: Option<String> },
    /// `seq` is the first entry at which the chain does not hold.
    Broken { seq: i64, reason: String },
}
