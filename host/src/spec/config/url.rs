//! A database URL from `runbook.toml`: kept whole for connecting, shown only redacted,
//! since a URL may carry a password (`user:password@host`, `?password=`).

use std::fmt;

/// The URL of the target database or the state store. `Debug` and `Display` hide any
/// password; only [`DatabaseUrl::expose`] gives the URL a driver needs.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    /// The whole URL, password included: for connecting, never for showing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // The userinfo ends at the last `@` before the path.
    let path_start = authority_and_path
        .find('/')
        .unwrap_or(authority_and_path.len());
    let authority = &authority_and_path[..path_start];
    let mut out = format!("{scheme}://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => out.push_str(&format!("{user}:***@{host}")),
            None => out.push_str(&format!("{userinfo}@{host}")),
        },
        None => out.push_str(authority),
    }
    out.push_str(&authority_and_path[path_start..]);
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn passwords_never_reach_output() {
        let cases = [
            (
                "postgres://ops:s3cret@db:5432/billing",
                "postgres://ops:***@db:5432/billing",
            ),
            ("postgres://ops@db/billing", "postgres://ops@db/billing"),
            ("sqlite://x.db", "sqlite://x.db"),
            ("sqlite://x.db?mode=rwc", "sqlite://x.db?mode=rwc"),
            (
                "postgres://db/billing?user=ops&password=s3cret&sslmode=disable",
                "postgres://db/billing?user=ops&password=***&sslmode=disable",
            ),
            (
                "postgres://ops:p@ss@db/billing",
                "postgres://ops:***@db/billing",
            ),
        ];
        for (url, shown) in cases {
            let url = DatabaseUrl::new(url);
            assert_eq!(url.redacted(), shown);
            assert_eq!(url.to_string(), shown);
            assert!(!format!("{url:?}").contains("s3cret"));
        }
        assert_eq!(
            DatabaseUrl::new("postgres://a:b@h/d").expose(),
            "postgres://a:b@h/d"
        );
    }
}
