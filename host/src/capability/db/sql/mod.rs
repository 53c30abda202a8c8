//! SQL statement analysis for database grants: which tables a statement touches, and how.
//!
//! Plugins hand the host SQL text; before it runs, [`analyze`] parses it with `sqlparser`
//! and reports every `(kind, table)` pair the statement needs, so the step's grant can be
//! checked against it. This is a security boundary, so everything here denies by default:
//! only plain queries, INSERT/UPDATE/DELETE and a few table DDL statements are accepted, and
//! every other statement, syntax extension or construct the analysis cannot account for is
//! an error rather than a guess.

mod cache;
mod collect;
mod lexical;
mod policy;
mod second_opinion;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;

use sqlparser::ast::{Query, SetExpr, Statement, Visit};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Tokenizer;

pub use cache::AnalysisCache;
use collect::Collector;
use lexical::{MAX_NESTING, check_tokens, nesting_estimate};
pub use second_opinion::{Disagreement, check as check_second_opinion};

/// How a statement uses a table; also the grant category that must list the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    Ddl,
}

impl StatementKind {
    pub const ALL: [StatementKind; 5] = [
        StatementKind::Select,
        StatementKind::Insert,
        StatementKind::Update,
        StatementKind::Delete,
        StatementKind::Ddl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Ddl => "ddl",
        }
    }
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the lowercase [`StatementKind`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown statement kind `{0}` (expected select, insert, update, delete or ddl)")]
pub struct UnknownStatementKind(pub String);

impl FromStr for StatementKind {
    type Err = UnknownStatementKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StatementKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownStatementKind(s.to_string()))
    }
}

/// The database a statement is written for; decides parsing and identifier case rules.
pub use crate::target::SqlDialect;

/// What one statement needs from the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlAccess {
    /// The kind of the top-level statement (a `WITH ... DELETE` is Delete; `SELECT` is Select).
    pub statement: StatementKind,
    /// Every (kind, table) pair the statement needs, table names normalized (see below).
    ///
    /// Unquoted identifiers are ASCII-lowercased, as Postgres folds them; quoted ones keep
    /// their case under Postgres. SQLite compares all identifiers case-insensitively, so
    /// under [`SqlDialect::Sqlite`] quoted identifiers are lowercased too. Parts of a
    /// qualified name are joined with `.`; a part that itself contains `.` or `"` is written
    /// double-quoted so that no two different tables share a normalized name.
    pub needs: BTreeSet<(StatementKind, String)>,
    /// True when the statement can return rows (SELECT, or a write with RETURNING).
    pub returns_rows: bool,
}

impl SqlAccess {
    pub fn requirements(&self) -> impl Iterator<Item = (StatementKind, &str)> + '_ {
        self.needs
            .iter()
            .map(|(kind, table)| (*kind, table.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("SQL does not parse: {0}")]
    Parse(String),
    #[error("exactly one statement per call is allowed, found {0}")]
    StatementCount(usize),
    #[error("{0} statements are not allowed")]
    Unsupported(String),
    #[error("function `{0}` is not allowed")]
    ForbiddenFunction(String),
}

/// Analyzes one SQL statement: rejects anything outside the allowed statement kinds and
/// reports every table it needs.
pub fn analyze(sql: &str, dialect: SqlDialect) -> Result<SqlAccess, SqlError> {
    // sqlparser is a large parser fed untrusted text; a bug there must deny the statement,
    // not take the host down.
    std::panic::catch_unwind(|| analyze_unguarded(sql, dialect)).unwrap_or_else(|_| {
        Err(SqlError::Parse(
            "the SQL parser failed on this input".to_string(),
        ))
    })
}

fn analyze_unguarded(sql: &str, dialect: SqlDialect) -> Result<SqlAccess, SqlError> {
    let parser_dialect: &dyn Dialect = match dialect {
        SqlDialect::Postgres => &PostgreSqlDialect {},
        SqlDialect::Sqlite => &SQLiteDialect {},
    };
    let tokens = Tokenizer::new(parser_dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    check_tokens(&tokens, dialect)?;
    if nesting_estimate(&tokens) > MAX_NESTING {
        return Err(SqlError::Parse(format!(
            "statement is nested too deeply (more than {MAX_NESTING} levels)"
        )));
    }
    let statements = Parser::new(parser_dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    let [statement] = statements.as_slice() else {
        return Err(SqlError::StatementCount(statements.len()));
    };

    let mut collector = Collector::new(dialect);
    if let ControlFlow::Break(err) = statement.visit(&mut collector) {
        return Err(*err);
    }
    let (mut kind, mut returns_rows) = top_level_kind(statement);
    if collector.selects_into && kind == StatementKind::Select {
        kind = StatementKind::Ddl;
        returns_rows = false;
    }
    Ok(SqlAccess {
        statement: kind,
        needs: collector.needs,
        returns_rows,
    })
}

/// The kind of the outermost statement and whether it returns rows. Only called once the
/// collector has accepted the statement.
fn top_level_kind(statement: &Statement) -> (StatementKind, bool) {
    match statement {
        Statement::Query(query) => query_kind(query),
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => write_kind(statement),
        _ => (StatementKind::Ddl, false),
    }
}

fn query_kind(query: &Query) -> (StatementKind, bool) {
    match query.body.as_ref() {
        SetExpr::Query(inner) => query_kind(inner),
        SetExpr::Insert(write) | SetExpr::Update(write) | SetExpr::Delete(write) => {
            write_kind(write)
        }
        _ => (StatementKind::Select, true),
    }
}

fn write_kind(statement: &Statement) -> (StatementKind, bool) {
    match statement {
        Statement::Insert(insert) => (StatementKind::Insert, insert.returning.is_some()),
        Statement::Update(update) => (StatementKind::Update, update.returning.is_some()),
        Statement::Delete(delete) => (StatementKind::Delete, delete.returning.is_some()),
        _ => (StatementKind::Select, true),
    }
}
