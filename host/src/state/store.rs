//! Opening the store: URL preparation, one-time SQLite setup, migrations, and the write
//! transaction every commit starts with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Transaction};

use super::StateError;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/state");

/// How long a SQLite writer waits for the write lock; the `PRAGMA
/// busy_timeout = 5000` statements below must agree with it.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Durable record of runs, steps and the audit chain. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct StateStore {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
}

impl StateStore {
    /// Opens the store at `url` only if it exists already: a SQLite file that is not
    /// there is [`StateError::Missing`] unless the URL asks for creation (`mode=rwc`),
    /// so a mistyped path is reported instead of becoming a new, empty history.
    pub async fn open_existing(url: &str) -> Result<StateStore, StateError> {
        if let Some(path) = missing_sqlite_file(url)? {
            return Err(StateError::Missing(path));
        }
        StateStore::open(url).await
    }

    /// Opens (creating if needed) the store at `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite://path/to/state.db` (relative or `sqlite:///absolute`;
    /// the file and its parent directories are created) or `postgres://...`.
    pub async fn open(url: &str) -> Result<StateStore, StateError> {
        // Idempotent; the drivers must be registered before any `Any` connection.
        sqlx::any::install_default_drivers();
        let (backend, connect_url) = prepare_url(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                prepare_sqlite(&connect_url).await?;
                AnyPoolOptions::new()
                    .max_connections(4)
                    // synchronous and busy_timeout are per connection, so every
                    // pooled connection needs them, not just the first. FULL: a
                    // commit (one per step boundary) is on disk when it returns, so
                    // a power cut cannot forget a step whose target writes are
                    // committed (see ARCHITECTURE.md, "Durability").
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            sqlx::raw_sql(
                                "PRAGMA busy_timeout = 5000; \
                                 PRAGMA foreign_keys = ON; \
                                 PRAGMA synchronous = FULL;",
                            )
                            .execute(conn)
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&connect_url)
                    .await?
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .connect(&connect_url)
                    .await?;
                // sqlx serialises concurrent migrators on PostgreSQL with an
                // advisory lock, so two processes opening at once are safe.
                let mut conn = pool.acquire().await?;
                migrate(&mut conn).await?;
                drop(conn);
                pool
            }
        };
        Ok(StateStore { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that will write.
    ///
    /// On SQLite a plain `BEGIN` is deferred: a transaction that reads and then
    /// writes can fail with SQLITE_BUSY (which busy_timeout cannot wait out) when
    /// another connection wrote in between. `BEGIN IMMEDIATE` takes the write
    /// lock up front, waiting up to busy_timeout, so read-then-write sequences
    /// such as "read the audit head, append after it" are atomic across
    /// connections and processes.
    ///
    /// On PostgreSQL, callers lock what they need explicitly (see
    /// `audit::append_in_tx`). READ COMMITTED is requested rather than
    /// inherited: under a server default of REPEATABLE READ the snapshot would
    /// predate the lock, and a locked appender could still read a stale head.
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StateError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
                    .await?
            }
        })
    }
}

/// Commits a transaction from [`StateStore::begin_write`] between two counted crash
/// sites (`RUNBOOK_FAILPOINT=nth:<N>`): every state-store commit is a moment the crash
/// torture suite kills the process just before and just after.
pub(super) async fn commit_write(tx: Transaction<'static, Any>) -> Result<(), StateError> {
    crate::failpoint::site("state.commit.before");
    tx.commit().await?;
    crate::failpoint::site("state.commit.after");
    Ok(())
}

/// The SQLite file `url` names, if it does not exist and the URL does not ask for it
/// to be created; `None` for PostgreSQL.
fn missing_sqlite_file(url: &str) -> Result<Option<PathBuf>, StateError> {
    let (backend, _) = prepare_url(url)?;
    let creates = url
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|kv| kv == "mode=rwc"));
    if backend != Backend::Sqlite || creates {
        return Ok(None);
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let raw_path = rest.split_once('?').map_or(rest, |(p, _)| p);
    let path = percent_decode(raw_path)
        .map(PathBuf::from)
        .and_then(|p| std::path::absolute(p).ok());
    Ok(path.filter(|p| !p.exists()))
}

