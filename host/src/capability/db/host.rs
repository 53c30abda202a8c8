//! The `db` host functions: a statement is analysed, checked against the step's grant
//! (a denial never reaches the database and is audited), run in the step's transaction
//! and journaled.

use std::time::Instant;

use super::DbHost;
use super::journal::{Execution, FirstExecution, Operation, SQL_IN_JOURNAL};
use super::sql::check_second_opinion;
use super::{ImpliedEffects, ImpliedError, Need, SqlAccess, SqlDialect, SqlError, StatementKind};
use crate::capability::truncate;
use crate::contract::db::{self, Column, Rows, SqlDialect as WitDialect};
use crate::contract::types::{CallError, Value};
use crate::state::{CallDecision, LogLine};
use crate::target::{SqlValue, StepTransaction, TargetError};

impl db::Host for DbHost<'_> {
    async fn dialect(&mut self) -> wasmtime::Result<WitDialect> {
        Ok(match self.db.target.as_ref().map(|t| t.dialect()) {
            Some(SqlDialect::Sqlite) => WitDialect::Sqlite,
            _ => WitDialect::Postgres,
        })
    }

    async fn query(
        &mut self,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, CallError>> {
        Ok(self
            .run_statement(&sql, params, Operation::Query)
            .await?
            .map(|done| match done {
                Done::Rows(rows) => rows,
                Done::Affected(_) => Rows {
                    columns: Vec::new(),
                    rows: Vec::new(),
                },
            }))
    }

    async fn execute(
        &mut self,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, CallError>> {
        Ok(self
            .run_statement(&sql, params, Operation::Execute)
            .await?
            .map(|done| match done {
                Done::Affected(n) => n,
                Done::Rows(rows) => rows.rows.len() as u64,
            }))
    }
}

enum Done {
    Rows(Rows),
    Affected(u64),
}

/// One statement a plugin asked for, as the journal describes it.
struct StatementCall<'a> {
    operation: Operation,
    sql: &'a str,
    param_count: usize,
    started: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl DbHost<'_> {
    /// `Err`: the step's deadline passed and the statement was stopped (or never
    /// started): a trap, so the step ends as timed out without the plugin running on.
    async fn run_statement(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        operation: Operation,
    ) -> wasmtime::Result<Result<Done, CallError>> {
        let call = StatementCall {
            operation,
            sql,
            param_count: params.len(),
            started: Instant::now(),
            started_at: chrono::Utc::now(),
        };
        // Sizes first: a statement of tens of MB is neither parsed nor sent.
        if let Err(over) = self.db.caps.check_request(sql, &params) {
            let error = CallError::Invalid(self.refuse("db:limits", over.to_string(), sql));
            self.journal_statement(&call, None, CallDecision::Denied, Err(&error));
            return Ok(Err(error));
        }
        let access = match self.authorize(sql) {
            Ok(access) => access,
            Err(e) => {
                let decision = if matches!(e, CallError::Denied(_)) {
                    CallDecision::Denied
                } else {
                    CallDecision::Allowed
                };
                self.journal_statement(&call, None, decision, Err(&e));
                return Ok(Err(e));
            }
        };
        if let Some(reason) = &self.db.poisoned {
            return Ok(Err(CallError::Failed(format!(
                "an earlier statement of this step failed ({reason}); its transaction is aborted"
            ))));
        }
        if let Err(e) = self.check_implied(&call, &access).await? {
            return Ok(Err(e));
        }
        let params: Vec<SqlValue> = params.into_iter().map(to_sql_value).collect();
        let caps = self.db.caps.result;
        let tx = match self.transaction().await {
            Ok(tx) => tx,
            Err(e @ (TargetError::DeadlineExceeded | TargetError::Abandoned)) => {
                return Err(self.stopped_at_deadline(&call, &access, &e));
            }
            Err(e) => return Ok(Err(CallError::Failed(e.to_string()))),
        };
        // SQLite's second opinion on the tables, from preparing the statement on the
        // step's connection; a prepare error is the statement's failure.
        let opinion = tx.sqlite_opinion(sql).await;
        if let Ok(Some(opinion)) = &opinion
            && let Err(disagreement) = check_second_opinion(&access, opinion)
        {
            let target = disagreement.table.as_deref().unwrap_or("analyzer");
            let error = self.deny(&format!("db:{target}"), disagreement.to_string(), sql);
            self.journal_statement(&call, Some(&access), CallDecision::Denied, Err(&error));
            return Ok(Err(error));
        }
        let tx = self.db.tx.as_mut().expect("opened above");
        let result = match (opinion, operation) {
            (Err(e), _) => Err(e),
            (Ok(_), Operation::Query) => tx
                .query(sql, &params, caps)
                .await
                .map(|r| Done::Rows(to_rows(r))),
            (Ok(_), Operation::Execute) => tx.execute(sql, &params).await.map(Done::Affected),
        };
        if let Err(e @ (TargetError::DeadlineExceeded | TargetError::Abandoned)) = &result {
            return Err(self.stopped_at_deadline(&call, &access, e));
        }
        if let Err(e @ TargetError::ResultTooLarge { .. }) = result {
            // Stopped by the host, not failed by the database: refused as too large,
            // audited like any refusal, and the step's transaction aborted as after any
            // failed statement.
            let message = self.refuse("db:limits", e.to_string(), sql);
            self.db.poisoned = Some(message.clone());
            let error = CallError::Invalid(message);
            self.journal_statement(&call, Some(&access), CallDecision::Allowed, Err(&error));
            return Ok(Err(error));
        }
        let elapsed = call.started.elapsed();
        match &result {
            Ok(done) => {
                // The step's own DDL may have added a key or dropped a trigger.
                if access.statement == StatementKind::Ddl {
                    *self.implied = None;
                }
                let rows = match done {
                    Done::Rows(rows) => rows.rows.len() as u64,
                    Done::Affected(n) => *n,
                };
                self.count_statement(&call, &access, rows).await;
            }
            Err(e) => self.journal_statement(
                &call,
                Some(&access),
                CallDecision::Allowed,
                Err(&CallError::Failed(e.to_string())),
            ),
        }
        match result {
            Ok(done) => {
                tracing::debug!(
                    target: "runbook::db",
                    step = %self.calls.context.step_id,
                    kind = %access.statement,
                    elapsed_us = elapsed.as_micros() as u64,
                    "statement ran"
                );
                Ok(Ok(done))
            }
            Err(error) => {
                let message = error.to_string();
                if error.is_transient() {
                    self.calls.transient = Some(message.clone());
                }
                // A failed statement aborts a Postgres transaction; make SQLite behave the
                // same so plugins see one rule: a step's writes stand or fall together.
                if !matches!(error, TargetError::BadParameter { .. }) {
                    self.db.poisoned = Some(message.clone());
                }
                Ok(Err(CallError::Failed(message)))
            }
        }
    }

    /// A statement the step's deadline stopped: journaled and logged as such, and turned
    /// into the trap an epoch deadline raises, so the step ends as the same timeout a
    /// plugin spinning in its own code gets.
    fn stopped_at_deadline(
        &mut self,
        call: &StatementCall<'_>,
        access: &SqlAccess,
        error: &TargetError,
    ) -> wasmtime::Error {
        let message = error.to_string();
        self.db.poisoned = Some(message.clone());
        self.journal_statement(
            call,
            Some(access),
            CallDecision::Allowed,
            Err(&CallError::Failed(message.clone())),
        );
        tracing::warn!(target: "runbook::db", step = %self.calls.context.step_id, "{message}");
        self.calls.push_log(LogLine {
            at: chrono::Utc::now(),
            level: "error".into(),
            stream: "host".into(),
            message: format!("{message} after {} ms", call.started.elapsed().as_millis()),
            fields: [("sql".to_string(), truncate(call.sql, 500))]
                .into_iter()
                .collect(),
        });
        wasmtime::Error::new(wasmtime::Trap::Interrupt)
    }

    /// Counts a successful statement in the step's statement totals (see
    /// `db_journal.rs`), or journals it on its own when there is no room to count it.
    async fn count_statement(&mut self, call: &StatementCall<'_>, access: &SqlAccess, rows: u64) {
        let seq = self.calls.next_seq();
        let execution = Execution {
            operation: call.operation,
            sql: call.sql,
            rows,
            duration_us: call.started.elapsed().as_micros() as i64,
        };
        let counted = self.statements.add(&execution, || FirstExecution {
            seq,
            started_at: call.started_at,
            params: call.param_count,
            statement: access.statement.to_string(),
            writes: written_tables(access)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        });
        if !counted {
            let response = match call.operation {
                Operation::Query => serde_json::json!({ "rows": rows }),
                Operation::Execute => serde_json::json!({ "affected": rows }),
            };
            self.push_statement_record(
                seq,
                call,
                Some(access),
                CallDecision::Allowed,
                Ok(&response),
            );
            self.calls.spill_calls().await;
        }
    }

    /// Journals one statement that is not counted with others: a denial, a failure.
    fn journal_statement(
        &mut self,
        call: &StatementCall<'_>,
        access: Option<&SqlAccess>,
        decision: CallDecision,
        result: Result<&serde_json::Value, &CallError>,
    ) {
        let seq = self.calls.next_seq();
        self.push_statement_record(seq, call, access, decision, result);
    }

    fn push_statement_record(
        &mut self,
        seq: i64,
        call: &StatementCall<'_>,
        access: Option<&SqlAccess>,
        decision: CallDecision,
        result: Result<&serde_json::Value, &CallError>,
    ) {
        let mut params = serde_json::json!({
            "sql": truncate(call.sql, SQL_IN_JOURNAL),
            "params": call.param_count,
        });
        if let Some(access) = access {
            params["statement"] = serde_json::json!(access.statement.to_string());
            let writes = written_tables(access);
            if !writes.is_empty() {
                params["writes"] = serde_json::json!(writes);
            }
        }
        let (ok, response, error) = match result {
            Ok(r) => (true, Some(r.clone()), None),
            Err(e) => (false, None, Some(e.message())),
        };
        self.calls.pending.push(crate::state::CallRecord {
            step_index: self.calls.step_index,
            attempt: self.calls.attempt,
            seq,
            interface: "db".into(),
            operation: call.operation.name().into(),
            params,
            request_digest: String::new(),
            decision,
            ok,
            effect: false,
            response,
            error,
            idempotency_key: None,
            started_at: call.started_at,
            duration_us: call.started.elapsed().as_micros() as i64,
        });
    }

    /// What the statement's writes make the database do on its own (cascades, triggers,
    /// rules, a view's base table) must be granted too: the schema may have changed
    /// since the preflight, and some paths have none. The catalog is read once per step,
    /// on its first write, in the step's transaction. `Ok(Err)`: denied (audited) or the
    /// catalog could not be read; `Err`: stopped at the step's deadline.
    async fn check_implied(
        &mut self,
        call: &StatementCall<'_>,
        access: &SqlAccess,
    ) -> wasmtime::Result<Result<(), CallError>> {
        let writes: Vec<(StatementKind, &str)> = access
            .requirements()
            .filter(|(kind, _)| *kind != StatementKind::Select)
            .collect();
        if writes.is_empty() {
            return Ok(Ok(()));
        }
        let effects = match self.implied.clone() {
            Some(effects) => effects,
            None => match self.read_implied().await {
                Ok(effects) => effects,
                Err(e) => {
                    if let Some(stopped) = e.deadline() {
                        return Err(self.stopped_at_deadline(call, access, stopped));
                    }
                    let message = e.to_string();
                    self.db.poisoned = Some(message.clone());
                    let error = CallError::Failed(message);
                    self.journal_statement(call, Some(access), CallDecision::Allowed, Err(&error));
                    return Ok(Err(error));
                }
            },
        };
        for (kind, table) in writes {
            let needs: Vec<_> = effects
                .implied_by_write(kind, table, self.grant)
                .into_iter()
                .filter(|need| !need.granted)
                .collect();
            let Some(first) = needs.first() else {
                continue;
            };
            let target = match &first.need {
                Need::Table { table, .. }
                | Need::Trigger { table, .. }
                | Need::Rule { table, .. } => {
                    format!("db:{table}")
                }
            };
            let what: Vec<String> = needs
                .iter()
                .map(|n| format!("{} ({}; add {})", n.need, n.reason, n.help()))
                .collect();
            let reason = format!(
                "{kind} on table `{table}` would also make the database do what this step is not granted: {}",
                what.join("; ")
            );
            let error = self.deny(&target, reason, call.sql);
            self.journal_statement(call, Some(access), CallDecision::Denied, Err(&error));
            return Ok(Err(error));
        }
        Ok(Ok(()))
    }

    /// Reads the target's implied effects in the step's transaction and keeps them for
    /// the rest of the step.
    async fn read_implied(&mut self) -> Result<std::sync::Arc<ImpliedEffects>, ImpliedError> {
        let started = Instant::now();
        let dialect = match &self.db.target {
            Some(target) => target.dialect(),
            None => return Err(ImpliedError::Shape("no target database".into())),
        };
        let tx = self.transaction().await.map_err(ImpliedError::Read)?;
        let effects = std::sync::Arc::new(ImpliedEffects::read(tx, dialect).await?);
        let (foreign_keys, triggers, rules) = effects.counts();
        tracing::debug!(
            target: "runbook::db",
            step = %self.calls.context.step_id,
            foreign_keys, triggers, rules,
            elapsed_us = started.elapsed().as_micros() as u64,
            "read the target's implied effects"
        );
        *self.implied = Some(effects.clone());
        Ok(effects)
    }

    /// Parses the statement and checks it against the step's database grant.
    fn authorize(&mut self, sql: &str) -> Result<std::sync::Arc<SqlAccess>, CallError> {
        let Some(target) = &self.db.target else {
            return Err(CallError::Unavailable(
                "no target database is configured on this host".into(),
            ));
        };
        match self.db.analysis.analyze(sql, target.dialect()) {
            Ok(access) => match self.grant.check(&access) {
                Ok(()) => Ok(access),
                Err(denied) => {
                    Err(self.deny(&format!("db:{}", denied.table), denied.to_string(), sql))
                }
            },
            Err(SqlError::Parse(message)) => {
                Err(CallError::Invalid(format!("SQL does not parse: {message}")))
            }
            Err(other) => Err(self.deny("db", other.to_string(), sql)),
        }
    }

    /// Records a denial in the audit log and the step log, and builds the plugin's error.
    fn deny(&mut self, target: &str, reason: String, sql: &str) -> CallError {
        CallError::Denied(self.refuse(target, reason, sql))
    }

    /// A refusal's bookkeeping (audit entry, host log line; never retried): a denial by
    /// the grant, or a call past a size cap. Returns the reason.
    fn refuse(&mut self, target: &str, reason: String, sql: &str) -> String {
        self.calls.denied = true;
        let detail =
            serde_json::json!({ "reason": reason, "sql": truncate(sql, 2000) }).to_string();
        let entry = self.calls.audit_entry("capability.denied", target, detail);
        self.calls.recording.audit.push(entry);
        tracing::warn!(target: "runbook::grant", step = %self.calls.context.step_id, plugin = %self.calls.context.plugin, "denied: {reason}");
        self.calls.push_log(LogLine {
            at: chrono::Utc::now(),
            level: "warn".into(),
            stream: "host".into(),
            message: format!("denied: {reason}"),
            fields: [("sql".to_string(), truncate(sql, 500))]
                .into_iter()
                .collect(),
        });
        reason
    }

    /// The step's transaction, opened on first use and bounded by the step's deadline
    /// (set once per step: the dry run's shared transaction comes with the previous
    /// step's, or none).
    async fn transaction(&mut self) -> Result<&mut StepTransaction, TargetError> {
        if self.db.tx.is_none() {
            let target = self
                .db
                .target
                .as_ref()
                .expect("authorize checked the target");
            // Boxed: opening a transaction is a once-per-step path with a large future,
            // which would otherwise be part of (and moved with) every call's future.
            self.db.tx = Some(Box::pin(target.begin()).await?);
        }
        let tx = self.db.tx.as_mut().expect("just opened");
        if let Some(deadline) = self.db.deadline
            && tx.deadline() != Some(deadline)
        {
            Box::pin(tx.set_deadline(deadline)).await?;
        }
        Ok(tx)
    }
}

