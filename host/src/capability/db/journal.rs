//! The call journal's view of a step's database statements: successful statements are
//! counted per statement text (one journal record for a statement run a hundred thousand
//! times, with its executions, rows and total time), so a bulk step's journal and memory
//! do not grow with its rows. Failed and denied statements are journaled one by one.

use std::collections::HashMap;

use serde_json::json;

use crate::state::{CallDecision, CallRecord};

/// Distinct statement texts counted per step; a plugin that builds more distinct SQL
/// than this gets the rest journaled one by one.
const MAX_DISTINCT: usize = 1_000;

/// How much of a statement the journal keeps.
pub(super) const SQL_IN_JOURNAL: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    Query,
    Execute,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Query => "query",
            Operation::Execute => "execute",
        }
    }

    fn slot(self) -> usize {
        match self {
            Operation::Query => 0,
            Operation::Execute => 1,
        }
    }
}

/// One successful execution of a statement.
pub(super) struct Execution<'a> {
    pub operation: Operation,
    pub sql: &'a str,
    /// Rows returned (query) or affected (execute).
    pub rows: u64,
    pub duration_us: i64,
}

/// What the journal keeps of a statement's first execution; only worked out for a
/// statement not seen before in the step.
pub(super) struct FirstExecution {
    pub seq: i64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub params: usize,
    /// The statement kind (`select`, `update`, ...).
    pub statement: String,
    /// Tables the statement writes.
    pub writes: Vec<String>,
}

#[derive(Debug)]
struct Totals {
    seq: i64,
    started_at: chrono::DateTime<chrono::Utc>,
    params: usize,
    statement: String,
    writes: Vec<String>,
    executions: u64,
    rows: u64,
    duration_us: i64,
}

#[derive(Debug, Default)]
pub(crate) struct StatementTotals {
    /// Per statement text, one slot per [`Operation`].
    by_sql: HashMap<String, [Option<Totals>; 2]>,
}

impl StatementTotals {
    /// Counts `execution`, calling `first` only for a statement not counted yet; `false`
    /// if the statement is new and there is no room to count it, in which case the
    /// caller journals it on its own.
    pub(super) fn add(
        &mut self,
        execution: &Execution<'_>,
        first: impl FnOnce() -> FirstExecution,
    ) -> bool {
        let slot = execution.operation.slot();
        if let Some(slots) = self.by_sql.get_mut(execution.sql) {
            match &mut slots[slot] {
                Some(totals) => {
                    totals.executions += 1;
                    totals.rows += execution.rows;
                    totals.duration_us += execution.duration_us;
                }
                empty => *empty = Some(Totals::first(execution, first())),
            }
            return true;
        }
        if self.by_sql.len() >= MAX_DISTINCT {
            return false;
        }
        let mut slots = [None, None];
        slots[slot] = Some(Totals::first(execution, first()));
        self.by_sql.insert(execution.sql.to_string(), slots);
        true
    }

    /// One journal record per counted statement, numbered by its first execution.
    pub(super) fn into_records(self, step_index: i64, attempt: i64) -> Vec<CallRecord> {
        let mut records = Vec::new();
        for (sql, slots) in self.by_sql {
            for (operation, totals) in [Operation::Query, Operation::Execute]
                .into_iter()
                .zip(slots)
            {
                if let Some(totals) = totals {
                    records.push(totals.into_record(&sql, operation, step_index, attempt));
                }
            }
        }
        records.sort_by_key(|r| r.seq);
        records
    }
}

impl Totals {
    fn first(e: &Execution<'_>, first: FirstExecution) -> Totals {
        Totals {
            seq: first.seq,
            started_at: first.started_at,
            params: first.params,
            statement: first.statement,
            writes: first.writes,
            executions: 1,
            rows: e.rows,
            duration_us: e.duration_us,
        }
    }

