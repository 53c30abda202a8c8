//! `runbook.toml`: where the target database, state store, plugins and runbooks are, and
//! the default step limits. Relative paths resolve against the file's own folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::runtime::StepLimits;

pub const CONFIG_FILE: &str = "runbook.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}:\n{message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    target: RawUrl,
    #[serde(default)]
    state: RawUrl,
    #[serde(default)]
    paths: RawPaths,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    stripe: RawStripe,
    #[serde(default)]
    webhooks: std::collections::BTreeMap<String, RawWebhook>,
    #[serde(default)]
    email: RawEmail,
    /// Approver groups: name → people.
    #[serde(default)]
    groups: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    runs: RawRuns,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuns {
    lease: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStripe {
    api_key_env: Option<String>,
    base_url: Option<String>,
    max_attempts: Option<u32>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret_env: String,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    from: Option<String>,
    outbox: Option<PathBuf>,
    smtp: Option<RawSmtp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    tls: Option<SmtpTls>,
    username: Option<String>,
    password_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUrl {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    plugins: Option<Vec<PathBuf>>,
    runbooks: Option<Vec<PathBuf>>,
    cache: Option<PathBuf>,
    templates: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    timeout: Option<String>,
    memory_mb: Option<u64>,
    fuel: Option<u64>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any (defaults apply without one).
    pub source: Option<PathBuf>,
    pub target_url: String,
    pub state_url: String,
    pub plugin_dirs: Vec<PathBuf>,
    pub runbook_dirs: Vec<PathBuf>,
    /// `None` disables the precompiled-component cache.
    pub cache_dir: Option<PathBuf>,
    pub limits: StepLimits,
    /// Email templates (`<name>.txt`: a `Subject:` line, a blank line, the body).
    pub template_dir: PathBuf,
    pub stripe: StripeConfig,
    /// Endpoints the `webhook` capability may deliver to, by name.
    pub webhooks: std::collections::BTreeMap<String, WebhookConfig>,
    pub email: EmailConfig,
    /// Approver groups for approval steps (`group:<name>`).
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// How long a run stays held without its process's heartbeat before it is
    /// interrupted (resumable by anyone).
    pub lease: Duration,
}

/// Where the Stripe API is and which environment variable holds its key. The key itself
/// is read when a run needs it and lives only in the host's Stripe client.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub api_key_env: String,
    pub base_url: Option<String>,
    /// Attempts per call, counting the first (retries on 429 and 5xx).
    pub max_attempts: u32,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// Environment variable holding the endpoint's signing secret (`whsec_...`).
    pub secret_env: String,
    pub timeout: Duration,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP: only for a relay on the same host or a test server.
    None,
    /// STARTTLS on the submission port (587), required.
    Starttls,
    /// Implicit TLS (465).
    Tls,
}

impl Config {
    /// `explicit` is `--config`; otherwise `runbook.toml` in the current directory, or
    /// built-in defaults (embedded SQLite everything) relative to the current directory.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        match explicit {
            Some(path) => Config::from_file(path),
            None if Path::new(CONFIG_FILE).is_file() => Config::from_file(Path::new(CONFIG_FILE)),
            None => Config::resolve(RawConfig::default(), Path::new("."), None),
        }
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::resolve(raw, base, Some(path.to_path_buf()))
    }

    fn resolve(
        raw: RawConfig,
        base: &Path,
        source: Option<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: source.clone().unwrap_or_else(|| PathBuf::from(CONFIG_FILE)),
            message,
        };
        let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let defaults = StepLimits::default();
        let timeout = match raw.limits.timeout {
            Some(text) => {
                parse_duration(&text).map_err(|e| invalid(format!("limits.timeout: {e}")))?
            }
            None => defaults.timeout,
        };
        let memory_bytes = match raw.limits.memory_mb {
            Some(mb @ 1..=4096) => (mb as usize) << 20,
            Some(mb) => {
                return Err(invalid(format!(
                    "limits.memory_mb must be 1..=4096, got {mb}"
                )));
            }
            None => defaults.memory_bytes,
        };
        let target_url = raw
            .target
            .url
            .unwrap_or_else(|| "sqlite://.runbook/target.db".to_string());
        let state_url = raw
            .state
            .url
            .unwrap_or_else(|| "sqlite://.runbook/state.db".to_string());
        let duration = |what: &str, text: Option<String>, default: Duration| match text {
            Some(text) => parse_duration(&text).map_err(|e| invalid(format!("{what}: {e}"))),
            None => Ok(default),
        };
        let stripe = StripeConfig {
            api_key_env: raw
                .stripe
                .api_key_env
                .unwrap_or_else(|| "STRIPE_API_KEY".into()),
            base_url: raw.stripe.base_url,
            max_attempts: match raw.stripe.max_attempts {
                Some(n @ 1..=10) => n,
                Some(n) => {
                    return Err(invalid(format!(
                        "stripe.max_attempts must be 1..=10, got {n}"
                    )));
                }
                None => 4,
            },
            timeout: duration(
                "stripe.timeout",
                raw.stripe.timeout,
                Duration::from_secs(30),
            )?,
        };
        let mut webhooks = std::collections::BTreeMap::new();
        for (name, hook) in raw.webhooks {
            if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                return Err(invalid(format!(
                    "webhooks.{name}.url must be an http:// or https:// URL"
                )));
            }
            let timeout = duration(
                &format!("webhooks.{name}.timeout"),
                hook.timeout,
                Duration::from_secs(30),
            )?;
            webhooks.insert(
                name,
                WebhookConfig {
                    url: hook.url,
                    secret_env: hook.secret_env,
                    timeout,
                },
            );
        }
        let email = EmailConfig {
            from: raw
                .email
                .from
                .unwrap_or_else(|| "billing-operations@localhost".into()),
            delivery: match raw.email.smtp {
                Some(smtp) => EmailDelivery::Smtp(SmtpConfig {
                    port: smtp.port.unwrap_or(match smtp.tls {
                        Some(SmtpTls::Tls) => 465,
                        Some(SmtpTls::None) => 25,
                        _ => 587,
                    }),
                    host: smtp.host,
                    tls: smtp.tls.unwrap_or(SmtpTls::Starttls),
                    username: smtp.username,
                    password_env: smtp.password_env,
                }),
                None => EmailDelivery::Outbox(at(raw
                    .email
                    .outbox
                    .unwrap_or_else(|| ".runbook/outbox".into()))),
            },
        };
        let runbook_dirs: Vec<PathBuf> = raw
            .paths
            .runbooks
            .unwrap_or_else(|| vec!["runbooks".into()])
            .into_iter()
            .map(at)
            .collect();
        let template_dir = match raw.paths.templates {
            Some(dir) => at(dir),
            None => runbook_dirs
                .first()
                .map_or_else(|| at("runbooks".into()), |d| d.clone())
                .join("templates/email"),
        };
        let lease = duration("runs.lease", raw.runs.lease, Duration::from_secs(15))?;
        if lease < Duration::from_secs(1) {
            return Err(invalid("runs.lease must be at least 1s".into()));
        }
        Ok(Config {
            groups: raw.groups,
            lease,
            template_dir,
            stripe,
            webhooks,
            email,
            target_url: resolve_sqlite_path(&target_url, base),
            state_url: resolve_sqlite_path(&state_url, base),
            plugin_dirs: raw
                .paths
                .plugins
                .unwrap_or_else(|| vec!["target/plugins".into()])
                .into_iter()
                .map(at)
                .collect(),
            runbook_dirs,
            cache_dir: Some(at(raw
                .paths
                .cache
                .unwrap_or_else(|| ".runbook/cache".into()))),
            limits: StepLimits {
                fuel: raw.limits.fuel.unwrap_or(defaults.fuel),
                memory_bytes,
                timeout,
            },
            source,
        })
    }
}

