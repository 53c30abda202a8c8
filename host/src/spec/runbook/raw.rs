//! A runbook file as written: serde shapes with source spans, and which keys each table
//! allows (read from these structs and the capabilities' grant tables).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::capability::RawGrants;
use crate::capability::registry::grant_keys_at;
use crate::spec::keys::fields;
use crate::spec::limits::RawLimits;
use crate::spec::read::SpannedList;

#[derive(Debug, Deserialize)]
pub(crate) struct RawRunbook {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub params: Option<Spanned<BTreeMap<String, Spanned<RawParam>>>>,
    pub concurrency_key: Option<Spanned<String>>,
    pub rollback_approvers: Option<SpannedList>,
    pub steps: Option<Spanned<Vec<Spanned<RawStep>>>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawParam {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub default: Option<Spanned<toml::Value>>,
    pub required: Option<Spanned<bool>>,
    pub description: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawStep {
    pub id: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub plugin: Option<Spanned<String>>,
    pub when: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub memory_mb: Option<Spanned<i64>>,
    pub fuel: Option<Spanned<i64>>,
    /// `[steps.limits]`: the same keys as `runbook.toml`'s `[limits]`, for this step.
    pub limits: Option<Spanned<RawLimits>>,
    pub attempts: Option<Spanned<i64>>,
    pub retry: Option<Spanned<RawRetry>>,
    pub on_failure: Option<Spanned<String>>,
    pub approval: Option<Spanned<RawApproval>>,
    pub rollback: Option<Spanned<RawRollback>>,
    pub input: Option<Spanned<toml::Table>>,
    pub grants: Option<Spanned<RawGrants>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawRetry {
    pub attempts: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<String>>,
    pub delay: Option<Spanned<String>>,
    pub max_delay: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawApproval {
    pub message: Option<Spanned<String>>,
    pub approvers: Option<SpannedList>,
    pub required: Option<Spanned<i64>>,
    pub allow_self: Option<Spanned<bool>>,
    pub timeout: Option<Spanned<String>>,
    pub on_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawRollback {
    pub plugin: Option<Spanned<String>>,
    pub input: Option<Spanned<toml::Table>>,
    pub grants: Option<Spanned<RawGrants>>,
}

/// Allowed keys for a table inside a runbook, by where the table is.
pub(crate) fn runbook_keys_at(path: &[&str]) -> &'static [&'static str] {
    match path {
        [] => fields::<RawRunbook>(),
        ["params", _] => fields::<RawParam>(),
        ["steps"] => fields::<RawStep>(),
        ["steps", "retry"] => fields::<RawRetry>(),
        ["steps", "limits"] => fields::<RawLimits>(),
        ["steps", "approval"] => fields::<RawApproval>(),
        ["steps", "rollback"] => fields::<RawRollback>(),
        ["steps", "grants", rest @ ..] | ["steps", "rollback", "grants", rest @ ..] => {
            grant_keys_at(rest)
        }
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::runbook::fixtures::{HEAD, helps};

    #[test]
    fn every_runbook_key_is_suggested_even_the_latest() {
        let text = format!(
            "{HEAD}rollback_approver = [\"alice\"]\n[[steps]]\nid = \"a\"\nplugin = \"echo\"\n"
        );
        assert_eq!(
            helps(&text),
            [Some("did you mean `rollback_approvers`?".to_string())]
        );
    }
}
