//! The append-only, hash-chained audit log: appending under a lock, reading, and verifying the chain.
//!
//! Entry `seq` (1, 2, 3, ... with no gaps) stores `prev_hash`, the hash of
//! entry `seq - 1` ([`GENESIS_HASH`] for entry 1), and
//! `hash = hex(sha256(canonical_encoding(entry)))`; see [`entry_hash`] for the
//! exact bytes. Because every hash covers the previous one, editing, deleting,
//! reordering or re-hashing any entry breaks the chain at that entry, which
//! [`StateStore::verify_audit`] reports.
//!
//! What the chain cannot show on its own: someone with write access to the
//! database who rewrites every entry from some point on (recomputing all
//! later hashes), or who deletes entries from the end. Both change the head
//! hash, so operators who need that guarantee record the head reported by
//! `verify_audit` somewhere the database's writers cannot reach and compare.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::spool::AuditSpool;
use super::{Backend, StateError, StateStore, col, format_ts, parse_ts};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation for the hash input, and the version of its encoding:
/// a future change of encoding must change this tag.
const HASH_DOMAIN: &[u8] = b"runbook.audit.v1\n";

/// Rows per page when verifying, so memory stays flat however long the log.
const VERIFY_PAGE: i64 = 1_000;

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

/// The fields that are hashed, exactly as stored (text, not re-parsed), so
/// verification recomputes over the same bytes that were written.
struct HashInput<'a> {
    seq: i64,
    at: &'a str,
    actor: &'a str,
    run_id: Option<&'a str>,
    step_id: Option<&'a str>,
    plugin: Option<&'a str>,
    plugin_digest: Option<&'a str>,
    action: &'a str,
    target: &'a str,
    detail: &'a str,
    prev_hash: &'a str,
}

/// Lower-case hex SHA-256 of the canonical encoding of one entry.
///
/// Canonical encoding, in this order:
/// 1. the 17 ASCII bytes `runbook.audit.v1\n` (domain and version tag);
/// 2. `seq` as 8 bytes, big-endian two's complement;
/// 3. for each of `at`, `actor`, `run_id`, `step_id`, `plugin`,
///    `plugin_digest`, `action`, `target`, `detail`, `prev_hash`:
///    - absent (`None`): the single byte `0x00`;
///    - present: the byte `0x01`, the UTF-8 length as 8 bytes big-endian,
///      then the UTF-8 bytes.
///
/// `at` is the stored text form (`YYYY-MM-DDTHH:MM:SS.ffffffZ`). Every field
/// is length-prefixed and presence-tagged, so no two different entries encode
/// to the same bytes: no separator can be forged inside a field, and `None`
/// differs from `Some("")`.
fn entry_hash(input: &HashInput<'_>) -> String {
    fn field(h: &mut Sha256, value: Option<&str>) {
        match value {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
        }
    }
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(input.seq.to_be_bytes());
    field(&mut h, Some(input.at));
    field(&mut h, Some(input.actor));
    field(&mut h, input.run_id);
    field(&mut h, input.step_id);
    field(&mut h, input.plugin);
    field(&mut h, input.plugin_digest);
    field(&mut h, Some(input.action));
    field(&mut h, Some(input.target));
    field(&mut h, Some(input.detail));
    field(&mut h, Some(input.prev_hash));
    hex::encode(h.finalize())
}

/// Key of the PostgreSQL advisory lock that serialises appenders: the first
/// 8 bytes of sha256("runbook.audit_log") as a big-endian i64.
const PG_APPEND_LOCK: i64 = -5_017_668_760_580_317_016;

/// Appends `entries` after the current head inside the caller's transaction.
///
/// The caller must have begun the transaction with [`StateStore::begin_write`].
/// On SQLite that already holds the database write lock (`BEGIN IMMEDIATE`).
/// On PostgreSQL we take a transaction-scoped advisory lock here, held until
/// commit or rollback; the transaction is READ COMMITTED, so the head read
/// after acquiring it sees the previous holder's committed entries. Either
/// way, no two appenders can read the same head, so the chain cannot fork.
///
/// An advisory lock rather than `LOCK TABLE audit_log IN EXCLUSIVE MODE`:
/// that needs UPDATE, DELETE or TRUNCATE privilege on the table, and a
/// hardened deployment should be able to grant the store's role only SELECT
/// and INSERT on `audit_log`. A writer that bypasses the lock still cannot
/// fork the chain: the primary key on `seq` makes the second insert of a seq
/// fail, and that whole transaction with it.
pub(super) async fn append_in_tx(
    conn: &mut AnyConnection,
    backend: Backend,
    entries: &[NewAuditEntry],
) -> Result<(), StateError> {
    let mut chain = ChainAppender::lock(conn, backend, !entries.is_empty()).await?;
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        chain.append(conn, chunk).await?;
    }
    Ok(())
}

