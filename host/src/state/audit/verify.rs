//! Reading entries back, and verifying the chain row by row.

use sqlx::any::AnyRow;

use super::chain::{HashInput, entry_hash};
use super::{AuditEntry, AuditVerification, GENESIS_HASH};
use crate::state::codec::{col, parse_ts};
use crate::state::{StateError, StateStore};

/// Rows per page when verifying, so memory stays flat however long the log.
const VERIFY_PAGE: i64 = 1_000;

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

/// Why one row breaks the chain; its text is the `reason` of [`AuditVerification::Broken`].
#[derive(Debug, thiserror::Error)]
enum ChainBreak {
    #[error("column {column} is unreadable: {source}")]
    Unreadable {
        column: &'static str,
        source: sqlx::Error,
    },
    #[error(
        "hash mismatch: stored {stored}, recomputed {recomputed} (entry edited or hash altered)"
    )]
    HashMismatch { stored: String, recomputed: String },
    #[error(
        "prev_hash {prev_hash} does not match the hash of entry {previous} ({expected}) \
         (entry deleted, inserted or reordered)"
    )]
    PrevHashMismatch {
        prev_hash: String,
        previous: i64,
        expected: String,
    },
}

/// Checks one row against the chain so far; on success, its hash (the next row's
/// expected `prev_hash`).
fn check_row(row: &AnyRow, seq: i64, expected_prev: &str) -> Result<String, ChainBreak> {
    fn text(row: &AnyRow, column: &'static str) -> Result<String, ChainBreak> {
        sqlx::Row::try_get(row, column).map_err(|source| ChainBreak::Unreadable { column, source })
    }
    fn opt(row: &AnyRow, column: &'static str) -> Result<Option<String>, ChainBreak> {
        sqlx::Row::try_get(row, column).map_err(|source| ChainBreak::Unreadable { column, source })
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
        return Err(ChainBreak::HashMismatch {
            stored: hash,
            recomputed,
        });
    }
    if prev_hash != expected_prev {
        return Err(ChainBreak::PrevHashMismatch {
            prev_hash,
            previous: seq - 1,
            expected: expected_prev.to_owned(),
        });
    }
    Ok(hash)
}

impl StateStore {
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
                    Err(e) => {
                        return Ok(AuditVerification::Broken {
                            seq,
                            reason: e.to_string(),
                        });
                    }
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
mod tests {
    use super::*;
    use crate::state::codec::format_ts;
    use crate::state::testutil::{entry, on_all_backends};

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
