//! The walk from a write a grant allows to everything the database would do because of
//! it, followed transitively (a cascade into a table whose own foreign keys cascade
//! further, a trigger's table's partitions, a view's base table), each need marked
//! granted or not.

use std::collections::HashSet;
use std::fmt;

use serde::Serialize;

use super::{Event, FkAction, ImpliedEffects, RelId};
use crate::capability::db::{DbGrant, StatementKind};

/// Something the database does implicitly that the step must be granted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Need {
    /// A write of `kind` on `table` (a cascade, a view's base table, a partition).
    Table { table: String, kind: StatementKind },
    /// A trigger that fires: arbitrary code, accepted by name.
    Trigger { table: String, name: String },
    /// A PostgreSQL rule that rewrites the write: accepted by name.
    Rule { table: String, name: String },
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Table { table, kind } => write!(f, "{kind} on table {table:?}"),
            Need::Trigger { table, name } => write!(f, "trigger {name:?} on {table:?}"),
            Need::Rule { table, name } => write!(f, "rule {name:?} on {table:?}"),
        }
    }
}

/// One implicit effect of a write the grant allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImpliedNeed {
    /// The granted write it follows from: `delete on "parents"`.
    pub source: String,
    pub need: Need,
    /// Why the database does it: `"kids"(parent_id) references "parents" ON DELETE CASCADE`.
    pub reason: String,
    /// Whether the grant already covers it.
    pub granted: bool,
}

impl ImpliedNeed {
    /// The grant line that covers it.
    pub fn help(&self) -> String {
        match &self.need {
            Need::Table { table, kind } => format!("`[steps.grants.db]` {kind} = [{table:?}]"),
            Need::Trigger { name, .. } => format!("`[steps.grants.db]` triggers = [{name:?}]"),
            Need::Rule { name, .. } => format!("`[steps.grants.db]` rules = [{name:?}]"),
        }
    }
}

impl fmt::Display for ImpliedNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} also needs {}: {}; add {}",
            self.source,
            self.need,
            self.reason,
            self.help()
        )
    }
}

impl ImpliedEffects {
    /// For each write `grant` allows, what the database would do implicitly.
    pub fn implied_by(&self, grant: &DbGrant) -> Vec<ImpliedNeed> {
        let writes = [
            StatementKind::Insert,
            StatementKind::Update,
            StatementKind::Delete,
            StatementKind::Ddl,
        ];
        writes
            .into_iter()
            .flat_map(|kind| {
                grant
                    .tables(kind)
                    .iter()
                    .flat_map(move |table| self.implied_by_write(kind, table, grant))
            })
            .collect()
    }

    /// Those of [`implied_by`](Self::implied_by) the grant does not cover.
    pub fn not_granted(&self, grant: &DbGrant) -> Vec<ImpliedNeed> {
        self.implied_by(grant)
            .into_iter()
            .filter(|need| !need.granted)
            .collect()
    }

    /// What one write (`kind` on `table`, named as a grant or statement names it) makes
    /// the database do. A table the catalog does not know implies nothing (the statement
    /// will fail on it).
    pub fn implied_by_write(
        &self,
        kind: StatementKind,
        table: &str,
        grant: &DbGrant,
    ) -> Vec<ImpliedNeed> {
        let (Some(event), Some(id)) = (Event::of(kind), self.resolve(table)) else {
            return Vec::new();
        };
        let mut walk = Walk {
            effects: self,
            grant,
            source: format!("{kind} on {table:?}"),
            seen: HashSet::new(),
            out: Vec::new(),
        };
        walk.visit(event, id, &[]);
        walk.out
    }
}

struct Walk<'a> {
    effects: &'a ImpliedEffects,
    grant: &'a DbGrant,
    source: String,
    /// Each (event, relation) is followed once: cycles and self-references end.
    seen: HashSet<(Event, RelId)>,
    out: Vec<ImpliedNeed>,
}

