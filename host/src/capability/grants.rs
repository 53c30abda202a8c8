//! What one runbook step may do: one grant per capability, deny by default. Checked twice:
//! at load time against the interfaces a component imports ([`Grants::allows_interface`])
//! and on every call by the capability itself. Each capability with a grant implements
//! [`GrantTable`]; the aggregates over them ([`Grants`], the raw tables of a runbook
//! step and of a plugin manifest) are generated from the registry's list.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use super::{Capability, registry};
use crate::spec::Diagnostics;

pub use registry::{Grants, RawGrants, RawNeeds};

/// A capability's grant: its table in a runbook step (`[steps.grants.<name>]`) and in a
/// plugin manifest (`[capabilities.<name>]`, what the plugin says it needs), and how
/// needs are checked against a step's grant. No table means nothing granted.
pub trait GrantTable: Sized + Clone + PartialEq + Eq + fmt::Debug + Serialize {
    /// The step's table as written; its fields are the keys the table allows.
    type Raw: DeserializeOwned + fmt::Debug;
    /// The manifest's table as written (often the same shape).
    type RawNeeds: DeserializeOwned + fmt::Debug;

    fn parse(raw: &Self::Raw, diags: &mut Diagnostics) -> Self;

    fn parse_needs(raw: &Self::RawNeeds, diags: &mut Diagnostics) -> Self;

    /// What `needs` asks for that `granted` (`None`: the step has no such table) does not
    /// give, each as the rest of "plugin X needs …, which this step does not grant".
    fn missing(granted: Option<&Self>, needs: &Self) -> Vec<Missing>;

    /// One line per thing granted, the way a security reviewer reads them.
    fn describe(&self) -> Vec<String>;

    /// What the grant lets a step change outside its own run (`delete on "invoices"`,
    /// `refunds.create`, `to "*@example.com"`): the review's write list. Reads are not
    /// listed.
    fn writes(&self) -> Vec<String>;

    /// What a reviewer should look at twice in this grant alone (`ddl-granted`,
    /// `unbounded-stripe-writes`, `wildcard-recipient`).
    fn lints(&self) -> Vec<Lint> {
        Vec::new()
    }

    /// What the grant gives that the plugin's manifest (`None`: no such table) never
    /// declares needing, each as "… is granted but never declared".
    fn unneeded(&self, needs: Option<&Self>) -> Vec<String>;

    /// What `new` allows that `old` (`None`: no such table) did not: new tables,
    /// operations, recipients, raised or removed budgets. `widened(new, old)` is the
    /// narrowing.
    fn widened(old: Option<&Self>, new: &Self) -> Vec<String>;
}

/// A finding of the security review (`runbook grants`), by a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lint {
    /// Stable, kebab-case: `ddl-granted`, `unneeded-grant`, ... (README's lint table).
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
}

/// How much a lint matters. `--deny warnings` fails on any lint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a second look; may be intended.
    Warning,
    /// The workspace is not what was reviewed (a plugin differs from runbook.lock).
    Error,
}

