//! The mail transport as the host reaches it: SMTP (credentials from the host's
//! environment) or an outbox folder of `.eml` files, the sender, and the template folder.
//! Built once per run from `[email]` in runbook.toml.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;

use super::config::{EmailConfig, EmailDelivery, SmtpConfig, SmtpTls};

pub struct EmailService {
    pub from: Result<Mailbox, EmailUnavailable>,
    pub templates: PathBuf,
    pub transport: Result<MailTransport, EmailUnavailable>,
}

/// Why this host cannot send mail as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailUnavailable {
    #[error("email.from {from:?}: {reason}")]
    BadSender { from: String, reason: String },
    #[error("SMTP {host}: {reason}")]
    Smtp { host: String, reason: String },
    #[error("SMTP password: set ${env} in the host's environment")]
    NoPassword { env: String },
}

pub enum MailTransport {
    Outbox(PathBuf),
    Smtp(lettre::AsyncSmtpTransport<lettre::Tokio1Executor>),
}

// Nothing that holds a secret may be printed, so Debug says only what is configured.
impl std::fmt::Debug for EmailService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailService")
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

impl EmailService {
    /// Why this host cannot send the mail a grant allows (sender or transport).
    pub fn unavailable(&self) -> Vec<String> {
        [self.from.as_ref().err(), self.transport.as_ref().err()]
            .into_iter()
            .flatten()
            .map(ToString::to_string)
            .collect()
    }

    pub fn from_config(config: &EmailConfig, templates: &Path) -> EmailService {
        let transport = match &config.delivery {
            EmailDelivery::Outbox(dir) => Ok(MailTransport::Outbox(dir.clone())),
            EmailDelivery::Smtp(smtp) => smtp_transport(smtp).map(MailTransport::Smtp),
        };
        EmailService {
            from: config
                .from
                .parse()
                .map_err(
                    |e: lettre::address::AddressError| EmailUnavailable::BadSender {
                        from: config.from.clone(),
                        reason: e.to_string(),
                    },
                ),
            templates: templates.to_path_buf(),
            transport,
        }
    }
}

fn smtp_transport(
    smtp: &SmtpConfig,
) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, EmailUnavailable> {
    use lettre::AsyncSmtpTransport as Smtp;
    let relay_error = |e: lettre::transport::smtp::Error| EmailUnavailable::Smtp {
        host: smtp.host.clone(),
        reason: e.to_string(),
    };
    let builder = match smtp.tls {
        SmtpTls::None => Smtp::<lettre::Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpTls::Starttls => {
            Smtp::<lettre::Tokio1Executor>::starttls_relay(&smtp.host).map_err(relay_error)?
        }
        SmtpTls::Tls => Smtp::<lettre::Tokio1Executor>::relay(&smtp.host).map_err(relay_error)?,
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(30)));
    if let Some(user) = &smtp.username {
        let password = match &smtp.password_env {
            Some(var) => {
                std::env::var(var).map_err(|_| EmailUnavailable::NoPassword { env: var.clone() })?
            }
            None => String::new(),
        };
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            password,
        ));
    }
    Ok(builder.build())
}
