//! `[email]` in runbook.toml: the sender and how mail leaves the host, an outbox folder
//! of `.eml` files (the default) or SMTP (the password from the environment).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::spec::Diagnostics;

/// `[email]` as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawEmailConfig {
    pub from: Option<Spanned<String>>,
    pub outbox: Option<PathBuf>,
    pub smtp: Option<Spanned<RawSmtpConfig>>,
}

/// `[email.smtp]` as written.
#[derive(Debug, Deserialize)]
pub struct RawSmtpConfig {
    pub host: Option<Spanned<String>>,
    pub port: Option<Spanned<u16>>,
    pub tls: Option<Spanned<String>>,
    pub username: Option<String>,
    pub password_env: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub from: String,
    pub delivery: EmailDelivery,
}

#[derive(Debug, Clone)]
pub enum EmailDelivery {
    /// `.eml` files in a folder: the embedded default, for review before anything is sent.
    Outbox(PathBuf),
    Smtp(SmtpConfig),
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password_env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP: only for a relay on the same host or a test server.
    None,
    /// STARTTLS on the submission port (587), required.
    Starttls,
    /// Implicit TLS (465).
    Tls,
}

/// The section with its defaults; a relative `outbox` is relative to `base`, the
/// configuration file's folder.
pub fn configure(
    raw: Option<&RawEmailConfig>,
    base: &Path,
    diags: &mut Diagnostics,
) -> EmailConfig {
    let default = RawEmailConfig::default();
    let raw = raw.unwrap_or(&default);
    let delivery = match &raw.smtp {
        Some(smtp) => EmailDelivery::Smtp(smtp_config(smtp, diags)),
        None => {
            let outbox = raw
                .outbox
                .clone()
                .unwrap_or_else(|| ".runbook/outbox".into());
            EmailDelivery::Outbox(if outbox.is_absolute() {
                outbox
            } else {
                base.join(outbox)
            })
        }
    };
    EmailConfig {
        from: raw.from.as_ref().map_or_else(
            || "billing-operations@localhost".into(),
            |f| f.get_ref().clone(),
        ),
        delivery,
    }
}

fn smtp_config(raw: &Spanned<RawSmtpConfig>, diags: &mut Diagnostics) -> SmtpConfig {
    let smtp = raw.get_ref();
    let host = match &smtp.host {
        Some(h) => h.get_ref().clone(),
        None => {
            diags.error(raw.span(), "`[email.smtp]` has no `host`");
            String::new()
        }
    };
    let tls = match &smtp.tls {
        None => SmtpTls::Starttls,
        Some(t) => match t.get_ref().as_str() {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            other => {
                diags.error_with_help(
                    t.span(),
                    format!("invalid tls {other:?}"),
                    "\"starttls\" (the default), \"tls\" or \"none\"",
                );
                SmtpTls::Starttls
            }
        },
    };
    let default_port = match tls {
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
        SmtpTls::Starttls => 587,
    };
    SmtpConfig {
        host,
        port: smtp.port.as_ref().map_or(default_port, |p| *p.get_ref()),
        tls,
        username: smtp.username.clone(),
        password_env: smtp.password_env.clone(),
    }
}
