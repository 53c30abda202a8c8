//! The command line contract: exit codes, diagnostics with file:line:column and a caret,
//! JSON output, and refusal of bad input without running anything.

mod support;

use serde_json::Value;
use support::{Backend, Workspace, assert_success, stderr, stdout};

#[test]
fn help_documents_the_exit_codes() {
    let ws = Workspace::new(Backend::Sqlite);
    let out = ws.run(&["--help"]);
    assert_success(&out);
    let help = stdout(&out);
    for line in [
        "0  success",
        "1  a step failed",
        "2  invalid input or configuration",
    ] {
        assert!(help.contains(line), "{help}");
    }
    assert!(stdout(&ws.run(&["exec", "--help"])).contains("2  invalid input"));
}

#[test]
fn shipped_runbooks_validate() {
    let ws = Workspace::new(Backend::Sqlite);
    ws.write_config("[groups]\nbilling-leads = [\"lee\"]\n");
    // --offline: the files only, not this host's secrets (there is no Stripe key here).
    let out = ws.run(&["validate", "--offline", "--json"]);
    assert_success(&out);
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<String> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for expected in [
        "billing-report.toml",
        "quota-reset.toml",
        "webhook-failure.toml",
    ] {
        assert!(names.contains(&expected.to_string()), "{names:?}");
    }
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["valid"] == true),
        "{results}"
    );
}

const MALFORMED: &str = r#"name = "broken"
description = "three mistakes at once"
colour = "blue"

[[steps]]
id = "first"
plugin = "no-such-plugin"

[[steps]]
id = "second"
plugin = "probe"
grants.db.select = ["organizations"]
[steps.input]
statements = "{{ steps.third.output }}"

[[steps]]
id = "third"
plugin = "probe"
grants.db.select = ["organizations"]
"#;