    fn into_record(
        self,
        sql: &str,
        operation: Operation,
        step_index: i64,
        attempt: i64,
    ) -> CallRecord {
        let mut params = json!({
            "sql": crate::capability::truncate(sql, SQL_IN_JOURNAL),
            "params": self.params,
            "statement": self.statement,
            "executions": self.executions,
        });
        if !self.writes.is_empty() {
            params["writes"] = json!(self.writes);
        }
        let response = match operation {
            Operation::Query => json!({ "rows": self.rows }),
            Operation::Execute => json!({ "affected": self.rows }),
        };
        CallRecord {
            step_index,
            attempt,
            seq: self.seq,
            interface: "db".into(),
            operation: operation.name().into(),
            params,
            request_digest: String::new(),
            decision: CallDecision::Allowed,
            ok: true,
            effect: false,
            response: Some(response),
            error: None,
            idempotency_key: None,
            started_at: self.started_at,
            duration_us: self.duration_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(
        totals: &mut StatementTotals,
        operation: Operation,
        sql: &str,
        rows: u64,
        seq: i64,
    ) -> bool {
        totals.add(
            &Execution {
                operation,
                sql,
                rows,
                duration_us: 10,
            },
            || FirstExecution {
                seq,
                started_at: chrono::Utc::now(),
                params: 2,
                statement: "update".into(),
                writes: vec!["subscriptions".into()],
            },
        )
    }

    #[test]
    fn repeated_statements_become_one_record_each() {
        let mut totals = StatementTotals::default();
        let cancel = "UPDATE subscriptions SET status = 'canceled' WHERE id = $1";
        let page = "SELECT id FROM subscriptions WHERE id > $1 LIMIT 500";
        let mut seq = 0;
        for _ in 0..3 {
            assert!(add(&mut totals, Operation::Query, page, 500, seq));
            seq += 1;
            for _ in 0..500 {
                assert!(add(&mut totals, Operation::Execute, cancel, 1, seq));
                seq += 1;
            }
        }
        let records = totals.into_records(2, 1);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].seq, 0);
        assert_eq!(records[0].operation, "query");
        assert_eq!(records[0].params["executions"], 3);
        assert_eq!(records[0].response, Some(json!({ "rows": 1500 })));
        assert_eq!(records[1].seq, 1);
        assert_eq!(records[1].params["executions"], 1500);
        assert_eq!(records[1].params["writes"], json!(["subscriptions"]));
        assert_eq!(records[1].response, Some(json!({ "affected": 1500 })));
        assert_eq!(records[1].duration_us, 15_000);
        assert!(records.iter().all(|r| r.step_index == 2 && r.attempt == 1));
    }

    #[test]
    fn the_first_execution_is_described_once() {
        let mut totals = StatementTotals::default();
        let sql = "UPDATE organizations SET plan_tier = 'free' WHERE id = $1";
        let mut described = 0;
        for _ in 0..3 {
            let execution = Execution {
                operation: Operation::Execute,
                sql,
                rows: 1,
                duration_us: 5,
            };
            assert!(totals.add(&execution, || {
                described += 1;
                FirstExecution {
                    seq: 0,
                    started_at: chrono::Utc::now(),
                    params: 1,
                    statement: "update".into(),
                    writes: vec![],
                }
            }));
        }
        assert_eq!(described, 1);
        let records = totals.into_records(0, 1);
        assert_eq!(records[0].params["executions"], 3);
        assert_eq!(records[0].duration_us, 15);
    }

    #[test]
    fn the_same_text_as_query_and_execute_is_counted_apart() {
        let mut totals = StatementTotals::default();
        let sql = "DELETE FROM sessions WHERE id = $1 RETURNING id";
        add(&mut totals, Operation::Execute, sql, 1, 0);
        add(&mut totals, Operation::Query, sql, 1, 1);
        let records = totals.into_records(0, 1);
        assert_eq!(
            records
                .iter()
                .map(|r| r.operation.as_str())
                .collect::<Vec<_>>(),
            ["execute", "query"]
        );
    }

    #[test]
    fn distinct_statements_beyond_the_bound_are_refused_for_counting() {
        let mut totals = StatementTotals::default();
        let texts: Vec<String> = (0..MAX_DISTINCT + 1)
            .map(|i| format!("SELECT {i}"))
            .collect();
        for (i, sql) in texts.iter().enumerate() {
            let counted = add(&mut totals, Operation::Query, sql, 1, i as i64);
            assert_eq!(counted, i < MAX_DISTINCT, "{sql}");
        }
        // A statement already counted still is.
        assert!(add(&mut totals, Operation::Query, &texts[0], 1, 9_999));
    }
}
