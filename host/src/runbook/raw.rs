//! The TOML shapes of runbooks and plugin manifests as written, with source spans, and
//! the shared reading step (syntax, unknown keys, value types) both file kinds go through.
//!
//! Required keys are `Option` here on purpose: a missing key is reported by validation
//! next to every other problem instead of stopping deserialization at the first one.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::Diagnostics;

pub(crate) type Span = Range<usize>;
pub(crate) type SpannedList = Spanned<Vec<Spanned<String>>>;

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

#[derive(Debug, Deserialize)]
pub(crate) struct RawGrants {
    pub db: Option<Spanned<RawDb>>,
    pub stripe: Option<Spanned<RawStripe>>,
    pub email: Option<Spanned<RawEmail>>,
    pub webhook: Option<Spanned<RawWebhook>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawDb {
    pub select: Option<SpannedList>,
    pub insert: Option<SpannedList>,
    pub update: Option<SpannedList>,
    pub delete: Option<SpannedList>,
    pub ddl: Option<SpannedList>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawStripe {
    pub operations: Option<SpannedList>,
    pub max_refund_amount: Option<Spanned<i64>>,
    pub max_refund_total: Option<Spanned<i64>>,
    pub max_writes: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawWebhook {
    pub endpoints: Option<SpannedList>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawEmail {
    pub recipients: Option<SpannedList>,
    pub max_per_run: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawManifest {
    pub name: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub capabilities: Option<Spanned<RawCapabilities>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawCapabilities {
    pub db: Option<Spanned<RawDb>>,
    pub stripe: Option<Spanned<RawStripe>>,
    pub email: Option<Spanned<RawManifestEmail>>,
    pub webhook: Option<Spanned<RawWebhook>>,
}

/// A plugin says whom it mails; how many mails a run may send is the operator's call,
/// so `max_per_run` is a step grant only.
#[derive(Debug, Deserialize)]
pub(crate) struct RawManifestEmail {
    pub recipients: Option<SpannedList>,
}

pub(crate) const RUNBOOK_KEYS: &[&str] =
    &["name", "description", "params", "concurrency_key", "steps"];
pub(crate) const RETRY_KEYS: &[&str] = &["attempts", "backoff", "delay", "max_delay"];
pub(crate) const APPROVAL_KEYS: &[&str] = &[
    "message",
    "approvers",
    "required",
    "allow_self",
    "timeout",
    "on_timeout",
];
pub(crate) const ROLLBACK_KEYS: &[&str] = &["plugin", "input", "grants"];
pub(crate) const PARAM_KEYS: &[&str] = &["type", "default", "required", "description"];
pub(crate) const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "plugin",
    "when",
    "timeout",
    "memory_mb",
    "fuel",
    "attempts",
    "retry",
    "on_failure",
    "approval",
    "rollback",
    "input",
    "grants",
];
pub(crate) const GRANT_KEYS: &[&str] = &["db", "stripe", "email", "webhook"];
pub(crate) const DB_KEYS: &[&str] = &["select", "insert", "update", "delete", "ddl"];
pub(crate) const STRIPE_KEYS: &[&str] = &[
    "operations",
    "max_refund_amount",
    "max_refund_total",
    "max_writes",
];
pub(crate) const WEBHOOK_KEYS: &[&str] = &["endpoints"];
pub(crate) const EMAIL_KEYS: &[&str] = &["recipients", "max_per_run"];
pub(crate) const MANIFEST_KEYS: &[&str] = &["name", "version", "description", "capabilities"];
pub(crate) const MANIFEST_EMAIL_KEYS: &[&str] = &["recipients"];

/// One step of a path into the document, as serde_ignored reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Which keys are allowed in the table at `path` (used for "did you mean" help).
pub(crate) type KeysAt = fn(&[Seg]) -> &'static [&'static str];

/// Allowed keys for a table inside a runbook, by where the table is.
pub(crate) fn runbook_keys_at(path: &[Seg]) -> &'static [&'static str] {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    match keys.as_slice() {
        [] => RUNBOOK_KEYS,
        ["params", _] => PARAM_KEYS,
        ["steps"] => STEP_KEYS,
        ["steps", "grants"] => GRANT_KEYS,
        ["steps", "grants", "db"] => DB_KEYS,
        ["steps", "grants", "stripe"] => STRIPE_KEYS,
        ["steps", "grants", "email"] => EMAIL_KEYS,
        ["steps", "grants", "webhook"] => WEBHOOK_KEYS,
        ["steps", "retry"] => RETRY_KEYS,
        ["steps", "approval"] => APPROVAL_KEYS,
        ["steps", "rollback"] => ROLLBACK_KEYS,
        ["steps", "rollback", "grants"] => GRANT_KEYS,
        ["steps", "rollback", "grants", "db"] => DB_KEYS,
        ["steps", "rollback", "grants", "stripe"] => STRIPE_KEYS,
        ["steps", "rollback", "grants", "email"] => EMAIL_KEYS,
        ["steps", "rollback", "grants", "webhook"] => WEBHOOK_KEYS,
        _ => &[],
    }
}

/// Allowed keys for a table inside a plugin manifest, by where the table is.
pub(crate) fn manifest_keys_at(path: &[Seg]) -> &'static [&'static str] {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    match keys.as_slice() {
        [] => MANIFEST_KEYS,
        ["capabilities"] => GRANT_KEYS,
        ["capabilities", "db"] => DB_KEYS,
        ["capabilities", "stripe"] => STRIPE_KEYS,
        ["capabilities", "email"] => MANIFEST_EMAIL_KEYS,
        ["capabilities", "webhook"] => WEBHOOK_KEYS,
        _ => &[],
    }
}

/// A document read far enough to validate: the typed shape plus the spanned tree, which
/// validation uses to point at things serde does not carry spans for (nested input values).
pub(crate) struct Document<'a, T> {
    pub value: T,
    pub tree: DeTable<'a>,
}

/// Syntax, unknown keys and value types. Returns `None` when the typed shape could not
/// be built; everything found so far is then already in `diags`.
pub(crate) fn read_document<'a, T: DeserializeOwned>(
    text: &'a str,
    keys_at: KeysAt,
    diags: &mut Diagnostics,
) -> Option<Document<'a, T>> {
    let tree = match DeTable::parse(text) {
        Ok(tree) => tree,
        Err(err) => {
            // Only the first syntax error: later ones are mostly echoes of it.
            let span = err.span().unwrap_or(0..0);
            diags.error(span, format!("TOML syntax error: {}", err.message().trim()));
            return None;
        }
    };
    let root_span = tree.span();
    let root = tree.into_inner();

    let mut ignored: Vec<Vec<Seg>> = Vec::new();
    let result: Result<T, toml::de::Error> = serde_ignored::deserialize(
        toml::de::Deserializer::from(Spanned::new(root_span, root.clone())),
        |path| ignored.push(owned_path(&path)),
    );

    for path in &ignored {
        report_unknown_key(&root, path, keys_at, diags);
    }
    match result {
        Ok(value) => Some(Document { value, tree: root }),
        Err(err) => {
            let span = err.span().unwrap_or(0..0);
            diags.error(span, type_error_message(err.message()));
            None
        }
    }
}

