//! The reader every TOML file goes through: syntax, unknown keys (with did-you-mean help)
//! and value types, then spans by key path for the validation that follows.
//!
//! Raw shapes keep required keys `Option` on purpose: a missing key is reported by
//! validation next to every other problem instead of stopping deserialization at the
//! first one.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::Diagnostics;
use super::keys::closest;

pub type Span = Range<usize>;
/// A list of strings where each entry keeps its position (grant lists, approvers).
pub type SpannedList = Spanned<Vec<Spanned<String>>>;

/// The entries of an optional list, empty when the key is absent.
pub fn items(list: &Option<SpannedList>) -> &[Spanned<String>] {
    list.as_ref().map_or(&[], |l| l.get_ref().as_slice())
}

/// One step of a path into the document, as serde_ignored reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Which keys the table at a path (its keys, array indices left out) allows; each file
/// kind derives its table from its raw structs (see [`super::keys::fields`]).
pub type KeysAt = fn(&[&str]) -> &'static [&'static str];

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
    let keys: Vec<&str> = parent
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    let allowed = keys_at(&keys);
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
pub fn key_span(root: &DeTable<'_>, path: &[Seg]) -> Option<Span> {
    locate(root, path).map(|(key, _)| key)
}

/// The span of the value at `path`.
pub fn value_span(root: &DeTable<'_>, path: &[Seg]) -> Option<Span> {
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

#[cfg(test)]
mod tests {
    use crate::spec::runbook::fixtures::{HEAD, errors, helps};

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
            Some("allowed keys here: recipients, max_per_run, delivery")
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
