//! The commented starter `runbook.toml` that `runbook init` writes: every section the file
//! may have, the embedded SQLite settings in effect and the rest commented out. Its tests
//! keep it true: it reads as the built-in defaults, and with every setting switched on it
//! is still valid, names every allowed key, and its commented defaults are the defaults.

/// The starter file. A line `#key = …` or `#[table]` (no space after `#`) is a setting
/// switched off; `# text` is an explanation.
pub const STARTER: &str = include_str!("starter.toml");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::STARTER;
    use crate::spec::Diagnostics;
    use crate::spec::config::raw::{RawConfig, keys_at};
    use crate::spec::config::{Config, validate};

    /// The starter with every setting switched on.
    fn all_on() -> String {
        STARTER
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(setting) if !setting.is_empty() && !setting.starts_with([' ', '#']) => setting,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn read(text: &str, base: &Path) -> Config {
        Config::from_text("runbook.toml", text, base, None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn defaults(base: &Path) -> Config {
        let mut diags = Diagnostics::new("runbook.toml", "");
        validate::config(RawConfig::default(), base, None, &mut diags)
    }

    #[test]
    fn as_written_it_is_the_built_in_defaults_with_a_plugins_folder() {
        let base = Path::new("/srv/ops");
        let mut written = read(STARTER, base);
        // The one difference: an operator's plugins live in `plugins/`, not in a build
        // folder.
        assert_eq!(written.plugin_dirs, [base.join("plugins")]);
        let defaults = defaults(base);
        written.plugin_dirs = defaults.plugin_dirs.clone();
        assert_eq!(format!("{written:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn with_every_setting_on_it_is_valid_and_its_commented_defaults_are_the_defaults() {
        let base = Path::new("/srv/ops");
        let on = read(&all_on(), base);
        let defaults = defaults(base);
        assert_eq!(on.limits, defaults.limits);
        assert_eq!(on.lease, defaults.lease);
        assert_eq!(on.cache_dir, defaults.cache_dir);
        assert_eq!(on.template_dir, defaults.template_dir);
        assert_eq!(on.stripe.api_key_env, defaults.stripe.api_key_env);
        assert_eq!(on.stripe.max_attempts, defaults.stripe.max_attempts);
        assert_eq!(on.stripe.timeout, defaults.stripe.timeout);
        assert_eq!(on.email.from, defaults.email.from);
        assert_eq!(
            on.webhooks["app"].timeout,
            std::time::Duration::from_secs(30)
        );
        assert_eq!(on.groups["billing-leads"], ["alice", "bob"]);
    }

    /// A key added to `runbook.toml` and forgotten here fails this test.
    #[test]
    fn with_every_setting_on_it_names_every_key_of_every_table() {
        let table: toml::Table = all_on().parse().unwrap_or_else(|e| panic!("{e}"));
        let keys = |t: &toml::Table| t.keys().cloned().collect::<BTreeSet<String>>();
        let allowed = |path: &[&str]| {
            keys_at(path)
                .iter()
                .map(|k| k.to_string())
                .collect::<BTreeSet<_>>()
        };
        let sub = |t: &toml::Table, key: &str| -> toml::Table {
            t[key]
                .as_table()
                .unwrap_or_else(|| panic!("`{key}` is not a table"))
                .clone()
        };
        assert_eq!(keys(&table), allowed(&[]));
        for name in [
            "target", "state", "paths", "limits", "stripe", "email", "runs",
        ] {
            assert_eq!(keys(&sub(&table, name)), allowed(&[name]), "[{name}]");
        }
        let app = sub(&sub(&table, "webhooks"), "app");
        assert_eq!(keys(&app), allowed(&["webhooks", "app"]));
        let smtp = sub(&sub(&table, "email"), "smtp");
        assert_eq!(keys(&smtp), allowed(&["email", "smtp"]));
    }
}
