//! What one runbook step may do: one grant per capability, deny by default. Checked twice:
//! at load time against the interfaces a component imports ([`Grants::allows_interface`])
//! and on every call by the capability itself.

use std::fmt;

use serde::{Serialize, Serializer};

use super::db::DbGrant;
use super::email::EmailGrant;
use super::stripe::StripeGrant;
use super::webhook::WebhookGrant;
use super::{Capability, registry};

/// Everything one step is allowed to do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grants {
    pub db: DbGrant,
    pub stripe: Option<StripeGrant>,
    pub email: Option<EmailGrant>,
    pub webhook: Option<WebhookGrant>,
}

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
            db: DbGrant {
                select: ["organizations".to_string()].into(),
                ..DbGrant::default()
            },
            webhook: Some(WebhookGrant::default()),
            ..Grants::default()
        };
        assert_eq!(granted(&grants), ["db", "audit", "log", "webhook"]);
    }
}