/// Like [`append_in_tx`], for entries waiting in a spool: read back and appended a
/// chunk at a time, so memory stays flat however many a step recorded.
pub(super) async fn append_spool_in_tx(
    conn: &mut AnyConnection,
    backend: Backend,
    spool: AuditSpool,
) -> Result<(), StateError> {
    let mut chain = ChainAppender::lock(conn, backend, !spool.is_empty()).await?;
    for chunk in spool.into_chunks() {
        let chunk = chunk.map_err(|e| StateError::Corrupt {
            location: "the step's audit spool".to_owned(),
            reason: e.to_string(),
        })?;
        for rows in chunk.chunks(ROWS_PER_INSERT) {
            chain.append(conn, rows).await?;
        }
    }
    Ok(())
}

/// Entries per INSERT statement: 12 parameters each, well below both backends' limits
/// on bound parameters, and few enough round trips that a large step's audit trail is
/// written in a fraction of the time one statement per entry takes.
const ROWS_PER_INSERT: usize = 64;

/// The head of the chain inside a write transaction, advanced as entries are appended.
struct ChainAppender {
    seq: i64,
    prev_hash: String,
}

impl ChainAppender {
    /// Takes the append lock (PostgreSQL; SQLite's write transaction already holds one)
    /// and reads the head. Nothing is locked or read when there is nothing to append.
    async fn lock(
        conn: &mut AnyConnection,
        backend: Backend,
        needed: bool,
    ) -> Result<ChainAppender, StateError> {
        if !needed {
            return Ok(ChainAppender {
                seq: 0,
                prev_hash: String::new(),
            });
        }
        if backend == Backend::Postgres {
            // In FROM so the statement yields an int column: the Any driver has
            // no mapping for `void`.
            sqlx::query("SELECT 1 AS locked FROM pg_advisory_xact_lock($1)")
                .bind(PG_APPEND_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
        let (seq, prev_hash) = match head {
            Some(row) => {
                let seq: i64 = col(&row, "seq", || "audit_log head".to_owned())?;
                let hash: String = col(&row, "hash", || format!("audit_log seq {seq}"))?;
                (seq, hash)
            }
            None => (0, GENESIS_HASH.to_owned()),
        };
        Ok(ChainAppender { seq, prev_hash })
    }

    /// Appends `entries` (at most [`ROWS_PER_INSERT`]) with one INSERT.
    async fn append(
        &mut self,
        conn: &mut AnyConnection,
        entries: &[NewAuditEntry],
    ) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            self.seq = self.seq.checked_add(1).ok_or_else(|| StateError::Corrupt {
                location: "audit_log head".to_owned(),
                reason: "seq cannot grow past i64::MAX".to_owned(),
            })?;
            let at = format_ts("audit entry time", &entry.at)?;
            let hash = entry_hash(&HashInput {
                seq: self.seq,
                at: &at,
                actor: &entry.actor,
                run_id: entry.run_id.as_deref(),
                step_id: entry.step_id.as_deref(),
                plugin: entry.plugin.as_deref(),
                plugin_digest: entry.plugin_digest.as_deref(),
                action: &entry.action,
                target: &entry.target,
                detail: &entry.detail,
                prev_hash: &self.prev_hash,
            });
            let prev_hash = std::mem::replace(&mut self.prev_hash, hash.clone());
            rows.push((self.seq, at, prev_hash, hash));
        }
        debug_assert!(entries.len() <= ROWS_PER_INSERT);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_sql(entries.len())));
        for (entry, (seq, at, prev_hash, hash)) in entries.iter().zip(rows) {
            query = query
                .bind(seq)
                .bind(at)
                .bind(entry.actor.as_str())
                .bind(entry.run_id.as_deref())
                .bind(entry.step_id.as_deref())
                .bind(entry.plugin.as_deref())
                .bind(entry.plugin_digest.as_deref())
                .bind(entry.action.as_str())
                .bind(entry.target.as_str())
                .bind(entry.detail.as_str())
                .bind(prev_hash)
                .bind(hash);
        }
        query.execute(&mut *conn).await?;
        Ok(())
    }
}

