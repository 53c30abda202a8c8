//! Micro-benchmarks (criterion): instantiating a plugin from its precompiled component,
//! and the cost of one host call through the plugin boundary — a `db` select of one row
//! (grant check and journaling included) next to the same select made directly with
//! sqlx on the same pool, an `audit` record, a `log` line, and a guest loop with no call.
//!
//! `cargo bench --bench micro` (after `cargo xtask plugins`); `cargo xtask bench` runs it
//! and turns criterion's estimates into BENCHMARKS.md's table. PostgreSQL variants run
//! when 127.0.0.1:5432 answers (scratch database `runbook_bench_micro`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sqlx::Row;

use runbook::capability::{AnalysisCache, DbCaps};
use runbook::capability::{
    CallSession, DbGrant, DbSession, Grants, RunBudget, Services, StepCapabilities, StepContext,
};
use runbook::runtime::{LoadedPlugin, PluginOutcome, Runtime, StepLimits, StepState};
use runbook::spec::config::Config;
use runbook::state::StateStore;
use runbook::target::{ResultCaps, TargetDb};

/// Host calls per plugin run: one run's instantiation is spread over this many calls.
const CALLS: u64 = 1_000;
const SELECT_ONE: &str = "SELECT id, name FROM organizations WHERE id = $1";

struct Fixture {
    rt: tokio::runtime::Runtime,
    runtime: Runtime,
    caller: LoadedPlugin,
    probe: LoadedPlugin,
    state: StateStore,
    services: Arc<Services>,
    analysis: Arc<AnalysisCache>,
    _dir: tempfile::TempDir,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host lives in the workspace")
        .to_path_buf()
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("runbook.toml");
        std::fs::write(&config_path, "[state]\nurl = \"sqlite://state.db\"\n").unwrap();
        let config = Config::from_file(&config_path).expect("config");
        // The same runtime as the `runbook` binary's (cli::main).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let runtime = Runtime::new(Some(dir.path().join("cache"))).expect("runtime");
        let plugins = root().join("target/test-plugins");
        let load = |name: &str| {
            let path = plugins.join(format!("{name}.wasm"));
            assert!(
                path.is_file(),
                "{} is missing: run `cargo xtask plugins` first",
                path.display()
            );
            // Twice: the second load maps the precompiled component, as a warm run does.
            runtime.load(name, &path).expect("plugin loads");
            runtime.load(name, &path).expect("plugin loads from cache")
        };
        let (caller, probe) = (load("caller"), load("probe"));
        let state = rt
            .block_on(StateStore::open(config.state_url.expose()))
            .expect("state store");
        Fixture {
            services: Arc::new(Services::from_config(&config)),
            analysis: Arc::new(AnalysisCache::default()),
            rt,
            runtime,
            caller,
            probe,
            state,
            _dir: dir,
        }
    }

    fn step_state(&self, plugin: &LoadedPlugin, target: Option<TargetDb>) -> StepState {
        let grants = Grants {
            db: Some(DbGrant {
                select: BTreeSet::from(["organizations".to_string()]),
                ..DbGrant::default()
            }),
            ..Grants::default()
        };
        let calls = CallSession::new(
            Arc::new(StepContext {
                run_id: "bench".into(),
                step_id: "call".into(),
                plugin: plugin.name.clone(),
                plugin_digest: plugin.digest.clone(),
                operator: "bench".into(),
            }),
            self.state.clone(),
            Arc::new(RunBudget::default()),
            false,
            0,
            1,
        );
        let db = DbSession {
            target,
            tx: None,
            analysis: self.analysis.clone(),
            poisoned: None,
            deadline: None,
            caps: {
                let limits = StepLimits::default();
                DbCaps {
                    statement_bytes: limits.max_statement_bytes,
                    param_bytes: limits.max_param_bytes,
                    params_bytes: limits.max_params_bytes,
                    result: ResultCaps {
                        max_rows: limits.max_result_rows,
                        max_bytes: limits.max_result_bytes,
                    },
                }
            },
        };
        StepState::new(
            StepCapabilities::prepare(calls, grants, &self.services, db),
            StepLimits::default().memory_bytes,
        )
    }

    /// One run of the `caller` plugin making `CALLS` calls of one kind.
    fn call(&self, kind: &str, target: &TargetDb) {
        let state = self.step_state(&self.caller, Some(target.clone()));
        let input = format!(r#"{{"call":"{kind}","n":{CALLS}}}"#);
        let outcome = self.rt.block_on(async {
            let (outcome, mut state) = self
                .runtime
                .invoke(&self.caller, state, &input, StepLimits::default())
                .await;
            // The step's transaction (if any) rolls back, as a failed step's would.
            if let Some(tx) = state.capabilities.db.session.tx.take() {
                tx.rollback().await.expect("rollback");
            }
            outcome
        });
        assert!(
            matches!(outcome, PluginOutcome::Returned(_)),
            "caller {kind}: {outcome:?}"
        );
    }
}