/// The tables a statement writes (everything it needs but `select`).
fn written_tables(access: &SqlAccess) -> Vec<&str> {
    access
        .needs
        .iter()
        .filter(|(kind, _)| *kind != super::StatementKind::Select)
        .map(|(_, table)| table.as_str())
        .collect()
}

fn to_sql_value(value: Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Boolean(b) => SqlValue::Boolean(b),
        Value::Integer(n) => SqlValue::Integer(n),
        Value::Float(f) => SqlValue::Float(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Bytes(b) => SqlValue::Bytes(b),
        Value::Timestamp(t) => SqlValue::Timestamp(t),
    }
}

fn from_sql_value(value: SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Boolean(b) => Value::Boolean(b),
        SqlValue::Integer(n) => Value::Integer(n),
        SqlValue::Float(f) => Value::Float(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Bytes(b) => Value::Bytes(b),
        SqlValue::Timestamp(t) => Value::Timestamp(t),
    }
}

fn to_rows(rows: crate::target::Rows) -> Rows {
    Rows {
        columns: rows
            .columns
            .into_iter()
            .map(|c| Column {
                name: c.name,
                type_name: c.type_name,
            })
            .collect(),
        rows: rows
            .rows
            .into_iter()
            .map(|r| r.into_iter().map(from_sql_value).collect())
            .collect(),
    }
}
