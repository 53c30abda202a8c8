//! A step's completion record in the target database (`target/step_commits.rs`): encoded
//! here from what the step produced, written in its own transaction right before the
//! commit, and read back on resume, where a step whose record exists is finished from it
//! (its output, logs, calls and audit entries) instead of being run again.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::report::StepReport;
use super::{ExecError, Executor, host_line};
use crate::capability::StepRecording;
use crate::failpoint;
use crate::runtime::LoadedPlugin;
use crate::spec::runbook::Step;
use crate::state::{
    AuditSpool, CallRecord, LogLine, NewAuditEntry, StepFinish, StepOutcome, StepRecord, StepStatus,
};
use crate::target::{StepCommit, StepTransaction, TargetError};

/// A call as the completion record keeps it: the journal's serialized form leaves out
/// the request digest, which a replay compares, so it is kept beside it.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptCall {
    #[serde(flatten)]
    call: CallRecord,
    request_digest: String,
}

/// The record of a succeeded attempt: its output, its calls, and the step's log lines
/// and audit entries so far (every attempt's). The audit entries are read out of the
/// recording's spool and put back in order.
pub(super) fn encode(
    (run_id, step_index, attempt): (&str, i64, u32),
    output: Option<&Value>,
    recording: &mut StepRecording,
    calls: &[CallRecord],
) -> Result<StepCommit, String> {
    let json = |what: &str, r: serde_json::Result<String>| {
        r.map_err(|e| format!("cannot encode the step's {what}: {e}"))
    };
    let mut entries = Vec::new();
    recording
        .audit
        .map_spool(|spool| {
            let mut kept = AuditSpool::new();
            for chunk in spool.into_chunks() {
                for entry in chunk? {
                    kept.push(entry.clone());
                    entries.push(entry);
                }
            }
            Ok::<_, crate::state::SpoolError>(kept)
        })
        .map_err(|e| format!("cannot read the step's audit entries: {e}"))?;
    let kept: Vec<KeptCall> = calls
        .iter()
        .map(|c| KeptCall {
            call: c.clone(),
            request_digest: c.request_digest.clone(),
        })
        .collect();
    Ok(StepCommit {
        run_id: run_id.to_string(),
        step_index,
        attempt: i64::from(attempt),
        output: json("output", serde_json::to_string(&output))?,
        audit: json("audit entries", serde_json::to_string(&entries))?,
        calls: json("calls", serde_json::to_string(&kept))?,
        logs: json("log", serde_json::to_string(recording.log.lines()))?,
        committed_at: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
    })
}

/// What [`commit_step`] commits: the attempt and what it produced.
pub(super) struct Committing<'a> {
    pub run_id: &'a str,
    /// Negative for a rollback.
    pub step_index: i64,
    pub attempt: u32,
    pub step_id: &'a str,
    pub output: Option<&'a Value>,
    pub calls: &'a [CallRecord],
    /// A statement of the step failed: on PostgreSQL its transaction is aborted (the
    /// commit rolls it back, and nothing more can be written in it).
    pub aborted: bool,
}

/// Commits a succeeded attempt's transaction with its completion record, written last
/// so it stands exactly when the step's writes do. A rollback (negative `step_index`)
/// is resumed by its own rules and writes none. `Err`: nothing committed, and why.
pub(super) async fn commit_step(
    mut tx: StepTransaction,
    step: Committing<'_>,
    recording: &mut StepRecording,
) -> Result<(), String> {
    let Committing {
        run_id,
        step_index,
        attempt,
        step_id,
        output,
        calls,
        aborted,
    } = step;
    if step_index >= 0 {
        let recorded = match encode((run_id, step_index, attempt), output, recording, calls) {
            Ok(commit) => tx
                .record_step_commit(&commit)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        // A PostgreSQL transaction aborted by a failed statement refuses the record, and
        // its commit rolls everything back: there is nothing to record (as before).
        if let Err(e) = recorded
            && !aborted
        {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(target: "runbook::db", "rolling back after a failed completion record: {rollback}");
            }
            return Err(format!(
                "the step's completion record could not be written, so its writes were rolled back: {e}"
            ));
        }
    }
    failpoint::site("target.commit.before");
    tx.commit()
        .await
        .map_err(|e| format!("database transaction could not be finished: {e}"))?;
    failpoint::after_target_commit(step_id);
    Ok(())
}

/// What a completion record says about its step, decoded.
#[derive(Debug)]
struct Completed {
    attempt: i64,
    output: Option<Value>,
    audit: Vec<NewAuditEntry>,
    calls: Vec<CallRecord>,
    logs: Vec<LogLine>,
    committed_at: DateTime<Utc>,
}

