//! `[webhooks.<name>]` in runbook.toml: the endpoints a step may deliver to, by name, and
//! the environment variable holding each one's signing secret.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::spec::Diagnostics;
use crate::spec::values;

/// `[webhooks]` as written: endpoints by name.
pub type RawWebhooksConfig = BTreeMap<String, Spanned<RawWebhookEndpoint>>;

/// One `[webhooks.<name>]` table as written.
#[derive(Debug, Deserialize)]
pub struct RawWebhookEndpoint {
    pub url: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// Environment variable holding the endpoint's signing secret (`whsec_...`).
    pub secret_env: String,
    pub timeout: Duration,
}

/// Every endpoint, every problem reported; an endpoint with a problem is left out.
pub fn configure(
    raw: Option<&RawWebhooksConfig>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, WebhookConfig> {
    let mut endpoints = BTreeMap::new();
    for (name, endpoint) in raw.into_iter().flatten() {
        let before = diags.len();
        let table = endpoint.get_ref();
        let mut required = |value: &Option<Spanned<String>>, key: &str| match value {
            Some(v) => v.get_ref().clone(),
            None => {
                diags.error(
                    endpoint.span(),
                    format!("webhook endpoint `{name}` has no `{key}`"),
                );
                String::new()
            }
        };
        let url = required(&table.url, "url");
        let secret_env = required(&table.secret_env, "secret_env");
        if let Some(u) = &table.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            diags.error(u.span(), "`url` must be an http:// or https:// URL");
        }
        let default_timeout = Duration::from_secs(30);
        let timeout = table.timeout.as_ref().map_or(default_timeout, |t| {
            values::duration(t, "timeout", diags).unwrap_or(default_timeout)
        });
        if diags.len() == before {
            let config = WebhookConfig {
                url,
                secret_env,
                timeout,
            };
            endpoints.insert(name.clone(), config);
        }
    }
    endpoints
}
