//! The grant tables of a step (`[steps.grants.db]`, `stripe`, `webhook`, `email`) and of
//! a plugin manifest's `[capabilities]`, and what a plugin needs that a step does not grant.

use toml::Spanned;
use toml::de::DeTable;

use super::diagnostic::Diagnostics;
use super::raw::{
    RawDb, RawEmail, RawGrants, RawStep, RawStripe, RawWebhook, Seg, Span, SpannedList, closest,
    key_span,
};
use crate::grant::{DbGrant, EmailGrant, Grants, StatementKind, StripeGrant, WebhookGrant};

pub(super) fn grants(g: &RawGrants, diags: &mut Diagnostics) -> Grants {
    Grants {
        db: g
            .db
            .as_ref()
            .map(|db| db_grant(db.get_ref(), diags))
            .unwrap_or_default(),
        stripe: g.stripe.as_ref().map(|s| stripe_grant(s.get_ref(), diags)),
        email: g.email.as_ref().map(|e| email_grant(e.get_ref(), diags)),
        webhook: g
            .webhook
            .as_ref()
            .map(|w| webhook_grant(w.get_ref(), diags)),
    }
}

/// Where "needs X, which this step does not grant" points: the grants if the step has
/// some (that is what to edit), otherwise the plugin that asks for them.
pub(super) fn grants_span(tree: &DeTable<'_>, step_path: &[Seg], raw: &RawStep) -> Span {
    let mut path = step_path.to_vec();
    path.push(Seg::Key("grants".into()));
    if raw.grants.is_some()
        && let Some(span) = key_span(tree, &path)
    {
        return span;
    }
    raw.plugin.as_ref().map_or(0..0, |p| p.span())
}

