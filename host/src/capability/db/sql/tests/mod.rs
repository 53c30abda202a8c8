//! Unit tests of SQL analysis, by theme, and the helpers they share.

mod differential;
mod fuzz;
mod generate;
mod lexical;
mod oracle;
mod refusals;
mod second_opinion;
mod tables;

use std::collections::BTreeSet;

use super::StatementKind::{Ddl, Delete, Insert, Select, Update};
use super::{SqlAccess, SqlDialect, SqlError, StatementKind, analyze};

pub(super) fn set(pairs: &[(StatementKind, &str)]) -> BTreeSet<(StatementKind, String)> {
    pairs
        .iter()
        .map(|(kind, table)| (*kind, table.to_string()))
        .collect()
}

pub(super) fn ok(sql: &str, dialect: SqlDialect) -> SqlAccess {
    analyze(sql, dialect).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub(super) fn pg(sql: &str) -> SqlAccess {
    ok(sql, SqlDialect::Postgres)
}

pub(super) fn lite(sql: &str) -> SqlAccess {
    ok(sql, SqlDialect::Sqlite)
}

#[track_caller]
pub(super) fn pg_needs(sql: &str, expected: &[(StatementKind, &str)]) {
    assert_eq!(pg(sql).needs, set(expected), "{sql}");
}

#[track_caller]
pub(super) fn lite_needs(sql: &str, expected: &[(StatementKind, &str)]) {
    assert_eq!(lite(sql).needs, set(expected), "{sql}");
}

#[track_caller]
pub(super) fn pg_err(sql: &str) -> SqlError {
    analyze(sql, SqlDialect::Postgres).expect_err(sql)
}

#[track_caller]
pub(super) fn lite_err(sql: &str) -> SqlError {
    analyze(sql, SqlDialect::Sqlite).expect_err(sql)
}

pub(super) fn unsupported(what: &str) -> SqlError {
    SqlError::Unsupported(what.to_string())
}

pub(super) fn forbidden(name: &str) -> SqlError {
    SqlError::ForbiddenFunction(name.to_string())
}

#[test]
fn statement_kind_names() {
    for kind in StatementKind::ALL {
        assert_eq!(kind.as_str().parse::<StatementKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(Ddl.as_str(), "ddl");
    assert!("SELECT".parse::<StatementKind>().is_err());
    assert!("drop".parse::<StatementKind>().is_err());
}
