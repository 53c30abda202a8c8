//! `runbook.toml` as written: serde shapes with source spans, and which keys each table
//! allows (read from these structs and the capabilities' own sections).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::capability::{email, stripe, webhook};
use crate::spec::keys::fields;
use crate::spec::limits::RawLimits;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub target: RawUrl,
    #[serde(default)]
    pub state: RawUrl,
    #[serde(default)]
    pub paths: RawPaths,
    #[serde(default)]
    pub limits: RawLimits,
    pub stripe: Option<Spanned<stripe::RawStripeConfig>>,
    pub webhooks: Option<Spanned<webhook::RawWebhooksConfig>>,
    pub email: Option<Spanned<email::RawEmailConfig>>,
    /// Approver groups: name → people.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub runs: RawRuns,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawRuns {
    pub lease: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawUrl {
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawPaths {
    pub plugins: Option<Vec<PathBuf>>,
    pub runbooks: Option<Vec<PathBuf>>,
    pub cache: Option<PathBuf>,
    pub templates: Option<PathBuf>,
}

/// Allowed keys for a table inside `runbook.toml`, by where the table is.
pub(crate) fn keys_at(path: &[&str]) -> &'static [&'static str] {
    match path {
        [] => fields::<RawConfig>(),
        ["target"] | ["state"] => fields::<RawUrl>(),
        ["paths"] => fields::<RawPaths>(),
        ["limits"] => fields::<RawLimits>(),
        ["runs"] => fields::<RawRuns>(),
        ["stripe"] => fields::<stripe::RawStripeConfig>(),
        ["webhooks", _] => fields::<webhook::RawWebhookEndpoint>(),
        ["email"] => fields::<email::RawEmailConfig>(),
        ["email", "smtp"] => fields::<email::RawSmtpConfig>(),
        _ => &[],
    }
}
