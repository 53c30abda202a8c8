//! The mail transport as the host reaches it: SMTP (credentials from the host's
//! environment) or an outbox folder of `.eml` files, the sender, and the template folder.
//! Built once per run from `[email]` in runbook.toml.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;

use super::config::{EmailConfig, EmailDelivery, SmtpConfig, SmtpTls};

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
impl std::fmt::Debug for EmailService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailService")
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

impl EmailService {
    pub fn from_config(config: &EmailConfig, templates: &Path) -> EmailService {
        let transport = match &config.delivery {
            EmailDelivery::Outbox(dir) => Ok(MailTransport::Outbox(dir.clone())),
            EmailDelivery::Smtp(smtp) => smtp_transport(smtp).map(MailTransport::Smtp),
        };
        EmailService {
            from: config
                .from
                .parse()
                .map_err(|e| format!("email.from {:?}: {e}", config.from)),
            templates: templates.to_path_buf(),
            transport,
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