/// serde's wording ("invalid type: integer `3`, expected a string") is accurate but
/// speaks Rust; the span already says where, so only the wording is tidied.
fn type_error_message(message: &str) -> String {
    let message = message.trim();
    let message = message.strip_prefix("invalid type: ").map_or_else(
        || message.to_string(),
        |rest| format!("wrong type: found {rest}"),
    );
    message
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected a table")
        .replace("expected i64", "expected an integer")
        .replace("expected a boolean", "expected true or false")
}

fn owned_path(path: &serde_ignored::Path<'_>) -> Vec<Seg> {
    let mut out = Vec::new();
    collect_path(path, &mut out);
    out
}

fn collect_path(path: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            collect_path(parent, out);
            out.push(Seg::Index(*index));
        }
        Path::Map { parent, key } => {
            collect_path(parent, out);
            // toml's `Spanned` is a map with private keys; they are not part of the file.
            if !key.starts_with("$__") {
                out.push(Seg::Key(key.clone()));
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => collect_path(parent, out),
    }
}

fn report_unknown_key(root: &DeTable<'_>, path: &[Seg], keys_at: KeysAt, diags: &mut Diagnostics) {
    let Some((Seg::Key(key), parent)) = path.split_last() else {
        return;
    };
    let span = key_span(root, path).unwrap_or(0..0);
    let allowed = keys_at(parent);
    let place = describe_table(parent);
    let message = format!("unknown key `{key}` {place}");
    match closest(key, allowed.iter().copied()) {
        Some(near) => diags.error_with_help(span, message, format!("did you mean `{near}`?")),
        None if !allowed.is_empty() => diags.error_with_help(
            span,
            message,
            format!("allowed keys here: {}", allowed.join(", ")),
        ),
        None => diags.error(span, message),
    }
}

fn describe_table(path: &[Seg]) -> String {
    if path.is_empty() {
        return "at the top level".to_string();
    }
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    format!("in `{s}`")
}

