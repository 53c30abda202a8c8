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
}

/// Something a plugin needs that a step does not grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is needed: `select on table "x"`, `to send email`.
    pub need: String,
    /// How to grant it.
    pub help: String,
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
