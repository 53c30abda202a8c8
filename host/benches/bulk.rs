//! Bulk benchmark: a grace-period-style job over many subscriptions (select the expired
//! past-due ones page by page; cancel each, move its organization to free with free-tier
//! quotas; audit every cancellation), run by `runbook exec` through the `bulk-expire`
//! plugin and by a native sqlx program doing the same writes in the same transactions,
//! on the same database, in the same run. Both are whole processes, timed from spawn to
//! exit, with their peak RSS.
//!
//! `cargo bench --bench bulk` (after `cargo xtask plugins`); `cargo xtask bench` runs it.
//! Rows: `BULK_ROWS=1000,10000,100000` (default); samples: `BULK_SAMPLES` (default 3);
//! backends: `BULK_BACKENDS=sqlite,postgres` (PostgreSQL on 127.0.0.1:5432, a scratch
//! database `runbook_bench_bulk`).
//!
//! The native program is this binary again, started with `--native`: one target
//! transaction for the whole job, the same statements (`include!`d from the plugin's
//! source), the same parameter types, sqlx's statement cache; its audit entries go to the
//! same state store through the same hash-chained append the engine uses.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runbook::state::{NewAuditEntry, StateStore};

#[allow(dead_code)]
mod sql {
    include!("../../tests/plugins/bulk-expire/src/sql.rs");
}