/// `sqlite://relative.db` means relative to the configuration file, not to wherever the
/// operator happens to stand.
fn resolve_sqlite_path(url: &str, base: &Path) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_string();
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.is_empty() || path.starts_with(':') || Path::new(path).is_absolute() {
        return url.to_string();
    }
    let joined = base.join(path);
    match query {
        Some(q) => format!("sqlite://{}?{q}", joined.display()),
        None => format!("sqlite://{}", joined.display()),
    }
}

/// `500ms`, `30s`, `2m`: the forms runbook files use too.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 500ms, 30s, 2m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "`{text}` is not a duration like 500ms, 30s, 2m or 1h"
            ));
        }
    };
    if d.is_zero() {
        return Err("a duration must be positive".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_follow_the_config_file() {
        let base = Path::new("/srv/ops");
        assert_eq!(
            resolve_sqlite_path("sqlite://.runbook/s.db", base),
            "sqlite:///srv/ops/.runbook/s.db"
        );
        assert_eq!(
            resolve_sqlite_path("sqlite:///abs.db?mode=rwc", base),
            "sqlite:///abs.db?mode=rwc"
        );
        assert_eq!(
            resolve_sqlite_path("sqlite::memory:", base),
            "sqlite::memory:"
        );
        assert_eq!(
            resolve_sqlite_path("postgres://h/db", base),
            "postgres://h/db"
        );
    }

    #[test]
    fn durations_need_a_unit_and_a_positive_value() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("1w").is_err());
    }

    #[test]
    fn unknown_keys_are_errors_with_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runbook.toml");
        std::fs::write(
            &path,
            "[target]\nurl = \"sqlite://t.db\"\n[state]\nuri = \"x\"\n",
        )
        .unwrap();
        let err = Config::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("uri"), "{err}");
    }
}
