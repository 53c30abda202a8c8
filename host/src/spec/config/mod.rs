//! `runbook.toml`: where the target database, state store, plugins and runbooks are, the
//! default step limits, approver groups, and each capability's section (Stripe, webhook
//! endpoints, email delivery; secrets only as environment variable names). Read like
//! every other file ([`crate::spec::read`]); relative paths resolve against the file's
//! own folder.

mod model;
mod raw;
mod starter;
mod url;
mod validate;

use std::path::{Path, PathBuf};

pub use model::{CONFIG_FILE, Config, ConfigError};
pub use starter::STARTER;
pub use url::DatabaseUrl;

use crate::spec::Diagnostics;
use crate::spec::read::read_document;

/// `runbook.toml` in the current directory or the nearest parent that has one.
fn nearest_config_file() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors()
        .map(|dir| dir.join(CONFIG_FILE))
        .find(|candidate| candidate.is_file())
}

impl Config {
    /// `explicit` is `--config` (or `RUNBOOK_CONFIG`); otherwise the nearest
    /// `runbook.toml` in the current directory or a parent (as cargo and git find theirs),
    /// or built-in defaults (embedded SQLite everything) relative to the current directory.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(path) = explicit {
            return Config::from_file(path);
        }
        if let Some(path) = nearest_config_file() {
            return Config::from_file(&path);
        }
        let mut diags = Diagnostics::new(CONFIG_FILE, "");
        let config = validate::config(raw::RawConfig::default(), Path::new("."), None, &mut diags);
        diags.into_result(config).map_err(ConfigError::Invalid)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::from_text(&path.display().to_string(), &text, base, Some(path))
    }

    /// Reads configuration text; `source_name` is what diagnostics call it, relative
    /// paths resolve against `base`, and `path` is the file it came from, if any.
    pub fn from_text(
        source_name: &str,
        text: &str,
        base: &Path,
        path: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let mut diags = Diagnostics::new(source_name, text);
        let Some(doc) = read_document::<raw::RawConfig>(text, raw::keys_at, &mut diags) else {
            return Err(ConfigError::Invalid(
                diags.into_failure("the configuration could not be read"),
            ));
        };
        let config = validate::config(doc.value, base, path.map(Path::to_path_buf), &mut diags);
        diags.into_result(config).map_err(ConfigError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::{Config, ConfigError};

    fn invalid(text: &str) -> (String, Vec<(usize, usize, String)>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runbook.toml");
        std::fs::write(&path, text).unwrap();
        let err = Config::from_file(&path).unwrap_err();
        let items = match &err {
            ConfigError::Invalid(d) => d
                .iter()
                .map(|d| (d.line.unwrap(), d.column.unwrap(), d.message.clone()))
                .collect(),
            ConfigError::Read { .. } => panic!("{err}"),
        };
        (err.to_string(), items)
    }

    #[test]
    fn unknown_keys_are_errors_with_a_position() {
        let (err, items) = invalid("[target]\nurl = \"sqlite://t.db\"\n[state]\nuri = \"x\"\n");
        assert!(err.contains("runbook.toml:4:1"), "{err}");
        assert!(err.contains("uri"), "{err}");
        assert!(err.contains("did you mean `url`?"), "{err}");
        assert_eq!(items, [(4, 1, "unknown key `uri` in `state`".to_string())]);
    }

    #[test]
    fn every_problem_in_the_file_is_reported_at_once() {
        let text = "[limits]\nmemory_mb = 0\ntimeot = \"5s\"\n\
                    [stripe]\nmax_attempts = 11\n\
                    [webhooks.app]\nurl = \"ftp://x\"\nsecret_env = \"S\"\n\
                    [runs]\nlease = \"500ms\"\n";
        let (err, items) = invalid(text);
        assert_eq!(
            items,
            [
                (
                    2,
                    13,
                    "`memory_mb` must be between 1 and 4096, found 0".to_string()
                ),
                (3, 1, "unknown key `timeot` in `limits`".to_string()),
                (
                    5,
                    16,
                    "`max_attempts` must be between 1 and 10, found 11".to_string()
                ),
                (7, 7, "`url` must be an http:// or https:// URL".to_string()),
                (10, 9, "`lease` must be at least 1s".to_string()),
            ],
            "{err}"
        );
        assert!(err.contains("did you mean `timeout`?"), "{err}");
    }

    #[test]
    fn type_errors_and_syntax_errors_have_positions_too() {
        let (_, items) = invalid("[email.smtp]\nhost = \"mx\"\nport = \"25\"\n");
        assert_eq!(items.len(), 1);
        assert_eq!((items[0].0, items[0].1), (3, 8));
        assert!(items[0].2.starts_with("wrong type: "), "{items:?}");
        let (_, items) = invalid("[limits\n");
        assert!(items[0].2.starts_with("TOML syntax error"), "{items:?}");
    }

    #[test]
    fn size_limits_take_bytes_or_units_and_report_bad_values_at_their_position() {
        let (_, items) = invalid(
            "[limits]\nmax_result_bytes = \"1.5MiB\"\nmax_result_rows = -5\nmax_log_bytes = 0\n",
        );
        assert_eq!(
            items,
            [
                (
                    2,
                    20,
                    "invalid max_result_bytes \"1.5MiB\": unknown unit `.5MiB` (use B, KB, MB, GB, KiB, MiB or GiB)"
                        .to_string()
                ),
                (3, 19, "`max_result_rows` must be positive, found -5".to_string()),
                (4, 17, "invalid max_log_bytes 0: must be greater than zero".to_string()),
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runbook.toml");
        std::fs::write(
            &path,
            "[limits]\nmax_result_bytes = \"32MiB\"\nmax_statement_bytes = 4096\n\
             max_audit_entries = 10\n",
        )
        .unwrap();
        let limits = Config::from_file(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .limits;
        let defaults = crate::runtime::StepLimits::default();
        assert_eq!(limits.max_result_bytes, 32 << 20);
        assert_eq!(limits.max_statement_bytes, 4096);
        assert_eq!(limits.max_audit_entries, 10);
        assert_eq!(limits.max_result_rows, defaults.max_result_rows);
        assert_eq!(limits.max_params_bytes, 4 << 20);
        assert_eq!(limits.max_log_bytes, 8 << 20);
        assert_eq!(limits.max_audit_bytes, 64 << 20);
    }

    #[test]
    fn a_valid_file_resolves_paths_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runbook.toml");
        std::fs::write(
            &path,
            "[limits]\ntimeout = \"2m\"\n[webhooks.app]\nurl = \"http://h/x\"\nsecret_env = \"S\"\n\
             [email.smtp]\nhost = \"mx\"\ntls = \"tls\"\n[runs]\nlease = \"1d\"\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.limits.timeout, std::time::Duration::from_secs(120));
        assert_eq!(config.webhooks["app"].url, "http://h/x");
        assert_eq!(config.stripe.api_key_env, "STRIPE_API_KEY");
        assert_eq!(config.lease, std::time::Duration::from_secs(86_400));
        assert_eq!(config.plugin_dirs, [dir.path().join("target/plugins")]);
        match &config.email.delivery {
            crate::capability::email::EmailDelivery::Smtp(smtp) => assert_eq!(smtp.port, 465),
            other => panic!("{other:?}"),
        }
    }
}
