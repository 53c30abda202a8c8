//! The `stripe` grant: operations, and the budgets that bound what they may move, read
//! from `[steps.grants.stripe]` (or a manifest's `[capabilities.stripe]`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::operations::{stripe_operation, stripe_operation_names};
use crate::capability::{GrantTable, Lint, Missing, budget_widened};
use crate::spec::Diagnostics;
use crate::spec::keys::closest;
use crate::spec::read::{SpannedList, items};

/// `[steps.grants.stripe]` as written.
#[derive(Debug, Deserialize)]
pub struct RawStripeGrant {
    pub operations: Option<SpannedList>,
    pub max_refund_amount: Option<Spanned<i64>>,
    pub max_refund_total: Option<Spanned<i64>>,
    pub max_writes: Option<Spanned<i64>>,
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

impl GrantTable for StripeGrant {
    type Raw = RawStripeGrant;
    type RawNeeds = RawStripeGrant;

    /// The grant the table names; operations the host does not know are reported with
    /// the ones it does.
    fn parse(raw: &RawStripeGrant, diags: &mut Diagnostics) -> StripeGrant {
        let mut grant = StripeGrant::default();
        for op in items(&raw.operations) {
            let name = op.get_ref().trim();
            let valid = name.split('.').count() >= 2
                && name.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                });
            if valid && stripe_operation(name).is_none() {
                let known: Vec<&str> = stripe_operation_names().collect();
                let help = match closest(name, known.iter().copied()) {
                    Some(best) => format!(
                        "did you mean {best:?}? the host supports: {}",
                        known.join(", ")
                    ),
                    None => format!("the host supports: {}", known.join(", ")),
                };
                diags.error_with_help(
                    op.span(),
                    format!("unknown Stripe operation {:?}", op.get_ref()),
                    help,
                );
            } else if valid {
                grant.operations.insert(name.to_string());
            } else {
                diags.error_with_help(
                    op.span(),
                    format!("invalid Stripe operation {:?}", op.get_ref()),
                    "write `resource.action`, like \"refunds.create\" or \"subscriptions.retrieve\"",
                );
            }
        }
        grant.max_refund_amount =
            positive_amount(&raw.max_refund_amount, "max_refund_amount", diags);
        grant.max_refund_total = positive_amount(&raw.max_refund_total, "max_refund_total", diags);
        grant.max_writes = positive_amount(&raw.max_writes, "max_writes", diags)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        grant
    }

    fn parse_needs(raw: &RawStripeGrant, diags: &mut Diagnostics) -> StripeGrant {
        StripeGrant::parse(raw, diags)
    }

    fn missing(granted: Option<&StripeGrant>, needs: &StripeGrant) -> Vec<Missing> {
        let granted = granted.map(|g| &g.operations);
        let mut out: Vec<Missing> = needs
            .operations
            .iter()
            .filter(|op| !granted.is_some_and(|g| g.contains(*op)))
            .map(|op| Missing {
                need: format!("Stripe operation {op:?}"),
                help: format!("add it to the step: `[steps.grants.stripe]` operations = [{op:?}]"),
            })
            .collect();
        if needs.operations.is_empty() && granted.is_none() {
            out.push(Missing {
                need: "Stripe access".to_string(),
                help: "add a `[steps.grants.stripe]` table listing the operations".to_string(),
            });
        }
        out
    }

    fn describe(&self) -> Vec<String> {
        let operations: Vec<&str> = self.operations.iter().map(String::as_str).collect();
        let mut lines = vec![format!("operations: {}", operations.join(", "))];
        let budgets: Vec<String> = [
            ("max_refund_amount", self.max_refund_amount),
            ("max_refund_total", self.max_refund_total),
            ("max_writes", self.max_writes.map(i64::from)),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| format!("{key} {v}")))
        .collect();
        if !budgets.is_empty() {
            lines.push(format!("budgets: {}", budgets.join(", ")));
        }
        lines
    }

    fn writes(&self) -> Vec<String> {
        self.write_operations()
    }

    /// Writes without `max_writes`, and refunds without a per-refund or per-run cap, are
    /// bounded only by what the plugin decides to do.
    fn lints(&self) -> Vec<Lint> {
        let writes = self.write_operations();
        let mut missing = Vec::new();
        if !writes.is_empty() && self.max_writes.is_none() {
            missing.push("max_writes");
        }
        if self.operations.contains("refunds.create") {
            if self.max_refund_amount.is_none() {
                missing.push("max_refund_amount");
            }
            if self.max_refund_total.is_none() {
                missing.push("max_refund_total");
            }
        }
        if missing.is_empty() {
            return Vec::new();
        }
        vec![Lint::warning(
            "unbounded-stripe-writes",
            format!(
                "Stripe writes ({}) without {}: bounded only by what the plugin does",
                writes.join(", "),
                missing.join(", ")
            ),
        )]
    }

    /// Budgets are the operator's limits, never a plugin's need; only operations count.
    fn unneeded(&self, needs: Option<&StripeGrant>) -> Vec<String> {
        self.operations
            .iter()
            .filter(|op| !needs.is_some_and(|n| n.operations.contains(*op)))
            .cloned()
            .collect()
    }

    fn widened(old: Option<&StripeGrant>, new: &StripeGrant) -> Vec<String> {
        let mut out: Vec<String> = new
            .operations
            .iter()
            .filter(|op| !old.is_some_and(|o| o.operations.contains(*op)))
            .cloned()
            .collect();
        if let Some(old) = old {
            let budgets = [
                (
                    "max_refund_amount",
                    old.max_refund_amount,
                    new.max_refund_amount,
                ),
                (
                    "max_refund_total",
                    old.max_refund_total,
                    new.max_refund_total,
                ),
                (
                    "max_writes",
                    old.max_writes.map(i64::from),
                    new.max_writes.map(i64::from),
                ),
            ];
            out.extend(
                budgets
                    .into_iter()
                    .filter_map(|(key, was, now)| budget_widened(key, was, now)),
            );
        }
        out
    }
}

