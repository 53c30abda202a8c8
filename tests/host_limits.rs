//! The engine's own limits hold against hostile plugins: a granted statement that never
//! ends is stopped in the database at the step's deadline, the step is recorded as timed
//! out, the process exits by itself with the documented code, nothing keeps running on
//! the server, and the process's peak memory stays bounded. Every test runs the real
//! `runbook` binary and measures its peak RSS with `wait4`. A plugin that tries to make
//! the host buffer an endless result, a giant statement or a giant parameter is refused
//! at the size caps, recorded, and leaves peak RSS bounded.

mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::{Backend, PG_ADMIN_URL, Workspace, block_on};

/// A process that has not exited by then is hung: it is killed and the test fails. Far
/// above anything the tests wait for; no assertion depends on it.
const HANG_LIMIT: Duration = Duration::from_secs(120);

/// Peak RSS a `runbook exec` of one small plugin may reach (measured: about 40 MiB on
/// either backend; the bound is generous on purpose).
const PEAK_RSS_LIMIT_KIB: i64 = 256 * 1024;

/// How `runbook` ended, as `wait4` reports it.
struct Finished {
    /// `None`: killed by a signal (by the hang guard, say).
    code: Option<i32>,
    killed_as_hung: bool,
    stdout: String,
    stderr: String,
    peak_rss_kib: i64,
}

/// Runs `cmd` to its end and reads its peak RSS (`ru_maxrss`, KiB on Linux) from
/// `wait4`, which reaps it. A process still running after [`HANG_LIMIT`] is killed.
fn run_measured(mut cmd: Command) -> Finished {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runbook starts");
    reap(child)
}

