//! The `db` grant: tables per statement kind, read from `[steps.grants.db]` (or a
//! manifest's `[capabilities.db]`) and checked against every statement's analysis.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{SqlAccess, StatementKind};
use crate::capability::{GrantTable, Lint, Missing};
use crate::spec::Diagnostics;
use crate::spec::read::{SpannedList, items};
use crate::target::is_host_table;

/// `[steps.grants.db]` as written: table lists per statement kind.
#[derive(Debug, Deserialize)]
pub struct RawDbGrant {
    pub select: Option<SpannedList>,
    pub insert: Option<SpannedList>,
    pub update: Option<SpannedList>,
    pub delete: Option<SpannedList>,
    pub ddl: Option<SpannedList>,
    /// Triggers the step's writes may fire, by name (see `implied/`).
    pub triggers: Option<SpannedList>,
    /// PostgreSQL rules the step's writes may fire, by name (see `implied/`).
    pub rules: Option<SpannedList>,
}

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
    /// Triggers the step's writes may fire, by name: a trigger runs code nobody reviewed
    /// with the step, so each one is accepted explicitly. Compared lower-cased.
    pub triggers: BTreeSet<String>,
    /// PostgreSQL rules (`CREATE RULE`) the step's writes may fire, by name, for the
    /// same reason.
    pub rules: BTreeSet<String>,
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
            // The host's own tables are out of every step's reach, whatever a grant
            // built some other way says.
            if is_host_table(table) || !self.tables(kind).contains(table) {
                return Err(Denied {
                    kind,
                    table: table.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl GrantTable for DbGrant {
    type Raw = RawDbGrant;
    type RawNeeds = RawDbGrant;

    /// The grant a table names, every invalid table name reported.
    fn parse(raw: &RawDbGrant, diags: &mut Diagnostics) -> DbGrant {
        let mut grant = DbGrant::default();
        let lists = [
            (StatementKind::Select, &raw.select, &mut grant.select),
            (StatementKind::Insert, &raw.insert, &mut grant.insert),
            (StatementKind::Update, &raw.update, &mut grant.update),
            (StatementKind::Delete, &raw.delete, &mut grant.delete),
            (StatementKind::Ddl, &raw.ddl, &mut grant.ddl),
        ];
        for (kind, list, out) in lists {
            for table in items(list) {
                let name = table.get_ref().trim().to_lowercase();
                if is_table_name(&name) && is_host_table(&name) {
                    diags.error_with_help(
                        table.span(),
                        format!("table {name:?} in `{kind}` is reserved for the host"),
                        "tables named `runbook_*` hold the host's own records (which steps committed their writes); no step may read or write them",
                    );
                } else if is_table_name(&name) {
                    out.insert(name);
                } else {
                    diags.error_with_help(
                        table.span(),
                        format!("invalid table name {:?} in `{kind}`", table.get_ref()),
                        "name each table, plain or schema-qualified, like \"usage_quotas\" or \"billing.invoices\"",
                    );
                }
            }
        }
        let names = [
            ("triggers", &raw.triggers, &mut grant.triggers),
            ("rules", &raw.rules, &mut grant.rules),
        ];
        for (key, list, out) in names {
            for name in items(list) {
                let lower = name.get_ref().trim().to_lowercase();
                if is_table_name(&lower) && !lower.contains('.') {
                    out.insert(lower);
                } else {
                    diags.error_with_help(
                        name.span(),
                        format!("invalid name {:?} in `{key}`", name.get_ref()),
                        "name each one as the database does, unqualified, like \"audit_invoice_change\"",
                    );
                }
            }
        }
        grant
    }

    fn parse_needs(raw: &RawDbGrant, diags: &mut Diagnostics) -> DbGrant {
        DbGrant::parse(raw, diags)
    }

    fn missing(granted: Option<&DbGrant>, needs: &DbGrant) -> Vec<Missing> {
        let none = DbGrant::default();
        let granted = granted.unwrap_or(&none);
        let mut out = Vec::new();
        for kind in StatementKind::ALL {
            for table in needs.tables(kind) {
                if !granted.tables(kind).contains(table) {
                    out.push(Missing {
                        need: format!("{kind} on table {table:?}"),
                        help: format!(
                            "add it to the step: `[steps.grants.db]` {kind} = [{table:?}]"
                        ),
                    });
                }
            }
        }
        let named = [
            ("triggers", &granted.triggers, &needs.triggers, "trigger"),
            ("rules", &granted.rules, &needs.rules, "rule"),
        ];
        for (key, granted, needed, what) in named {
            for name in needed.difference(granted) {
                out.push(Missing {
                    need: format!("to fire {what} {name:?}"),
                    help: format!("add it to the step: `[steps.grants.db]` {key} = [{name:?}]"),
                });
            }
        }
        out
    }

    fn describe(&self) -> Vec<String> {
        StatementKind::ALL
            .into_iter()
            .filter(|kind| !self.tables(*kind).is_empty())
            .map(|kind| {
                let tables: Vec<&str> = self.tables(kind).iter().map(String::as_str).collect();
                format!("{kind}: {}", tables.join(", "))
            })
            .chain(
                [("triggers", &self.triggers), ("rules", &self.rules)]
                    .into_iter()
                    .filter(|(_, names)| !names.is_empty())
                    .map(|(key, names)| {
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        format!("{key}: {}", names.join(", "))
                    }),
            )
            .collect()
    }

    fn writes(&self) -> Vec<String> {
        StatementKind::ALL
            .into_iter()
            .filter(|kind| *kind != StatementKind::Select)
            .flat_map(|kind| {
                self.tables(kind)
                    .iter()
                    .map(move |table| format!("{kind} on {table:?}"))
            })
            .collect()
    }

    fn lints(&self) -> Vec<Lint> {
        self.ddl
            .iter()
            .map(|table| {
                Lint::warning(
                    "ddl-granted",
                    format!(
                        "ddl on {table:?}: the step may create, alter, drop or truncate the table"
                    ),
                )
            })
            .collect()
    }

    fn unneeded(&self, needs: Option<&DbGrant>) -> Vec<String> {
        let none = DbGrant::default();
        let needs = needs.unwrap_or(&none);
        StatementKind::ALL
            .into_iter()
            .flat_map(|kind| {
                self.tables(kind)
                    .difference(needs.tables(kind))
                    .map(move |table| format!("{kind} on {table:?}"))
            })
            .collect()
    }

    fn widened(old: Option<&DbGrant>, new: &DbGrant) -> Vec<String> {
        let none = DbGrant::default();
        let old = old.unwrap_or(&none);
        StatementKind::ALL
            .into_iter()
            .flat_map(|kind| {
                new.tables(kind)
                    .difference(old.tables(kind))
                    .map(move |table| format!("{kind} on {table:?}"))
            })
            .collect()
    }
}

/// Grants name tables exactly (no wildcards): a grant is a reviewable list.
fn is_table_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').count() <= 3
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        })
}

