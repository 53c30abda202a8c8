//! What the target database does on its own when a step writes: foreign keys whose
//! `ON DELETE` / `ON UPDATE` action changes another table, triggers, PostgreSQL rules,
//! views that write their base tables, and partitions (or inheritance children) that a
//! write to their parent reaches. A `db` grant implies none of it: [`ImpliedEffects`]
//! says, for a grant or one statement's writes, what else the step must be granted.
//!
//! The model is read from the catalog once (`postgres.rs`, `sqlite.rs`), names resolved
//! the way the target resolves a statement's table names (PostgreSQL: the connection's
//! `search_path`), and walked transitively in `walk.rs`.

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;
mod walk;

use std::collections::{BTreeSet, HashMap};
use std::fmt;

pub use walk::{ImpliedNeed, Need};

use super::StatementKind;
use crate::target::{ResultCaps, SqlDialect, SqlValue, StepTransaction, TargetDb, TargetError};

/// A write as the database sees it: which of a table's triggers and rules it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    Insert,
    Update,
    Delete,
    Truncate,
}

impl Event {
    /// The event a granted statement kind causes (`ddl` can TRUNCATE; `select` writes nothing).
    pub fn of(kind: StatementKind) -> Option<Event> {
        match kind {
            StatementKind::Select => None,
            StatementKind::Insert => Some(Event::Insert),
            StatementKind::Update => Some(Event::Update),
            StatementKind::Delete => Some(Event::Delete),
            StatementKind::Ddl => Some(Event::Truncate),
        }
    }

    /// The grant kind that covers this event on a table.
    pub fn kind(self) -> StatementKind {
        match self {
            Event::Insert => StatementKind::Insert,
            Event::Update => StatementKind::Update,
            Event::Delete => StatementKind::Delete,
            Event::Truncate => StatementKind::Ddl,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Event::Insert => "INSERT",
            Event::Update => "UPDATE",
            Event::Delete => "DELETE",
            Event::Truncate => "TRUNCATE",
        })
    }
}

/// A referential action that writes the referencing table. `RESTRICT` and `NO ACTION`
/// only read it, so they are not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FkAction {
    Cascade,
    SetNull,
    SetDefault,
}

impl FkAction {
    /// PostgreSQL's `confdeltype` letter or SQLite's `on_delete` text; `None` for the
    /// actions that only read.
    fn parse(text: &str) -> Option<FkAction> {
        match text.to_ascii_uppercase().as_str() {
            "C" | "CASCADE" => Some(FkAction::Cascade),
            "N" | "SET NULL" => Some(FkAction::SetNull),
            "D" | "SET DEFAULT" => Some(FkAction::SetDefault),
            _ => None,
        }
    }
}

impl fmt::Display for FkAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        })
    }
}

/// A relation by schema and name, as the catalog spells them.
type RelKey = (String, String);
type RelId = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Relation {
    schema: String,
    name: String,
}

#[derive(Debug, Clone)]
struct ForeignKey {
    child: RelId,
    columns: String,
    parent: RelId,
    on_delete: Option<FkAction>,
    on_update: Option<FkAction>,
}

#[derive(Debug, Clone)]
struct Trigger {
    table: RelId,
    name: String,
    events: BTreeSet<Event>,
    /// `INSTEAD OF` (on a view): the write goes to the trigger, not the base table.
    instead: bool,
}

#[derive(Debug, Clone)]
struct Rule {
    table: RelId,
    name: String,
    event: Event,
    /// `DO INSTEAD` without a condition: the original write does not happen.
    instead: bool,
}

/// Catalog rows as the backend readers return them, names not yet resolved.
#[derive(Debug, Default)]
struct RawCatalog {
    search_path: Vec<String>,
    relations: Vec<RelKey>,
    foreign_keys: Vec<RawForeignKey>,
    triggers: Vec<RawTrigger>,
    rules: Vec<RawRule>,
    /// (view, a relation its query reads).
    view_bases: Vec<(RelKey, RelKey)>,
    /// (parent, partition or inheritance child).
    inherits: Vec<(RelKey, RelKey)>,
}

#[derive(Debug)]
struct RawForeignKey {
    child: RelKey,
    columns: String,
    parent: RelKey,
    on_delete: Option<FkAction>,
    on_update: Option<FkAction>,
}

#[derive(Debug)]
struct RawTrigger {
    table: RelKey,
    name: String,
    events: BTreeSet<Event>,
    instead: bool,
}

#[derive(Debug)]
struct RawRule {
    table: RelKey,
    name: String,
    event: Event,
    instead: bool,
}

/// Reading the target's catalog failed.
#[derive(Debug, thiserror::Error)]
pub enum ImpliedError {
    #[error("reading the target schema's foreign keys, triggers and rules: {0}")]
    Read(#[source] TargetError),
    #[error("reading the target schema's foreign keys, triggers and rules: {0}")]
    Shape(String),
}

impl ImpliedError {
    /// The statement was stopped at the step's deadline, not refused by the catalog.
    pub fn deadline(&self) -> Option<&TargetError> {
        match self {
            ImpliedError::Read(e @ (TargetError::DeadlineExceeded | TargetError::Abandoned)) => {
                Some(e)
            }
            _ => None,
        }
    }
}

/// What the target schema does implicitly, read once from its catalog.
#[derive(Debug, Default, Clone)]
pub struct ImpliedEffects {
    relations: Vec<Relation>,
    index: HashMap<RelKey, RelId>,
    search_path: Vec<String>,
    /// SQLite compares names case-insensitively: keys and lookups are lower-cased.
    fold_case: bool,
    foreign_keys: Vec<ForeignKey>,
    triggers: Vec<Trigger>,
    rules: Vec<Rule>,
    view_bases: Vec<(RelId, RelId)>,
    inherits: Vec<(RelId, RelId)>,
}

impl ImpliedEffects {
    /// Reads the catalog on a connection of its own (a transaction rolled back after).
    pub async fn load(target: &TargetDb) -> Result<ImpliedEffects, ImpliedError> {
        let mut tx = target.begin().await.map_err(ImpliedError::Read)?;
        let read = ImpliedEffects::read(&mut tx, target.dialect()).await;
        if let Err(e) = tx.rollback().await {
            tracing::warn!(target: "runbook::db", "rolling back the catalog read: {e}");
        }
        read
    }