/// Waits for `child` with `wait4` (std's `Child` is never waited on after this).
fn reap(mut child: Child) -> Finished {
    let pid = child.id() as libc::pid_t;
    let readers = [
        drain(child.stdout.take().unwrap()),
        drain(child.stderr.take().unwrap()),
    ];
    let (done, finished) = mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if finished.recv_timeout(HANG_LIMIT).is_err() {
            // SAFETY: `pid` is our child, not reaped yet (the main thread is in wait4).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    let mut status: libc::c_int = 0;
    // SAFETY: plain syscall on our own child; both out-pointers are valid for writes.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let _ = done.send(());
    let killed_as_hung = guard.join().unwrap();
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    Finished {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        killed_as_hung,
        stdout,
        stderr,
        peak_rss_kib: usage.ru_maxrss,
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// A runbook whose one step runs the `forever` plugin with a short timeout, and a second
/// step that must never run.
fn forever_runbook(ws: &Workspace) {
    ws.add_runbook(
        "forever",
        r#"name = "forever"
description = "a granted statement that never ends"

[[steps]]
id = "endless"
plugin = "forever"
timeout = "700ms"
grants.db.select = ["organizations"]

[[steps]]
id = "after"
plugin = "probe"
grants.db.select = ["organizations"]
[steps.input]
statements = []
"#,
    );
}

/// Statements of the test's database still running on the server, other than this query.
fn active_statements(database: &str) -> Vec<String> {
    let database = database.to_string();
    block_on(async move {
        let pool = sqlx::PgPool::connect(PG_ADMIN_URL).await.unwrap();
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT query FROM pg_stat_activity \
             WHERE datname = $1 AND state <> 'idle' AND pid <> pg_backend_pid()",
        )
        .bind(database)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    })
}

fn check_endless_statement_is_stopped(backend: Backend) {
    let ws = Workspace::new(backend);
    forever_runbook(&ws);
    for dry_run in [false, true] {
        check_one_run(&ws, dry_run);
    }
}

/// One `runbook exec forever` (a dry run shares one transaction between its steps, with
/// a savepoint per step: the other path a stopped statement takes).
fn check_one_run(ws: &Workspace, dry_run: bool) {
    let backend = ws.backend;
    let mut cmd = ws.command();
    cmd.args(["exec", "forever", "--json"]);
    if dry_run {
        cmd.arg("--dry-run");
    }
    let run = run_measured(cmd);
    let context = format!(
        "dry run: {dry_run}\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );

    assert!(
        !run.killed_as_hung,
        "runbook hung and was killed\n{context}"
    );
    assert_eq!(run.code, Some(1), "a failed run exits 1\n{context}");
    assert!(
        run.peak_rss_kib > 0 && run.peak_rss_kib < PEAK_RSS_LIMIT_KIB,
        "peak RSS {} KiB\n{context}",
        run.peak_rss_kib
    );
    eprintln!(
        "{backend:?} (dry run: {dry_run}): peak RSS of runbook exec: {} KiB",
        run.peak_rss_kib
    );

    let report: Value = serde_json::from_str(&run.stdout).expect(&context);
    let run_id = report["run_id"].as_str().expect(&context).to_string();
    let status = ws.json(&["status", &run_id, "--json"]);
    assert_eq!(status["run"]["status"], "failed", "{status}");
    assert_eq!(status["state"], "failed", "not left running: {status}");
    let steps = status["steps"].as_array().unwrap();
    assert_eq!(
        steps.len(),
        1,
        "the step after the timeout never ran: {status}"
    );
    let step = &steps[0];
    assert_eq!(step["status"], "failed", "{step}");
    let error = step["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("exceeded its time limit of 700 ms"),
        "recorded as a timeout: {step}"
    );
    // The database stopped the statement (the runtime's backstop did not just walk away).
    let logs = step["logs"].to_string();
    assert!(
        logs.contains("the statement was stopped"),
        "the statement was stopped at the deadline: {step}"
    );
    let journaled = status["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["interface"] == "db")
        .unwrap_or_else(|| panic!("the statement is journaled: {status}"));
    assert_eq!(journaled["ok"], false, "{journaled}");
    assert!(
        journaled["error"].to_string().contains("deadline"),
        "{journaled}"
    );

    if backend == Backend::Postgres {
        let database = ws.target_url.rsplit('/').next().unwrap().to_string();
        // The server may take a moment to retire a closed connection's backend; the
        // statement itself was cancelled before runbook exited.
        let mut still = active_statements(&database);
        for _ in 0..100 {
            if still.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            still = active_statements(&database);
        }
        assert!(still.is_empty(), "still running on the server: {still:?}");
    }
}

#[test]
fn an_endless_statement_on_sqlite_ends_the_step_as_timed_out() {
    check_endless_statement_is_stopped(Backend::Sqlite);
}

#[test]
fn an_endless_statement_on_postgres_is_cancelled_on_the_server() {
    check_endless_statement_is_stopped(Backend::Postgres);
}

/// Peak RSS allowed while a plugin with 64 MiB of memory tries to make the host buffer
/// gigabytes (an endless result) or tens of MB (a giant statement or parameter).
const BLOAT_RSS_LIMIT_KIB: i64 = 400 * 1024;

/// Each way the `bloat` plugin tries to make the host buffer too much, and the cap that
/// must refuse it.
const BLOAT_MODES: [(&str, &str); 4] = [
    ("rows", "max_result_rows"),
    ("bytes", "max_result_bytes"),
    ("statement", "max_statement_bytes"),
    ("param", "max_param_bytes"),
];

fn check_bloat_is_refused(backend: Backend) {
    let ws = Workspace::new(backend);
    for (mode, cap) in BLOAT_MODES {
        ws.add_runbook(
            &format!("bloat-{mode}"),
            &format!(
                r#"name = "bloat-{mode}"
description = "a plugin that tries to make the host buffer too much"

[[steps]]
id = "bloat"
plugin = "bloat"
memory_mb = 64
timeout = "60s"
grants.db.select = ["organizations"]
[steps.input]
mode = "{mode}"
"#
            ),
        );
        let mut cmd = ws.command();
        cmd.args(["exec", &format!("bloat-{mode}"), "--json"]);
        let run = run_measured(cmd);
        let context = format!(
            "{backend:?} {mode}\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        assert!(!run.killed_as_hung, "runbook hung\n{context}");
        assert_eq!(run.code, Some(1), "a failed run exits 1\n{context}");
        eprintln!(
            "{backend:?} bloat {mode}: peak RSS of runbook exec: {} KiB",
            run.peak_rss_kib
        );
        assert!(
            run.peak_rss_kib > 0 && run.peak_rss_kib < BLOAT_RSS_LIMIT_KIB,
            "peak RSS {} KiB\n{context}",
            run.peak_rss_kib
        );
        let report: Value = serde_json::from_str(&run.stdout).expect(&context);
        let run_id = report["run_id"].as_str().expect(&context).to_string();
        let status = ws.json(&["status", &run_id, "--json"]);
        assert_eq!(status["run"]["status"], "failed", "{status}");
        let step = &status["steps"][0];
        assert_eq!(step["status"], "failed", "{step}");
        // The plugin saw the refusal as `invalid`, naming the cap.
        let error = step["error"].as_str().unwrap_or_default();
        assert!(error.contains("invalid") && error.contains(cap), "{step}");
        let call = status["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["interface"] == "db")
            .unwrap_or_else(|| panic!("the refused call is journaled: {status}"));
        assert_eq!(call["ok"], false, "{call}");
        assert!(call["error"].to_string().contains(cap), "{call}");
    }
}

#[test]
fn a_plugin_cannot_make_the_host_buffer_huge_results_or_requests_on_sqlite() {
    check_bloat_is_refused(Backend::Sqlite);
}

#[test]
fn a_plugin_cannot_make_the_host_buffer_huge_results_or_requests_on_postgres() {
    check_bloat_is_refused(Backend::Postgres);
}