#[test]
fn a_malformed_runbook_reports_every_error_with_line_and_column_and_exits_2() {
    let ws = Workspace::new(Backend::Sqlite);
    let path = ws.add_runbook("broken", MALFORMED);
    let out = ws.run(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("broken.toml:3:1"),
        "unknown key `colour` at 3:1:\n{err}"
    );
    assert!(
        err.contains("broken.toml:7:10"),
        "unknown plugin at 7:10:\n{err}"
    );
    assert!(
        err.contains("broken.toml:14:14"),
        "later step reference at 14:14:\n{err}"
    );
    assert!(
        err.contains('^') || err.contains('─'),
        "a caret or underline:\n{err}"
    );
    assert!(!err.contains('\u{1b}'), "no colour when not on a terminal");

    let out = ws.run(&["validate", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = results[0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{errors:?}");
    let positions: Vec<(i64, i64)> = errors
        .iter()
        .map(|e| (e["line"].as_i64().unwrap(), e["column"].as_i64().unwrap()))
        .collect();
    assert_eq!(positions, vec![(3, 1), (7, 10), (14, 14)]);

    // exec refuses it too, and nothing runs.
    let out = ws.run(&["exec", "broken"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(ws.json(&["runs", "--json"]).as_array().unwrap().len(), 0);
}

#[test]
fn a_toml_syntax_error_points_at_its_line() {
    let ws = Workspace::new(Backend::Sqlite);
    let path = ws.add_runbook(
        "syntax",
        "name = \"syntax\"\ndescription = \"x\"\n[[steps]\nid = 1\n",
    );
    let out = ws.run(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("syntax.toml:3:"), "{}", stderr(&out));
}

#[test]
fn bad_invocations_exit_2_without_running() {
    let ws = Workspace::new(Backend::Sqlite);
    let out = ws.run(&["exec", "no-such-runbook"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no runbook named `no-such-runbook`"));

    let out = ws.run(&["exec", "quota-reset", "--param", "nonsense=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`nonsense` is not a parameter"),
        "{}",
        stderr(&out)
    );

    std::fs::write(ws.path().join("runbook.toml"), "[target]\nurl = 5\n").unwrap();
    let out = ws.run(&["runs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("runbook.toml"), "{}", stderr(&out));
    assert_eq!(ws.run(&["no-such-command"]).status.code(), Some(2));
}

/// `runbook … | head -1`: the reader goes away before the command is done. Every printing
/// command must end as it would have (same exit code, no panic), and a run it started
/// must be recorded as if its output had been read.
#[test]
fn a_closed_stdout_ends_no_command_early_and_changes_no_exit_code() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    let closed_stdout = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = ws.command().args(args).stdout(writer).output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        out.status.code()
    };
    let report = ["exec", "billing-report", "--param", "as_of=2026-11"];
    assert_eq!(closed_stdout(&report), Some(0));
    assert_eq!(closed_stdout(&[&report[..], &["--json"]].concat()), Some(0));
    let runs = ws.json(&["runs", "--json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    let run_id = runs[0]["id"].as_str().unwrap();
    for args in [
        &["list"][..],
        &["show", "billing-report"],
        &["validate"],
        &["plugins"],
        &["runs"],
        &["status", run_id],
        &["status", run_id, "--json"],
        &["audit", "show"],
        &["audit", "verify"],
        &["--help"],
        &["show", "no-such-runbook"],
    ] {
        let read = ws.run(args);
        assert!(
            !stdout(&read).is_empty() || !stderr(&read).is_empty(),
            "{args:?}"
        );
        assert_eq!(closed_stdout(args), read.status.code(), "{args:?}");
    }
}

#[test]
fn an_unknown_run_is_an_error_for_status_and_audit_show() {
    let ws = Workspace::new(Backend::Sqlite);
    for args in [
        &["status", "0000000000000000"][..],
        &["audit", "show", "--run", "0000000000000000"],
        &["audit", "show", "--run", "0000000000000000", "--json"],
    ] {
        let out = ws.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no run `0000000000000000`"),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
}

/// A mistyped SQLite path must not become a new, empty database: commands refuse with
/// exit 2 naming the path and what creates it, and create nothing.
#[test]
fn a_missing_sqlite_target_or_state_store_is_reported_not_created() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    let config = std::fs::read_to_string(ws.path().join("runbook.toml")).unwrap();
    let with = |target: &str, state: &str| {
        let text = config
            .replace(&ws.target_url, target)
            .replace("sqlite://state.db?mode=rwc", state);
        std::fs::write(ws.path().join("runbook.toml"), text).unwrap();
    };
    for (target, state, missing, args) in [
        (
            "sqlite://targt.db",
            "sqlite://state.db",
            "targt.db",
            &["exec", "billing-report"][..],
        ),
        (
            "sqlite://no-such-dir/target.db",
            "sqlite://state.db",
            "no-such-dir",
            &["exec", "billing-report"],
        ),
        (
            ws.target_url.as_str(),
            "sqlite://stat.db",
            "stat.db",
            &["runs"],
        ),
        (
            ws.target_url.as_str(),
            "sqlite://stat.db",
            "stat.db",
            &["exec", "billing-report"],
        ),
    ] {
        with(target, state);
        let out = ws.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{target} {state}: {err}");
        assert!(
            err.contains(missing) && err.contains("does not exist"),
            "{err}"
        );
        assert!(err.contains("runbook db init"), "{err}");
        assert!(!ws.path().join(missing).exists(), "{missing} was created");
    }
    // `db init` creates both on purpose; then they are used.
    with("sqlite://fresh.db", "sqlite://fresh-state.db");
    assert_success(
        &ws.run(&[
            "db",
            "init",
            "--schema",
            support::repo_root()
                .join("runbooks/schema")
                .to_str()
                .unwrap(),
        ]),
    );
    assert!(ws.path().join("fresh.db").exists() && ws.path().join("fresh-state.db").exists());
    assert_success(&ws.run(&["runs"]));
}

/// `validate` checks what `exec` would refuse on this host before its first step: an
/// approver group runbook.toml does not define, a Stripe write without a key.
#[test]
fn validate_reports_what_exec_would_refuse_on_this_host() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    let out = ws.run(&["validate", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors_of = |name: &str| -> Vec<String> {
        let entry = results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name}: {results}"));
        entry["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    };
    let refund = errors_of("refund-and-downgrade.toml");
    assert!(
        refund
            .iter()
            .any(|e| e.contains("approver group `billing-leads`")),
        "{refund:?}"
    );
    assert!(
        refund.iter().any(|e| e.contains("STRIPE_API_KEY")),
        "{refund:?}"
    );
    // Reads only (and no undefined group): fine without a key.
    assert!(errors_of("webhook-failure.toml").is_empty(), "{results}");
    // exec refuses the same before its first step, with the same words.
    let (code, _, out) = ws.exec("issue-refund", &["organization_id=2", "amount=1500"]);
    assert_eq!(code, 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("STRIPE_API_KEY"), "{}", stderr(&out));
    assert_eq!(ws.json(&["runs", "--json"]).as_array().unwrap().len(), 0);
}

/// The audit log names a person for every act: a blank or control-character operator
/// name is refused before anything runs, and with no name at all the OS login is used.
#[test]
fn the_operator_is_never_blank() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    let report = ["exec", "billing-report", "--json"];
    for name in ["", "   ", "alice\nbob"] {
        let out = ws.run(&[&report[..], &["--as", name]].concat());
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("operator name"), "{}", stderr(&out));
    }
    let out = ws
        .command()
        .env_remove("RUNBOOK_OPERATOR")
        .env("USER", "carol")
        .args(report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ws.json(&["runs", "--json"])[0]["operator"], "carol");
    // No name in the environment at all (as in many containers): the account database.
    let out = ws
        .command()
        .env_remove("RUNBOOK_OPERATOR")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .args(report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let runs = ws.json(&["runs", "--json"]);
    let operator = runs[0]["operator"].as_str().unwrap();
    assert!(
        !operator.trim().is_empty() && operator != "unknown",
        "{runs}"
    );
    assert_eq!(runs.as_array().unwrap().len(), 2);
}

/// Run ids are long: any unique prefix of 8+ characters works, `last` and
/// `last:<runbook>` name the newest runs, and a shorter prefix is said to be too short.
#[test]
fn runs_are_named_by_prefix_last_or_last_of_a_runbook() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    let (code, first, _) = ws.exec("billing-report", &["as_of=2026-11"]);
    assert_eq!(code, 0);
    let (code, second, _) = ws.exec("quota-reset", &["dimension=api_calls"]);
    assert_eq!(code, 0, "{second}");
    let first = first["run_id"].as_str().unwrap();
    let second = second["run_id"].as_str().unwrap();
    let id_of = |reference: &str| {
        ws.json(&["status", reference, "--json"])["run"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(id_of("last"), second);
    assert_eq!(id_of("last:billing-report"), first);
    assert_eq!(id_of(&first[..12]), first);
    let out = ws.run(&["status", &first[..4]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("at least 8 characters"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["status", "last:no-such-runbook"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no run"), "{}", stderr(&out));
}

/// Like cargo and git: the nearest runbook.toml in this folder or a parent is used, and
/// RUNBOOK_CONFIG names one explicitly.
#[test]
fn the_config_is_found_in_a_parent_folder_or_named_by_runbook_config() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    let deeper = ws.path().join("a/b");
    std::fs::create_dir_all(&deeper).unwrap();
    let out = ws
        .command()
        .current_dir(&deeper)
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert_success(&out);
    let names = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(names.contains("billing-report"), "{names}");
    // From elsewhere, by the environment variable; its relative paths resolve against it.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = ws
        .command()
        .current_dir(elsewhere.path())
        .env("RUNBOOK_CONFIG", ws.path().join("runbook.toml"))
        .args(["exec", "billing-report", "--json"])
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(ws.json(&["runs", "--json"]).as_array().unwrap().len(), 1);
}

/// `runs` filters by what an operator remembers of a run, under a header row.
#[test]
fn runs_are_filtered_by_runbook_status_operator_time_and_parameter() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    assert_eq!(ws.exec("billing-report", &["as_of=2026-11"]).0, 0);
    assert_eq!(ws.exec("billing-report", &["as_of=2026-10"]).0, 0);
    assert_eq!(ws.exec("quota-reset", &["dimension=api_calls"]).0, 0);
    let count = |args: &[&str]| {
        ws.json(&[&["runs", "--json"][..], args].concat())
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&[]), 3);
    assert_eq!(count(&["--runbook", "billing-report"]), 2);
    assert_eq!(count(&["-p", "as_of=2026-10"]), 1);
    assert_eq!(count(&["--status", "succeeded"]), 3);
    assert_eq!(count(&["--status", "failed", "--status", "interrupted"]), 0);
    assert_eq!(count(&["--operator", "test-operator", "--since", "1h"]), 3);
    assert_eq!(count(&["--since", "2999-01-01"]), 0);
    let out = ws.run(&["runs", "--status", "done"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("awaiting-approval"),
        "{}",
        stderr(&out)
    );
    let table = stdout(&ws.run(&["runs", "--runbook", "quota-reset"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("RUN") && lines[0].contains("OPERATOR"),
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
}

/// `show` tells what a reviewer needs of each step: an approval gate as a gate (who, how
/// many, what a timeout does), a rollback with its plugin and grants; counts read right.
#[test]
fn show_prints_approval_gates_and_rollbacks() {
    let ws = Workspace::new(Backend::Sqlite);
    let text = stdout(&ws.run(&["show", "refund-and-downgrade"]));
    assert!(
        text.contains("approve (Approve the refund and downgrade) approval gate"),
        "{text}"
    );
    assert!(
        text.contains("approvers: 1 of group:billing-leads"),
        "{text}"
    );
    assert!(
        text.contains("rollback: plugin refund-compensate"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.trim_end().ends_with("plugin")),
        "{text}"
    );
    let list = stdout(&ws.run(&["list"]));
    assert!(
        list.contains("(1 step)") || list.contains(" steps)"),
        "{list}"
    );
    assert!(!list.contains("(1 steps)"), "{list}");
}

/// A mistyped or repeated `-p` is refused with what can be given.
#[test]
fn parameter_mistakes_say_what_can_be_given() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    let out = ws.run(&[
        "exec",
        "issue-refund",
        "-p",
        "organization=2",
        "-p",
        "amount=1",
        "-p",
        "amount=2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("did you mean `organization_id`?"), "{err}");
    assert!(err.contains("--param amount is given twice"), "{err}");
    assert!(err.contains("organization_id: Integer (required)"), "{err}");
    assert!(!err.contains("\\n"), "one line each: {err}");
    assert_eq!(ws.json(&["runs", "--json"]).as_array().unwrap().len(), 0);
}

/// A state store that cannot record a new run is a setup problem and nothing ran: exit 2.
#[test]
fn a_state_store_that_cannot_record_the_run_is_exit_2() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    assert_success(&ws.run(&["runs"]));
    ws.state_execute(
        "CREATE TRIGGER refuse_runs BEFORE INSERT ON runs \
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    );
    let out = ws.run(&["exec", "billing-report"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot record a new run"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("disk is full"), "{}", stderr(&out));
}

/// The completion scripts and the manual page are generated from the command definition:
/// bash completes a subcommand for real, every shell gets a script, and the page has the
/// usual sections and the exit codes.
#[test]
fn completions_and_the_manual_page_come_from_the_command_definition() {
    let ws = Workspace::new(Backend::Sqlite);
    let script = |shell: &str| {
        let out = ws.run(&["completions", shell]);
        assert_success(&out);
        stdout(&out)
    };
    let bash = script("bash");
    for command in [
        "init",
        "exec",
        "approve",
        "resume",
        "status",
        "completions",
        "man",
    ] {
        assert!(bash.contains(command), "bash script lacks `{command}`");
    }
    // What the shell offers after `runbook ex<TAB>` and `runbook exec --dr<TAB>`.
    let complete = |words: &str| {
        let file = ws.path().join("runbook.bash");
        std::fs::write(&file, &bash).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; \
                 _runbook runbook \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                file.display()
            ))
            .output()
            .unwrap();
        assert_success(&out);
        stdout(&out)
    };
    assert_eq!(complete("runbook ex").trim(), "exec");
    assert_eq!(complete("runbook exec --dr").trim(), "--dry-run");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(script(shell).contains("exec"), "{shell}");
    }
    let out = ws.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));

    let out = ws.run(&["man"]);
    assert_success(&out);
    let page = stdout(&out);
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH SUBCOMMANDS",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
    ] {
        assert!(page.contains(section), "no {section}:\n{page}");
    }
    for exit_code in [
        "success",
        "a step failed",
        "invalid input or configuration",
        "paused",
    ] {
        assert!(
            page.contains(exit_code),
            "no exit code `{exit_code}`:\n{page}"
        );
    }
    assert!(page.contains("RUNBOOK_OPERATOR"), "{page}");
}

/// `runbook init` in an empty folder gives a workspace `validate` accepts, with a plugin
/// and a runbook dropped in; a second init changes nothing and says why (exit 2).
#[test]
fn init_writes_a_starter_workspace_and_never_overwrites_its_config() {
    let ws = Workspace::new(Backend::Sqlite);
    let empty = tempfile::tempdir().unwrap();
    let in_dir = |args: &[&str]| {
        ws.command()
            .current_dir(empty.path())
            .env_remove("RUNBOOK_CONFIG")
            .args(args)
            .output()
            .unwrap()
    };
    let out = in_dir(&["init"]);
    assert_success(&out);
    let config = empty.path().join("runbook.toml");
    let written = std::fs::read(&config).unwrap();
    assert!(stdout(&out).contains("runbook.toml"), "{}", stdout(&out));
    for folder in ["runbooks", "plugins"] {
        assert!(empty.path().join(folder).is_dir(), "{folder}");
    }
    let out = in_dir(&["validate"]);
    assert_success(&out);

    // The folders it named are the ones used: a plugin and its runbook put there validate.
    let plugins = support::repo_root().join("target/plugins");
    for file in [
        "quota-reset.wasm",
        "quota-reset.toml",
        "quota-verify.wasm",
        "quota-verify.toml",
    ] {
        std::fs::copy(plugins.join(file), empty.path().join("plugins").join(file)).unwrap();
    }
    std::fs::copy(
        support::repo_root().join("runbooks/quota-reset.toml"),
        empty.path().join("runbooks/quota-reset.toml"),
    )
    .unwrap();
    let out = in_dir(&["validate", "--json"]);
    assert_success(&out);
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.as_array().map(Vec::len), Some(1), "{results}");
    assert_eq!(results[0]["valid"], true, "{results}");

    let out = in_dir(&["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&config).unwrap(), written);

    std::fs::write(&config, "# edited\n").unwrap();
    let out = in_dir(&["init", "--force", "--json"]);
    assert_success(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["created"], serde_json::json!([]), "{report}");
    assert_eq!(std::fs::read(&config).unwrap(), written);

    let out = in_dir(&["init", "--dir", "ops/billing"]);
    assert_success(&out);
    assert!(empty.path().join("ops/billing/runbooks").is_dir());
    assert_eq!(
        std::fs::read(empty.path().join("ops/billing/runbook.toml")).unwrap(),
        written
    );
}

/// A run id with a typo, a mistyped prefix or a `last:` with a mistyped runbook gets the
/// run it probably meant, from every command that takes a run (exit 2, nothing done).
#[test]
fn a_mistyped_run_id_gets_a_did_you_mean() {
    let ws = Workspace::with_demo(Backend::Sqlite);
    let (code, report, _) = ws.exec("billing-report", &["as_of=2026-11"]);
    assert_eq!(code, 0, "{report}");
    let id = report["run_id"].as_str().unwrap().to_string();
    let changed = |text: &str| {
        let (head, last) = text.split_at(text.len() - 1);
        format!("{head}{}", if last == "0" { "1" } else { "0" })
    };
    let typo = changed(&id);
    let prefix = changed(&id[..10]);
    for reference in [&typo, &prefix] {
        for args in [
            &["status", reference][..],
            &["approve", reference],
            &["resume", reference],
            &["rollback", reference, "--yes"],
            &["audit", "show", "--run", reference],
        ] {
            let out = ws.run(args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains(&format!("no run `{reference}`")),
                "{args:?}: {err}"
            );
            assert!(
                err.contains(&format!("did you mean `{id}`?")),
                "{args:?}: {err}"
            );
        }
    }
    let out = ws.run(&["status", "last:biling-report"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `last:billing-report`?"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["status", "ffffffff-ffff"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("did you mean"), "{}", stderr(&out));
    assert_eq!(
        ws.json(&["runs", "--json"]).as_array().map(Vec::len),
        Some(1)
    );
}

/// Mistyped names: clap suggests subcommands, and every command that takes a runbook
/// name suggests the runbook.
#[test]
fn mistyped_subcommands_and_runbook_names_get_a_did_you_mean() {
    let ws = Workspace::new(Backend::Sqlite);
    let out = ws.run(&["exce", "billing-report"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'exec'"), "{}", stderr(&out));
    for args in [
        &["exec", "biling-report"][..],
        &["show", "biling-report"],
        &["grants", "biling-report"],
    ] {
        let out = ws.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("did you mean `billing-report`?"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // A filter that matches nothing is an answer, with a hint when the name is unknown.
    let ws = Workspace::with_demo(Backend::Sqlite);
    let out = ws.run(&["runs", "--runbook", "biling-report"]);
    assert_success(&out);
    assert!(
        stderr(&out).contains("did you mean `billing-report`?"),
        "{}",
        stderr(&out)
    );
}

/// `runbook plugins` prints a `needs:` line only for what a manifest names: none for a
/// plugin that needs nothing but audit and log, none for a list the step's grant fills in.
#[test]
fn plugins_lists_no_empty_needs() {
    let ws = Workspace::new(Backend::Sqlite);
    // The shipped plugins only: some test plugins are refused on purpose (exit 1).
    let plugins = support::repo_root().join("target/plugins");
    std::fs::write(
        ws.path().join("runbook.toml"),
        format!("[paths]\nplugins = [{:?}]\n", plugins.display().to_string()),
    )
    .unwrap();
    let out = ws.run(&["plugins"]);
    assert_success(&out);
    let listing = stdout(&out);
    let block = |name: &str| -> Vec<String> {
        listing
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{name} ")))
            .enumerate()
            .take_while(|(i, l)| *i == 0 || l.starts_with(' '))
            .map(|(_, l)| l.to_string())
            .collect()
    };
    for line in listing.lines() {
        assert!(!line.trim_end().ends_with(':'), "an empty line: {line:?}");
    }
    let report = block("incident-report");
    assert!(!report.is_empty(), "{listing}");
    assert!(!report.iter().any(|l| l.contains("needs:")), "{report:?}");
    let replay = block("webhook-replay");
    assert!(
        replay
            .iter()
            .any(|l| l.contains("imports:") && l.contains("webhook")),
        "{replay:?}"
    );
    assert!(
        !replay.iter().any(|l| l.contains("needs:   webhook")),
        "{replay:?}"
    );
    assert!(
        replay.iter().any(|l| l.contains("needs:   db")),
        "{replay:?}"
    );
}
