//! The SQL statement analyser behind the `db` capability's grant: which (statement kind,
//! table) pairs a statement needs.

pub mod sql;

pub use sql::{AnalysisCache, SqlAccess, SqlDialect, SqlError, StatementKind};
