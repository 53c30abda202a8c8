//! Capability grants: what one runbook step may do, and the checks that enforce it.
//!
//! A grant is deny-by-default. It is checked twice: at load time against the interfaces a
//! component imports ([`Grants::allows_interface`]) and at every call (for the database,
//! [`DbGrant::check`] against the tables a statement touches, see [`sql`]).

pub mod sql;

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

pub use sql::{AnalysisCache, SqlAccess, SqlDialect, SqlError, StatementKind};

/// Everything one step is allowed to do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grants {
    pub db: DbGrant,
    pub stripe: Option<StripeGrant>,
    pub email: Option<EmailGrant>,
    pub webhook: Option<WebhookGrant>,
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
}

/// Stripe operations such as `refunds.create`, and the budgets that bound what they may
/// move. Budgets count per run across every step that shares them (see `capability::budget`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StripeGrant {
    pub operations: BTreeSet<String>,
    /// Largest refund one `refunds.create` may make, in the smallest currency unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_refund_amount: Option<i64>,
    /// Largest total of all refunds of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_refund_total: Option<i64>,
    /// Most Stripe write calls (create, update, delete, cancel) of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_writes: Option<u32>,
}

/// Recipient patterns such as `*@example.com`. An entry written as a template
/// (`{{ steps.find.output.admins }}`) is rendered when the step starts, from the outputs
/// of earlier steps, so a step may mail exactly the addresses an earlier step read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmailGrant {
    pub recipients: Vec<String>,
    pub max_per_run: Option<u32>,
}

impl EmailGrant {
    /// Whether `address` (lower-cased) matches one of the (rendered) patterns.
    pub fn allows(&self, address: &str) -> bool {
        let address = address.trim().to_lowercase();
        self.recipients
            .iter()
            .any(|p| !p.contains("{{") && glob_match(p, &address))
    }
}

/// Configured webhook endpoints, by name, that the step may deliver to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookGrant {
    pub endpoints: BTreeSet<String>,
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let w: Vec<char> = text.chars().collect();
    // Iterative glob match with backtracking to the last star: linear memory, no recursion.
    let (mut pi, mut wi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while wi < w.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, wi));
            pi += 1;
        } else if pi < p.len() && p[pi] == w[wi] {
            pi += 1;
            wi += 1;
        } else if let Some((sp, sw)) = star {
            pi = sp + 1;
            wi = sw + 1;
            star = Some((sp, sw + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// One host interface a plugin may import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Db,
    Audit,
    Log,
    Stripe,
    Email,
    Webhook,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::Db,
        Capability::Audit,
        Capability::Log,
        Capability::Stripe,
        Capability::Email,
        Capability::Webhook,
    ];

    /// The WIT interface name, as it appears in a component's imports
    /// (`runbook:plugin/<name>@<version>`).
    pub fn interface_name(self) -> &'static str {
        match self {
            Capability::Db => "db",
            Capability::Audit => "audit",
            Capability::Log => "log",
            Capability::Stripe => "stripe",
            Capability::Email => "email",
            Capability::Webhook => "webhook",
        }
    }

    pub fn from_interface_name(name: &str) -> Option<Capability> {
        Capability::ALL
            .into_iter()
            .find(|c| c.interface_name() == name)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface_name())
    }
}

impl Grants {
    /// Whether a component importing `capability` may be loaded for this step at all.
    /// Audit and log are always granted: they only record, and recording is the point.
    pub fn allows_interface(&self, capability: Capability) -> bool {
        match capability {
            Capability::Audit | Capability::Log => true,
            Capability::Db => !self.db.is_empty(),
            Capability::Stripe => self.stripe.is_some(),
            Capability::Email => self.email.is_some(),
            Capability::Webhook => self.webhook.is_some(),
        }
    }
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