impl Lint {
    pub fn warning(code: &'static str, message: impl Into<String>) -> Lint {
        Lint {
            code,
            severity: Severity::Warning,
            message: message.into(),
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Lint {
        Lint {
            code,
            severity: Severity::Error,
            message: message.into(),
        }
    }
}

/// Something a plugin needs that a step does not grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is needed: `select on table "x"`, `to send email`.
    pub need: String,
    /// How to grant it.
    pub help: String,
}

/// A budget (`max_writes`, `max_per_run`) that `new` loosens compared with `old`:
/// removed (no limit any more) or raised. `None` when it is as tight or tighter.
pub fn budget_widened(key: &str, old: Option<i64>, new: Option<i64>) -> Option<String> {
    match (old, new) {
        (Some(was), None) => Some(format!("{key} removed (was {was}): no limit")),
        (Some(was), Some(now)) if now > was => Some(format!("{key} raised from {was} to {now}")),
        _ => None,
    }
}

/// Generates, from the registry's list of capabilities with a grant (`field: Grant`),
/// the aggregate [`Grants`] and the raw `[steps.grants]` / `[capabilities]` tables, so a
/// capability's grant is named once.
macro_rules! grant_tables {
    ($($field:ident: $grant:ty),* $(,)?) => {
        /// Everything one step is allowed to do: one optional grant per capability.
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
        pub struct Grants {
            $(pub $field: Option<$grant>,)*
        }

        /// `[steps.grants]` as written.
        #[derive(Debug, serde::Deserialize)]
        pub struct RawGrants {
            $(pub $field: Option<toml::Spanned<<$grant as $crate::capability::GrantTable>::Raw>>,)*
        }

        /// A manifest's `[capabilities]` as written.
        #[derive(Debug, serde::Deserialize)]
        pub struct RawNeeds {
            $(pub $field: Option<toml::Spanned<<$grant as $crate::capability::GrantTable>::RawNeeds>>,)*
        }

        impl Grants {
            /// A step's grants, every table read by its capability.
            pub fn parse(raw: &RawGrants, diags: &mut $crate::spec::Diagnostics) -> Grants {
                use $crate::capability::GrantTable;
                Grants {
                    $($field: raw.$field.as_ref().map(|t| <$grant>::parse(t.get_ref(), diags)),)*
                }
            }

            /// What a plugin manifest says the plugin needs.
            pub fn parse_needs(raw: &RawNeeds, diags: &mut $crate::spec::Diagnostics) -> Grants {
                use $crate::capability::GrantTable;
                Grants {
                    $($field: raw.$field.as_ref().map(|t| <$grant>::parse_needs(t.get_ref(), diags)),)*
                }
            }

            /// What `needs` asks for that these grants do not give, with the table to edit.
            pub fn missing(&self, needs: &Grants) -> Vec<(&'static str, $crate::capability::Missing)> {
                use $crate::capability::GrantTable;
                let mut out = Vec::new();
                $(if let Some(needed) = &needs.$field {
                    for m in <$grant>::missing(self.$field.as_ref(), needed) {
                        out.push((stringify!($field), m));
                    }
                })*
                out
            }

            /// One line per thing granted, prefixed with its capability.
            pub fn describe(&self) -> Vec<String> {
                use $crate::capability::GrantTable;
                let mut lines = Vec::new();
                $(if let Some(grant) = &self.$field {
                    lines.extend(grant.describe().into_iter().map(|l| format!("{} {l}", stringify!($field))));
                })*
                lines
            }
        }

        impl Grants {
            /// What these grants let a step change, prefixed with its capability.
            pub fn writes(&self) -> Vec<String> {
                use $crate::capability::GrantTable;
                let mut out = Vec::new();
                $(if let Some(grant) = &self.$field {
                    out.extend(grant.writes().into_iter().map(|w| format!("{} {w}", stringify!($field))));
                })*
                out
            }

            /// Every capability's own lints on its grant.
            pub fn lints(&self) -> Vec<$crate::capability::Lint> {
                use $crate::capability::GrantTable;
                let mut out = Vec::new();
                $(if let Some(grant) = &self.$field {
                    out.extend(grant.lints());
                })*
                out
            }

            /// What these grants give that `needs` (a manifest's) never asks for, prefixed
            /// with its capability; a table granted with nothing in it but never declared
            /// is named as a whole.
            pub fn unneeded(&self, needs: &Grants) -> Vec<String> {
                use $crate::capability::GrantTable;
                let mut out = Vec::new();
                $(if let Some(grant) = &self.$field {
                    let found = grant.unneeded(needs.$field.as_ref());
                    if found.is_empty() && needs.$field.is_none() {
                        out.push(format!("the `{}` table", stringify!($field)));
                    }
                    out.extend(found.into_iter().map(|u| format!("{} {u}", stringify!($field))));
                })*
                out
            }

            /// What `new` allows that `old` did not, prefixed with its capability.
            pub fn widened(old: &Grants, new: &Grants) -> Vec<String> {
                use $crate::capability::GrantTable;
                let mut out = Vec::new();
                $(if let Some(grant) = &new.$field {
                    let found = <$grant>::widened(old.$field.as_ref(), grant);
                    if found.is_empty() && old.$field.is_none() {
                        out.push(format!("the `{}` table", stringify!($field)));
                    }
                    out.extend(found.into_iter().map(|w| format!("{} {w}", stringify!($field))));
                })*
                out
            }
        }

        /// Allowed keys of a grant table, by the path under `[steps.grants]`.
        pub fn grant_keys_at(path: &[&str]) -> &'static [&'static str] {
            use $crate::spec::keys::fields;
            match path {
                [] => fields::<RawGrants>(),
                $([stringify!($field)] => fields::<<$grant as $crate::capability::GrantTable>::Raw>(),)*
                _ => &[],
            }
        }

        /// Allowed keys of a manifest's capability table, by the path under `[capabilities]`.
        pub fn needs_keys_at(path: &[&str]) -> &'static [&'static str] {
            use $crate::spec::keys::fields;
            match path {
                [] => fields::<RawNeeds>(),
                $([stringify!($field)] => fields::<<$grant as $crate::capability::GrantTable>::RawNeeds>(),)*
                _ => &[],
            }
        }
    };
}
pub(super) use grant_tables;

