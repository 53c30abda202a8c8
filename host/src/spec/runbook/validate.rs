//! Raw TOML shapes → the validated model, reporting every problem with its position
//! instead of stopping at the first: the runbook itself, its parameters and its steps.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use toml::Spanned;
use toml::de::DeTable;

use super::control::approvers;
use super::grants::{grants_span, missing_grants};
use super::model::{Param, ParamKind, Runbook, Step};
use super::raw::{RawParam, RawRunbook, RawStep};
use super::references::{RefSite, check_references, input_value, template_error};
use crate::capability::Grants;
use crate::spec::Diagnostics;
use crate::spec::keys::closest;
use crate::spec::limits::{self, LimitOverrides, MEMORY_MB_MAX};
use crate::spec::manifest::PluginCatalog;
use crate::spec::read::{Seg, Span, key_span};
use crate::spec::values::{is_identifier, is_slug, required_string};
use crate::template::Templates;

/// Everything validation of one runbook needs to look things up.
pub(super) struct Ctx<'a> {
    pub(super) tree: &'a DeTable<'a>,
    pub(super) plugins: &'a dyn PluginCatalog,
    pub(super) templates: &'a Templates,
    pub(super) params: BTreeSet<String>,
    /// Position of each step id (first occurrence), for "runs later" checks.
    pub(super) step_positions: HashMap<String, usize>,
}

pub(crate) fn runbook(
    source_name: &str,
    text: &str,
    raw: RawRunbook,
    tree: &DeTable<'_>,
    plugins: &dyn PluginCatalog,
    diags: &mut Diagnostics,
) -> Runbook {
    let templates = Templates::new();
    let name = required_string(&raw.name, "name", 0..0, diags);
    if let Some(n) = &raw.name
        && !is_slug(n.get_ref(), false)
    {
        diags.error_with_help(
            n.span(),
            format!("invalid runbook name {:?}", n.get_ref()),
            "use lowercase letters, digits and `-`, like \"webhook-failure\"",
        );
    }
    let description = required_string(&raw.description, "description", 0..0, diags);

    let params = match &raw.params {
        Some(p) => params(p.get_ref(), tree, diags),
        None => Vec::new(),
    };

    let raw_steps: &[Spanned<RawStep>] = raw.steps.as_ref().map_or(&[], |s| s.get_ref());
    if raw_steps.is_empty() {
        let span = raw.steps.as_ref().map_or(0..0, |s| s.span());
        diags.error_with_help(
            span,
            "a runbook needs at least one step",
            "add a `[[steps]]` table with an `id` and a `plugin`",
        );
    }

    let mut step_positions = HashMap::new();
    for (i, step) in raw_steps.iter().enumerate() {
        if let Some(id) = &step.get_ref().id {
            step_positions.entry(id.get_ref().clone()).or_insert(i);
        }
    }
    let ctx = Ctx {
        tree,
        plugins,
        templates: &templates,
        params: params.iter().map(|p| p.name.clone()).collect(),
        step_positions,
    };

    let mut first_seen: HashMap<&str, Span> = HashMap::new();
    let mut steps = Vec::with_capacity(raw_steps.len());
    for (i, raw_step) in raw_steps.iter().enumerate() {
        if let Some(id) = &raw_step.get_ref().id {
            match first_seen.get(id.get_ref().as_str()) {
                Some(first) => {
                    let (line, _) = crate::spec::diagnostic::line_column(text, first.start);
                    diags.error_with_help(
                        id.span(),
                        format!("duplicate step id {:?}", id.get_ref()),
                        format!("step {:?} is first defined on line {line}", id.get_ref()),
                    );
                }
                None => {
                    first_seen.insert(id.get_ref(), id.span());
                }
            }
        }
        steps.push(step(i, raw_step, &ctx, diags));
    }

    let concurrency_key = raw.concurrency_key.as_ref().map(|key| {
        let refs = RefSite {
            position: 0,
            id: "",
        };
        match ctx.templates.string_references(key.get_ref()) {
            Ok(Some(vars)) => {
                if vars.iter().any(|v| !v.starts_with("params")) {
                    diags.error_with_help(
                        key.span(),
                        "`concurrency_key` can only read `params`",
                        "it is rendered before any step runs, like \"{{ params.organization_id }}\"",
                    );
                } else {
                    check_references(&vars, key.span(), &refs, &ctx, diags);
                }
            }
            Ok(None) => {}
            Err(e) => diags.error(
                key.span(),
                format!("template does not compile: {}", template_error(&e)),
            ),
        }
        key.get_ref().clone()
    });

    Runbook {
        name,
        description,
        params,
        steps,
        source: source_name.to_string(),
        digest: hex::encode(Sha256::digest(text.as_bytes())),
        concurrency_key,
        rollback_approvers: approvers(&raw.rollback_approvers, diags),
    }
}