pub(crate) fn db_grant(raw: &RawDb, diags: &mut Diagnostics) -> DbGrant {
    let mut grant = DbGrant::default();
    let lists = [
        (StatementKind::Select, &raw.select, &mut grant.select),
        (StatementKind::Insert, &raw.insert, &mut grant.insert),
        (StatementKind::Update, &raw.update, &mut grant.update),
        (StatementKind::Delete, &raw.delete, &mut grant.delete),
        (StatementKind::Ddl, &raw.ddl, &mut grant.ddl),
    ];
    for (kind, list, out) in lists {
        for table in list_items(list) {
            let name = table.get_ref().trim().to_lowercase();
            if is_table_name(&name) {
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
    grant
}

fn list_items(list: &Option<SpannedList>) -> &[Spanned<String>] {
    list.as_ref().map_or(&[], |l| l.get_ref().as_slice())
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

pub(crate) fn stripe_grant(raw: &RawStripe, diags: &mut Diagnostics) -> StripeGrant {
    let mut grant = StripeGrant::default();
    for op in list_items(&raw.operations) {
        let name = op.get_ref().trim();
        let valid = name.split('.').count() >= 2
            && name.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
        if valid && crate::capability::stripe_operation(name).is_none() {
            let known: Vec<&str> = crate::capability::stripe_operation_names().collect();
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
    grant.max_refund_amount = positive_amount(&raw.max_refund_amount, "max_refund_amount", diags);
    grant.max_refund_total = positive_amount(&raw.max_refund_total, "max_refund_total", diags);
    grant.max_writes = positive_amount(&raw.max_writes, "max_writes", diags)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    grant
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

pub(crate) fn webhook_grant(raw: &RawWebhook, diags: &mut Diagnostics) -> WebhookGrant {
    let mut grant = WebhookGrant::default();
    for endpoint in list_items(&raw.endpoints) {
        let name = endpoint.get_ref().trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            diags.error_with_help(
                endpoint.span(),
                format!("invalid webhook endpoint name {:?}", endpoint.get_ref()),
                "name an endpoint from `[webhooks.<name>]` in runbook.toml, like \"app\"",
            );
        } else {
            grant.endpoints.insert(name.to_string());
        }
    }
    grant
}

pub(crate) fn email_grant(raw: &RawEmail, diags: &mut Diagnostics) -> EmailGrant {
    let recipients = recipients(&raw.recipients, diags);
    let max_per_run = raw.max_per_run.as_ref().and_then(|m| {
        let v = *m.get_ref();
        match u32::try_from(v) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                diags.error(
                    m.span(),
                    format!(
                        "`max_per_run` must be between 1 and {}, found {v}",
                        u32::MAX
                    ),
                );
                None
            }
        }
    });
    EmailGrant {
        recipients,
        max_per_run,
    }
}

pub(crate) fn recipients(list: &Option<SpannedList>, diags: &mut Diagnostics) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in list_items(list) {
        // Rendered when the step starts; the rendered addresses are checked then.
        if r.get_ref().contains("{{") {
            out.push(r.get_ref().trim().to_string());
            continue;
        }
        let pattern = r.get_ref().trim().to_lowercase();
        let valid = match pattern.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !pattern.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if !valid {
            diags.error_with_help(
                r.span(),
                format!("invalid recipient pattern {:?}", r.get_ref()),
                "write an address or a pattern with `*`, like \"ops@example.com\" or \"*@example.com\"",
            );
        } else if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    out
}

pub(crate) struct Missing {
    pub text: String,
    pub help: String,
}

/// What the plugin's manifest says it needs that the step's grants do not give.
pub(crate) fn missing_grants(
    step_label: &str,
    plugin: &str,
    needs: &Grants,
    grants: &Grants,
) -> Vec<Missing> {
    let mut out = Vec::new();
    for (kind, table) in grants.db.missing(&needs.db) {
        out.push(Missing {
            text: format!(
                "{step_label}: plugin {plugin:?} needs {kind} on table {table:?}, which this step does not grant"
            ),
            help: format!("add it to the step: `[steps.grants.db]` {kind} = [{table:?}]"),
        });
    }
    if let Some(needed) = &needs.stripe {
        let granted = grants.stripe.as_ref().map(|s| &s.operations);
        let missing: Vec<&String> = needed
            .operations
            .iter()
            .filter(|op| !granted.is_some_and(|g| g.contains(*op)))
            .collect();
        for op in missing {
            out.push(Missing {
                text: format!(
                    "{step_label}: plugin {plugin:?} needs Stripe operation {op:?}, which this step does not grant"
                ),
                help: format!("add it to the step: `[steps.grants.stripe]` operations = [{op:?}]"),
            });
        }
        if needed.operations.is_empty() && granted.is_none() {
            out.push(Missing {
                text: format!(
                    "{step_label}: plugin {plugin:?} needs Stripe access, which this step does not grant"
                ),
                help: "add a `[steps.grants.stripe]` table listing the operations".to_string(),
            });
        }
    }
    if needs.webhook.is_some() && grants.webhook.is_none() {
        out.push(Missing {
            text: format!(
                "{step_label}: plugin {plugin:?} needs to deliver webhooks, which this step does not grant"
            ),
            help: "add a `[steps.grants.webhook]` table with `endpoints`".to_string(),
        });
    }
    if let Some(needed) = &needs.email {
        match &grants.email {
            None => out.push(Missing {
                text: format!(
                    "{step_label}: plugin {plugin:?} needs to send email, which this step does not grant"
                ),
                help: "add a `[steps.grants.email]` table with `recipients`".to_string(),
            }),
            Some(granted) => {
                for r in &needed.recipients {
                    if !granted.recipients.iter().any(|p| pattern_covers(p, r)) {
                        out.push(Missing {
                            text: format!(
                                "{step_label}: plugin {plugin:?} needs to email {r:?}, which this step does not grant"
                            ),
                            help: format!(
                                "add it to the step: `[steps.grants.email]` recipients = [{r:?}]"
                            ),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Whether the grant pattern `pattern` (`*` matches any text) covers `wanted`, which may
/// itself be a pattern: its `*` is matched as a literal, so `*@a.com` covers `*@a.com`
/// and `x@a.com` but `x@a.com` does not cover `*@a.com`.
pub(crate) fn pattern_covers(pattern: &str, wanted: &str) -> bool {
    crate::grant::glob_match(pattern, wanted)
}
