//! The Stripe client as the host reaches it: the API key from the host's environment
//! (`[stripe] api_key_env`), the base URL, retry and timeout settings. Built once per run.

use std::time::Duration;

use super::config::StripeConfig;

/// `client` is `Err` with the reason Stripe calls cannot be made (no key in the
/// environment, ...): a step that calls Stripe is answered `unavailable`.
pub struct StripeService {
    pub client: Result<StripeClient, StripeUnavailable>,
}

/// Why this host cannot call Stripe. Never quotes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeUnavailable {
    #[error("no Stripe API key: set ${env} in the host's environment")]
    NoKey { env: String },
    #[error("the Stripe client could not be built from ${env} (not a usable API key?)")]
    UnusableKey { env: String },
}

pub struct StripeClient {
    pub client: stripe::Client,
    pub max_attempts: u32,
    pub timeout: Duration,
}

// Nothing that holds a secret may be printed, so Debug says only what is configured.
impl std::fmt::Debug for StripeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeService")
            .field("client", &self.client.as_ref().map(|_| "configured"))
            .finish()
    }
}

impl StripeService {
    /// Why a step with this grant could not make the Stripe writes it is granted here;
    /// checked before a run starts, so it does not fail at a later step after its
    /// approvals. Reads are left to the step: a plugin may carry on without them (it is
    /// answered `unavailable`), while a write it cannot make is an effect lost.
    pub fn unavailable_for(&self, grant: &super::StripeGrant) -> Option<String> {
        let writes = grant
            .operations
            .iter()
            .any(|name| super::stripe_operation(name).is_some_and(|op| op.write));
        match &self.client {
            Err(e) if writes => Some(e.to_string()),
            _ => None,
        }
    }

    pub fn from_config(config: &StripeConfig) -> StripeService {
        let client = match std::env::var(&config.api_key_env) {
            Ok(key) if !key.trim().is_empty() => {
                let mut builder = stripe::ClientBuilder::new(key.trim());
                if let Some(url) = &config.base_url {
                    builder = builder.url(url.as_str());
                }
                builder
                    .build()
                    .map(|client| StripeClient {
                        client,
                        max_attempts: config.max_attempts,
                        timeout: config.timeout,
                    })
                    // The error may quote the key; say only that it is unusable.
                    .map_err(|_| StripeUnavailable::UnusableKey {
                        env: config.api_key_env.clone(),
                    })
            }
            _ => Err(StripeUnavailable::NoKey {
                env: config.api_key_env.clone(),
            }),
        };
        StripeService { client }
    }
}
