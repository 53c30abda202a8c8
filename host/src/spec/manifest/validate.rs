//! Raw manifest → [`PluginManifest`]: name, version and description checked, each
//! capability table read by its capability, every problem collected.

use super::model::PluginManifest;
use super::raw::{self, RawManifest};
use crate::capability::Grants;
use crate::spec::Diagnostics;
use crate::spec::read::read_document;
use crate::spec::values::{is_slug, required_string};

/// Parses and validates a manifest; `source_name` is what diagnostics call the file.
pub fn parse_plugin_manifest(source_name: &str, text: &str) -> Result<PluginManifest, Diagnostics> {
    let mut diags = Diagnostics::new(source_name, text);
    let Some(doc) = read_document::<RawManifest>(text, raw::keys_at, &mut diags) else {
        return Err(diags.into_failure("the plugin manifest could not be read"));
    };
    let raw = doc.value;

    let name = required_string(&raw.name, "name", 0..0, &mut diags);
    if let Some(n) = &raw.name
        && !n.get_ref().is_empty()
        && !is_slug(n.get_ref(), false)
    {
        diags.error_with_help(
            n.span(),
            format!("invalid plugin name {:?}", n.get_ref()),
            "use lowercase letters, digits and `-`, like \"quota-reset\"",
        );
    }
    let version = required_string(&raw.version, "version", 0..0, &mut diags);
    if let Some(v) = &raw.version
        && !v.get_ref().is_empty()
        && !is_semver(v.get_ref())
    {
        diags.error_with_help(
            v.span(),
            format!("invalid version {:?}", v.get_ref()),
            "use MAJOR.MINOR.PATCH, like \"0.1.0\"",
        );
    }
    let description = required_string(&raw.description, "description", 0..0, &mut diags);

    let needs = raw.capabilities.as_ref().map_or_else(Grants::default, |c| {
        Grants::parse_needs(c.get_ref(), &mut diags)
    });

    diags.into_result(PluginManifest {
        name,
        version,
        description,
        needs,
    })
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre` / `+build` suffix.
fn is_semver(s: &str) -> bool {
    let core_end = s.find(['-', '+']).unwrap_or(s.len());
    let (core, suffix) = s.split_at(core_end);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && (suffix.is_empty() || suffix.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::parse_plugin_manifest;
    use crate::capability::{DbGrant, EmailGrant, Grants, StripeGrant};
    use crate::spec::runbook::fixtures::set;

    #[test]
    fn plugin_manifest_parses() {
        let text = r#"name = "quota-reset"
version = "0.1.0"
description = "Reset monthly API call quotas"
[capabilities.db]
select = ["usage_quotas"]
update = ["Usage_Quotas"]
[capabilities.stripe]
operations = ["subscriptions.retrieve"]
[capabilities.email]
recipients = ["*@example.com"]
"#;
        let m = parse_plugin_manifest("quota-reset.toml", text).unwrap();
        assert_eq!(m.name, "quota-reset");
        assert_eq!(m.version, "0.1.0");
        assert_eq!(m.description, "Reset monthly API call quotas");
        assert_eq!(
            m.needs,
            Grants {
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
                    max_per_run: None,
                    delivery: crate::capability::delivery::Delivery::AtMostOnce,
                }),
            }
        );

        let bare = parse_plugin_manifest(
            "echo.toml",
            "name = \"echo\"\nversion = \"1.2.3-rc.1\"\ndescription = \"x\"\n[capabilities.email]\n",
        )
        .unwrap();
        assert_eq!(bare.needs.db, None);
        assert_eq!(bare.needs.email, Some(EmailGrant::default()));
    }

    #[test]
    fn plugin_manifest_errors() {
        let text = r#"name = "Quota Reset"
version = "1.0"
[capabilities]
db.selct = ["x"]
email.max_per_run = 3
files = true
[capabilities.stripe]
operations = ["nope"]
"#;
        let err = parse_plugin_manifest("m.toml", text).unwrap_err();
        let got: Vec<(usize, usize, String)> = err
            .iter()
            .map(|d| (d.line.unwrap(), d.column.unwrap(), d.message.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1, "missing required key `description`".to_string()),
                (1, 8, "invalid plugin name \"Quota Reset\"".to_string()),
                (2, 11, "invalid version \"1.0\"".to_string()),
                (4, 4, "unknown key `selct` in `capabilities.db`".to_string()),
                (
                    5,
                    7,
                    "unknown key `max_per_run` in `capabilities.email`".to_string()
                ),
                (6, 1, "unknown key `files` in `capabilities`".to_string()),
                (8, 15, "invalid Stripe operation \"nope\"".to_string()),
            ]
        );

        let err = parse_plugin_manifest("m.toml", "name = [\n").unwrap_err();
        assert!(err.items()[0].message.starts_with("TOML syntax error"));
        let err = parse_plugin_manifest("m.toml", "name = 1\n").unwrap_err();
        assert_eq!(
            err.items()[0].message,
            "wrong type: found integer `1`, expected a string"
        );
    }
}
