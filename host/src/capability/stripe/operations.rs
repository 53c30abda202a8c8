//! The Stripe operations plugins may be granted: name → HTTP method and path, and whether
//! the operation changes anything (writes carry idempotency keys, count against budgets
//! and are not sent in a dry run).

use stripe_client_core::StripeMethod;

#[derive(Debug, Clone, Copy)]
pub struct StripeOperation {
    pub name: &'static str,
    pub method: StripeMethod,
    /// `{id}` is replaced by the `id` parameter.
    pub path: &'static str,
    pub write: bool,
}

const fn op(name: &'static str, method: StripeMethod, path: &'static str) -> StripeOperation {
    StripeOperation {
        name,
        method,
        path,
        write: !matches!(method, StripeMethod::Get),
    }
}

use StripeMethod::{Delete, Get, Post};

/// What the seed runbooks do by hand, and the reads needed to do it safely.
const OPERATIONS: &[StripeOperation] = &[
    op("balance.retrieve", Get, "/balance"),
    op("charges.list", Get, "/charges"),
    op("charges.retrieve", Get, "/charges/{id}"),
    op("coupons.create", Post, "/coupons"),
    op("coupons.retrieve", Get, "/coupons/{id}"),
    op("customers.create", Post, "/customers"),
    op("customers.delete", Delete, "/customers/{id}"),
    op("customers.list", Get, "/customers"),
    op("customers.retrieve", Get, "/customers/{id}"),
    op("disputes.list", Get, "/disputes"),
    op("disputes.retrieve", Get, "/disputes/{id}"),
    op("events.list", Get, "/events"),
    op("events.retrieve", Get, "/events/{id}"),
    op("invoices.list", Get, "/invoices"),
    op("invoices.retrieve", Get, "/invoices/{id}"),
    // Retry collecting an open invoice now (dunning).
    op("invoices.pay", Post, "/invoices/{id}/pay"),
    op("plans.retrieve", Get, "/plans/{id}"),
    op("refunds.create", Post, "/refunds"),
    op("refunds.list", Get, "/refunds"),
    op("refunds.retrieve", Get, "/refunds/{id}"),
    // Stripe cancels a subscription with DELETE.
    op("subscriptions.cancel", Delete, "/subscriptions/{id}"),
    op("subscriptions.list", Get, "/subscriptions"),
    op("subscriptions.retrieve", Get, "/subscriptions/{id}"),
    op("subscriptions.update", Post, "/subscriptions/{id}"),
];

pub fn stripe_operation(name: &str) -> Option<&'static StripeOperation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

pub fn stripe_operation_names() -> impl Iterator<Item = &'static str> {
    OPERATIONS.iter().map(|o| o.name)
}

/// An operation's `id` parameter that cannot name a Stripe object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadId {
    #[error("`{operation}` needs an `id` parameter")]
    Missing { operation: &'static str },
    #[error("`{operation}`: {id:?} is not a Stripe id")]
    NotAnId { operation: &'static str, id: String },
}

impl StripeOperation {
    pub fn needs_id(&self) -> bool {
        self.path.contains("{id}")
    }

    /// The request path with `id` filled in. Stripe ids are `[A-Za-z0-9_-]`; anything else
    /// could walk to another endpoint (`../`), so it is refused.
    pub fn path_for(&self, id: Option<&str>) -> Result<String, BadId> {
        match (self.needs_id(), id) {
            (false, _) => Ok(self.path.to_string()),
            (true, None) => Err(BadId::Missing {
                operation: self.name,
            }),
            (true, Some(id)) => {
                let valid = !id.is_empty()
                    && id.len() <= 255
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if valid {
                    Ok(self.path.replace("{id}", id))
                } else {
                    Err(BadId::NotAnId {
                        operation: self.name,
                        id: id.to_string(),
                    })
                }
            }
        }
    }

    /// The object type a write returns, for dry-run placeholders.
    pub fn object(&self) -> &'static str {
        match self.name.split('.').next().unwrap_or("") {
            "refunds" => "refund",
            "coupons" => "coupon",
            "customers" => "customer",
            "subscriptions" => "subscription",
            _ => "object",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_leave_their_endpoint() {
        let retrieve = stripe_operation("subscriptions.retrieve").unwrap();
        assert_eq!(
            retrieve.path_for(Some("sub_123")).unwrap(),
            "/subscriptions/sub_123"
        );
        assert!(retrieve.path_for(Some("../customers/cus_1")).is_err());
        assert!(retrieve.path_for(Some("sub_1?expand=x")).is_err());
        assert!(retrieve.path_for(None).is_err());
    }

    #[test]
    fn writes_are_the_non_get_operations() {
        assert!(stripe_operation("refunds.create").unwrap().write);
        assert!(stripe_operation("subscriptions.cancel").unwrap().write);
        assert!(!stripe_operation("events.retrieve").unwrap().write);
        assert!(stripe_operation("refunds.delete").is_none());
    }
}
