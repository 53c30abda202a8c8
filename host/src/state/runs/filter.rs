//! Which runs `runbook runs` lists: by runbook, operator and start time (asked of the
//! database), and by state and parameters (judged after reading: one is derived from
//! several columns, the other is JSON).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::RunSummary;
use crate::state::RunState;

/// Rows read at a time when some runs are judged after reading.
pub(super) const PAGE: i64 = 200;

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub runbook: Option<String>,
    pub operator: Option<String>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Any of these states; empty: any state.
    pub states: Vec<RunState>,
    /// `(name, value)` pairs the run's parameters must all have; a value matches a string
    /// parameter by its text and any other by its JSON (`6`, `true`).
    pub params: Vec<(String, String)>,
}

impl RunFilter {
    pub(super) fn judged_after_reading(&self) -> bool {
        !self.states.is_empty() || !self.params.is_empty()
    }

    /// Whether the run (its summary and its parameters as stored) is kept; parameters
    /// that are not a JSON object keep nothing a parameter filter asks for.
    pub(super) fn keeps(&self, run: &RunSummary, params: &str) -> bool {
        if !self.states.is_empty() && !self.states.contains(&run.state) {
            return false;
        }
        if self.params.is_empty() {
            return true;
        }
        let Ok(Value::Object(given)) = serde_json::from_str::<Value>(params) else {
            return false;
        };
        self.params.iter().all(|(name, want)| {
            given.get(name).is_some_and(|value| match value {
                Value::String(text) => text == want,
                other => serde_json::from_str::<Value>(want).is_ok_and(|want| want == *other),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RunStatus;

    fn run(state: RunState) -> RunSummary {
        RunSummary {
            id: "r".into(),
            runbook: "issue-refund".into(),
            operator: "alice".into(),
            status: RunStatus::Succeeded,
            state,
            started_at: Utc::now(),
            finished_at: None,
            duration_ms: None,
            steps_total: 1,
            steps_failed: 0,
        }
    }

    #[test]
    fn states_and_parameters_are_matched_as_an_operator_writes_them() {
        let params = r#"{"organization_id": 2, "reason": "duplicate", "force": true}"#;
        let mut filter = RunFilter::default();
        assert!(filter.keeps(&run(RunState::Failed), params));
        filter.params = vec![
            ("organization_id".into(), "2".into()),
            ("reason".into(), "duplicate".into()),
            ("force".into(), "true".into()),
        ];
        assert!(filter.keeps(&run(RunState::Failed), params));
        filter
            .params
            .push(("reason".into(), "\"duplicate\"".into()));
        assert!(!filter.keeps(&run(RunState::Failed), params));
        filter.params = vec![("missing".into(), "x".into())];
        assert!(!filter.keeps(&run(RunState::Failed), params));
        assert!(!filter.keeps(&run(RunState::Failed), "not json"));
        let filter = RunFilter {
            states: vec![RunState::AwaitingApproval, RunState::Interrupted],
            ..RunFilter::default()
        };
        assert!(filter.keeps(&run(RunState::Interrupted), params));
        assert!(!filter.keeps(&run(RunState::Succeeded), params));
    }
}