async fn demo_database(url: &str) -> TargetDb {
    let target = TargetDb::connect(url).await.expect("target database");
    target
        .migrate(&root().join("runbooks/schema/migrations"))
        .await
        .expect("schema");
    let demo = std::fs::read_to_string(root().join("runbooks/schema/demo.sql")).unwrap();
    target.run_script(&demo).await.expect("demo data");
    target
}

async fn fresh_postgres() -> Option<String> {
    use sqlx::Connection;
    let admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
    let mut conn = sqlx::PgConnection::connect(admin).await.ok()?;
    for sql in [
        "DROP DATABASE IF EXISTS runbook_bench_micro WITH (FORCE)",
        "CREATE DATABASE runbook_bench_micro",
    ] {
        sqlx::raw_sql(sql).execute(&mut conn).await.ok()?;
    }
    Some("postgres://postgres@127.0.0.1:5432/runbook_bench_micro?sslmode=disable".into())
}

/// `CALLS` selects in one transaction on `pool`, decoding both columns: the same code for
/// each backend's pool type.
macro_rules! selects_in_transaction {
    ($pool:expr) => {{
        let mut tx = $pool.begin().await.unwrap();
        for _ in 0..CALLS {
            let rows = sqlx::query(SELECT_ONE)
                .bind(1i64)
                .fetch_all(&mut *tx)
                .await
                .unwrap();
            let _: (i64, String) = (rows[0].get(0), rows[0].get(1));
        }
        tx.rollback().await.unwrap();
    }};
}

/// The select the plugin makes, made directly with sqlx in a transaction on the same pool.
async fn direct_selects(target: &TargetDb) {
    match target {
        TargetDb::Sqlite(pool) => selects_in_transaction!(pool),
        TargetDb::Postgres(pool) => selects_in_transaction!(pool),
    }
}

fn benches(c: &mut Criterion) {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("target.db").display());
    let sqlite = fx.rt.block_on(demo_database(&sqlite_url));
    let postgres = fx.rt.block_on(async {
        match fresh_postgres().await {
            Some(url) => Some(demo_database(&url).await),
            None => {
                eprintln!("PostgreSQL unreachable: SQLite variants only");
                None
            }
        }
    });

    let mut group = c.benchmark_group("instantiate");
    group.bench_function("probe", |b| {
        b.iter_batched(
            || fx.step_state(&fx.probe, None),
            |state| {
                fx.rt
                    .block_on(
                        fx.runtime
                            .instantiate_only(&fx.probe, state, StepLimits::default()),
                    )
                    .expect("instantiates")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("host-call");
    group.throughput(Throughput::Elements(CALLS));
    let mut targets = vec![("sqlite", &sqlite)];
    if let Some(pg) = &postgres {
        targets.push(("postgres", pg));
    }
    for (backend, target) in targets {
        group.bench_function(format!("db-select-plugin/{backend}"), |b| {
            b.iter(|| fx.call("select", target))
        });
        group.bench_function(format!("db-select-sqlx/{backend}"), |b| {
            b.iter(|| fx.rt.block_on(direct_selects(target)))
        });
    }
    for kind in ["audit", "log", "none"] {
        group.bench_function(kind, |b| b.iter(|| fx.call(kind, &sqlite)));
    }
    group.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(6))
        .warm_up_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(micro);
