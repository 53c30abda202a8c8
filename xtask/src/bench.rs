//! `cargo xtask bench [whole|micro|bulk]`: every figure of BENCHMARKS.md, as Markdown
//! tables on stdout.
//!
//! - whole: `runbook exec` of the release binary in a scratch workspace — a 3-step
//!   runbook with a cold and a warm plugin cache, the engine's overhead per step (a
//!   runbook of no-op steps, durable SQLite state and PostgreSQL state), peak memory;
//! - micro: `cargo bench --bench micro` (criterion), summarised from its estimates;
//! - bulk: `cargo bench --bench bulk`, the bulk job against a native sqlx program.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{cargo, plugins, root, run};

const WARM_RUNS: usize = 21;
const COLD_RUNS: usize = 5;
const NOOP_STEPS: usize = 50;

/// One process: wall time and peak resident memory.
struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

pub fn bench(only: Option<&str>) -> Result<()> {
    let wanted = |part: &str| only.is_none_or(|o| o == part);
    if let Some(part) = only
        && !["whole", "micro", "bulk"].contains(&part)
    {
        bail!("unknown benchmark `{part}` (whole, micro or bulk)");
    }
    plugins()?;
    if wanted("whole") {
        whole()?;
    }
    if wanted("micro") {
        micro()?;
    }
    if wanted("bulk") {
        run(cargo().current_dir(root()).args([
            "bench",
            "--package",
            "runbook",
            "--bench",
            "bulk",
        ]))?;
    }
    Ok(())
}

