//! The validated `runbook.toml`: what the host reads from it once the file has passed
//! every check, and why a file did not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::DatabaseUrl;
use crate::capability::ServiceConfig;
use crate::capability::email::EmailConfig;
use crate::capability::stripe::StripeConfig;
use crate::capability::webhook::WebhookConfig;
use crate::runtime::StepLimits;
use crate::spec::Diagnostics;

pub const CONFIG_FILE: &str = "runbook.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem in the file, each with its file:line:column.
    #[error("invalid {name}:\n{0}", name = .0.source_name())]
    Invalid(Diagnostics),
}

impl ConfigError {
    /// The problems with their positions, for a caller that renders snippets.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            ConfigError::Invalid(diagnostics) => Some(diagnostics),
            ConfigError::Read { .. } => None,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any (defaults apply without one).
    pub source: Option<PathBuf>,
    pub target_url: DatabaseUrl,
    pub state_url: DatabaseUrl,
    pub plugin_dirs: Vec<PathBuf>,
    pub runbook_dirs: Vec<PathBuf>,
    /// `None` disables the precompiled-component cache.
    pub cache_dir: Option<PathBuf>,
    pub limits: StepLimits,
    /// Email templates (`<name>.txt`: a `Subject:` line, a blank line, the body).
    pub template_dir: PathBuf,
    pub stripe: StripeConfig,
    /// Endpoints the `webhook` capability may deliver to, by name.
    pub webhooks: BTreeMap<String, WebhookConfig>,
    pub email: EmailConfig,
    /// Approver groups for approval steps (`group:<name>`).
    pub groups: BTreeMap<String, Vec<String>>,
    /// How long a run stays held without its process's heartbeat before it is
    /// interrupted (resumable by anyone).
    pub lease: Duration,
}

impl ServiceConfig for Config {
    fn stripe(&self) -> &StripeConfig {
        &self.stripe
    }

    fn webhooks(&self) -> &BTreeMap<String, WebhookConfig> {
        &self.webhooks
    }

    fn email(&self) -> &EmailConfig {
        &self.email
    }

    fn email_templates(&self) -> &Path {
        &self.template_dir
    }
}
