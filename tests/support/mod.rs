//! Shared harness for the integration tests: a scratch workspace per test with its own
//! `runbook.toml`, a real target database (a SQLite file, or a fresh PostgreSQL database
//! on 127.0.0.1:5432), and helpers that run the real `runbook` binary. `servers` starts the
//! Stripe, SMTP and webhook test servers.

#![allow(dead_code)]

pub mod servers;
pub mod world;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn plugin_dir(kind: &str) -> PathBuf {
    let dir = repo_root().join("target").join(kind);
    assert!(
        dir.join(if kind == "plugins" {
            "quota-reset.wasm"
        } else {
            "probe.wasm"
        })
        .is_file(),
        "{} has no built plugins: run `cargo xtask plugins` first (cargo xtask test does)",
        dir.display()
    );
    dir
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's world. Dropping it drops its PostgreSQL database.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub target_url: String,
    pg_database: Option<String>,
    /// `None`: the precompiled-plugin cache shared by all tests.
    private_cache: Option<PathBuf>,
}

impl Workspace {
    pub fn new(backend: Backend) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let (target_url, pg_database) = match backend {
            Backend::Sqlite => (
                // Tests create the target on first use; operators get `db init`.
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("target.db").display()
                ),
                None,
            ),
            Backend::Postgres => {
                let name = format!("rb_test_{}", uuid::Uuid::new_v4().simple());
                pg_admin(&format!("CREATE DATABASE {name}"));
                (
                    format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    Some(name),
                )
            }
        };
        let ws = Workspace {
            dir,
            backend,
            target_url,
            pg_database,
            private_cache: None,
        };
        ws.write_config("");
        ws
    }

    /// Demo schema and data loaded into the target.
    pub fn with_demo(backend: Backend) -> Workspace {
        let ws = Workspace::new(backend);
        let out = ws.run(&[
            "db",
            "init",
            "--demo",
            "--schema",
            repo_root().join("runbooks/schema").to_str().unwrap(),
        ]);
        assert_success(&out);
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn runbooks_dir(&self) -> PathBuf {
        self.path().join("runbooks")
    }

    /// (Re)writes runbook.toml; `extra` is appended (e.g. a `[limits]` table).
    pub fn write_config(&self, extra: &str) {
        std::fs::create_dir_all(self.runbooks_dir()).unwrap();
        let config = format!(
            "[target]\nurl = \"{}\"\n\n[state]\nurl = \"sqlite://state.db?mode=rwc\"\n\n[paths]\nplugins = [\"{}\", \"{}\"]\nrunbooks = [\"{}\", \"runbooks\"]\ncache = \"{}\"\n{extra}",
            self.target_url,
            plugin_dir("plugins").display(),
            plugin_dir("test-plugins").display(),
            repo_root().join("runbooks").display(),
            self.cache_dir().display(),
        );
        std::fs::write(self.path().join("runbook.toml"), config).unwrap();
    }

    /// Gives this workspace a cache of its own, starting empty.
    pub fn use_private_cache(&mut self) -> PathBuf {
        let dir = self.path().join("cache");
        self.private_cache = Some(dir.clone());
        self.write_config("");
        dir
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.private_cache
            .clone()
            .unwrap_or_else(|| repo_root().join("target/test-cache"))
    }

    /// Adds a runbook file to this workspace's own runbook folder.
    pub fn add_runbook(&self, name: &str, toml: &str) -> PathBuf {
        let path = self.runbooks_dir().join(format!("{name}.toml"));
        std::fs::write(&path, toml).unwrap();
        path
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
        cmd.current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("RUNBOOK_OPERATOR", "test-operator")
            .env_remove("RUST_LOG")
            .env_remove("STRIPE_API_KEY");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// `runbook exec <name> --json` with params; returns (exit code, report).
    pub fn exec(&self, name: &str, params: &[&str]) -> (i32, Value, Output) {
        let mut args = vec!["exec", name, "--json"];
        for p in params {
            args.push("--param");
            args.push(p);
        }
        let out = self.run(&args);
        let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), report, out)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert_success(&out);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// A single-value query against the target database, for checking effects.
    pub fn scalar_i64(&self, sql: &str) -> i64 {
        let sql = sql.to_string();
        let url = self.target_url.clone();
        block_on(async move {
            match Backend::of(&url) {
                Backend::Sqlite => {
                    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                    let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                    v
                }
                Backend::Postgres => {
                    let pool = sqlx::PgPool::connect(&url).await.unwrap();
                    let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                    v
                }
            }
        })
    }

    /// Runs statements against the target database behind the host's back (fixtures).
    pub fn target_execute(&self, sql: &str) {
        let sql = sql.to_string();
        let url = self.target_url.clone();
        block_on(async move {
            match Backend::of(&url) {
                Backend::Sqlite => {
                    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                }
                Backend::Postgres => {
                    let pool = sqlx::PgPool::connect(&url).await.unwrap();
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                }
            }
        })
    }

    /// Runs a statement against the state store behind the host's back (tamper tests).
    pub fn state_execute(&self, sql: &str) {
        let sql = sql.to_string();
        let url = format!("sqlite://{}", self.path().join("state.db").display());
        block_on(async move {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        })
    }
}

impl Backend {
    fn of(url: &str) -> Backend {
        if url.starts_with("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_database {
            pg_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn pg_admin(sql: &str) {
    let sql = sql.to_string();
    block_on(async move {
        let pool = sqlx::PgPool::connect(PG_ADMIN_URL)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL must run on 127.0.0.1:5432 for these tests: {e}")
            });
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    })
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