/// `INSERT INTO audit_log ... VALUES (...), (...)` for `rows` (1 to [`ROWS_PER_INSERT`])
/// entries, built once per row count.
fn insert_sql(rows: usize) -> &'static str {
    static CACHE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(|| (0..=ROWS_PER_INSERT).map(build_insert_sql).collect());
    &cache[rows.min(ROWS_PER_INSERT)]
}

fn build_insert_sql(rows: usize) -> String {
    const COLUMNS: usize = 12;
    let mut sql = String::from(
        "INSERT INTO audit_log (seq, at, actor, run_id, step_id, plugin, plugin_digest, \
         action, target, detail, prev_hash, hash) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..COLUMNS {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", row * COLUMNS + column + 1));
        }
        sql.push(')');
    }
    sql
}

/// Columns of `audit_log` in the order the queries below select them.
macro_rules! audit_columns {
    () => {
        "seq, at, actor, run_id, step_id, plugin, plugin_digest, action, target, detail, prev_hash, hash"
    };
}

fn entry_from_row(row: &AnyRow) -> Result<AuditEntry, StateError> {
    let seq: i64 = col(row, "seq", || "audit_log row".to_owned())?;
    let loc = || format!("audit_log seq {seq}");
    let at: String = col(row, "at", loc)?;
    Ok(AuditEntry {
        seq,
        at: parse_ts(|| format!("audit_log seq {seq}, column at"), &at)?,
        actor: col(row, "actor", loc)?,
        run_id: col(row, "run_id", loc)?,
        step_id: col(row, "step_id", loc)?,
        plugin: col(row, "plugin", loc)?,
        plugin_digest: col(row, "plugin_digest", loc)?,
        action: col(row, "action", loc)?,
        target: col(row, "target", loc)?,
        detail: col(row, "detail", loc)?,
        prev_hash: col(row, "prev_hash", loc)?,
        hash: col(row, "hash", loc)?,
    })
}

/// Checks one row against the chain so far; `Err(reason)` when it breaks it.
fn check_row(row: &AnyRow, seq: i64, expected_prev: &str) -> Result<String, String> {
    fn text(row: &AnyRow, name: &str) -> Result<String, String> {
        sqlx::Row::try_get(row, name).map_err(|e| format!("column {name} is unreadable: {e}"))
    }
    fn opt(row: &AnyRow, name: &str) -> Result<Option<String>, String> {
        sqlx::Row::try_get(row, name).map_err(|e| format!("column {name} is unreadable: {e}"))
    }
    let at = text(row, "at")?;
    let actor = text(row, "actor")?;
    let run_id = opt(row, "run_id")?;
    let step_id = opt(row, "step_id")?;
    let plugin = opt(row, "plugin")?;
    let plugin_digest = opt(row, "plugin_digest")?;
    let action = text(row, "action")?;
    let target = text(row, "target")?;
    let detail = text(row, "detail")?;
    let prev_hash = text(row, "prev_hash")?;
    let hash = text(row, "hash")?;

    let recomputed = entry_hash(&HashInput {
        seq,
        at: &at,
        actor: &actor,
        run_id: run_id.as_deref(),
        step_id: step_id.as_deref(),
        plugin: plugin.as_deref(),
        plugin_digest: plugin_digest.as_deref(),
        action: &action,
        target: &target,
        detail: &detail,
        prev_hash: &prev_hash,
    });
    // Content first: an edited field or hash column is reported as such, even
    // though it usually also breaks the link to the next entry.
    if recomputed != hash {
        return Err(format!(
            "hash mismatch: stored {hash}, recomputed {recomputed} (entry edited or hash altered)"
        ));
    }
    if prev_hash != expected_prev {
        return Err(format!(
            "prev_hash {prev_hash} does not match the hash of entry {} ({expected_prev}) \
             (entry deleted, inserted or reordered)",
            seq - 1
        ));
    }
    Ok(hash)
}

