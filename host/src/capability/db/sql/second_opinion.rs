//! The analyzer checked against SQLite itself: every table SQLite reads or writes while
//! preparing a statement must be one the analyzer reported (a write for a matching kind),
//! and SQLite must see the one statement the analyzer saw. Any disagreement denies.
//!
//! Deliberately not compared: SQLite's own bookkeeping tables (`sqlite_schema` and its
//! aliases, read and written by DDL; `sqlite_sequence`, written by AUTOINCREMENT inserts),
//! which only follow from a statement the analyzer accounted for; the `temp` database,
//! which holds only what the step itself created (DDL its grant allowed) and nothing of
//! the billing data; and reads of SQLite's table-valued functions (`json_each`, ...),
//! which are functions to the analyzer. Foreign keys and triggers are off while SQLite
//! prepares for this check (see `target::sqlite_authorizer`): what they touch is the
//! schema's doing.

use super::collect::name_part;
use super::policy::{SQLITE_TABLE_FUNCTIONS, is_forbidden_function};
use super::{SqlAccess, StatementKind};
use crate::target::{SqliteOpinion, TableAccess, TableAction};

/// SQLite's bookkeeping tables (lowercase).
const SQLITE_INTERNAL_TABLES: &[&str] = &[
    "sqlite_schema",
    "sqlite_master",
    "sqlite_temp_schema",
    "sqlite_temp_master",
    "sqlite_sequence",
];

/// Where SQLite and the analyzer disagree about a statement the analyzer accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the SQL analyzer and SQLite disagree: {what}; the statement is denied")]
pub struct Disagreement {
    /// The table SQLite touched, normalized like the analyzer's names, if a table.
    pub table: Option<String>,
    what: String,
}

/// Checks SQLite's opinion against the analyzer's; `Err` names the first disagreement.
pub fn check(access: &SqlAccess, opinion: &SqliteOpinion) -> Result<(), Disagreement> {
    if opinion.statements != 1 {
        return Err(Disagreement {
            table: None,
            what: format!(
                "SQLite finds {} statements in the text, the analyzer one",
                opinion.statements
            ),
        });
    }
    for touched in &opinion.tables {
        if let Some(table) = unseen(access, touched) {
            let verb = match touched.action {
                TableAction::Read => "reads",
                TableAction::Insert => "inserts into",
                TableAction::Update => "updates",
                TableAction::Delete => "deletes from",
                TableAction::Schema => "changes the schema of",
            };
            return Err(Disagreement {
                what: format!("SQLite {verb} table `{table}`, which the analyzer did not see"),
                table: Some(table),
            });
        }
    }
    // `CREATE INDEX` rebuilds the index it creates: covered by that schema change.
    if let Some(index) = opinion.reindexed.iter().find(|index| {
        !opinion.tables.iter().any(|t| {
            t.index
                .as_deref()
                .is_some_and(|i| i.eq_ignore_ascii_case(index))
        })
    }) {
        return Err(Disagreement {
            table: None,
            what: format!("SQLite rebuilds index `{index}`, which the analyzer did not see"),
        });
    }
    if let Some(function) = opinion.functions.iter().find(|f| is_forbidden_function(f)) {
        return Err(Disagreement {
            table: None,
            what: format!("SQLite calls function `{function}`, which is not allowed"),
        });
    }
    if let Some(other) = opinion.other.iter().next() {
        return Err(Disagreement {
            table: None,
            what: format!("SQLite asks for {other}, which the analyzer did not see"),
        });
    }
    Ok(())
}

/// The table's normalized name when the analyzer did not report this access.
fn unseen(access: &SqlAccess, touched: &TableAccess) -> Option<String> {
    let database = touched.database.to_ascii_lowercase();
    let table = touched.table.to_ascii_lowercase();
    if database == "temp" || SQLITE_INTERNAL_TABLES.contains(&table.as_str()) {
        return None;
    }
    if touched.action == TableAction::Read && SQLITE_TABLE_FUNCTIONS.contains(&table.as_str()) {
        return None;
    }
    let names = |name: &str| {
        let part = name_part(name.to_string());
        [format!("{}.{part}", name_part(database.clone())), part]
    };
    let mut candidates = names(&table).to_vec();
    if let Some(index) = &touched.index {
        candidates.extend(names(&index.to_ascii_lowercase()));
    }
    let seen = access.needs.iter().any(|(kind, name)| {
        candidates.contains(name)
            && match touched.action {
                // The grant model lets a write read its own target (WHERE, SET, RETURNING).
                TableAction::Read => true,
                TableAction::Insert => *kind == StatementKind::Insert,
                TableAction::Update => *kind == StatementKind::Update,
                TableAction::Delete => *kind == StatementKind::Delete,
                TableAction::Schema => *kind == StatementKind::Ddl,
            }
    });
    (!seen).then(|| candidates.swap_remove(1))
}