impl StripeGrant {
    /// The granted operations that change something at Stripe.
    fn write_operations(&self) -> Vec<String> {
        self.operations
            .iter()
            .filter(|op| stripe_operation(op).is_some_and(|o| o.write))
            .cloned()
            .collect()
    }
}

fn positive_amount(
    value: &Option<Spanned<i64>>,
    key: &str,
    diags: &mut Diagnostics,
) -> Option<i64> {
    let value = value.as_ref()?;
    let v = *value.get_ref();
    if v < 0 {
        diags.error(
            value.span(),
            format!("`{key}` must not be negative, found {v}"),
        );
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(ops: &[&str], max_writes: Option<u32>) -> StripeGrant {
        StripeGrant {
            operations: ops.iter().map(|s| s.to_string()).collect(),
            max_writes,
            ..StripeGrant::default()
        }
    }

    #[test]
    fn writes_are_the_operations_that_change_something() {
        let g = grant(&["invoices.retrieve", "subscriptions.cancel"], Some(1));
        assert_eq!(g.writes(), ["subscriptions.cancel"]);
        assert!(grant(&["invoices.retrieve"], None).writes().is_empty());
    }

    #[test]
    fn writes_without_budgets_are_linted() {
        assert!(grant(&["invoices.retrieve"], None).lints().is_empty());
        assert!(grant(&["subscriptions.cancel"], Some(2)).lints().is_empty());
        let lints = grant(&["subscriptions.cancel"], None).lints();
        assert_eq!(lints[0].code, "unbounded-stripe-writes");
        assert!(lints[0].message.contains("max_writes"), "{lints:?}");
        let mut refunds = grant(&["refunds.create"], Some(3));
        refunds.max_refund_amount = Some(500);
        let lints = refunds.lints();
        assert!(lints[0].message.contains("max_refund_total"), "{lints:?}");
        assert!(!lints[0].message.contains("max_refund_amount"), "{lints:?}");
        refunds.max_refund_total = Some(1000);
        assert!(refunds.lints().is_empty());
    }

    #[test]
    fn unneeded_operations_and_widened_budgets() {
        let g = grant(&["invoices.retrieve", "refunds.create"], Some(3));
        let needs = grant(&["invoices.retrieve"], None);
        assert_eq!(g.unneeded(Some(&needs)), ["refunds.create"]);
        assert_eq!(g.unneeded(None).len(), 2);

        let raised = grant(&["invoices.retrieve", "refunds.create"], Some(5));
        assert_eq!(
            StripeGrant::widened(Some(&g), &raised),
            ["max_writes raised from 3 to 5"]
        );
        let unbounded = grant(&["invoices.retrieve", "refunds.create"], None);
        assert_eq!(
            StripeGrant::widened(Some(&g), &unbounded),
            ["max_writes removed (was 3): no limit"]
        );
        assert_eq!(StripeGrant::widened(Some(&needs), &g), ["refunds.create"]);
        assert!(StripeGrant::widened(Some(&raised), &g).is_empty());
    }
}