impl StateStore {
    /// Appends `entries` to the chain, in order, atomically.
    pub async fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        append_in_tx(&mut tx, self.backend, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` entries (of `run_id`, or of all runs), oldest first.
    pub async fn audit_entries(
        &self,
        run_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StateError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let rows = match run_id {
            Some(run_id) => {
                sqlx::query(concat!(
                    "SELECT * FROM (SELECT ",
                    audit_columns!(),
                    " FROM audit_log WHERE run_id = $1 ORDER BY seq DESC LIMIT $2) newest \
                     ORDER BY seq ASC"
                ))
                .bind(run_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT * FROM (SELECT ",
                    audit_columns!(),
                    " FROM audit_log ORDER BY seq DESC LIMIT $1) newest ORDER BY seq ASC"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(entry_from_row).collect()
    }

    /// Walks the whole chain in `seq` order and reports the first entry that breaks it.
    ///
    /// Reads page by page (keyset on `seq`), so entries appended meanwhile are
    /// simply included or not; they cannot make an intact chain look broken.
    pub async fn verify_audit(&self) -> Result<AuditVerification, StateError> {
        let mut expected_seq: i64 = 1;
        let mut prev_hash = GENESIS_HASH.to_owned();
        let mut last_seq: Option<i64> = None;
        loop {
            // The first page has no lower bound, so stray rows with seq <= 0
            // (possible only if the CHECK constraint was removed) are seen too.
            let rows = match last_seq {
                None => {
                    sqlx::query(concat!(
                        "SELECT ",
                        audit_columns!(),
                        " FROM audit_log ORDER BY seq LIMIT $1"
                    ))
                    .bind(VERIFY_PAGE)
                    .fetch_all(&self.pool)
                    .await?
                }
                Some(after) => {
                    sqlx::query(concat!(
                        "SELECT ",
                        audit_columns!(),
                        " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
                    ))
                    .bind(after)
                    .bind(VERIFY_PAGE)
                    .fetch_all(&self.pool)
                    .await?
                }
            };
            let page_len = rows.len();
            for row in &rows {
                let seq: i64 = col(row, "seq", || "audit_log row".to_owned())?;
                if seq < expected_seq {
                    return Ok(AuditVerification::Broken {
                        seq,
                        reason: format!("unexpected entry {seq} before entry {expected_seq}"),
                    });
                }
                if seq > expected_seq {
                    return Ok(AuditVerification::Broken {
                        seq: expected_seq,
                        reason: format!(
                            "entry {expected_seq} is missing (the next entry is {seq})"
                        ),
                    });
                }
                match check_row(row, seq, &prev_hash) {
                    Ok(hash) => prev_hash = hash,
                    Err(reason) => return Ok(AuditVerification::Broken { seq, reason }),
                }
                last_seq = Some(seq);
                expected_seq = seq.saturating_add(1);
            }
            if (page_len as i64) < VERIFY_PAGE {
                break;
            }
        }
        let entries = expected_seq - 1;
        Ok(AuditVerification::Intact {
            entries,
            head: (entries > 0).then_some(prev_hash),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::testutil::on_all_backends;
    use super::*;

    pub(crate) fn entry(actor: &str, run_id: Option<&str>, detail: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: DateTime::parse_from_rfc3339("2025-03-04T05:06:07.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            actor: actor.to_owned(),
            run_id: run_id.map(str::to_owned),
            step_id: Some("charge".to_owned()),
            plugin: Some("stripe-refund".to_owned()),
            plugin_digest: Some("sha256:abcd".to_owned()),
            action: "http.request".to_owned(),
            target: "POST https://api.example.com/v1/refunds".to_owned(),
            detail: detail.to_owned(),
        }
    }

    async fn append_n(store: &StateStore, n: usize) {
        let entries: Vec<_> = (1..=n)
            .map(|i| entry("alice", Some("run-1"), &format!("entry {i}")))
            .collect();
        store.append_audit(&entries).await.unwrap();
    }

    async fn exec(store: &StateStore, sql: &'static str) {
        sqlx::query(sql).execute(&store.pool).await.unwrap();
    }

    async fn stored_hash(store: &StateStore, seq: i64) -> String {
        sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(seq)
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    fn broken(v: AuditVerification) -> (i64, String) {
        match v {
            AuditVerification::Broken { seq, reason } => (seq, reason),
            other => panic!("expected Broken, got {other:?}"),
        }
    }

    /// Pins the encoding: the expected value was computed independently
    /// (Python hashlib over the bytes documented on `entry_hash`). If this
    /// fails, existing chains would no longer verify.
    #[test]
    fn hash_encoding_is_stable() {
        let input = HashInput {
            seq: 1,
            at: "2025-03-04T05:06:07.123456Z",
            actor: "alice",
            run_id: Some("run-1"),
            step_id: None,
            plugin: Some(""),
            plugin_digest: None,
            action: "http.request",
            target: "POST /v1/refunds",
            detail: "{\"amount\":100}",
            prev_hash: GENESIS_HASH,
        };
        assert_eq!(entry_hash(&input), KNOWN_HASH);
        // None and Some("") must differ.
        let other = HashInput {
            plugin: None,
            ..input
        };
        assert_ne!(entry_hash(&other), KNOWN_HASH);
    }

    const KNOWN_HASH: &str = "a5e2d4ea5f93b28e532d272d2e6e8c78d7ff425a2ad131307c96c21972b0e84f";

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let a = HashInput {
            seq: 7,
            at: "t",
            actor: "ab",
            run_id: None,
            step_id: None,
            plugin: None,
            plugin_digest: None,
            action: "c",
            target: "",
            detail: "",
            prev_hash: GENESIS_HASH,
        };
        let b = HashInput {
            actor: "a",
            action: "bc",
            ..a
        };
        assert_ne!(entry_hash(&a), entry_hash(&b));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn empty_chain_is_intact() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            assert_eq!(
                store.verify_audit().await.unwrap(),
                AuditVerification::Intact {
                    entries: 0,
                    head: None
                }
            );
            store.append_audit(&[]).await.unwrap();
            assert!(store.audit_entries(None, 10).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_chain_and_read_back() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            let first = entry("alice", Some("run-1"), "one");
            let mut second = entry("bob", None, "two");
            second.step_id = None;
            second.plugin = None;
            second.plugin_digest = None;
            store
                .append_audit(std::slice::from_ref(&first))
                .await
                .unwrap();
            store
                .append_audit(std::slice::from_ref(&second))
                .await
                .unwrap();
            store
                .append_audit(&[
                    entry("alice", Some("run-2"), "three"),
                    entry("alice", Some("run-1"), "four"),
                ])
                .await
                .unwrap();

            let all = store.audit_entries(None, 100).await.unwrap();
            assert_eq!(
                all.iter().map(|e| e.seq).collect::<Vec<_>>(),
                vec![1, 2, 3, 4]
            );
            assert_eq!(
                all.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>(),
                vec!["one", "two", "three", "four"]
            );
            assert_eq!(all[0].prev_hash, GENESIS_HASH);
            for pair in all.windows(2) {
                assert_eq!(pair[1].prev_hash, pair[0].hash);
            }
            let e = &all[0];
            assert_eq!(e.at, first.at);
            assert_eq!(e.actor, "alice");
            assert_eq!(e.run_id.as_deref(), Some("run-1"));
            assert_eq!(e.step_id.as_deref(), Some("charge"));
            assert_eq!(e.plugin.as_deref(), Some("stripe-refund"));
            assert_eq!(e.plugin_digest.as_deref(), Some("sha256:abcd"));
            assert_eq!(e.action, "http.request");
            assert_eq!(e.target, "POST https://api.example.com/v1/refunds");
            assert_eq!(
                e.hash,
                entry_hash(&HashInput {
                    seq: 1,
                    at: "2025-03-04T05:06:07.123456Z",
                    actor: "alice",
                    run_id: Some("run-1"),
                    step_id: Some("charge"),
                    plugin: Some("stripe-refund"),
                    plugin_digest: Some("sha256:abcd"),
                    action: "http.request",
                    target: "POST https://api.example.com/v1/refunds",
                    detail: "one",
                    prev_hash: GENESIS_HASH,
                })
            );
            assert_eq!(all[1].run_id, None);
            assert_eq!(all[1].step_id, None);
            assert_eq!(all[1].plugin, None);
            assert_eq!(all[1].plugin_digest, None);

            // Limit keeps the newest entries, still oldest first.
            let newest = store.audit_entries(None, 2).await.unwrap();
            assert_eq!(newest.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
            let run1 = store.audit_entries(Some("run-1"), 10).await.unwrap();
            assert_eq!(run1.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 4]);
            let run1 = store.audit_entries(Some("run-1"), 1).await.unwrap();
            assert_eq!(run1.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
            assert!(
                store
                    .audit_entries(Some("nope"), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(store.audit_entries(None, 0).await.unwrap().is_empty());

            assert_eq!(
                store.verify_audit().await.unwrap(),
                AuditVerification::Intact {
                    entries: 4,
                    head: Some(all[3].hash.clone())
                }
            );
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_pages_through_long_chains() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            let total = VERIFY_PAGE as usize * 2 + 5;
            append_n(&store, total).await;
            let head = stored_hash(&store, total as i64).await;
            assert_eq!(
                store.verify_audit().await.unwrap(),
                AuditVerification::Intact {
                    entries: total as i64,
                    head: Some(head)
                }
            );
            // A break on the second page is still found, and named exactly.
            exec(
                &store,
                "UPDATE audit_log SET detail = 'tampered' WHERE seq = 1500",
            )
            .await;
            let (seq, reason) = broken(store.verify_audit().await.unwrap());
            assert_eq!(seq, 1500);
            assert!(reason.starts_with("hash mismatch"), "{reason}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_from_two_handles_keep_the_chain() {
        on_all_backends(|label, url| async move {
            if label == "postgres" {
                // The store must not depend on the server's default isolation:
                // under SERIALIZABLE a snapshot taken before the append lock
                // would read a stale head.
                let store = StateStore::open(&url).await.unwrap();
                let db: String = sqlx::query_scalar("SELECT CAST(current_database() AS TEXT)")
                    .fetch_one(&store.pool)
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ALTER DATABASE {db} SET default_transaction_isolation TO 'serializable'"
                )))
                .execute(&store.pool)
                .await
                .unwrap();
                store.pool.close().await;
            }
            let a = StateStore::open(&url).await.unwrap();
            let b = StateStore::open(&url).await.unwrap();
            const BATCHES: usize = 25;
            let spawn = |store: StateStore, actor: &'static str| {
                tokio::spawn(async move {
                    for i in 0..BATCHES {
                        store
                            .append_audit(&[
                                entry(actor, None, &format!("{actor}-{i}-a")),
                                entry(actor, None, &format!("{actor}-{i}-b")),
                            ])
                            .await
                            .unwrap();
                    }
                })
            };
            let ha = spawn(a.clone(), "alice");
            let hb = spawn(b.clone(), "bob");
            ha.await.unwrap();
            hb.await.unwrap();

            let all = a.audit_entries(None, 1_000).await.unwrap();
            assert_eq!(all.len(), BATCHES * 4);
            assert_eq!(
                all.iter().map(|e| e.seq).collect::<Vec<_>>(),
                (1..=(BATCHES * 4) as i64).collect::<Vec<_>>()
            );
            for actor in ["alice", "bob"] {
                let mut mine: Vec<_> = all
                    .iter()
                    .filter(|e| e.actor == actor)
                    .map(|e| e.detail.clone())
                    .collect();
                // Each handle's own appends stay in its order.
                let expected: Vec<_> = (0..BATCHES)
                    .flat_map(|i| [format!("{actor}-{i}-a"), format!("{actor}-{i}-b")])
                    .collect();
                assert_eq!(mine, expected);
                mine.dedup();
                assert_eq!(mine.len(), BATCHES * 2);
            }
            // A batch is atomic: its two entries are adjacent.
            for e in all.iter().filter(|e| e.detail.ends_with("-a")) {
                let next = &all[e.seq as usize];
                assert_eq!(next.detail, e.detail.replace("-a", "-b"));
            }
            assert_eq!(
                b.verify_audit().await.unwrap(),
                AuditVerification::Intact {
                    entries: (BATCHES * 4) as i64,
                    head: Some(all.last().unwrap().hash.clone())
                }
            );
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_detects_an_edited_detail() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            append_n(&store, 5).await;
            exec(
                &store,
                "UPDATE audit_log SET detail = 'refund 1000000' WHERE seq = 3",
            )
            .await;
            let (seq, reason) = broken(store.verify_audit().await.unwrap());
            assert_eq!(seq, 3);
            assert!(reason.starts_with("hash mismatch"), "{reason}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_detects_an_edited_optional_field() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            append_n(&store, 3).await;
            // NULL and '' must not be interchangeable.
            exec(&store, "UPDATE audit_log SET run_id = NULL WHERE seq = 2").await;
            let (seq, reason) = broken(store.verify_audit().await.unwrap());
            assert_eq!(seq, 2);
            assert!(reason.starts_with("hash mismatch"), "{reason}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_detects_a_deleted_middle_entry() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            append_n(&store, 5).await;
            exec(&store, "DELETE FROM audit_log WHERE seq = 3").await;
            assert_eq!(
                store.verify_audit().await.unwrap(),
                AuditVerification::Broken {
                    seq: 3,
                    reason: "entry 3 is missing (the next entry is 4)".to_owned()
                }
            );

            // Closing the gap by renumbering does not hide it.
            exec(&store, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 3").await;
            let (seq, reason) = broken(store.verify_audit().await.unwrap());
            assert_eq!(seq, 3);
            assert!(reason.starts_with("hash mismatch"), "{reason}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_detects_a_deleted_first_entry() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            append_n(&store, 3).await;
            exec(&store, "DELETE FROM audit_log WHERE seq = 1").await;
            assert_eq!(
                store.verify_audit().await.unwrap(),
                AuditVerification::Broken {
                    seq: 1,
                    reason: "entry 1 is missing (the next entry is 2)".to_owned()
                }
            );
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_detects_swapped_entries() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            append_n(&store, 5).await;
            exec(&store, "UPDATE audit_log SET seq = 1000 WHERE seq = 2").await;
            exec(&store, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
            exec(&store, "UPDATE audit_log SET seq = 3 WHERE seq = 1000").await;
            let (seq, reason) = broken(store.verify_audit().await.unwrap());
            assert_eq!(seq, 2);
            assert!(reason.starts_with("hash mismatch"), "{reason}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_detects_swapped_contents_with_rehashed_rows() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            append_n(&store, 4).await;
            // A tamperer who swaps two entries and recomputes their own hashes
            // (but not the rest of the chain) is caught by the links.
            let rows = store.audit_entries(None, 10).await.unwrap();
            let rehash = |seq: i64, src: &AuditEntry, prev: &str| {
                let at = format_ts("t", &src.at).unwrap();
                entry_hash(&HashInput {
                    seq,
                    at: &at,
                    actor: &src.actor,
                    run_id: src.run_id.as_deref(),
                    step_id: src.step_id.as_deref(),
                    plugin: src.plugin.as_deref(),
                    plugin_digest: src.plugin_digest.as_deref(),
                    action: &src.action,
                    target: &src.target,
                    detail: &src.detail,
                    prev_hash: prev,
                })
            };
            // Entries differ only in detail, so moving detail swaps them.
            let new2 = rehash(2, &rows[2], &rows[0].hash);
            let new3 = rehash(3, &rows[1], &new2);
            for (seq, detail, prev, hash) in [
                (2, &rows[2].detail, &rows[0].hash, &new2),
                (3, &rows[1].detail, &new2, &new3),
            ] {
                sqlx::query(
                    "UPDATE audit_log SET detail = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
                )
                .bind(detail)
                .bind(prev)
                .bind(hash)
                .bind(seq)
                .execute(&store.pool)
                .await
                .unwrap();
            }
            let (seq, reason) = broken(store.verify_audit().await.unwrap());
            assert_eq!(seq, 4);
            assert!(reason.starts_with("prev_hash"), "{reason}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_detects_an_edited_hash() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            append_n(&store, 5).await;
            exec(
                &store,
                "UPDATE audit_log SET hash = '1111111111111111111111111111111111111111111111111111111111111111' WHERE seq = 4",
            )
            .await;
            let (seq, reason) = broken(store.verify_audit().await.unwrap());
            assert_eq!(seq, 4);
            assert!(reason.starts_with("hash mismatch"), "{reason}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_detects_an_edited_prev_hash_of_the_first_entry() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            append_n(&store, 2).await;
            exec(
                &store,
                "UPDATE audit_log SET prev_hash = 'ff' WHERE seq = 1",
            )
            .await;
            let (seq, _) = broken(store.verify_audit().await.unwrap());
            assert_eq!(seq, 1);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_timestamp_is_an_error_not_a_panic() {
        on_all_backends(|_, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            append_n(&store, 2).await;
            exec(
                &store,
                "UPDATE audit_log SET at = 'yesterday' WHERE seq = 2",
            )
            .await;
            match store.audit_entries(None, 10).await {
                Err(StateError::Corrupt { location, reason }) => {
                    assert_eq!(location, "audit_log seq 2, column at");
                    assert!(reason.contains("yesterday"), "{reason}");
                }
                other => panic!("unexpected {other:?}"),
            }
            let (seq, _) = broken(store.verify_audit().await.unwrap());
            assert_eq!(seq, 2);
        })
        .await;
    }
}
