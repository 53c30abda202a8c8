//! The outside world as the host reaches it: the Stripe client, webhook endpoints, the
//! mail transport and email templates. Built once per run from `runbook.toml` and the
//! host's environment; secrets live here and nowhere else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lettre::message::Mailbox;

use crate::config::{Config, EmailDelivery, SmtpConfig, SmtpTls};

pub type HttpsClient = HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct Services {
    /// `Err` says why Stripe calls cannot be made (no key in the environment, ...).
    pub stripe: Result<StripeService, String>,
    pub webhooks: BTreeMap<String, WebhookEndpoint>,
    pub http: HttpsClient,
    pub email: EmailService,
}

pub struct StripeService {
    pub client: stripe::Client,
    pub max_attempts: u32,
    pub timeout: Duration,
}

pub struct WebhookEndpoint {
    pub url: String,
    /// `Err` names the missing environment variable.
    pub secret: Result<String, String>,
    pub timeout: Duration,
}

pub struct EmailService {
    pub from: Result<Mailbox, String>,
    pub templates: PathBuf,
    pub transport: Result<MailTransport, String>,
}

pub enum MailTransport {
    Outbox(PathBuf),
    Smtp(lettre::AsyncSmtpTransport<lettre::Tokio1Executor>),
}

// Nothing that holds a secret may be printed, so Debug says only what is configured.
impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("stripe", &self.stripe.as_ref().map(|_| "configured"))
            .field("webhooks", &self.webhooks.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Services {
    pub fn from_config(config: &Config) -> Services {
        let stripe = match std::env::var(&config.stripe.api_key_env) {
            Ok(key) if !key.trim().is_empty() => {
                let mut builder = stripe::ClientBuilder::new(key.trim());
                if let Some(url) = &config.stripe.base_url {
                    builder = builder.url(url.as_str());
                }
                builder
                    .build()
                    .map(|client| StripeService {
                        client,
                        max_attempts: config.stripe.max_attempts,
                        timeout: config.stripe.timeout,
                    })
                    // The error may quote the key; say only that it is unusable.
                    .map_err(|_| {
                        format!(
                            "the Stripe client could not be built from ${} (not a usable API key?)",
                            config.stripe.api_key_env
                        )
                    })
            }
            _ => Err(format!(
                "no Stripe API key: set ${} in the host's environment",
                config.stripe.api_key_env
            )),
        };
        let webhooks = config
            .webhooks
            .iter()
            .map(|(name, hook)| {
                let secret = match std::env::var(&hook.secret_env) {
                    Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                    _ => Err(format!(
                        "webhook endpoint `{name}` has no signing secret: set ${}",
                        hook.secret_env
                    )),
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
        let transport = match &config.email.delivery {
            EmailDelivery::Outbox(dir) => Ok(MailTransport::Outbox(dir.clone())),
            EmailDelivery::Smtp(smtp) => smtp_transport(smtp).map(MailTransport::Smtp),
        };
        Services {
            stripe,
            webhooks,
            http,
            email: EmailService {
                from: config
                    .email
                    .from
                    .parse()
                    .map_err(|e| format!("email.from {:?}: {e}", config.email.from)),
                templates: config.template_dir.clone(),
                transport,
            },
        }
    }
}

fn smtp_transport(
    smtp: &SmtpConfig,
) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, String> {
    use lettre::AsyncSmtpTransport as Smtp;
    let builder = match smtp.tls {
        SmtpTls::None => Smtp::<lettre::Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpTls::Starttls => Smtp::<lettre::Tokio1Executor>::starttls_relay(&smtp.host)
            .map_err(|e| format!("SMTP {}: {e}", smtp.host))?,
        SmtpTls::Tls => Smtp::<lettre::Tokio1Executor>::relay(&smtp.host)
            .map_err(|e| format!("SMTP {}: {e}", smtp.host))?,
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(30)));
    if let Some(user) = &smtp.username {
        let password = match &smtp.password_env {
            Some(var) => std::env::var(var)
                .map_err(|_| format!("SMTP password: set ${var} in the host's environment"))?,
            None => String::new(),
        };
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            password,
        ));
    }
    Ok(builder.build())
}
