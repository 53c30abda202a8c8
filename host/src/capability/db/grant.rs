//! The `db` grant: tables per statement kind, checked against every statement's analysis.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{SqlAccess, StatementKind};

/// Tables per statement kind. Table names are compared lower-cased, as written
/// (a schema-qualified name must be granted schema-qualified).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DbGrant {
    pub select: BTreeSet<String>,
    pub insert: BTreeSet<String>,
    pub update: BTreeSet<String>,
    pub delete: BTreeSet<String>,
    /// DDL (CREATE/ALTER/DROP/TRUNCATE) on these tables; empty unless explicitly granted.
    pub ddl: BTreeSet<String>,
}

impl DbGrant {
    pub fn is_empty(&self) -> bool {
        self.select.is_empty()
            && self.insert.is_empty()
            && self.update.is_empty()
            && self.delete.is_empty()
            && self.ddl.is_empty()
    }

    pub fn tables(&self, kind: StatementKind) -> &BTreeSet<String> {
        match kind {
            StatementKind::Select => &self.select,
            StatementKind::Insert => &self.insert,
            StatementKind::Update => &self.update,
            StatementKind::Delete => &self.delete,
            StatementKind::Ddl => &self.ddl,
        }
    }

    /// Every (kind, table) pair the statement needs must be granted. Returns the first
    /// pair that is not, so the denial names exactly what was missing.
    pub fn check(&self, access: &SqlAccess) -> Result<(), Denied> {
        for (kind, table) in access.requirements() {
            if !self.tables(kind).contains(table) {
                return Err(Denied {
                    kind,
                    table: table.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The (kind, table) pairs of `needed` that this grant does not cover.
    pub fn missing<'a>(&self, needed: &'a DbGrant) -> Vec<(StatementKind, &'a str)> {
        StatementKind::ALL
            .into_iter()
            .flat_map(|kind| {
                needed
                    .tables(kind)
                    .iter()
                    .filter(move |t| !self.tables(kind).contains(*t))
                    .map(move |t| (kind, t.as_str()))
            })
            .collect()
    }
}

/// A statement needed something the grant does not give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} on table `{table}` is not granted to this step")]
pub struct Denied {
    pub kind: StatementKind,
    pub table: String,
}
