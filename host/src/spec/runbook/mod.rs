//! Runbook files: reading a TOML runbook and validating it against the installed plugins
//! (the templating its steps use at run time is [`crate::template`]).

mod control;
mod grants;
pub mod model;
pub(crate) mod raw;
mod references;
pub(crate) mod validate;

#[cfg(test)]
pub(crate) mod fixtures;

use std::path::Path;

pub use model::{
    Approval, Backoff, OnFailure, OnTimeout, Param, ParamKind, RetryPolicy, Rollback, Runbook, Step,
};

use crate::spec::Diagnostics;
use crate::spec::manifest::PluginCatalog;
use crate::spec::read::read_document;

/// Reads and validates the runbook at `path`. The file name in diagnostics is `path` as
/// given.
pub fn load_runbook(path: &Path, plugins: &dyn PluginCatalog) -> Result<Runbook, Diagnostics> {
    let name = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                return Err(Diagnostics::without_source(
                    &name,
                    "the file is not valid UTF-8 text",
                ));
            }
        },
        Err(e) => {
            return Err(Diagnostics::without_source(
                &name,
                format!("cannot read the file: {e}"),
            ));
        }
    };
    parse_runbook(&name, &text, plugins)
}

/// Validates runbook text; `source_name` is what diagnostics and [`Runbook::source`] call it.
pub fn parse_runbook(
    source_name: &str,
    text: &str,
    plugins: &dyn PluginCatalog,
) -> Result<Runbook, Diagnostics> {
    let mut diags = Diagnostics::new(source_name, text);
    let Some(doc) = read_document::<raw::RawRunbook>(text, raw::runbook_keys_at, &mut diags) else {
        return Err(diags.into_failure("the runbook could not be read"));
    };
    let runbook = validate::runbook(source_name, text, doc.value, &doc.tree, plugins, &mut diags);
    diags.into_result(runbook)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;
    use sha2::{Digest, Sha256};

    use super::fixtures::{GOOD, catalog, set};
    use super::*;
    use crate::capability::{DbGrant, EmailGrant, Grants, StripeGrant};
    use crate::spec::limits::LimitOverrides;
    use crate::spec::manifest::parse_plugin_manifest;

    #[test]
    fn good_runbook_parses_to_the_expected_model() {
        let rb = parse_runbook("good.toml", GOOD, &catalog()).unwrap_or_else(|d| panic!("{d}"));
        let expected = Runbook {
            name: "webhook-failure".into(),
            description: "Assess webhook processing failures and classify the root cause".into(),
            params: vec![
                Param {
                    name: "window_hours".into(),
                    kind: ParamKind::Integer,
                    default: Some(json!(24)),
                    required: false,
                    description: Some("How far back to look".into()),
                },
                Param {
                    name: "account".into(),
                    kind: ParamKind::String,
                    default: None,
                    required: true,
                    description: None,
                },
                Param {
                    name: "ratio".into(),
                    kind: ParamKind::Float,
                    default: Some(json!(1.0)),
                    required: false,
                    description: None,
                },
            ],
            steps: vec![
                Step {
                    id: "assess".into(),
                    name: Some("Assess impact".into()),
                    plugin: "webhook-impact".into(),
                    when: Some("params.window_hours > 0".into()),
                    limits: LimitOverrides {
                        timeout: Some(Duration::from_secs(30)),
                        memory_mb: Some(64),
                        fuel: Some(1_000_000_000),
                        ..LimitOverrides::default()
                    },
                    retry: RetryPolicy::default(),
                    approval: None,
                    on_failure: OnFailure::Rollback,
                    rollback: None,
                    input: json!({
                        "window_hours": "{{ params.window_hours }}",
                        "label": "account {{ params.account }}",
                        "limits": [1, 2.5, true],
                        "nested": {"deep": ["{{ params.ratio }}"]},
                    }),
                    grants: Grants {
                        db: Some(DbGrant {
                            select: set(&["subscription_events"]),
                            ..DbGrant::default()
                        }),
                        ..Grants::default()
                    },
                },
                Step {
                    id: "reset".into(),
                    name: None,
                    plugin: "quota-reset".into(),
                    when: Some(
                        "steps.assess.status == 'succeeded' and steps.assess.output.count > 0"
                            .into(),
                    ),
                    limits: LimitOverrides {
                        timeout: Some(Duration::from_millis(500)),
                        ..LimitOverrides::default()
                    },
                    retry: RetryPolicy::default(),
                    approval: None,
                    on_failure: OnFailure::Rollback,
                    rollback: None,
                    input: json!({"found": "{{ steps.assess.output }}"}),
                    grants: Grants {
                        webhook: None,
                        db: Some(DbGrant {
                            select: set(&["usage_quotas"]),
                            update: set(&["usage_quotas"]),
                            ..DbGrant::default()
                        }),
                        stripe: Some(StripeGrant {
                            operations: set(&["subscriptions.retrieve"]),
                            ..StripeGrant::default()
                        }),
                        email: Some(EmailGrant {
                            recipients: vec!["*@example.com".into()],
                            max_per_run: Some(10),
                            delivery: crate::capability::delivery::Delivery::AtMostOnce,
                        }),
                    },
                },
            ],
            source: "good.toml".into(),
            digest: hex::encode(Sha256::digest(GOOD.as_bytes())),
            concurrency_key: None,
            rollback_approvers: Vec::new(),
        };
        assert_eq!(rb, expected);
        assert_eq!(rb.digest.len(), 64);
        // The model is what `--json` and run records print.
        let v = serde_json::to_value(&rb).unwrap();
        assert_eq!(v["params"][0]["kind"], "integer");
        assert_eq!(
            v["steps"][1]["grants"]["db"]["update"],
            json!(["usage_quotas"])
        );
    }

    #[test]
    fn load_runbook_reads_a_file_and_reports_unreadable_ones() {
        let dir = std::env::temp_dir().join(format!("runbook-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("good.toml");
        std::fs::write(&path, GOOD).unwrap();
        let rb = load_runbook(&path, &catalog()).unwrap();
        assert_eq!(rb.source, path.display().to_string());
        assert_eq!(rb.steps.len(), 2);

        let missing = dir.join("missing.toml");
        let err = load_runbook(&missing, &catalog()).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err.items()[0].message.starts_with("cannot read the file"));
        assert_eq!(err.items()[0].line, None);
        assert!(err.render(false).contains("cannot read the file"));

        let binary = dir.join("binary.toml");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let err = load_runbook(&binary, &catalog()).unwrap_err();
        assert_eq!(err.items()[0].message, "the file is not valid UTF-8 text");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_panics_on_garbage() {
        let samples = [
            "",
            "=",
            "[[steps]]\n[[steps]]\n",
            "steps = 3",
            "steps = [1, 2]",
            "params = 1",
            "[params]\nx = 1",
            "[params.x]\ntype = 1",
            "[[steps]]\ninput = 1",
            "[[steps]]\ngrants = []",
            "[[steps]]\nid = \"a\"\nplugin = \"echo\"\nwhen = \"\"\n[steps.input]\nx = \"{{}}\"\ny = \"{%%}\"\nz = \"{{ }}\"",
            "[[steps]]\nid = \"a\"\nplugin = \"echo\"\ntimeout = \"99999999999999999999999s\"",
            "[[steps]]\nid = \"a\"\nplugin = \"echo\"\ntimeout = \"999999999999999999m\"",
            "[[steps]]\nid = \"a\"\nplugin = \"echo\"\n[steps.input]\nf = nan\nd = 1979-05-27T07:32:00Z",
            "name = \"\u{1F600}\"\ndescription = \"\u{0}\"",
            "a.b.c.d.e.f = 1",
        ];
        for text in samples {
            if let Err(d) = parse_runbook("g.toml", text, &catalog()) {
                let _ = d.render(false);
                let _ = d.to_string();
            }
            if let Err(d) = parse_plugin_manifest("g.toml", text) {
                let _ = d.render(false);
            }
        }
    }

    /// The runbooks and plugin manifests shipped in this repository validate together.
    #[test]
    fn shipped_runbooks_validate_against_shipped_plugins() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut plugins = BTreeMap::new();
        for entry in std::fs::read_dir(root.join("plugins")).unwrap() {
            let manifest = entry.unwrap().path().join("plugin.toml");
            if let Ok(text) = std::fs::read_to_string(&manifest) {
                let m = parse_plugin_manifest(&manifest.display().to_string(), &text)
                    .unwrap_or_else(|d| panic!("{}", d.render(false)));
                plugins.insert(m.name.clone(), m);
            }
        }
        assert!(!plugins.is_empty());
        let mut count = 0;
        for entry in std::fs::read_dir(root.join("runbooks")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                load_runbook(&path, &plugins).unwrap_or_else(|d| panic!("{}", d.render(false)));
                count += 1;
            }
        }
        assert!(count > 0);
    }

    /// Every prefix of a valid file is some kind of broken file: none may panic, and each
    /// that fails must say why and render.
    #[test]
    fn every_prefix_of_a_good_file_fails_cleanly_or_parses() {
        let with_multiline =
            format!("{GOOD}\n[params.note]\ntype = \"string\"\ndefault = \"\"\"\nline\n\"\"\"\n");
        for (end, _) in with_multiline.char_indices() {
            let text = &with_multiline[..end];
            if let Err(d) = parse_runbook("p.toml", text, &catalog()) {
                assert!(!d.is_empty());
                assert!(
                    d.iter()
                        .all(|item| item.line.is_some() && item.column.is_some())
                );
                let out = d.render(false);
                assert!(out.contains("p.toml"), "{out}");
            }
        }
    }
}