/// Splits `url` into its backend and the URL to hand to sqlx.
fn prepare_url(url: &str) -> Result<(Backend, String), StateError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        // Only the scheme is echoed: the rest may hold a password.
        let scheme = url.split_once(':').map_or("(none)", |(s, _)| s);
        return Err(StateError::UnsupportedUrl(format!(
            "scheme {scheme:?}; expected sqlite://PATH or postgres://..."
        )));
    };
    let (raw_path, params) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = percent_decode(raw_path).ok_or_else(|| {
        StateError::UnsupportedUrl("the SQLite path is not valid UTF-8 once %-decoded".into())
    })?;
    let in_memory = path.is_empty()
        || path == ":memory:"
        || params.is_some_and(|q| q.split('&').any(|kv| kv == "mode=memory"));
    if in_memory {
        // Each pooled connection would get its own empty database.
        return Err(StateError::UnsupportedUrl(
            "in-memory SQLite is not supported; give a file path".into(),
        ));
    }
    let path = std::path::absolute(Path::new(&path)).map_err(|source| StateError::CreateDir {
        path: PathBuf::from(&path),
        source,
    })?;
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| StateError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let path_str = path
        .to_str()
        .ok_or_else(|| StateError::UnsupportedUrl("the SQLite path is not valid UTF-8".into()))?;
    // sqlx re-parses the URL with a generic URL parser; an absolute,
    // %-encoded path survives that unchanged, whereas `sqlite://dir/x.db`
    // would have `dir` taken for a host name and `..` segments normalised.
    let mut out = format!("sqlite://{}", percent_encode_path(path_str));
    let mut query: Vec<&str> = params
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|kv| !kv.is_empty())
        .collect();
    if !query.iter().any(|kv| kv.starts_with("mode=")) {
        query.push("mode=rwc");
    }
    out.push('?');
    out.push_str(&query.join("&"));
    Ok((Backend::Sqlite, out))
}

/// One-time setup of a SQLite file, on a dedicated connection before the pool exists.
async fn prepare_sqlite(url: &str) -> Result<(), StateError> {
    let mut conn = AnyConnection::connect(url).await?;
    sqlx::raw_sql("PRAGMA busy_timeout = 5000;")
        .execute(&mut conn)
        .await?;

    // WAL is persistent in the file, but switching to it needs an exclusive
    // lock that busy_timeout does not wait for, so a process opening the file
    // while another one is using it may be refused briefly: retry.
    let mut attempts = 0u32;
    let mode = loop {
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL")
            .fetch_one(&mut conn)
            .await
        {
            Ok(mode) => break mode,
            Err(sqlx::Error::Database(e)) if attempts < 50 && is_sqlite_busy(&*e) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS / 50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StateError::WalUnavailable(mode));
    }

    // sqlx's migration lock is a no-op on SQLite, so two processes opening a
    // fresh file at once would both try to create the tables. Holding the
    // write lock for the whole migration serialises them: the second one
    // waits, then finds everything applied. (sqlx runs each migration in a
    // savepoint inside this transaction.)
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    migrate(&mut tx).await?;
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

/// Runs the migrations on `conn`.
///
/// `Migrator::run` takes `impl Acquire<'a>`, and with it rustc cannot prove
/// `open`'s future `Send` ("implementation of `Acquire` is not general
/// enough"), so callers could not `tokio::spawn` it. `run_direct` is what
/// `run` calls after acquiring, and sqlx keeps it public (doc-hidden) for
/// exactly this problem.
async fn migrate(conn: &mut AnyConnection) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run_direct(None, conn, false).await
}