/// The job's clock: subscriptions went past due on the 1st of October, the job runs on
/// the 1st of November with a 7-day grace period.
const PAST_DUE_SINCE: &str = "2026-10-01 00:00:00+00:00";
const NOW: &str = "2026-11-01T00:00:00Z";
const CUTOFF: &str = "2026-10-25T00:00:00Z";
const PAGE: i64 = 500;
/// Sum of the free tier's five quota limits (see `plan_limits` below).
const FREE_LIMITS_SUM: i64 = 1 + 100 + 2 + 1_073_741_824 + 10_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--native") {
        let target = &args[at + 1];
        let state = &args[at + 2];
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        match runtime.block_on(native::run(target, state)) {
            Ok(n) => println!("{n}"),
            Err(e) => {
                eprintln!("native job failed: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    // `cargo bench` passes `--bench`; anything else is a filter we do not offer.
    let rows = list_env("BULK_ROWS", "1000,10000,100000");
    let samples: usize = std::env::var("BULK_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let backends = list_env("BULK_BACKENDS", "sqlite,postgres");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut table = Vec::new();
    for backend in &backends {
        for n in &rows {
            let n: i64 = n.parse().expect("BULK_ROWS are numbers");
            match runtime.block_on(measure(backend, n, samples)) {
                Ok(row) => table.push(row),
                Err(e) => eprintln!("skipping {backend} at {n} rows: {e}"),
            }
        }
    }
    println!(
        "| backend | subscriptions | engine (wall) | native sqlx (wall) | engine / native throughput | engine per 1k rows | peak RSS engine | peak RSS native | samples |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in table {
        println!("{row}");
    }
}

fn list_env(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host lives in the workspace")
        .to_path_buf()
}

struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

async fn measure(backend: &str, n: i64, samples: usize) -> Result<String, String> {
    let dir = root()
        .join("target/bench-bulk")
        .join(format!("{backend}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("runbooks")).map_err(|e| e.to_string())?;
    let (target_url, state_url) = match backend {
        "sqlite" => (
            format!("sqlite://{}", dir.join("target.db").display()),
            format!("sqlite://{}", dir.join("state.db").display()),
        ),
        "postgres" => {
            let target = fresh_pg_database("runbook_bench_bulk").await?;
            let state = fresh_pg_database("runbook_bench_bulk_state").await?;
            (target, state)
        }
        other => return Err(format!("unknown backend {other}")),
    };
    let config = write_workspace(&dir, &target_url, &state_url)?;
    let runbook = env!("CARGO_BIN_EXE_runbook");
    let status = Command::new(runbook)
        .arg("--config")
        .arg(&config)
        .args(["db", "init", "--schema"])
        .arg(root().join("runbooks/schema"))
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("runbook db init failed".into());
    }
    let target = runbook::target::TargetDb::connect(&target_url)
        .await
        .map_err(|e| e.to_string())?;
    seed(&target, n).await?;

    let mut engine = Vec::new();
    let mut native = Vec::new();
    // One uncounted run of each first: page cache, plugin cache, sqlx and PG caches.
    for i in 0..=samples {
        reset(&target, backend == "postgres").await?;
        let e = run_engine(runbook, &config, n)?;
        check(&target, n).await?;
        reset(&target, backend == "postgres").await?;
        let x = run_native(&target_url, &state_url, n)?;
        check(&target, n).await?;
        eprintln!(
            "{backend} {n}: engine {:.0} ms, native {:.0} ms{}",
            e.wall.as_secs_f64() * 1e3,
            x.wall.as_secs_f64() * 1e3,
            if i == 0 {
                " (warm-up, not counted)"
            } else {
                ""
            }
        );
        if i > 0 {
            engine.push(e);
            native.push(x);
        }
    }
    verify_audit(&state_url, n, 2 * (samples as i64 + 1)).await?;
    target.close().await;
    let (em, nm) = (median(&engine), median(&native));
    Ok(format!(
        "| {backend} | {n} | {} | {} | {:.2}× | {:.1} ms | {} MiB | {} MiB | {} + {} |",
        spread(&engine),
        spread(&native),
        nm.as_secs_f64() / em.as_secs_f64(),
        em.as_secs_f64() * 1e3 / (n as f64 / 1000.0),
        max_rss(&engine) / 1024,
        max_rss(&native) / 1024,
        engine.len(),
        native.len(),
    ))
}

fn write_workspace(dir: &Path, target_url: &str, state_url: &str) -> Result<PathBuf, String> {
    let config = dir.join("runbook.toml");
    let plugins = root().join("target/test-plugins");
    std::fs::write(
        &config,
        format!(
            "[target]\nurl = \"{target_url}\"\n[state]\nurl = \"{state_url}\"\n[paths]\nplugins = [\"{}\"]\nrunbooks = [\"runbooks\"]\ncache = \"cache\"\n",
            plugins.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("runbooks/bulk-expire.toml"),
        format!(
            r#"name = "bulk-expire"
description = "Benchmark: grace-period expirations over every past-due subscription"

[[steps]]
id = "expire"
plugin = "bulk-expire"
timeout = "30m"
fuel = 1000000000000
[steps.input]
cutoff = "{CUTOFF}"
now = "{NOW}"
page = {PAGE}
[steps.grants.db]
select = ["subscriptions", "plan_limits"]
update = ["subscriptions", "organizations", "usage_quotas"]
"#
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(config)
}

async fn fresh_pg_database(name: &str) -> Result<String, String> {
    use sqlx::Connection;
    let admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .map_err(|e| format!("PostgreSQL on 127.0.0.1:5432: {e}"))?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    // Loopback: TLS would only add a handshake per new connection (see BENCHMARKS.md).
    Ok(format!(
        "postgres://postgres@127.0.0.1:5432/{name}?sslmode=disable"
    ))
}

/// N organizations on Pro, each with one past-due subscription and five quotas.
async fn seed(target: &runbook::target::TargetDb, n: i64) -> Result<(), String> {
    let numbers =
        format!("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {n})");
    let script = format!(
        "INSERT INTO plan_limits (plan_tier, dimension, quota_limit) VALUES \
           ('free', 'sites', 1), ('free', 'posts', 100), ('free', 'users', 2), \
           ('free', 'storage_bytes', 1073741824), ('free', 'api_calls', 10000); \
         {numbers} INSERT INTO organizations (id, name, plan_tier, billing_email) \
           SELECT n, 'Org ' || n, 'pro', 'billing' || n || '@example.com' FROM g; \
         {numbers} INSERT INTO subscriptions (id, organization_id, stripe_subscription_id, \
           plan_tier, amount_cents, status, updated_at) \
           SELECT n, n, 'sub_bulk_' || n, 'pro', 4900, 'past_due', '{PAST_DUE_SINCE}' FROM g; \
         {numbers} INSERT INTO usage_quotas (organization_id, dimension, current_usage, quota_limit) \
           SELECT n, d.dimension, 0, 1000 FROM g CROSS JOIN (SELECT 'sites' AS dimension \
           UNION ALL SELECT 'posts' UNION ALL SELECT 'users' UNION ALL SELECT 'storage_bytes' \
           UNION ALL SELECT 'api_calls') d;"
    );
    target.run_script(&script).await.map_err(|e| e.to_string())
}

/// Puts every subscription back to past due and every organization back on Pro.
async fn reset(target: &runbook::target::TargetDb, postgres: bool) -> Result<(), String> {
    target
        .run_script(&format!(
            "UPDATE subscriptions SET status = 'past_due', canceled_at = NULL, \
               updated_at = '{PAST_DUE_SINCE}'; \
             UPDATE organizations SET plan_tier = 'pro'; \
             UPDATE usage_quotas SET quota_limit = 1000;"
        ))
        .await
        .map_err(|e| e.to_string())?;
    // Dead tuples from the last run would otherwise be vacuumed at random moments of
    // the next one.
    let vacuum = if postgres {
        "VACUUM ANALYZE"
    } else {
        "ANALYZE"
    };
    target.run_script(vacuum).await.map_err(|e| e.to_string())
}

/// Both programs must leave the database in the same state.
async fn check(target: &runbook::target::TargetDb, n: i64) -> Result<(), String> {
    let one = |sql: &'static str| async move {
        match target {
            runbook::target::TargetDb::Postgres(pool) => {
                sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await
            }
            runbook::target::TargetDb::Sqlite(pool) => {
                sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await
            }
        }
        .map_err(|e| e.to_string())
    };
    let canceled = one("SELECT COUNT(*) FROM subscriptions WHERE status = 'canceled'").await?;
    let free = one("SELECT COUNT(*) FROM organizations WHERE plan_tier = 'free'").await?;
    let limits = one("SELECT CAST(SUM(quota_limit) AS BIGINT) FROM usage_quotas").await?;
    if canceled != n || free != n || limits != n * FREE_LIMITS_SUM {
        return Err(format!(
            "after the job: {canceled} canceled, {free} free organizations, quota sum {limits} (expected {n}, {n}, {})",
            n * FREE_LIMITS_SUM
        ));
    }
    Ok(())
}

async fn verify_audit(state_url: &str, n: i64, runs: i64) -> Result<(), String> {
    let store = StateStore::open(state_url)
        .await
        .map_err(|e| e.to_string())?;
    match store.verify_audit().await.map_err(|e| e.to_string())? {
        runbook::state::AuditVerification::Intact { entries, .. } if entries >= n * runs => Ok(()),
        other => Err(format!("audit chain after the runs: {other:?}")),
    }
}

fn run_engine(runbook: &str, config: &Path, n: i64) -> Result<Sample, String> {
    let started = Instant::now();
    let child = Command::new(runbook)
        .arg("--config")
        .arg(config)
        .args(["exec", "bulk-expire", "--json", "--as", "bench"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let (sample, stdout) = wait(child, started)?;
    let report: serde_json::Value =
        serde_json::from_slice(&stdout).map_err(|e| format!("engine report: {e}"))?;
    let canceled = report["steps"][0]["output"]["canceled"].as_i64();
    if report["state"] != "succeeded" || canceled != Some(n) {
        return Err(format!(
            "engine run: state {}, canceled {canceled:?}: {}",
            report["state"], report["error"]
        ));
    }
    Ok(sample)
}

fn run_native(target_url: &str, state_url: &str, n: i64) -> Result<Sample, String> {
    let started = Instant::now();
    let child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["--native", target_url, state_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let (sample, stdout) = wait(child, started)?;
    let canceled: i64 = String::from_utf8_lossy(&stdout)
        .trim()
        .parse()
        .map_err(|e| format!("native output: {e}"))?;
    if canceled != n {
        return Err(format!("native job canceled {canceled}, expected {n}"));
    }
    Ok(sample)
}

/// Reads the child's stdout to the end, then reaps it with `wait4` for its peak RSS.
fn wait(mut child: std::process::Child, started: Instant) -> Result<(Sample, Vec<u8>), String> {
    use std::io::Read;
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).map_err(|e| e.to_string())?;
    }
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; the pid is our own child, not
    // yet reaped (std's Child is never waited on after this).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if reaped < 0 {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("child exited with status {status}"));
    }
    Ok((
        Sample {
            wall,
            max_rss_kib: usage.ru_maxrss,
        },
        stdout,
    ))
}

fn median(samples: &[Sample]) -> Duration {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort();
    walls[walls.len() / 2]
}

fn spread(samples: &[Sample]) -> String {
    let min = samples.iter().map(|s| s.wall).min().unwrap_or_default();
    let max = samples.iter().map(|s| s.wall).max().unwrap_or_default();
    format!(
        "{:.0} ms ({:.0}–{:.0})",
        median(samples).as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    )
}

fn max_rss(samples: &[Sample]) -> i64 {
    samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0)
}

/// The native baseline: what a careful engineer writes by hand with sqlx.
mod native {
    use super::*;
    use sqlx::Row;

    /// The identity a hand-written job stamps on its audit records.
    struct Job {
        run_id: String,
        program_digest: String,
    }

    pub async fn run(target_url: &str, state_url: &str) -> Result<i64, String> {
        let now = chrono::DateTime::parse_from_rfc3339(NOW)
            .map_err(|e| e.to_string())?
            .with_timezone(&chrono::Utc);
        let cutoff = chrono::DateTime::parse_from_rfc3339(CUTOFF)
            .map_err(|e| e.to_string())?
            .with_timezone(&chrono::Utc);
        let job = Job {
            run_id: uuid::Uuid::now_v7().to_string(),
            program_digest: runbook::runtime::sha256_hex(
                &std::fs::read(std::env::current_exe().map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?,
            ),
        };
        let mut audit = Vec::new();
        let canceled = if target_url.starts_with("postgres") {
            postgres(&job, target_url, now, cutoff, &mut audit).await
        } else {
            sqlite(&job, target_url, now, cutoff, &mut audit).await
        }
        .map_err(|e| e.to_string())?;
        let state = StateStore::open(state_url)
            .await
            .map_err(|e| e.to_string())?;
        state
            .append_audit(&audit)
            .await
            .map_err(|e| e.to_string())?;
        Ok(canceled)
    }

    /// The same record the engine writes: who, which job run and which program, so both
    /// hash and store the same number of bytes per entry.
    fn entry(job: &Job, stripe_id: &str, organization_id: i64, tier: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: chrono::Utc::now(),
            actor: "bench".into(),
            run_id: Some(job.run_id.clone()),
            step_id: Some("expire".into()),
            plugin: Some("bulk-expire".into()),
            plugin_digest: Some(job.program_digest.clone()),
            action: "subscription.canceled".into(),
            target: format!("subscription:{stripe_id}"),
            detail: serde_json::json!({
                "organization_id": organization_id,
                "reason": "grace_period_expired",
                "plan_tier": tier,
            })
            .to_string(),
        }
    }

    /// The job in one transaction on `$pool`, with `$now` and `$cutoff` bound as the
    /// backend stores timestamps: the same code for each backend's pool type.
    macro_rules! job_in_transaction {
        ($pool:expr, $job:expr, $now:expr, $cutoff:expr, $audit:expr) => {{
            let mut tx = $pool.begin().await?;
            let (mut after, mut canceled) = (0i64, 0i64);
            loop {
                let page = sqlx::query(sql::PAGE_SQL)
                    .bind($cutoff)
                    .bind(after)
                    .bind(PAGE)
                    .fetch_all(&mut *tx)
                    .await?;
                for row in &page {
                    let id: i64 = row.try_get("id")?;
                    let org: i64 = row.try_get("organization_id")?;
                    let stripe_id: String = row.try_get("stripe_subscription_id")?;
                    let tier: String = row.try_get("plan_tier")?;
                    sqlx::query(sql::CANCEL_SQL)
                        .bind($now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(sql::DOWNGRADE_SQL)
                        .bind($now)
                        .bind(org)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(sql::QUOTAS_SQL)
                        .bind(org)
                        .execute(&mut *tx)
                        .await?;
                    $audit.push(entry($job, &stripe_id, org, &tier));
                    canceled += 1;
                    after = id;
                }
                if (page.len() as i64) < PAGE {
                    break;
                }
            }
            tx.commit().await?;
            Ok(canceled)
        }};
    }

    async fn postgres(
        job: &Job,
        url: &str,
        now: chrono::DateTime<chrono::Utc>,
        cutoff: chrono::DateTime<chrono::Utc>,
        audit: &mut Vec<NewAuditEntry>,
    ) -> Result<i64, sqlx::Error> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        job_in_transaction!(pool, job, now, cutoff, audit)
    }

    async fn sqlite(
        job: &Job,
        url: &str,
        now: chrono::DateTime<chrono::Utc>,
        cutoff: chrono::DateTime<chrono::Utc>,
        audit: &mut Vec<NewAuditEntry>,
    ) -> Result<i64, sqlx::Error> {
        use std::str::FromStr;
        // The same connection settings as the engine's target pool.
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        // SQLite has no timestamp type: the schema stores this text form.
        let text =
            |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S+00:00").to_string();
        let (now, cutoff) = (text(now), text(cutoff));
        job_in_transaction!(pool, job, &now, &cutoff, audit)
    }
}
