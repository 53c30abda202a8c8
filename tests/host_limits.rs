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

// Log and audit volume: a plugin that writes as much as every per-call limit allows
// must not drive the host's memory up or leave its run without a recorded outcome.

/// Peak RSS a `runbook exec` of a plugin flooding the log or the audit log may reach:
/// the caps keep 8 MiB of log and spool audit entries to disk (measured well below; the
/// bound is generous on purpose).
const VOLUME_RSS_LIMIT_KIB: i64 = 400 * 1024;

/// A workspace whose state store is on `backend`: a SQLite file, or the workspace's own
/// fresh PostgreSQL database (the plugins here use no target tables).
fn volume_workspace(backend: Backend) -> Workspace {
    let ws = Workspace::new(backend);
    let state_url = match backend {
        Backend::Sqlite => "sqlite://state.db?mode=rwc".to_string(),
        Backend::Postgres => format!("{}?sslmode=disable", ws.target_url),
    };
    let root = support::repo_root();
    let config = format!(
        "[target]\nurl = \"{}\"\n\n[state]\nurl = \"{state_url}\"\n\n[paths]\nplugins = [\"{}\", \"{}\"]\nrunbooks = [\"runbooks\"]\ncache = \"{}\"\n",
        ws.target_url,
        root.join("target/plugins").display(),
        root.join("target/test-plugins").display(),
        ws.cache_dir().display(),
    );
    std::fs::write(ws.path().join("runbook.toml"), config).unwrap();
    ws
}

/// A runbook `chatter` whose one step runs the `chatter` plugin with `input` (TOML).
fn volume_chatter_runbook(ws: &Workspace, input: &str) {
    ws.add_runbook(
        "chatter",
        &format!(
            "name = \"chatter\"\ndescription = \"floods the logs\"\n\n[[steps]]\nid = \"chatter\"\nplugin = \"chatter\"\n[steps.input]\n{input}\n"
        ),
    );
}

/// `runbook exec chatter --json`, measured; asserts it ended by itself with `code`
/// under the RSS bound, and returns the run's `status --json` and the process.
fn volume_exec(ws: &Workspace, code: i32, what: &str) -> (Value, Finished) {
    let mut cmd = ws.command();
    cmd.args(["exec", "chatter", "--json"]);
    let run = run_measured(cmd);
    let context = format!(
        "{what} on {:?}\nstdout (head):\n{}\nstderr (head):\n{}",
        ws.backend,
        run.stdout.chars().take(2000).collect::<String>(),
        run.stderr.chars().take(4000).collect::<String>()
    );
    assert!(!run.killed_as_hung, "runbook hung\n{context}");
    assert_eq!(run.code, Some(code), "{context}");
    eprintln!(
        "{what} on {:?}: peak RSS of runbook exec: {} KiB",
        ws.backend, run.peak_rss_kib
    );
    assert!(
        run.peak_rss_kib > 0 && run.peak_rss_kib < VOLUME_RSS_LIMIT_KIB,
        "peak RSS {} KiB\n{context}",
        run.peak_rss_kib
    );
    let runs = ws.json(&["runs", "--json"]);
    let run_id = runs
        .as_array()
        .and_then(|r| r.first())
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("one run: {runs}\n{context}"))
        .to_string();
    let status = ws.json(&["status", &run_id, "--json"]);
    assert_ne!(status["run"]["status"], "running", "{status}\n{context}");
    (status, run)
}

/// The audit chain verifies, and holds `at_least` entries.
fn volume_audit_intact(ws: &Workspace, at_least: u64) {
    let verify = ws.json(&["audit", "verify", "--json"]);
    assert_eq!(verify["status"], "intact", "{verify}");
    assert!(
        verify["entries"].as_u64().unwrap() >= at_least,
        "{verify} (expected at least {at_least})"
    );
}

/// The newest audit entries of the workspace's only run.
fn volume_last_audit(ws: &Workspace, status: &Value, n: usize) -> Vec<Value> {
    let run_id = status["run"]["id"].as_str().unwrap();
    let shown = ws.json(&[
        "audit",
        "show",
        "--run",
        run_id,
        "--limit",
        &n.to_string(),
        "--json",
    ]);
    shown.as_array().unwrap().clone()
}

