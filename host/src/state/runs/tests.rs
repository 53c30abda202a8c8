//! Tests of run rows: statuses, the lifecycle of a run as its listing and detail show it,
//! and run-id prefixes.

use serde_json::json;

use super::*;
use crate::state::testutil::{
    RUN_A, RUN_B, RUN_B2, audit, log, new_run, on_all_backends, step_start, t,
};
use crate::state::{AuditVerification, StepOutcome, StepStatus};

#[test]
fn statuses_round_trip_as_lowercase() {
    for s in [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed] {
        assert_eq!(s.to_string().parse::<RunStatus>().unwrap(), s);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{}\"", s.as_str())
        );
    }
    for s in [
        StepStatus::Running,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
    ] {
        assert_eq!(s.to_string().parse::<StepStatus>().unwrap(), s);
    }
    assert_eq!(StepStatus::Skipped.to_string(), "skipped");
    assert_eq!(
        serde_json::to_string(&RunStatus::Succeeded).unwrap(),
        "\"succeeded\""
    );
    assert!(matches!(
        "Running".parse::<RunStatus>(),
        Err(StateError::InvalidStatus { kind: "run", .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_lifecycle_round_trip() {
    on_all_backends(|_, url| async move {
        let store = StateStore::open(&url).await.unwrap();
        let run_a = new_run(RUN_A, "2025-06-01T10:00:00.000000Z");
        store.create_run(&run_a).await.unwrap();
        assert!(matches!(
            store.create_run(&run_a).await,
            Err(StateError::RunExists(id)) if id == RUN_A
        ));

        store
            .start_step(RUN_A, &step_start(0, "lookup"))
            .await
            .unwrap();
        assert!(matches!(
            store.start_step(RUN_A, &step_start(0, "lookup")).await,
            Err(StateError::StepExists { index: 0, .. })
        ));
        let outcome0 = StepOutcome {
            status: StepStatus::Succeeded,
            output: Some(json!({"charges": ["ch_1", "ch_2"]})),
            error: None,
            logs: vec![log("found 2 charges"), log("done")],
            finished_at: t("2025-06-01T10:00:02.250000Z"),
            duration_ms: 1249,
        };
        store
            .finish_step(
                RUN_A,
                0,
                &outcome0,
                &[audit(RUN_A, "one"), audit(RUN_A, "two")],
            )
            .await
            .unwrap();
        // A second outcome for the same step is refused, and appends nothing.
        assert!(matches!(
            store
                .finish_step(RUN_A, 0, &outcome0, &[audit(RUN_A, "x")])
                .await,
            Err(StateError::StepNotRunning {
                index: 0,
                status: StepStatus::Succeeded,
                ..
            })
        ));

        store
            .start_step(RUN_A, &step_start(1, "refund"))
            .await
            .unwrap();
        let outcome1 = StepOutcome {
            status: StepStatus::Failed,
            output: None,
            error: Some("card_declined".to_owned()),
            logs: vec![],
            finished_at: t("2025-06-01T10:00:03.000000Z"),
            duration_ms: 998,
        };
        store.finish_step(RUN_A, 1, &outcome1, &[]).await.unwrap();
        store
            .start_step(RUN_A, &step_start(2, "notify"))
            .await
            .unwrap();
        let outcome2 = StepOutcome {
            status: StepStatus::Skipped,
            output: Some(Value::Null),
            error: None,
            logs: vec![],
            finished_at: t("2025-06-01T10:00:03.000000Z"),
            duration_ms: 0,
        };
        store.finish_step(RUN_A, 2, &outcome2, &[]).await.unwrap();

        let before = Utc::now();
        store
            .finish_run(RUN_A, RunStatus::Failed, Some("step refund failed"))
            .await
            .unwrap();
        assert!(matches!(
            store.finish_run(RUN_A, RunStatus::Succeeded, None).await,
            Err(StateError::RunNotRunning {
                status: RunStatus::Failed,
                ..
            })
        ));
        assert!(matches!(
            store.start_step(RUN_A, &step_start(3, "late")).await,
            Err(StateError::RunNotRunning {
                status: RunStatus::Failed,
                ..
            })
        ));

        // A second, newer run still in progress.
        store
            .create_run(&new_run(RUN_B, "2025-06-02T08:00:00.000000Z"))
            .await
            .unwrap();
        store
            .start_step(RUN_B, &step_start(0, "lookup"))
            .await
            .unwrap();

        let list = store.list_runs(10).await.unwrap();
        assert_eq!(list.len(), 2);
        let b = &list[0];
        assert_eq!(b.id, RUN_B);
        assert_eq!(b.status, RunStatus::Running);
        assert_eq!(b.finished_at, None);
        assert_eq!(b.duration_ms, None);
        assert_eq!((b.steps_total, b.steps_failed), (1, 0));
        let a = &list[1];
        assert_eq!(a.id, RUN_A);
        assert_eq!(a.runbook, "refund-duplicate-charges");
        assert_eq!(a.operator, "alice@example.com");
        assert_eq!(a.status, RunStatus::Failed);
        assert_eq!(a.started_at, t("2025-06-01T10:00:00Z"));
        let finished = a.finished_at.expect("finished");
        // Stored to the microsecond.
        assert!(
            finished >= before - chrono::Duration::microseconds(1),
            "{finished}"
        );
        assert!(finished <= Utc::now());
        assert_eq!(
            a.duration_ms,
            Some((finished - a.started_at).num_milliseconds())
        );
        assert_eq!((a.steps_total, a.steps_failed), (3, 1));
        assert_eq!(store.list_runs(1).await.unwrap()[0].id, RUN_B);
        assert!(store.list_runs(0).await.unwrap().is_empty());

        let detail = store.run(RUN_A).await.unwrap().expect("run A");
        assert_eq!(
            detail.run,
            RunRecord {
                id: RUN_A.to_owned(),
                runbook: "refund-duplicate-charges".to_owned(),
                runbook_digest: "sha256:runbook".to_owned(),
                params: json!({"customer": "cus_123", "dry_run": true, "limit": 5}),
                operator: "alice@example.com".to_owned(),
                status: RunStatus::Failed,
                started_at: t("2025-06-01T10:00:00Z"),
                finished_at: Some(finished),
                error: Some("step refund failed".to_owned()),
                dry_run: false,
            }
        );
        assert_eq!(detail.steps.len(), 3);
        assert_eq!(
            detail.steps[0],
            StepRecord {
                index: 0,
                step_id: "lookup".to_owned(),
                plugin: "stripe".to_owned(),
                plugin_digest: "sha256:plugin".to_owned(),
                status: StepStatus::Succeeded,
                input: json!({"index": 0}),
                output: Some(json!({"charges": ["ch_1", "ch_2"]})),
                error: None,
                logs: vec![log("found 2 charges"), log("done")],
                started_at: t("2025-06-01T10:00:01.000001Z"),
                finished_at: Some(t("2025-06-01T10:00:02.25Z")),
                duration_ms: Some(1249),
                attempts: 0,
            }
        );
        let s1 = &detail.steps[1];
        assert_eq!((s1.index, s1.step_id.as_str()), (1, "refund"));
        assert_eq!(s1.status, StepStatus::Failed);
        assert_eq!(s1.output, None);
        assert_eq!(s1.error.as_deref(), Some("card_declined"));
        assert_eq!(s1.logs, vec![]);
        assert_eq!(s1.duration_ms, Some(998));
        // Some(null) output stays distinct from no output.
        assert_eq!(detail.steps[2].status, StepStatus::Skipped);
        assert_eq!(detail.steps[2].output, Some(Value::Null));

        let running = store.run(RUN_B).await.unwrap().expect("run B");
        assert_eq!(running.run.status, RunStatus::Running);
        assert_eq!(running.run.finished_at, None);
        assert_eq!(running.steps[0].status, StepStatus::Running);
        assert_eq!(running.steps[0].output, None);
        assert_eq!(running.steps[0].logs, vec![]);
        assert_eq!(running.steps[0].finished_at, None);
        assert_eq!(running.steps[0].duration_ms, None);

        // finish_step's audit entries landed, in order, chained.
        let entries = store.audit_entries(Some(RUN_A), 10).await.unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.seq, e.detail.as_str()))
                .collect::<Vec<_>>(),
            vec![(1, "one"), (2, "two")]
        );
        assert_eq!(
            store.verify_audit().await.unwrap(),
            AuditVerification::Intact {
                entries: 2,
                head: Some(entries[1].hash.clone())
            }
        );

        // Prefixes.
        assert_eq!(
            store.run(&RUN_A[..8]).await.unwrap().map(|d| d.run.id),
            Some(RUN_A.to_owned())
        );
        assert_eq!(
            store
                .run(&RUN_A[..20])
                .await
                .unwrap()
                .map(|d| d.steps.len()),
            Some(3)
        );
        // Too short to be taken as a prefix: said, not taken for "no such run".
        assert!(matches!(
            store.run(&RUN_A[..7]).await,
            Err(StateError::RunIdTooShort { min: 8, .. })
        ));
        assert!(matches!(
            store.run("").await,
            Err(StateError::RunIdTooShort { .. })
        ));
        assert_eq!(store.run("0190cccc").await.unwrap(), None);
        // Prefixes are case-sensitive and `_`/`%` are not wildcards.
        assert_eq!(store.run("0190AAAA").await.unwrap(), None);
        assert_eq!(store.run("0190aaa_").await.unwrap(), None);
        assert_eq!(store.run("0190aaa%").await.unwrap(), None);

        store
            .create_run(&new_run(RUN_B2, "2025-06-02T09:00:00.000000Z"))
            .await
            .unwrap();
        match store.run("0190bbbb-0000").await {
            Err(StateError::AmbiguousRunId { prefix, candidates }) => {
                assert_eq!(prefix, "0190bbbb-0000");
                assert_eq!(candidates, vec![RUN_B.to_owned(), RUN_B2.to_owned()]);
            }
            other => panic!("expected AmbiguousRunId, got {other:?}"),
        }
        // The newest run, of all or of one runbook.
        assert_eq!(
            store.run("last").await.unwrap().map(|d| d.run.id),
            Some(RUN_B2.to_owned())
        );
        assert_eq!(
            store
                .run("last:refund-duplicate-charges")
                .await
                .unwrap()
                .map(|d| d.run.id),
            Some(RUN_B2.to_owned())
        );
        assert_eq!(store.run("last:other").await.unwrap(), None);
        // A full id that is also a prefix of nothing else still resolves exactly.
        assert_eq!(
            store.run(RUN_B2).await.unwrap().map(|d| d.run.id),
            Some(RUN_B2.to_owned())
        );
        assert_eq!(
            store
                .list_runs(10)
                .await
                .unwrap()
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            vec![RUN_B2, RUN_B, RUN_A]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_id_wins_over_prefix_matches() {
    on_all_backends(|_, url| async move {
        let store = StateStore::open(&url).await.unwrap();
        store
            .create_run(&new_run("run-12345678", "2025-06-01T10:00:00Z"))
            .await
            .unwrap();
        store
            .create_run(&new_run("run-123456789", "2025-06-01T10:00:01Z"))
            .await
            .unwrap();
        assert_eq!(
            store.run("run-12345678").await.unwrap().map(|d| d.run.id),
            Some("run-12345678".to_owned())
        );
        assert!(matches!(
            store.run("run-1234").await,
            Err(StateError::AmbiguousRunId { .. })
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_found_by_runbook_operator_start_state_and_parameters() {
    on_all_backends(|_, url| async move {
        let store = StateStore::open(&url).await.unwrap();
        store
            .create_run(&new_run(RUN_A, "2025-06-01T10:00:00.000000Z"))
            .await
            .unwrap();
        let mut other = new_run(RUN_B, "2025-06-03T10:00:00.000000Z");
        other.runbook = "issue-refund".into();
        other.operator = "bob".into();
        other.params = json!({"organization_id": 2});
        store.create_run(&other).await.unwrap();
        let ids = |runs: Vec<RunSummary>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let find = |filter: RunFilter| {
            let store = store.clone();
            async move { ids(store.find_runs(&filter, 10).await.unwrap()) }
        };
        assert_eq!(find(RunFilter::default()).await, [RUN_B, RUN_A]);
        let by_runbook = RunFilter {
            runbook: Some("issue-refund".into()),
            ..RunFilter::default()
        };
        assert_eq!(find(by_runbook).await, [RUN_B]);
        let by_operator = RunFilter {
            operator: Some("alice@example.com".into()),
            ..RunFilter::default()
        };
        assert_eq!(find(by_operator).await, [RUN_A]);
        let since = RunFilter {
            since: Some(t("2025-06-02T00:00:00Z")),
            ..RunFilter::default()
        };
        assert_eq!(find(since).await, [RUN_B]);
        let by_param = RunFilter {
            params: vec![("organization_id".into(), "2".into())],
            ..RunFilter::default()
        };
        assert_eq!(find(by_param).await, [RUN_B]);
        // Both are unfinished with no lease: interrupted.
        let by_state = RunFilter {
            states: vec![crate::state::RunState::Interrupted],
            ..RunFilter::default()
        };
        assert_eq!(find(by_state).await, [RUN_B, RUN_A]);
        assert_eq!(
            ids(store.find_runs(&RunFilter::default(), 1).await.unwrap()),
            [RUN_B]
        );
    })
    .await;
}