/// Parameters in file order; each name is located in the tree because serde map keys
/// carry no span.
fn params(
    raw: &BTreeMap<String, Spanned<RawParam>>,
    tree: &DeTable<'_>,
    diags: &mut Diagnostics,
) -> Vec<Param> {
    let mut entries: Vec<(Span, &String, &RawParam)> = raw
        .iter()
        .map(|(name, p)| {
            let path = [Seg::Key("params".into()), Seg::Key(name.clone())];
            let span = key_span(tree, &path).unwrap_or_else(|| p.span());
            (span, name, p.get_ref())
        })
        .collect();
    entries.sort_by_key(|(span, _, _)| span.start);
    entries
        .into_iter()
        .map(|(span, name, p)| param(span, name, p, diags))
        .collect()
}

fn param(key_span: Span, name: &str, raw: &RawParam, diags: &mut Diagnostics) -> Param {
    let name = name.to_string();
    if !is_identifier(&name) {
        diags.error_with_help(
            key_span.clone(),
            format!("invalid parameter name {name:?}"),
            "use lowercase letters, digits and `_`, starting with a letter, like `window_hours`",
        );
    }
    let kind = match &raw.kind {
        None => {
            diags.error_with_help(
                key_span.clone(),
                format!("parameter `{name}` has no `type`"),
                "add `type = \"string\"`, \"integer\", \"float\" or \"boolean\"",
            );
            None
        }
        Some(t) => {
            let kind = ParamKind::from_name(t.get_ref());
            if kind.is_none() {
                let names = ParamKind::ALL.map(ParamKind::as_str);
                let help = match closest(t.get_ref(), names.iter().copied()) {
                    Some(near) => format!("did you mean \"{near}\"?"),
                    None => format!("the types are: {}", names.join(", ")),
                };
                diags.error_with_help(
                    t.span(),
                    format!("unknown parameter type {:?}", t.get_ref()),
                    help,
                );
            }
            kind
        }
    };
    let required = raw.required.as_ref().is_some_and(|r| *r.get_ref());
    let default = raw.default.as_ref().and_then(|d| {
        let value = match toml_to_json(d.get_ref()) {
            Ok(v) => v,
            Err(reason) => {
                diags.error(d.span(), format!("invalid default for `{name}`: {reason}"));
                return None;
            }
        };
        match kind {
            Some(k) if !k.accepts(&value) => {
                diags.error(
                    d.span(),
                    format!(
                        "default for `{name}` must be {}, found {}",
                        k.article(),
                        d.get_ref().type_str()
                    ),
                );
                None
            }
            Some(k) => Some(k.normalize(value)),
            None => Some(value),
        }
    });
    if required && raw.default.is_some() {
        let span = raw.required.as_ref().map_or(key_span.clone(), |r| r.span());
        diags.error_with_help(
            span,
            format!("parameter `{name}` is required but also has a default"),
            "a default makes the parameter optional: remove `required = true` or the default",
        );
    }
    Param {
        name,
        kind: kind.unwrap_or(ParamKind::String),
        default,
        required,
        description: raw.description.as_ref().map(|d| d.get_ref().clone()),
    }
}

