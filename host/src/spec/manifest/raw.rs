//! A plugin manifest as written: serde shapes with source spans, and which keys each
//! table allows (read from these structs and the capabilities' grant tables).

use serde::Deserialize;
use toml::Spanned;

use crate::capability::{RawDbGrant, RawEmailNeeds, RawStripeGrant, RawWebhookGrant};
use crate::spec::keys::fields;

#[derive(Debug, Deserialize)]
pub(crate) struct RawManifest {
    pub name: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub capabilities: Option<Spanned<RawCapabilities>>,
}

/// What the plugin needs, each table in its capability's grant shape.
#[derive(Debug, Deserialize)]
pub(crate) struct RawCapabilities {
    pub db: Option<Spanned<RawDbGrant>>,
    pub stripe: Option<Spanned<RawStripeGrant>>,
    pub email: Option<Spanned<RawEmailNeeds>>,
    pub webhook: Option<Spanned<RawWebhookGrant>>,
}

/// Allowed keys for a table inside a plugin manifest, by where the table is.
pub(crate) fn keys_at(path: &[&str]) -> &'static [&'static str] {
    match path {
        [] => fields::<RawManifest>(),
        ["capabilities"] => fields::<RawCapabilities>(),
        ["capabilities", "db"] => fields::<RawDbGrant>(),
        ["capabilities", "stripe"] => fields::<RawStripeGrant>(),
        ["capabilities", "email"] => fields::<RawEmailNeeds>(),
        ["capabilities", "webhook"] => fields::<RawWebhookGrant>(),
        _ => &[],
    }
}