/// The span of the last key of `path` (or of the value, for an array index).
pub(crate) fn key_span(root: &DeTable<'_>, path: &[Seg]) -> Option<Span> {
    locate(root, path).map(|(key, _)| key)
}

/// The span of the value at `path`.
pub(crate) fn value_span(root: &DeTable<'_>, path: &[Seg]) -> Option<Span> {
    locate(root, path).map(|(_, value)| value)
}

fn locate(root: &DeTable<'_>, path: &[Seg]) -> Option<(Span, Span)> {
    let (first, rest) = path.split_first()?;
    let Seg::Key(k) = first else { return None };
    let (key, value) = root.get_key_value(k.as_str())?;
    let mut found = (key.span(), value.span());
    let mut current: &DeValue<'_> = value.get_ref();
    for seg in rest {
        match (seg, current) {
            (Seg::Key(k), DeValue::Table(t)) => {
                let (key, value) = t.get_key_value(k.as_str())?;
                found = (key.span(), value.span());
                current = value.get_ref();
            }
            (Seg::Index(i), DeValue::Array(a)) => {
                let value = a.get(*i)?;
                found = (value.span(), value.span());
                current = value.get_ref();
            }
            _ => return None,
        }
    }
    Some(found)
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: edits plus adjacent swaps, the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use crate::runbook::fixtures::{HEAD, errors, helps};

    #[test]
    fn toml_syntax_error_has_a_position() {
        let text = "name = \"rb\"\ndescription = \n[[steps]]\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 1);
        let (line, col, msg) = &errs[0];
        assert_eq!((*line, *col), (2, 15));
        assert!(msg.starts_with("TOML syntax error: "), "{msg}");

        let dup = errors("name = \"a\"\nname = \"b\"\n");
        assert_eq!(dup.len(), 1);
        assert_eq!((dup[0].0, dup[0].1), (2, 1));
        assert!(dup[0].2.contains("duplicate key"), "{}", dup[0].2);
    }

    #[test]
    fn unknown_keys_everywhere_are_reported_with_suggestions() {
        let text = format!(
            r#"{HEAD}nmae = "x"

[params.hours]
type = "integer"
defualt = 3

[[steps]]
id = "a"
plugn = "echo"
plugin = "echo"
[steps.grants.db]
sellect = ["t"]
[steps.grants.email]
recipients = ["a@b.c"]
limit = 3
[steps.grants.fax]
number = "1"
"#
        );
        let errs = errors(&text);
        assert_eq!(
            errs,
            vec![
                (3, 1, "unknown key `nmae` at the top level".to_string()),
                (7, 1, "unknown key `defualt` in `params.hours`".to_string()),
                (11, 1, "unknown key `plugn` in `steps[0]`".to_string()),
                (
                    14,
                    1,
                    "unknown key `sellect` in `steps[0].grants.db`".to_string()
                ),
                (
                    17,
                    1,
                    "unknown key `limit` in `steps[0].grants.email`".to_string()
                ),
                (18, 15, "unknown key `fax` in `steps[0].grants`".to_string()),
            ]
        );
        let helps = helps(&text);
        assert_eq!(helps[0].as_deref(), Some("did you mean `name`?"));
        assert_eq!(helps[1].as_deref(), Some("did you mean `default`?"));
        assert_eq!(helps[2].as_deref(), Some("did you mean `plugin`?"));
        assert_eq!(helps[3].as_deref(), Some("did you mean `select`?"));
        assert_eq!(
            helps[4].as_deref(),
            Some("allowed keys here: recipients, max_per_run")
        );
        assert_eq!(
            helps[5].as_deref(),
            Some("allowed keys here: db, stripe, email, webhook")
        );
    }

    #[test]
    fn wrong_value_type_is_reported_with_earlier_unknown_keys() {
        let text = format!(
            "{HEAD}colour = 1\n[[steps]]\nid = \"a\"\nplugin = \"echo\"\nmemory_mb = \"big\"\n"
        );
        let errs = errors(&text);
        assert_eq!(
            errs,
            vec![
                (3, 1, "unknown key `colour` at the top level".to_string()),
                (
                    7,
                    13,
                    "wrong type: found string \"big\", expected an integer".to_string()
                ),
            ]
        );
    }

    #[test]
    fn grants_with_non_string_tables_are_type_errors() {
        let text = format!(
            "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"echo\"\n[steps.grants.db]\nselect = [1]\n"
        );
        assert_eq!(
            errors(&text),
            vec![(
                7,
                11,
                "wrong type: found integer `1`, expected a string".to_string()
            )]
        );
    }
}
