//! Raw `runbook.toml` → [`Config`]: defaults filled in, relative paths resolved against
//! the file's folder, each capability's section handed to that capability, every
//! problem collected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::DatabaseUrl;
use super::model::Config;
use super::raw::RawConfig;
use crate::capability::{email, stripe, webhook};
use crate::runtime::StepLimits;
use crate::spec::Diagnostics;
use crate::spec::{limits, values};

/// `base` is the folder relative paths start from; `source` is the file, if any.
pub(super) fn config(
    raw: RawConfig,
    base: &Path,
    source: Option<PathBuf>,
    diags: &mut Diagnostics,
) -> Config {
    let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let limits = limits::overrides(&raw.limits, diags).apply(StepLimits::default());
    let target_url = raw
        .target
        .url
        .unwrap_or_else(|| "sqlite://.runbook/target.db".to_string());
    let state_url = raw
        .state
        .url
        // The embedded default is created on first use; a configured one must exist.
        .unwrap_or_else(|| "sqlite://.runbook/state.db?mode=rwc".to_string());
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
    let default_lease = Duration::from_secs(15);
    let lease = match &raw.runs.lease {
        None => default_lease,
        Some(l) => match values::duration(l, "lease", diags) {
            Some(lease) if lease < Duration::from_secs(1) => {
                diags.error(l.span(), "`lease` must be at least 1s");
                default_lease
            }
            Some(lease) => lease,
            None => default_lease,
        },
    };
    Config {
        groups: raw.groups,
        lease,
        template_dir,
        stripe: stripe::configure(raw.stripe.as_ref().map(|s| s.get_ref()), diags),
        webhooks: webhook::configure(raw.webhooks.as_ref().map(|w| w.get_ref()), diags),
        email: email::configure(raw.email.as_ref().map(|e| e.get_ref()), base, diags),
        target_url: DatabaseUrl::new(resolve_sqlite_path(&target_url, base)),
        state_url: DatabaseUrl::new(resolve_sqlite_path(&state_url, base)),
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
        limits,
        source,
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::resolve_sqlite_path;

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
}