/// Criterion's estimate (median and its 95% interval, ns per iteration) of one benchmark.
fn estimate(id: &str) -> Result<(f64, f64, f64)> {
    let path = root()
        .join("target/criterion")
        .join(id)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no criterion estimate at {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let median = &json["median"];
    let get = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    Ok((
        get(&median["point_estimate"]),
        get(&median["confidence_interval"]["lower_bound"]),
        get(&median["confidence_interval"]["upper_bound"]),
    ))
}

/// The micro-benchmarks, per call where one plugin run makes many (`CALLS` in
/// host/benches/micro.rs).
fn micro() -> Result<()> {
    const CALLS: f64 = 1000.0;
    run(cargo()
        .current_dir(root())
        .args(["bench", "--package", "runbook", "--bench", "micro"]))?;
    let us = |ns: f64| ns / 1e3;
    let per_call = |ns: f64| ns / CALLS / 1e3;
    println!("| figure | median | 95% CI of the median |");
    println!("|---|---|---|");
    let (m, lo, hi) = estimate("instantiate/probe")?;
    println!(
        "| instantiate a plugin (`probe`) from its precompiled component | {:.1} µs | {:.1}–{:.1} µs |",
        us(m),
        us(lo),
        us(hi)
    );
    for backend in ["sqlite", "postgres"] {
        // Criterion names the folder of `db-select-plugin/sqlite` `db-select-plugin_sqlite`.
        let Ok(plugin) = estimate(&format!("host-call/db-select-plugin_{backend}")) else {
            eprintln!("no {backend} micro-benchmark figures");
            continue;
        };
        let direct = estimate(&format!("host-call/db-select-sqlx_{backend}"))?;
        println!(
            "| `db` select of one row through the plugin, {backend} | {:.1} µs per call | {:.1}–{:.1} µs |",
            per_call(plugin.0),
            per_call(plugin.1),
            per_call(plugin.2)
        );
        println!(
            "| the same select directly with sqlx, {backend} | {:.1} µs per call | {:.1}–{:.1} µs |",
            per_call(direct.0),
            per_call(direct.1),
            per_call(direct.2)
        );
        println!(
            "| plugin / direct, {backend} | {:.2}× ({:+.1} µs per call) | |",
            plugin.0 / direct.0,
            per_call(plugin.0 - direct.0)
        );
    }
    for (id, what) in [
        ("host-call/audit", "`audit` record"),
        ("host-call/log", "`log` line"),
        ("host-call/none", "guest loop iteration without a call"),
    ] {
        let (m, lo, hi) = estimate(id)?;
        println!(
            "| {what} | {:.2} µs per call | {:.2}–{:.2} µs |",
            per_call(m),
            per_call(lo),
            per_call(hi)
        );
    }
    Ok(())
}

fn whole() -> Result<()> {
    run(cargo()
        .current_dir(root())
        .args(["build", "--release", "--package", "runbook"]))?;
    let bin = root().join("target/release/runbook");
    let dir = root().join("target/bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("runbooks"))?;
    write_runbooks(&dir)?;

    let sqlite = Workspace::new(&bin, &dir, "sqlite://state.db")?;
    sqlite.run(&[
        "db",
        "init",
        "--demo",
        "--schema",
        &root().join("runbooks/schema").to_string_lossy(),
    ])?;

    let mut rows = Vec::new();
    // Cold: the precompiled-component cache is empty, so every plugin is compiled.
    let mut cold = Vec::new();
    for _ in 0..COLD_RUNS {
        let _ = std::fs::remove_dir_all(dir.join("cache"));
        cold.push(sqlite.exec("bench-3")?);
    }
    rows.push(row(
        "`runbook exec` 3 steps, cold plugin cache (wall)",
        &cold,
    ));
    let warm = repeat(WARM_RUNS, || sqlite.exec("bench-3"))?;
    rows.push(row(
        "`runbook exec` 3 steps, warm plugin cache (wall)",
        &warm,
    ));
    rows.push(format!(
        "| `runbook exec` 3 steps, warm: peak RSS | {} MiB (max {} MiB) | {} runs |",
        median_rss(&warm) / 1024,
        warm.iter().map(|s| s.max_rss_kib).max().unwrap_or(0) / 1024,
        warm.len()
    ));
    rows.push(per_step(&sqlite, "SQLite state (WAL, synchronous=FULL)")?);

    match postgres_state(&bin, &dir) {
        Ok(pg) => rows.push(per_step(&pg, "PostgreSQL state")?),
        Err(e) => eprintln!("skipping PostgreSQL state: {e:#}"),
    }

    println!("| figure | median (min–max) | samples |");
    println!("|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// Overhead per step: the same runbook with 1 and with 1 + `NOOP_STEPS` steps whose
/// plugin does nothing, warm cache; the difference divided by `NOOP_STEPS`.
fn per_step(ws: &Workspace, state: &str) -> Result<String> {
    let one = repeat(WARM_RUNS, || ws.exec("bench-noop-1"))?;
    let many = repeat(WARM_RUNS, || {
        ws.exec(&format!("bench-noop-{}", NOOP_STEPS + 1))
    })?;
    let per_step = (median(&many).as_secs_f64() - median(&one).as_secs_f64()) / NOOP_STEPS as f64;
    Ok(format!(
        "| engine overhead per step, {state} | {:.2} ms | {} + {} runs ({} vs 1 steps) |",
        per_step * 1e3,
        one.len(),
        many.len(),
        NOOP_STEPS + 1
    ))
}

fn write_runbooks(dir: &Path) -> Result<()> {
    let probe = |id: &str, sql: &str| {
        format!(
            "\n[[steps]]\nid = \"{id}\"\nplugin = \"probe\"\n[steps.input]\nstatements = [{sql}]\n[steps.grants.db]\nselect = [\"organizations\", \"subscriptions\", \"invoices\"]\n"
        )
    };
    let select = |table: &str| {
        format!("{{ sql = \"SELECT COUNT(*) AS n FROM {table}\", mode = \"query\" }}")
    };
    let head = |name: &str| format!("name = \"{name}\"\ndescription = \"benchmark\"\n");
    let three = format!(
        "{}{}{}{}",
        head("bench-3"),
        probe("organizations", &select("organizations")),
        probe("subscriptions", &select("subscriptions")),
        probe("invoices", &select("invoices"))
    );
    std::fs::write(dir.join("runbooks/bench-3.toml"), three)?;
    for n in [1, NOOP_STEPS + 1] {
        let name = format!("bench-noop-{n}");
        let steps: String = (0..n).map(|i| probe(&format!("s{i}"), "")).collect();
        std::fs::write(
            dir.join(format!("runbooks/{name}.toml")),
            head(&name) + &steps,
        )?;
    }
    Ok(())
}

struct Workspace {
    bin: PathBuf,
    config: PathBuf,
}

impl Workspace {
    fn new(bin: &Path, dir: &Path, state_url: &str) -> Result<Workspace> {
        let name = if state_url.starts_with("sqlite") {
            "runbook.toml"
        } else {
            "runbook-pg.toml"
        };
        let config = dir.join(name);
        std::fs::write(
            &config,
            format!(
                "[target]\nurl = \"sqlite://target.db\"\n[state]\nurl = \"{state_url}\"\n[paths]\nplugins = [\"{}\", \"{}\"]\nrunbooks = [\"runbooks\"]\ncache = \"cache\"\n",
                root().join("target/plugins").display(),
                root().join("target/test-plugins").display()
            ),
        )?;
        Ok(Workspace {
            bin: bin.to_path_buf(),
            config,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUNBOOK_OPERATOR", "bench")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        let out = self.command(args).output()?;
        if !out.status.success() {
            bail!("runbook {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// `runbook exec <name> --json`, timed from spawn to exit.
    fn exec(&self, name: &str) -> Result<Sample> {
        let started = Instant::now();
        let child = self
            .command(&["exec", name, "--json"])
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start runbook")?;
        let (status, max_rss_kib) = wait_with_rusage(child.id())?;
        let wall = started.elapsed();
        if status != 0 {
            bail!("runbook exec {name} exited with status {status}");
        }
        Ok(Sample { wall, max_rss_kib })
    }
}

/// Waits for `pid` and returns its exit status and peak RSS (KiB) from `wait4`.
fn wait_with_rusage(pid: u32) -> Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if reaped < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage.ru_maxrss))
}

/// A fresh PostgreSQL database for the state store, if a server is reachable.
fn postgres_state(bin: &Path, dir: &Path) -> Result<Workspace> {
    let db = "runbook_bench_state";
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        let status = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-q",
                "-c",
                &sql,
            ])
            .status()
            .context("psql")?;
        if !status.success() {
            bail!("psql -c {sql:?} failed");
        }
    }
    Workspace::new(
        bin,
        dir,
        // Loopback: TLS would add a handshake per new connection (BENCHMARKS.md).
        &format!("postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable"),
    )
}

fn repeat(n: usize, mut f: impl FnMut() -> Result<Sample>) -> Result<Vec<Sample>> {
    // One run first to warm the cache and the page cache; not counted.
    f()?;
    (0..n).map(|_| f()).collect()
}

fn median(samples: &[Sample]) -> Duration {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort();
    walls[walls.len() / 2]
}

fn median_rss(samples: &[Sample]) -> i64 {
    let mut rss: Vec<i64> = samples.iter().map(|s| s.max_rss_kib).collect();
    rss.sort();
    rss[rss.len() / 2]
}

fn row(label: &str, samples: &[Sample]) -> String {
    let min = samples.iter().map(|s| s.wall).min().unwrap_or_default();
    let max = samples.iter().map(|s| s.wall).max().unwrap_or_default();
    format!(
        "| {label} | {:.1} ms ({:.1}–{:.1}) | {} runs |",
        median(samples).as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        samples.len()
    )
}
