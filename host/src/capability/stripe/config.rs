//! `[stripe]` in runbook.toml: where the Stripe API is, which environment variable holds
//! its key, and how calls are retried. The key itself is read when a run needs it and
//! lives only in the host's Stripe client.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::spec::Diagnostics;
use crate::spec::values;

const MAX_ATTEMPTS: u32 = 10;

/// `[stripe]` as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawStripeConfig {
    pub api_key_env: Option<Spanned<String>>,
    pub base_url: Option<Spanned<String>>,
    pub max_attempts: Option<Spanned<u32>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub api_key_env: String,
    pub base_url: Option<String>,
    /// Attempts per call, counting the first (retries on 429 and 5xx).
    pub max_attempts: u32,
    pub timeout: Duration,
}

/// The section with its defaults (`STRIPE_API_KEY`, 4 attempts, 30s), every problem
/// reported.
pub fn configure(raw: Option<&RawStripeConfig>, diags: &mut Diagnostics) -> StripeConfig {
    let default = RawStripeConfig::default();
    let raw = raw.unwrap_or(&default);
    let max_attempts = match &raw.max_attempts {
        Some(n) if (1..=MAX_ATTEMPTS).contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            diags.error(
                n.span(),
                format!(
                    "`max_attempts` must be between 1 and {MAX_ATTEMPTS}, found {}",
                    n.get_ref()
                ),
            );
            4
        }
        None => 4,
    };
    let default_timeout = Duration::from_secs(30);
    StripeConfig {
        api_key_env: raw
            .api_key_env
            .as_ref()
            .map_or_else(|| "STRIPE_API_KEY".into(), |v| v.get_ref().clone()),
        base_url: raw.base_url.as_ref().map(|v| v.get_ref().clone()),
        max_attempts,
        timeout: raw.timeout.as_ref().map_or(default_timeout, |t| {
            values::duration(t, "timeout", diags).unwrap_or(default_timeout)
        }),
    }
}