fn volume_logs_are_capped(backend: Backend) {
    let ws = volume_workspace(backend);
    // Each line within the per-line limits (8 KiB message, 64 fields of 2 KiB): about
    // 140 KiB a line, 700 MB in all if nothing capped the step.
    volume_chatter_runbook(
        &ws,
        "log_lines = 5000\nmessage_bytes = 8192\nfields = 64\nfield_bytes = 2048\nstdout_lines = 100",
    );
    let (status, _) = volume_exec(&ws, 0, "5 000 log lines of 140 KiB");
    assert_eq!(status["run"]["status"], "succeeded", "{status}");
    let logs = status["steps"][0]["logs"].as_array().unwrap();
    let stored = status["steps"][0]["logs"].to_string().len();
    assert!(stored < 9 << 20, "{stored} bytes of log stored");
    let marker = logs.last().unwrap();
    assert_eq!(marker["stream"], "host", "{marker}");
    assert!(
        marker["message"]
            .as_str()
            .unwrap()
            .starts_with("log limit reached"),
        "{marker}"
    );
    let kept = logs.iter().filter(|l| l["stream"] == "log").count() as u64;
    let dropped: u64 = marker["fields"]["dropped_lines"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Every plugin line and the 100 stdout lines (captured after the plugin ended) are
    // either kept or counted.
    assert_eq!(kept + dropped, 5_000 + 100, "{marker}");
    assert!(
        kept > 0 && dropped > 4_900,
        "kept {kept}, dropped {dropped}"
    );
    volume_audit_intact(&ws, 2);
}

fn volume_many_short_lines(backend: Backend) {
    let ws = volume_workspace(backend);
    volume_chatter_runbook(&ws, "log_lines = 1000000");
    let (status, _) = volume_exec(&ws, 0, "a million short log lines");
    assert_eq!(status["run"]["status"], "succeeded", "{status}");
    let logs = status["steps"][0]["logs"].as_array().unwrap();
    let marker = logs.last().unwrap();
    let dropped: u64 = marker["fields"]["dropped_lines"]
        .as_str()
        .unwrap_or_else(|| panic!("a marker line: {marker}"))
        .parse()
        .unwrap();
    assert_eq!(logs.len() as u64 - 1 + dropped, 1_000_000, "{marker}");
}

fn volume_audit_entries_are_capped(backend: Backend) {
    let ws = volume_workspace(backend);
    volume_chatter_runbook(&ws, "audit_entries = 150000");
    let (status, run) = volume_exec(&ws, 1, "150 000 audit entries");
    assert_eq!(status["run"]["status"], "failed", "{status}");
    assert_eq!(status["state"], "failed", "{status}");
    let step = &status["steps"][0];
    assert_eq!(step["status"], "failed", "{step}");
    assert_eq!(step["attempts"], 1, "not retried: {step}");
    let error = step["error"].as_str().unwrap();
    assert!(
        error.contains("audit limit") && error.contains("max_audit_entries = 100000"),
        "{error}\n{}",
        run.stderr
    );
    // The 100 000 entries before the cap, the host's note and the run's own two.
    volume_audit_intact(&ws, 100_003);
    let last = volume_last_audit(&ws, &status, 3);
    let note = last
        .iter()
        .find(|e| e["action"] == "audit.limit_reached")
        .unwrap_or_else(|| panic!("{last:?}"));
    let detail: Value = serde_json::from_str(note["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["entries"], 100_000, "{detail}");
    assert_eq!(detail["max_audit_entries"], 100_000, "{detail}");
}

fn volume_audit_bytes_are_capped(backend: Backend) {
    let ws = volume_workspace(backend);
    // 64 KiB details (the most one entry keeps): the 64 MiB cap comes first.
    volume_chatter_runbook(&ws, "audit_entries = 5000\ndetail_bytes = 65536");
    let (status, _) = volume_exec(&ws, 1, "5 000 audit entries of 64 KiB");
    assert_eq!(status["run"]["status"], "failed", "{status}");
    let error = status["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains("max_audit_bytes = 67108864"), "{error}");
    volume_audit_intact(&ws, 1_000);
    let last = volume_last_audit(&ws, &status, 3);
    let note = last
        .iter()
        .find(|e| e["action"] == "audit.limit_reached")
        .unwrap_or_else(|| panic!("{last:?}"));
    let detail: Value = serde_json::from_str(note["detail"].as_str().unwrap()).unwrap();
    assert!(detail["bytes"].as_u64().unwrap() <= 64 << 20, "{detail}");
    assert!(detail["entries"].as_u64().unwrap() >= 1_000, "{detail}");
}

#[test]
fn volume_logs_are_capped_on_sqlite() {
    volume_logs_are_capped(Backend::Sqlite);
}

#[test]
fn volume_logs_are_capped_on_postgres() {
    volume_logs_are_capped(Backend::Postgres);
}

#[test]
fn volume_a_million_short_log_lines_on_sqlite() {
    volume_many_short_lines(Backend::Sqlite);
}

#[test]
fn volume_audit_entries_are_capped_on_sqlite() {
    volume_audit_entries_are_capped(Backend::Sqlite);
}

#[test]
fn volume_audit_entries_are_capped_on_postgres() {
    volume_audit_entries_are_capped(Backend::Postgres);
}

#[test]
fn volume_audit_bytes_are_capped_on_sqlite() {
    volume_audit_bytes_are_capped(Backend::Sqlite);
}

#[test]
fn volume_audit_bytes_are_capped_on_postgres() {
    volume_audit_bytes_are_capped(Backend::Postgres);
}

/// Makes the SQLite state store refuse what `sql` (triggers) says, after it was created.
fn volume_sqlite_store_refuses(ws: &Workspace, sql: &str) {
    ws.json(&["runs", "--json"]); // creates and migrates the state store
    ws.state_execute(sql);
}

/// A store that refuses a step's logs above 100 kB, as a store with a smaller row limit
/// than the host's caps would (`string or blob too big`).
const VOLUME_REFUSE_BIG_LOGS: &str = "CREATE TRIGGER volume_refuse_big_logs \
     BEFORE UPDATE OF logs ON steps WHEN length(NEW.logs) > 100000 \
     BEGIN SELECT RAISE(ABORT, 'string or blob too big'); END";

#[test]
fn volume_an_outcome_the_sqlite_store_refuses_ends_the_run_as_failed() {
    let ws = volume_workspace(Backend::Sqlite);
    volume_sqlite_store_refuses(&ws, VOLUME_REFUSE_BIG_LOGS);
    volume_chatter_runbook(&ws, "log_lines = 200\nmessage_bytes = 8192");
    let (status, run) = volume_exec(&ws, 1, "an outcome the store refuses");
    assert!(
        run.stderr.contains("string or blob too big") && run.stderr.contains("was ended as failed"),
        "{}",
        run.stderr
    );
    assert_eq!(status["run"]["status"], "failed", "{status}");
    assert_eq!(status["state"], "failed", "{status}");
    let reason = status["run"]["error"].as_str().unwrap();
    assert!(reason.contains("string or blob too big"), "{reason}");
    let step = &status["steps"][0];
    assert_eq!(step["status"], "failed", "{step}");
    assert!(
        step["error"]
            .as_str()
            .unwrap()
            .contains("outcome could not be recorded"),
        "{step}"
    );
    // The chain holds the run's start and its closing entry, and still verifies.
    volume_audit_intact(&ws, 2);
    let last = volume_last_audit(&ws, &status, 1);
    assert_eq!(last[0]["action"], "run.finished", "{last:?}");
    assert!(
        last[0]["detail"]
            .as_str()
            .unwrap()
            .contains("\"outcome_recorded\":false"),
        "{last:?}"
    );
}

#[test]
fn volume_a_store_that_refuses_even_the_failure_leaves_the_run_interrupted() {
    let ws = volume_workspace(Backend::Sqlite);
    volume_sqlite_store_refuses(&ws, VOLUME_REFUSE_BIG_LOGS);
    ws.state_execute(
        "CREATE TRIGGER volume_refuse_run_end BEFORE UPDATE OF status ON runs \
         WHEN NEW.status <> 'running' \
         BEGIN SELECT RAISE(ABORT, 'this store ends no run'); END",
    );
    volume_chatter_runbook(&ws, "log_lines = 200\nmessage_bytes = 8192");
    let mut cmd = ws.command();
    cmd.args(["exec", "chatter", "--json"]);
    let run = run_measured(cmd);
    assert!(!run.killed_as_hung, "{}", run.stderr);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("could not be ended as failed either")
            && run.stderr.contains("this store ends no run")
            && run.stderr.contains("shows as interrupted"),
        "{}",
        run.stderr
    );
    let runs = ws.json(&["runs", "--json"]);
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    let status = ws.json(&["status", &run_id, "--json"]);
    // Its lease was released: no process vouches for it, so `resume` may take it over.
    assert_eq!(status["state"], "interrupted", "{status}");
}

#[test]
fn volume_an_outcome_postgres_refuses_ends_the_run_as_failed() {
    // A real refusal: PostgreSQL stores no NUL character in text, and the plugin's
    // failure message has one.
    let ws = volume_workspace(Backend::Postgres);
    volume_chatter_runbook(&ws, "log_lines = 10\nfail_with = \"bad\\u0000byte\"");
    let (status, run) = volume_exec(&ws, 1, "an outcome PostgreSQL refuses");
    assert!(run.stderr.contains("was ended as failed"), "{}", run.stderr);
    assert_eq!(status["run"]["status"], "failed", "{status}");
    assert_eq!(status["state"], "failed", "{status}");
    assert!(
        status["run"]["error"].as_str().unwrap().contains("0x00"),
        "{status}"
    );
    assert_eq!(status["steps"][0]["status"], "failed", "{status}");
    volume_audit_intact(&ws, 2);
}