/// A statement needed something the grant does not give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} on table `{table}` is not granted to this step")]
pub struct Denied {
    pub kind: StatementKind,
    pub table: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn grant(select: &[&str], delete: &[&str], ddl: &[&str]) -> DbGrant {
        DbGrant {
            select: set(select),
            delete: set(delete),
            ddl: set(ddl),
            ..DbGrant::default()
        }
    }

    #[test]
    fn the_hosts_tables_are_denied_even_when_granted() {
        let g = grant(
            &["runbook_step_commits", "invoices"],
            &["public.runbook_step_commits"],
            &[],
        );
        let analyze = |sql: &str| {
            super::super::sql::analyze(sql, super::super::SqlDialect::Postgres).unwrap()
        };
        for sql in [
            "SELECT * FROM runbook_step_commits",
            "DELETE FROM public.runbook_step_commits",
            "SELECT * FROM invoices JOIN \"RUNBOOK_STEP_COMMITS\" r ON true",
        ] {
            let denied = g.check(&analyze(sql)).unwrap_err();
            assert!(
                denied.table.to_lowercase().contains("runbook_step_commits"),
                "{sql}: {denied}"
            );
        }
        assert!(g.check(&analyze("SELECT * FROM invoices")).is_ok());
    }

    #[test]
    fn a_grant_naming_a_host_table_is_an_error() {
        let raw: RawDbGrant =
            toml::from_str("select = [\"invoices\", \"Runbook_Step_Commits\"]").unwrap();
        let mut diags = Diagnostics::new("test", "");
        let g = DbGrant::parse(&raw, &mut diags);
        assert!(!g.select.contains("runbook_step_commits"));
        assert!(
            format!("{diags:?}").contains("reserved for the host"),
            "{diags:?}"
        );
    }

    #[test]
    fn writes_are_every_kind_but_select_and_ddl_is_linted() {
        let g = grant(&["invoices"], &["invoices"], &["scratch"]);
        assert_eq!(g.writes(), ["delete on \"invoices\"", "ddl on \"scratch\""]);
        let lints = g.lints();
        assert_eq!(lints.len(), 1);
        assert_eq!(lints[0].code, "ddl-granted");
        assert!(lints[0].message.contains("\"scratch\""));
        assert!(grant(&["a"], &["a"], &[]).lints().is_empty());
    }

    #[test]
    fn unneeded_is_what_the_manifest_does_not_declare() {
        let g = grant(&["invoices", "customers"], &["invoices"], &[]);
        let needs = grant(&["invoices"], &[], &[]);
        assert_eq!(
            g.unneeded(Some(&needs)),
            ["select on \"customers\"", "delete on \"invoices\""]
        );
        assert_eq!(g.unneeded(None).len(), 3);
        assert!(needs.unneeded(Some(&g)).is_empty());
    }

    #[test]
    fn widened_is_what_new_allows_and_old_did_not() {
        let old = grant(&["invoices"], &[], &[]);
        let new = grant(&["invoices"], &["invoices"], &["invoices"]);
        assert_eq!(
            DbGrant::widened(Some(&old), &new),
            ["delete on \"invoices\"", "ddl on \"invoices\""]
        );
        assert!(DbGrant::widened(Some(&new), &old).is_empty());
        assert_eq!(DbGrant::widened(None, &old), ["select on \"invoices\""]);
    }
}