    /// Reads the catalog inside `tx`, so it sees the schema as that transaction does
    /// (a step's own DDL included).
    pub async fn read(
        tx: &mut StepTransaction,
        dialect: SqlDialect,
    ) -> Result<ImpliedEffects, ImpliedError> {
        let raw = match dialect {
            SqlDialect::Postgres => postgres::read(tx).await?,
            SqlDialect::Sqlite => sqlite::read(tx).await?,
        };
        Ok(ImpliedEffects::build(raw, dialect == SqlDialect::Sqlite))
    }

    /// How many foreign keys with a writing action, triggers and rules were read.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.foreign_keys.len(),
            self.triggers.len(),
            self.rules.len(),
        )
    }

    fn build(raw: RawCatalog, fold_case: bool) -> ImpliedEffects {
        let mut effects = ImpliedEffects {
            fold_case,
            search_path: raw.search_path.iter().map(|s| fold(s, fold_case)).collect(),
            ..ImpliedEffects::default()
        };
        for (schema, name) in raw.relations {
            let key = (fold(&schema, fold_case), fold(&name, fold_case));
            if !effects.index.contains_key(&key) {
                effects.index.insert(key, effects.relations.len());
                effects.relations.push(Relation { schema, name });
            }
        }
        // Rows naming a relation the catalog did not list (another schema's internals)
        // are dropped: nothing can write them through a grant resolved here.
        for fk in raw.foreign_keys {
            if let (Some(child), Some(parent)) = (effects.id(&fk.child), effects.id(&fk.parent))
                && (fk.on_delete.is_some() || fk.on_update.is_some())
            {
                effects.foreign_keys.push(ForeignKey {
                    child,
                    columns: fk.columns,
                    parent,
                    on_delete: fk.on_delete,
                    on_update: fk.on_update,
                });
            }
        }
        for t in raw.triggers {
            if let Some(table) = effects.id(&t.table) {
                effects.triggers.push(Trigger {
                    table,
                    name: t.name,
                    events: t.events,
                    instead: t.instead,
                });
            }
        }
        for r in raw.rules {
            if let Some(table) = effects.id(&r.table) {
                effects.rules.push(Rule {
                    table,
                    name: r.name,
                    event: r.event,
                    instead: r.instead,
                });
            }
        }
        for (view, base) in raw.view_bases {
            if let (Some(v), Some(b)) = (effects.id(&view), effects.id(&base))
                && v != b
            {
                effects.view_bases.push((v, b));
            }
        }
        for (parent, child) in raw.inherits {
            if let (Some(p), Some(c)) = (effects.id(&parent), effects.id(&child)) {
                effects.inherits.push((p, c));
            }
        }
        effects
    }

    fn id(&self, (schema, name): &RelKey) -> Option<RelId> {
        let key = (fold(schema, self.fold_case), fold(name, self.fold_case));
        self.index.get(&key).copied()
    }

    /// The relation a table name in a grant or statement means: `t` through the search
    /// path, `s.t` in schema `s` (`db.s.t`: the database part is the connection's).
    fn resolve(&self, table: &str) -> Option<RelId> {
        let parts: Vec<&str> = table.split('.').collect();
        match parts.as_slice() {
            [name] => self.search_path.iter().find_map(|schema| {
                self.index
                    .get(&(schema.clone(), fold(name, self.fold_case)))
                    .copied()
            }),
            [schema, name] | [_, schema, name] => self.id(&(schema.to_string(), name.to_string())),
            _ => None,
        }
    }

    /// The name a grant uses for a relation: bare when the search path finds it by its
    /// bare name, schema-qualified otherwise.
    fn display(&self, id: RelId) -> String {
        let relation = &self.relations[id];
        if self.resolve(&relation.name) == Some(id) {
            fold(&relation.name, self.fold_case)
        } else {
            format!(
                "{}.{}",
                fold(&relation.schema, self.fold_case),
                fold(&relation.name, self.fold_case)
            )
        }
    }
}

fn fold(text: &str, fold_case: bool) -> String {
    if fold_case {
        text.to_lowercase()
    } else {
        text.to_string()
    }
}

/// Runs one catalog query in `tx`; every column must come back as text (the readers
/// cast), so nothing here depends on how a driver types catalog columns.
async fn text_rows(tx: &mut StepTransaction, sql: &str) -> Result<Vec<Vec<String>>, ImpliedError> {
    let rows = tx
        .query(sql, &[], ResultCaps::NONE)
        .await
        .map_err(ImpliedError::Read)?;
    rows.rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|value| match value {
                    SqlValue::Text(s) => Ok(s),
                    SqlValue::Null => Ok(String::new()),
                    SqlValue::Integer(n) => Ok(n.to_string()),
                    other => Err(ImpliedError::Shape(format!(
                        "unexpected catalog value {other:?}"
                    ))),
                })
                .collect()
        })
        .collect()
}