impl Grants {
    /// Whether a component importing `interface` may be loaded for this step at all.
    pub fn allows_interface(&self, interface: Interface) -> bool {
        interface.capability().granted(self)
    }
}

/// One host interface a plugin may import, as the registry lists it (and ordered as it
/// lists them).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interface(usize);

impl Interface {
    /// Every interface the host offers, in registry order.
    pub fn all() -> impl Iterator<Item = Interface> {
        (0..registry::ALL.len()).map(Interface)
    }

    /// The interface called `name` in a component's imports (`runbook:plugin/<name>@...`).
    pub fn from_name(name: &str) -> Option<Interface> {
        Interface::all().find(|i| i.name() == name)
    }

    pub fn name(self) -> &'static str {
        self.capability().interface()
    }

    fn capability(self) -> &'static dyn Capability {
        // Only built from an index below `ALL.len()` (see `all`).
        registry::ALL[self.0]
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Capitalised (`Stripe`), as the variants of the enum this type replaced printed: some
/// messages show a list of interfaces with `{:?}`.
impl fmt::Debug for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.name().chars();
        if let Some(first) = chars.next() {
            write!(f, "{}", first.to_ascii_uppercase())?;
        }
        f.write_str(chars.as_str())
    }
}

impl Serialize for Interface {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{DbGrant, WebhookGrant};

    #[test]
    fn interfaces_are_named_and_ordered_as_the_registry_lists_them() {
        let names: Vec<&str> = Interface::all().map(Interface::name).collect();
        assert_eq!(names, ["db", "audit", "log", "stripe", "email", "webhook"]);
        let stripe = Interface::from_name("stripe").unwrap();
        assert!(Interface::from_name("db").unwrap() < stripe);
        assert_eq!(Interface::from_name("types"), None);
        assert_eq!(format!("{stripe} {stripe:?}"), "stripe Stripe");
        assert_eq!(serde_json::to_string(&stripe).unwrap(), "\"stripe\"");
    }

    #[test]
    fn a_step_may_import_audit_and_log_always_and_the_rest_only_when_granted() {
        let granted = |grants: &Grants| -> Vec<&str> {
            Interface::all()
                .filter(|i| grants.allows_interface(*i))
                .map(Interface::name)
                .collect()
        };
        assert_eq!(granted(&Grants::default()), ["audit", "log"]);
        let grants = Grants {
            db: Some(DbGrant {
                select: ["organizations".to_string()].into(),
                ..DbGrant::default()
            }),
            webhook: Some(WebhookGrant::default()),
            ..Grants::default()
        };
        assert_eq!(granted(&grants), ["db", "audit", "log", "webhook"]);
    }
}
