//! The webhook endpoints as the host reaches them: URLs from `[webhooks.<name>]`, signing
//! secrets from the host's environment, one HTTP client. Built once per run.

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::config::WebhookConfig;

pub type HttpsClient = HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct WebhookService {
    pub endpoints: BTreeMap<String, WebhookEndpoint>,
    pub http: HttpsClient,
}

pub struct WebhookEndpoint {
    pub url: String,
    /// `Err` names the missing environment variable.
    pub secret: Result<String, MissingSecret>,
    pub timeout: Duration,
}

// Nothing that holds a secret may be printed, so Debug says only what is configured.
impl std::fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService")
            .field("endpoints", &self.endpoints.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// An endpoint whose signing secret is not in the host's environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook endpoint `{endpoint}` has no signing secret: set ${env}")]
pub struct MissingSecret {
    pub endpoint: String,
    pub env: String,
}

impl WebhookService {
    /// The granted endpoints this host cannot sign deliveries for, one line each.
    pub fn unavailable_for(&self, grant: &super::WebhookGrant) -> Vec<String> {
        grant
            .endpoints
            .iter()
            .filter_map(|name| match self.endpoints.get(name).map(|e| &e.secret) {
                Some(Err(missing)) => Some(missing.to_string()),
                _ => None,
            })
            .collect()
    }

    pub fn from_config(config: &BTreeMap<String, WebhookConfig>) -> WebhookService {
        let endpoints = config
            .iter()
            .map(|(name, hook)| {
                let secret = match std::env::var(&hook.secret_env) {
                    Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                    _ => Err(MissingSecret {
                        endpoint: name.clone(),
                        env: hook.secret_env.clone(),
                    }),
                };
                (
                    name.clone(),
                    WebhookEndpoint {
                        url: hook.url.clone(),
                        secret,
                        timeout: hook.timeout,
                    },
                )
            })
            .collect();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        WebhookService { endpoints, http }
    }
}