fn is_sqlite_busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    // Primary result codes 5 (SQLITE_BUSY) and 6 (SQLITE_LOCKED); extended
    // codes keep the primary code in the low byte.
    e.code()
        .and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            // from_str_radix alone would also accept a sign ("%+f").
            && hex.iter().all(u8::is_ascii_hexdigit)
            && let Some(v) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn percent_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testutil::{entry, on_all_backends};
    use crate::state::{AuditVerification, NewRun, RunStatus, StepOutcome, StepStart};

    #[test]
    fn urls_are_normalised_for_sqlx() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap();
        let (backend, url) = prepare_url(&format!("sqlite://{base}/a b/state.db")).unwrap();
        assert_eq!(backend, Backend::Sqlite);
        assert_eq!(url, format!("sqlite://{base}/a%20b/state.db?mode=rwc"));
        assert!(dir.path().join("a b").is_dir());

        let (_, url) = prepare_url(&format!("sqlite:{base}/x.db?mode=rw")).unwrap();
        assert_eq!(url, format!("sqlite://{base}/x.db?mode=rw"));

        // %-escapes in the given URL are decoded once, then re-encoded.
        let (_, url) = prepare_url(&format!("sqlite://{base}/q%3Fx%+f.db")).unwrap();
        assert_eq!(url, format!("sqlite://{base}/q%3Fx%25%2Bf.db?mode=rwc"));

        let (backend, url) = prepare_url("postgres://u@h/db").unwrap();
        assert_eq!(
            (backend, url.as_str()),
            (Backend::Postgres, "postgres://u@h/db")
        );

        assert!(matches!(
            prepare_url("sqlite::memory:"),
            Err(StateError::UnsupportedUrl(_))
        ));
        match prepare_url("mysql://user:secret@h/db") {
            Err(StateError::UnsupportedUrl(msg)) => {
                assert!(!msg.contains("secret"), "{msg}");
                assert!(msg.contains("\"mysql\""), "{msg}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Compile-time check: every operation's future can be `tokio::spawn`ed.
    #[test]
    fn public_futures_are_spawnable() {
        fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
        fn check(s: StateStore, run: NewRun, step: StepStart, outcome: StepOutcome) {
            spawnable(async { StateStore::open("sqlite://x.db").await });
            let st = s.clone();
            spawnable(async move { st.create_run(&run).await });
            let st = s.clone();
            spawnable(async move { st.start_step("r", &step).await });
            let st = s.clone();
            spawnable(async move { st.finish_step("r", 0, &outcome, &[]).await });
            let st = s.clone();
            spawnable(async move { st.finish_run("r", RunStatus::Failed, None).await });
            let st = s.clone();
            spawnable(async move { st.list_runs(1).await });
            let st = s.clone();
            spawnable(async move { st.run("r").await });
            let st = s.clone();
            spawnable(async move { st.append_audit(&[]).await });
            let st = s.clone();
            spawnable(async move { st.audit_entries(None, 1).await });
            spawnable(async move { s.verify_audit().await });
        }
        let _ = check as fn(_, _, _, _);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_configures_backend_and_reopen_keeps_migrations() {
        on_all_backends(|label, url| async move {
            let store = StateStore::open(&url).await.unwrap();
            let expected = if label == "sqlite" {
                Backend::Sqlite
            } else {
                Backend::Postgres
            };
            assert_eq!(store.backend(), expected);

            if store.backend() == Backend::Sqlite {
                let mut conn = store.pool.acquire().await.unwrap();
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(mode, "wal");
                // FULL is 2: every commit is on disk before it returns.
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(sync, 2);
                let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(fk, 1);
                let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(busy, 5000);
            }

            store
                .append_audit(&[entry("a", None, "first")])
                .await
                .unwrap();
            let versions: Vec<i64> =
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&store.pool)
                    .await
                    .unwrap();
            let expected_versions: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
            assert_eq!(versions, expected_versions);

            store.pool.close().await;

            // Reopening must neither re-apply nor trip over applied migrations.
            let again = StateStore::open(&url).await.unwrap();
            let again2 = StateStore::open(&url).await.unwrap();
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(&again.pool)
                .await
                .unwrap();
            assert_eq!(count, MIGRATOR.iter().count() as i64);
            let entries = again2.audit_entries(None, 10).await.unwrap();
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].detail, "first");
            match again.verify_audit().await.unwrap() {
                AuditVerification::Intact { entries, head } => {
                    assert_eq!(entries, 1);
                    assert_eq!(head.as_deref(), Some(entries_hash(&again).await.as_str()));
                }
                other => panic!("unexpected {other:?}"),
            }
        })
        .await;
    }

    async fn entries_hash(store: &StateStore) -> String {
        sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_open_of_a_fresh_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/fresh/state.db", dir.path().display());
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { StateStore::open(&url).await })
            })
            .collect();
        for open in opens {
            open.await.unwrap().unwrap();
        }
        let store = StateStore::open(&url).await.unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(count, MIGRATOR.iter().count() as i64);
    }
}
