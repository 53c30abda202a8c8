//! Plugin manifests (`<name>.toml` beside `<name>.wasm`): what a plugin is and which
//! capabilities it needs, and the catalog runbooks are validated against.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::capability::{DbGrant, EmailGrant, Grants, StripeGrant, WebhookGrant};
use crate::runbook::raw::{self, RawManifest};
use crate::spec::Diagnostics;
use crate::spec::read::read_document;
use crate::spec::values::required_string;

/// A validated plugin manifest.
#[derive(Debug, Clone, Serialize)]
pub struct PluginManifest {
    pub name: String,
    pub version: String,
    pub description: String,
    /// What a step must grant for this plugin to run; checked when a runbook is loaded.
    pub needs: Grants,
}

/// The installed plugins, as runbook validation sees them.
pub trait PluginCatalog {
    fn manifest(&self, name: &str) -> Option<&PluginManifest>;
    fn names(&self) -> Vec<String>;
}

impl PluginCatalog for BTreeMap<String, PluginManifest> {
    fn manifest(&self, name: &str) -> Option<&PluginManifest> {
        self.get(name)
    }

    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// Parses and validates a manifest; `source_name` is what diagnostics call the file.
pub fn parse_plugin_manifest(source_name: &str, text: &str) -> Result<PluginManifest, Diagnostics> {
    let mut diags = Diagnostics::new(source_name, text);
    let Some(doc) = read_document::<RawManifest>(text, raw::manifest_keys_at, &mut diags) else {
        return Err(diags.into_failure("the plugin manifest could not be read"));
    };
    let raw = doc.value;

    let name = required_string(&raw.name, "name", 0..0, &mut diags);
    if let Some(n) = &raw.name
        && !n.get_ref().is_empty()
        && !is_plugin_name(n.get_ref())
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

    let needs = match &raw.capabilities {
        None => Grants::default(),
        Some(c) => {
            let c = c.get_ref();
            Grants {
                db: c
                    .db
                    .as_ref()
                    .map(|db| DbGrant::parse(db.get_ref(), &mut diags))
                    .unwrap_or_default(),
                stripe: c
                    .stripe
                    .as_ref()
                    .map(|s| StripeGrant::parse(s.get_ref(), &mut diags)),
                email: c
                    .email
                    .as_ref()
                    .map(|e| EmailGrant::parse_needs(e.get_ref(), &mut diags)),
                webhook: c
                    .webhook
                    .as_ref()
                    .map(|w| WebhookGrant::parse(w.get_ref(), &mut diags)),
            }
        }
    };

    diags.into_result(PluginManifest {
        name,
        version,
        description,
        needs,
    })
}

fn is_plugin_name(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
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
