//! Appending to the chain inside the caller's write transaction, under the append lock, a
//! multi-row INSERT at a time.

use sqlx::AnyConnection;

use super::chain::{HashInput, entry_hash};
use super::{GENESIS_HASH, NewAuditEntry};
use crate::state::codec::{col, format_ts};
use crate::state::spool::AuditSpool;
use crate::state::{Backend, StateError, StateStore};

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
pub(in crate::state) async fn append_in_tx(
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
pub(in crate::state) async fn append_spool_in_tx(
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

impl StateStore {
    /// Appends `entries` to the chain, in order, atomically.
    pub async fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        append_in_tx(&mut tx, self.backend, entries).await?;
        crate::state::store::commit_write(tx).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::AuditVerification;
    use super::*;
    use crate::state::testutil::{entry, on_all_backends};

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
}