fn decode(commit: StepCommit) -> Result<Completed, String> {
    fn part<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| format!("its {what} do not decode: {e}"))
    }
    let calls: Vec<KeptCall> = part("calls", &commit.calls)?;
    Ok(Completed {
        attempt: commit.attempt,
        output: part("output", &commit.output)?,
        audit: part("audit entries", &commit.audit)?,
        calls: calls
            .into_iter()
            .map(|k| CallRecord {
                request_digest: k.request_digest,
                ..k.call
            })
            .collect(),
        logs: part("log lines", &commit.logs)?,
        committed_at: DateTime::parse_from_rfc3339(&commit.committed_at)
            .map_err(|e| format!("its commit time does not parse: {e}"))?
            .with_timezone(&Utc),
    })
}

impl Executor<'_> {
    /// For a step an earlier process left in flight: its completion record, if its
    /// target transaction committed, as the step's report and outcome (stored with
    /// whatever comes next, like any step's). `None`: its writes did not commit (or it
    /// had none to make), and it runs again.
    pub(super) async fn finished_in_target(
        &self,
        run_id: &str,
        (index, step): (usize, &Step),
        plugin: &LoadedPlugin,
        in_flight: &StepRecord,
    ) -> Result<Option<(StepReport, StepFinish)>, ExecError> {
        let Some(target) = &self.target else {
            return Ok(None);
        };
        let Some(commit) = target.step_commit(run_id, index as i64).await? else {
            return Ok(None);
        };
        let done = decode(commit).map_err(|reason| {
            TargetError::HostTable(format!(
                "the completion record of step `{}` is unreadable ({reason}); its writes committed, so it is not run again",
                step.id
            ))
        })?;
        let mut logs = done.logs;
        logs.push(host_line(
            "warn",
            format!(
                "resumed: attempt {} committed its writes before its process stopped; finished from its completion record, not run again",
                done.attempt
            ),
        ));
        let duration_ms = (done.committed_at - in_flight.started_at)
            .num_milliseconds()
            .max(0);
        let mut report = StepReport::new(step, &plugin.digest, plugin.cache);
        report.status = StepStatus::Succeeded;
        report.output = done.output.clone();
        report.attempts = u32::try_from(done.attempt).unwrap_or(0);
        report.audit_records = done.audit.len();
        report.duration_ms = duration_ms;
        let finish = StepFinish {
            index: index as i64,
            outcome: StepOutcome {
                status: StepStatus::Succeeded,
                output: done.output,
                error: None,
                logs,
                finished_at: done.committed_at,
                duration_ms,
            },
            audit: AuditSpool::from(done.audit),
            calls: done.calls,
        };
        Ok(Some((report, finish)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::RecordingLimits;
    use crate::state::CallDecision;

    fn entry(action: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: Utc::now(),
            actor: "ops".into(),
            run_id: Some("run-1".into()),
            step_id: Some("refund".into()),
            plugin: Some("issue-refund".into()),
            plugin_digest: Some("abc".into()),
            action: action.into(),
            target: "invoice:in_1".into(),
            detail: "{}".into(),
        }
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded_and_leaves_the_recording_whole() {
        let mut recording = StepRecording::new(RecordingLimits {
            max_log_bytes: 1 << 20,
            max_audit_entries: 10,
            max_audit_bytes: 1 << 20,
        });
        recording.audit.push(entry("refund.issued"));
        recording.audit.push(entry("email.sent"));
        recording.log.push(host_line("info", "hello".into()));
        let call = CallRecord {
            step_index: 1,
            attempt: 2,
            seq: 1,
            interface: "stripe".into(),
            operation: "refunds.create".into(),
            params: serde_json::json!({ "charge": "ch_1" }),
            request_digest: "digest".into(),
            decision: CallDecision::Allowed,
            ok: true,
            effect: true,
            response: Some(serde_json::json!({ "id": "re_1" })),
            error: None,
            idempotency_key: Some("key".into()),
            started_at: Utc::now(),
            duration_us: 5,
        };
        let output = serde_json::json!({ "refund": "re_1" });
        let commit = encode(
            ("run-1", 1, 2),
            Some(&output),
            &mut recording,
            std::slice::from_ref(&call),
        )
        .unwrap();
        let done = decode(commit).unwrap();
        assert_eq!(done.attempt, 2);
        assert_eq!(done.output, Some(output));
        assert_eq!(done.calls, [call]);
        assert_eq!(done.calls[0].request_digest, "digest");
        let actions: Vec<_> = done.audit.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["refund.issued", "email.sent"]);
        assert_eq!(done.logs.len(), 1);
        // The step's own outcome still carries every entry.
        let (_, spool) = recording.finish();
        assert_eq!(spool.len(), 2);
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        let mut commit = StepCommit {
            run_id: "r".into(),
            step_index: 0,
            attempt: 1,
            output: "null".into(),
            audit: "[]".into(),
            calls: "[]".into(),
            logs: "[]".into(),
            committed_at: "2026-12-06T04:00:00.000000Z".into(),
        };
        assert!(decode(commit.clone()).is_ok());
        commit.audit = "{not json".into();
        assert!(
            decode(commit.clone())
                .unwrap_err()
                .contains("audit entries")
        );
        commit.audit = "[]".into();
        commit.committed_at = "yesterday".into();
        assert!(decode(commit).is_err());
    }
}
