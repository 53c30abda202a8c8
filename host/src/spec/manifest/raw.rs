//! A plugin manifest as written: serde shapes with source spans, and which keys each
//! table allows (read from these structs and the capabilities' grant tables).

use serde::Deserialize;
use toml::Spanned;

use crate::capability::RawNeeds;
use crate::capability::registry::needs_keys_at;
use crate::spec::keys::fields;

#[derive(Debug, Deserialize)]
pub(crate) struct RawManifest {
    pub name: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub capabilities: Option<Spanned<RawNeeds>>,
}

/// Allowed keys for a table inside a plugin manifest, by where the table is.
pub(crate) fn keys_at(path: &[&str]) -> &'static [&'static str] {
    match path {
        [] => fields::<RawManifest>(),
        ["capabilities", rest @ ..] => needs_keys_at(rest),
        _ => &[],
    }
}
