//! Test targets: a SQLite file in a tempdir always, and a fresh PostgreSQL
//! database when a server is reachable.
//!
//! Also the fixtures the run, step, boundary and audit tests share.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::AnyConnection;
use sqlx::Connection;

use crate::state::{LogLine, NewAuditEntry, NewRun, StepStart};

/// Admin connection used to create and drop per-test databases.
fn pg_admin_url() -> String {
    std::env::var("RUNBOOK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".to_owned())
}

fn with_database(admin_url: &str, db: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |j| j + 2) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

pub struct Target {
    pub label: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_db: Option<String>,
}

impl Target {
    async fn cleanup(self) {
        if let Some(db) = &self.pg_db {
            let mut admin = AnyConnection::connect(&pg_admin_url())
                .await
                .expect("reconnect to PostgreSQL to drop the test database");
            // FORCE: pools of stores from the finished test may still be closing.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .expect("drop test database");
            let _ = admin.close().await;
        }
    }
}

pub async fn targets() -> Vec<Target> {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/nested/dir/state.db", dir.path().display());
    let mut out = vec![Target {
        label: "sqlite",
        url,
        _dir: Some(dir),
        pg_db: None,
    }];
    match AnyConnection::connect(&pg_admin_url()).await {
        Ok(mut admin) => {
            let db = format!("rb_state_{}", uuid::Uuid::now_v7().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut admin)
                .await
                .expect("create test database");
            let _ = admin.close().await;
            out.push(Target {
                label: "postgres",
                url: with_database(&pg_admin_url(), &db),
                _dir: None,
                pg_db: Some(db),
            });
        }
        Err(e) => {
            eprintln!("note: PostgreSQL unreachable ({e}); running the SQLite variant only");
        }
    }
    out
}

/// Runs `body(label, url)` against every target, cleaning every one up
/// even when a run panics, then re-raises the first panic.
pub async fn on_all_backends<F, Fut>(body: F)
where
    F: Fn(&'static str, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut first_panic = None;
    for target in targets().await {
        let label = target.label;
        eprintln!("running on {label}");
        let outcome = tokio::spawn(body(label, target.url.clone())).await;
        target.cleanup().await;
        if let Err(e) = outcome {
            eprintln!("failed on {label}");
            if first_panic.is_none() {
                first_panic = Some(e);
            }
        }
    }
    if let Some(e) = first_panic {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn new_run(id: &str, started: &str) -> NewRun {
    NewRun {
        concurrency_key: None,
        lease: None,
        dry_run: false,
        id: id.to_owned(),
        runbook: "refund-duplicate-charges".to_owned(),
        runbook_digest: "sha256:runbook".to_owned(),
        params: json!({"customer": "cus_123", "dry_run": true, "limit": 5}),
        operator: "alice@example.com".to_owned(),
        started_at: t(started),
    }
}

pub fn step_start(index: i64, step_id: &str) -> StepStart {
    StepStart {
        index,
        step_id: step_id.to_owned(),
        plugin: "stripe".to_owned(),
        plugin_digest: "sha256:plugin".to_owned(),
        input: json!({"index": index}),
        started_at: t("2025-06-01T10:00:01.000001Z"),
        attempts: 0,
        lease_owner: None,
    }
}

pub fn log(message: &str) -> LogLine {
    LogLine {
        at: t("2025-06-01T10:00:01.500000Z"),
        level: "info".to_owned(),
        stream: "log".to_owned(),
        message: message.to_owned(),
        fields: BTreeMap::from([("charge".to_owned(), "ch_1".to_owned())]),
    }
}

pub fn audit(run_id: &str, detail: &str) -> NewAuditEntry {
    NewAuditEntry {
        at: t("2025-06-01T10:00:01.700000Z"),
        actor: "alice@example.com".to_owned(),
        run_id: Some(run_id.to_owned()),
        step_id: Some("lookup".to_owned()),
        plugin: Some("stripe".to_owned()),
        plugin_digest: Some("sha256:plugin".to_owned()),
        action: "http.request".to_owned(),
        target: "GET https://api.stripe.com/v1/charges".to_owned(),
        detail: detail.to_owned(),
    }
}

pub const RUN_A: &str = "0190aaaa-0000-7000-8000-000000000001";
pub const RUN_B: &str = "0190bbbb-0000-7000-8000-000000000002";
pub const RUN_B2: &str = "0190bbbb-0000-7000-8000-000000000003";

pub fn entry(actor: &str, run_id: Option<&str>, detail: &str) -> NewAuditEntry {
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
