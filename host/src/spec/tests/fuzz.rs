//! The TOML readers on any text: a runbook, `runbook.toml` and a plugin manifest parse
//! random and mutated text without panicking, and every refusal comes with diagnostics
//! that render.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use crate::spec::Diagnostics;
use crate::spec::config::{Config, ConfigError};
use crate::spec::manifest::parse_plugin_manifest;
use crate::spec::runbook::fixtures::{GOOD, catalog};
use crate::spec::runbook::parse_runbook;

/// Cases per property: `RUNBOOK_FUZZ_CASES`, or a default that keeps these to seconds.
fn fuzz_config() -> ProptestConfig {
    let cases = std::env::var("RUNBOOK_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const RUNBOOKS: &[&str] = &[
    GOOD,
    include_str!("../../../../runbooks/issue-refund.toml"),
    include_str!("../../../../runbooks/refund-and-downgrade.toml"),
    include_str!("../../../../runbooks/webhook-failure.toml"),
];

const MANIFEST: &str = include_str!("../../../../plugins/issue-refund/plugin.toml");

const CONFIG: &str = r#"
[target]
url = "sqlite://billing.db"
[state]
url = "sqlite://.runbook/state.db"
[paths]
plugins = ["target/plugins"]
runbooks = ["runbooks"]
cache = ".runbook/cache"
[limits]
timeout = "60s"
memory_mb = 256
fuel = 10000000000
max_result_bytes = "16MiB"
[stripe]
api_key_env = "STRIPE_API_KEY"
base_url = "https://api.stripe.com/"
max_attempts = 4
timeout = "30s"
[webhooks.app]
url = "https://app.internal/webhooks/stripe"
secret_env = "APP_WEBHOOK_SECRET"
[email]
from = "billing-ops@example.com"
[email.smtp]
host = "smtp.example.com"
port = 587
tls = "starttls"
username = "billing-ops"
password_env = "SMTP_PASSWORD"
[groups]
billing-leads = ["alice", "bob"]
[runs]
lease = "15s"
"#;

/// A refusal must say why: at least one diagnostic, rendered without panicking.
fn explained(diags: &Diagnostics) -> Result<(), TestCaseError> {
    prop_assert!(!diags.is_empty(), "refused without a diagnostic");
    let _ = diags.render(false);
    let _ = diags.to_json();
    Ok(())
}

fn read_all(text: &str) -> Result<(), TestCaseError> {
    if let Err(diags) = parse_runbook("rb.toml", text, &catalog()) {
        explained(&diags)?;
    }
    if let Err(diags) = parse_plugin_manifest("plugin.toml", text) {
        explained(&diags)?;
    }
    match Config::from_text("runbook.toml", text, Path::new("/nowhere"), None) {
        Ok(_) => {}
        Err(ConfigError::Invalid(diags)) => explained(&diags)?,
        Err(other) => prop_assert!(false, "from text cannot fail to read: {other}"),
    }
    Ok(())
}

/// A valid file with random edits: characters dropped, repeated or inserted (TOML's
/// punctuation, template braces, non-ASCII, control characters).
fn mutated() -> impl Strategy<Value = String> {
    let sources: Vec<&'static str> = RUNBOOKS.iter().copied().chain([MANIFEST, CONFIG]).collect();
    let insert = proptest::sample::select(
        &[
            "[",
            "]",
            "[[",
            "=",
            "\"",
            "'",
            "\"\"\"",
            "\n",
            "#",
            "{{",
            "}}",
            "{%",
            ",",
            ".",
            "\\u",
            "é",
            "\u{202e}",
            "\0",
            "1e999",
            "-",
            "steps",
            "grants",
            "9999999999999999999999",
        ][..],
    );
    let edit = (any::<proptest::sample::Index>(), 0u8..3, insert);
    (
        proptest::sample::select(sources),
        proptest::collection::vec(edit, 1..8),
    )
        .prop_map(|(text, edits)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (at, how, insert) in edits {
                let i = at.index(chars.len() + 1);
                match how {
                    0 if i < chars.len() => {
                        chars.drain(i..(i + 8).min(chars.len()));
                    }
                    1 if i < chars.len() => {
                        let line_end = chars[i..]
                            .iter()
                            .position(|c| *c == '\n')
                            .map_or(chars.len(), |n| i + n);
                        let line: Vec<char> = chars[i..line_end].to_vec();
                        chars.splice(i..i, line);
                    }
                    _ => {
                        chars.splice(i..i, insert.chars());
                    }
                }
            }
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn random_text_is_read_or_explained(text in any::<String>()) {
        read_all(&text)?;
    }

    #[test]
    fn toml_like_text_is_read_or_explained(text in "([a-z_.]{1,8} = (\"[^\"]{0,8}\"|[0-9]{1,4}|\\[\\]|true)\n|\\[{1,2}[a-z_.]{1,12}\\]{1,2}\n){0,12}") {
        read_all(&text)?;
    }

    #[test]
    fn mutated_files_are_read_or_explained(text in mutated()) {
        read_all(&text)?;
    }
}

/// The samples themselves are valid, so the mutations start from files that parse.
#[test]
fn the_samples_are_valid() {
    parse_runbook("rb.toml", GOOD, &catalog()).unwrap_or_else(|d| panic!("{}", d.render(false)));
    parse_plugin_manifest("plugin.toml", MANIFEST)
        .unwrap_or_else(|d| panic!("{}", d.render(false)));
    Config::from_text("runbook.toml", CONFIG, Path::new("/nowhere"), None)
        .unwrap_or_else(|e| panic!("{e}"));
}