impl Walk<'_> {
    fn visit(&mut self, event: Event, id: RelId, path: &[RelId]) {
        if !self.seen.insert((event, id)) {
            return;
        }
        let effects = self.effects;
        let mut path = path.to_vec();
        path.push(id);
        let here = effects.display(id);

        // A write to a parent reaches its partitions (or inheritance children); the
        // grant on the parent covers them, but their own triggers and keys still count.
        for &(parent, child) in &effects.inherits {
            if parent == id {
                let name = effects.display(child);
                let reason = format!(
                    "{name:?} is a partition (or inheritance child) of {here:?}, so the grant on {here:?} covers it"
                );
                let need = Need::Table {
                    table: name,
                    kind: event.kind(),
                };
                self.push(need, reason, true, &path);
                self.visit(event, child, &path);
            }
        }

        let mut instead = false;
        for trigger in effects.triggers.iter().filter(|t| t.table == id) {
            if trigger.events.contains(&event) {
                instead |= trigger.instead;
                let reason = if trigger.instead {
                    format!("it fires INSTEAD OF {event} on {here:?} and runs its own code")
                } else {
                    format!("it fires on {event} of {here:?} and runs its own code")
                };
                let granted = self.grant.triggers.contains(&trigger.name.to_lowercase());
                let need = Need::Trigger {
                    table: here.clone(),
                    name: trigger.name.clone(),
                };
                self.push(need, reason, granted, &path);
            }
        }
        for rule in effects.rules.iter().filter(|r| r.table == id) {
            if rule.event == event {
                instead |= rule.instead;
                let reason = format!("a rule rewrites {event} on {here:?} into other statements");
                let granted = self.grant.rules.contains(&rule.name.to_lowercase());
                let need = Need::Rule {
                    table: here.clone(),
                    name: rule.name.clone(),
                };
                self.push(need, reason, granted, &path);
            }
        }

        // An updatable view writes the relations it reads, unless a trigger or rule
        // does the write instead.
        if !instead {
            for &(view, base) in &effects.view_bases {
                if view == id {
                    let name = effects.display(base);
                    let reason =
                        format!("{here:?} is a view over {name:?}: writing the view writes it");
                    let granted = self.covered(event.kind(), base);
                    let need = Need::Table {
                        table: name,
                        kind: event.kind(),
                    };
                    self.push(need, reason, granted, &path);
                    self.visit(event, base, &path);
                }
            }
        }

        for fk in effects.foreign_keys.iter().filter(|fk| fk.parent == id) {
            let action = match event {
                Event::Delete => fk.on_delete,
                Event::Update => fk.on_update,
                Event::Insert | Event::Truncate => None,
            };
            let Some(action) = action else {
                continue;
            };
            // A cascading delete deletes the referencing rows; every other action
            // (and ON UPDATE CASCADE) updates them.
            let child_event = if event == Event::Delete && action == FkAction::Cascade {
                Event::Delete
            } else {
                Event::Update
            };
            let child = effects.display(fk.child);
            let reason = format!(
                "{child:?}({}) references {here:?} ON {event} {action}",
                fk.columns
            );
            let granted = self.covered(child_event.kind(), fk.child);
            let need = Need::Table {
                table: child,
                kind: child_event.kind(),
            };
            self.push(need, reason, granted, &path);
            self.visit(child_event, fk.child, &path);
        }
    }

    /// One entry per need and source, with the reason it was first reached by.
    fn push(&mut self, need: Need, reason: String, granted: bool, path: &[RelId]) {
        if self.out.iter().any(|n| n.need == need) {
            return;
        }
        let reason = if path.len() > 1 {
            let names: Vec<String> = path.iter().map(|&id| self.effects.display(id)).collect();
            format!("{reason} (reached through {})", names.join(" → "))
        } else {
            reason
        };
        self.out.push(ImpliedNeed {
            source: self.source.clone(),
            need,
            reason,
            granted,
        });
    }

    /// Whether the grant names the relation for `kind`, or one of its ancestors (a
    /// grant on a partitioned table covers its partitions).
    fn covered(&self, kind: StatementKind, id: RelId) -> bool {
        let mut ancestors = vec![id];
        let mut i = 0;
        while i < ancestors.len() {
            let current = ancestors[i];
            for &(parent, child) in &self.effects.inherits {
                if child == current && !ancestors.contains(&parent) {
                    ancestors.push(parent);
                }
            }
            i += 1;
        }
        self.grant.tables(kind).iter().any(|table| {
            self.effects
                .resolve(table)
                .is_some_and(|r| ancestors.contains(&r))
        })
    }
}