fn step(i: usize, raw_step: &Spanned<RawStep>, ctx: &Ctx<'_>, diags: &mut Diagnostics) -> Step {
    let raw = raw_step.get_ref();
    let step_path = [Seg::Key("steps".into()), Seg::Index(i)];
    // For `[[steps]]` this is the header line, where a missing key is looked for.
    let step_span = raw_step.span();

    let id = match &raw.id {
        None => {
            diags.error(step_span.clone(), format!("step {} has no `id`", i + 1));
            String::new()
        }
        Some(id) => {
            if !is_slug(id.get_ref(), true) {
                diags.error_with_help(
                    id.span(),
                    format!("invalid step id {:?}", id.get_ref()),
                    "use lowercase letters, digits, `_` and `-`, like \"assess\"",
                );
            }
            id.get_ref().clone()
        }
    };
    let label = if id.is_empty() {
        format!("step {}", i + 1)
    } else {
        format!("step {id:?}")
    };

    let plugin = match &raw.plugin {
        None if raw.approval.is_some() => String::new(),
        None => {
            diags.error_with_help(
                step_span.clone(),
                format!("{label} has no `plugin`"),
                "name the plugin that runs it, or make it an approval with a `[steps.approval]` table",
            );
            String::new()
        }
        Some(p) if raw.approval.is_some() => {
            diags.error(
                p.span(),
                format!("{label} is an approval step and cannot also run a plugin"),
            );
            p.get_ref().clone()
        }
        Some(p) => {
            if ctx.plugins.manifest(p.get_ref()).is_none() {
                unknown_plugin(p, ctx.plugins, diags);
            }
            p.get_ref().clone()
        }
    };

    let refs = RefSite {
        position: i,
        id: &id,
    };
    if let Some(when) = &raw.when {
        if when.get_ref().trim().is_empty() {
            diags.error(when.span(), "`when` must not be empty");
        } else if when.get_ref().contains("{{") || when.get_ref().contains("{%") {
            diags.error_with_help(
                when.span(),
                "`when` is an expression, not a template",
                "drop the braces: `when = \"steps.assess.output.count > 0\"`",
            );
        } else {
            match ctx.templates.expression_references(when.get_ref()) {
                Ok(vars) => check_references(&vars, when.span(), &refs, ctx, diags),
                Err(e) => diags.error(
                    when.span(),
                    format!("`when` does not compile: {}", template_error(&e)),
                ),
            }
        }
    }

    let limits = step_limits(raw, diags);
    let input = match &raw.input {
        None => Value::Object(Map::new()),
        Some(table) => {
            let mut path = step_path.to_vec();
            path.push(Seg::Key("input".into()));
            let mut out = Map::new();
            for (k, v) in table.get_ref() {
                path.push(Seg::Key(k.clone()));
                if let Some(json) = input_value(v, &mut path, &refs, ctx, diags) {
                    out.insert(k.clone(), json);
                }
                path.pop();
            }
            Value::Object(out)
        }
    };

    let grants = raw
        .grants
        .as_ref()
        .map_or_else(Grants::default, |g| Grants::parse(g.get_ref(), diags));
    let control = super::control::step_control(raw, &step_path, &refs, &label, ctx, diags);

    if let Some(manifest) = ctx.plugins.manifest(&plugin) {
        let span = grants_span(ctx.tree, &step_path, raw);
        for message in missing_grants(&label, &plugin, &manifest.needs, &grants) {
            diags.error_with_help(span.clone(), message.text, message.help);
        }
    }

    Step {
        id,
        name: raw.name.as_ref().map(|n| n.get_ref().clone()),
        plugin,
        when: raw.when.as_ref().map(|w| w.get_ref().clone()),
        limits,
        retry: control.retry,
        approval: control.approval,
        on_failure: control.on_failure,
        rollback: control.rollback,
        input,
        grants,
    }
}

/// A step's limits: the flat keys (`timeout`, `memory_mb`, `fuel`, kept from before
/// limits had a table) and `[steps.limits]`; a key set both ways is an error.
fn step_limits(raw: &RawStep, diags: &mut Diagnostics) -> LimitOverrides {
    let flat = LimitOverrides {
        timeout: raw.timeout.as_ref().and_then(|t| limits::timeout(t, diags)),
        memory_mb: raw
            .memory_mb
            .as_ref()
            .and_then(|m| limits::positive(m, "memory_mb", MEMORY_MB_MAX, diags)),
        fuel: raw
            .fuel
            .as_ref()
            .and_then(|f| limits::positive(f, "fuel", i64::MAX, diags)),
        ..LimitOverrides::default()
    };
    let Some(table) = &raw.limits else {
        return flat;
    };
    let table = table.get_ref();
    let mut twice = |flat_set: bool, span: Option<Span>, key: &str| {
        if let (true, Some(span)) = (flat_set, span) {
            diags.error_with_help(
                span,
                format!("`{key}` is set twice: as a step key and in the step's `limits`"),
                format!("keep one: `limits.{key}` or `{key}`"),
            );
        }
    };
    twice(
        raw.timeout.is_some(),
        table.timeout.as_ref().map(|v| v.span()),
        "timeout",
    );
    twice(
        raw.memory_mb.is_some(),
        table.memory_mb.as_ref().map(|v| v.span()),
        "memory_mb",
    );
    twice(
        raw.fuel.is_some(),
        table.fuel.as_ref().map(|v| v.span()),
        "fuel",
    );
    let table = limits::overrides(table, diags);
    LimitOverrides {
        timeout: flat.timeout.or(table.timeout),
        memory_mb: flat.memory_mb.or(table.memory_mb),
        fuel: flat.fuel.or(table.fuel),
        ..table
    }
}

pub(super) fn unknown_plugin(
    p: &Spanned<String>,
    plugins: &dyn PluginCatalog,
    diags: &mut Diagnostics,
) {
    let mut names = plugins.names();
    names.sort();
    let help = if names.is_empty() {
        "no plugins are installed".to_string()
    } else {
        match closest(p.get_ref(), names.iter().map(String::as_str)) {
            Some(near) => format!("did you mean \"{near}\"?"),
            None => format!("available plugins: {}", names.join(", ")),
        }
    };
    diags.error_with_help(p.span(), format!("unknown plugin {:?}", p.get_ref()), help);
}

/// A TOML value JSON cannot carry.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not a finite number (JSON has no NaN or infinity)")]
pub(super) struct NotFinite(f64);

pub(super) fn toml_to_json(v: &toml::Value) -> Result<Value, NotFinite> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or(NotFinite(*f))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        // Plugins receive JSON, which has no date type: RFC 3339 text is the usual form.
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(toml_to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<Map<_, _>, NotFinite>>()?,
        ),
    })
}

#[cfg(test)]
mod tests;
