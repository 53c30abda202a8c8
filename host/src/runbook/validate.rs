//! Raw TOML shapes → the validated model, reporting every problem with its position
//! instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::DeTable;

use super::diagnostic::Diagnostics;
use super::model::{Param, ParamKind, Runbook, Step};
use super::raw::{
    RawDb, RawEmail, RawGrants, RawParam, RawRunbook, RawStep, RawStripe, RawWebhook, Seg, Span,
    SpannedList, closest, key_span, value_span,
};
use crate::grant::{DbGrant, EmailGrant, Grants, StatementKind, StripeGrant, WebhookGrant};
use crate::plugin::manifest::PluginCatalog;
use crate::template::Templates;

const MEMORY_MB_MAX: i64 = 4096;

/// Everything validation of one runbook needs to look things up.
pub(super) struct Ctx<'a> {
    pub(super) tree: &'a DeTable<'a>,
    pub(super) plugins: &'a dyn PluginCatalog,
    pub(super) templates: &'a Templates,
    pub(super) params: BTreeSet<String>,
    /// Position of each step id (first occurrence), for "runs later" checks.
    step_positions: HashMap<String, usize>,
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
                    let (line, _) = super::diagnostic::line_column(text, first.start);
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
        rollback_approvers: raw
            .rollback_approvers
            .as_ref()
            .map(|list| {
                list.get_ref()
                    .iter()
                    .filter_map(|a| {
                        let name = a.get_ref().trim();
                        let bare = name.strip_prefix("group:").unwrap_or(name);
                        if bare.is_empty() || bare.chars().any(char::is_whitespace) {
                            diags.error(a.span(), format!("invalid approver {:?}", a.get_ref()));
                            None
                        } else {
                            Some(name.to_string())
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub(crate) fn required_string(
    value: &Option<Spanned<String>>,
    key: &str,
    missing_span: Span,
    diags: &mut Diagnostics,
) -> String {
    match value {
        Some(v) if v.get_ref().trim().is_empty() => {
            diags.error(v.span(), format!("`{key}` must not be empty"));
            String::new()
        }
        Some(v) => v.get_ref().clone(),
        None => {
            diags.error(missing_span, format!("missing required key `{key}`"));
            String::new()
        }
    }
}

/// `[a-z0-9-]+`, plus `_` when `underscore` is set.
fn is_slug(s: &str, underscore: bool) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (underscore && c == '_')
        })
}

/// Parameter names are read in templates as `params.<name>`, so they must be identifiers.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
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

    let timeout = raw.timeout.as_ref().and_then(|t| {
        parse_duration(t.get_ref())
            .map_err(|reason| {
                diags.error_with_help(
                    t.span(),
                    format!("invalid timeout {:?}: {reason}", t.get_ref()),
                    "write a whole number and a unit (ms, s or m), like \"500ms\", \"30s\" or \"2m\"",
                )
            })
            .ok()
    });
    let memory_mb = raw.memory_mb.as_ref().and_then(|m| {
        let v = *m.get_ref();
        if (1..=MEMORY_MB_MAX).contains(&v) {
            u64::try_from(v).ok()
        } else {
            diags.error(
                m.span(),
                format!("`memory_mb` must be between 1 and {MEMORY_MB_MAX}, found {v}"),
            );
            None
        }
    });
    let fuel = raw.fuel.as_ref().and_then(|f| {
        let v = *f.get_ref();
        if v > 0 {
            u64::try_from(v).ok()
        } else {
            diags.error(f.span(), format!("`fuel` must be positive, found {v}"));
            None
        }
    });
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
        .map_or_else(Grants::default, |g| grants(g.get_ref(), diags));
    let control = super::control::step_control(raw, i, &step_path, &refs, &label, ctx, diags);

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
        timeout,
        memory_mb,
        fuel,
        retry: control.retry,
        approval: control.approval,
        on_failure: control.on_failure,
        rollback: control.rollback,
        input,
        grants,
    }
}

pub(super) fn grants(g: &RawGrants, diags: &mut Diagnostics) -> Grants {
    Grants {
        db: g
            .db
            .as_ref()
            .map(|db| db_grant(db.get_ref(), diags))
            .unwrap_or_default(),
        stripe: g.stripe.as_ref().map(|s| stripe_grant(s.get_ref(), diags)),
        email: g.email.as_ref().map(|e| email_grant(e.get_ref(), diags)),
        webhook: g
            .webhook
            .as_ref()
            .map(|w| webhook_grant(w.get_ref(), diags)),
    }
}

/// Where "needs X, which this step does not grant" points: the grants if the step has
/// some (that is what to edit), otherwise the plugin that asks for them.
pub(super) fn grants_span(tree: &DeTable<'_>, step_path: &[Seg], raw: &RawStep) -> Span {
    let mut path = step_path.to_vec();
    path.push(Seg::Key("grants".into()));
    if raw.grants.is_some()
        && let Some(span) = key_span(tree, &path)
    {
        return span;
    }
    raw.plugin.as_ref().map_or(0..0, |p| p.span())
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

/// Which step a template belongs to, for "itself" / "runs later" checks.
pub(super) struct RefSite<'a> {
    pub(super) position: usize,
    pub(super) id: &'a str,
}

pub(super) fn input_value(
    value: &toml::Value,
    path: &mut Vec<Seg>,
    refs: &RefSite<'_>,
    ctx: &Ctx<'_>,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let span = || value_span(ctx.tree, path).unwrap_or(0..0);
    match value {
        toml::Value::String(s) => {
            match ctx.templates.string_references(s) {
                Ok(None) => {}
                Ok(Some(vars)) => check_references(&vars, span(), refs, ctx, diags),
                Err(e) => diags.error(
                    span(),
                    format!("template does not compile: {}", template_error(&e)),
                ),
            }
            Some(Value::String(s.clone()))
        }
        toml::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                out.push(input_value(item, path, refs, ctx, diags).unwrap_or(Value::Null));
                path.pop();
            }
            Some(Value::Array(out))
        }
        toml::Value::Table(table) => {
            let mut out = Map::new();
            for (k, v) in table {
                path.push(Seg::Key(k.clone()));
                if let Some(json) = input_value(v, path, refs, ctx, diags) {
                    out.insert(k.clone(), json);
                }
                path.pop();
            }
            Some(Value::Object(out))
        }
        other => match toml_to_json(other) {
            Ok(v) => Some(v),
            Err(reason) => {
                diags.error(span(), format!("invalid input value: {reason}"));
                None
            }
        },
    }
}

pub(super) fn template_error(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Checks the variables a template reads (dotted, as minijinja reports them) against what
/// will exist when the step runs: declared params and the steps before this one.
pub(super) fn check_references(
    vars: &HashSet<String>,
    span: Span,
    site: &RefSite<'_>,
    ctx: &Ctx<'_>,
    diags: &mut Diagnostics,
) {
    let mut vars: Vec<&String> = vars.iter().collect();
    vars.sort();
    for var in vars {
        let segs: Vec<&str> = var.split('.').collect();
        match segs.as_slice() {
            ["params"] | ["steps"] | ["run", ..] => {}
            ["params", name, ..] => {
                if !ctx.params.contains(*name) {
                    let help = match closest(name, ctx.params.iter().map(String::as_str)) {
                        Some(near) => format!("did you mean `params.{near}`?"),
                        None if ctx.params.is_empty() => {
                            format!("declare it in a `[params.{name}]` table")
                        }
                        None => format!(
                            "declared parameters: {}",
                            ctx.params.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    };
                    diags.error_with_help(
                        span.clone(),
                        format!("parameter `{name}` is not declared"),
                        help,
                    );
                }
            }
            ["steps", id, rest @ ..] => {
                check_step_reference(id, rest, span.clone(), site, ctx, diags);
            }
            [root, ..] => {
                let help = match closest(root, ["params", "steps", "run"].into_iter()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => "templates read `params.<name>` and `steps.<id>.output`".to_string(),
                };
                diags.error_with_help(
                    span.clone(),
                    format!(
                        "unknown variable `{root}`: templates can only read `params`, `steps` and `run`"
                    ),
                    help,
                );
            }
            [] => {}
        }
    }
}

fn check_step_reference(
    id: &str,
    rest: &[&str],
    span: Span,
    site: &RefSite<'_>,
    ctx: &Ctx<'_>,
    diags: &mut Diagnostics,
) {
    let earlier = |ids: &HashMap<String, usize>| -> Vec<String> {
        let mut v: Vec<(usize, String)> = ids
            .iter()
            .filter(|(_, pos)| **pos < site.position)
            .map(|(id, pos)| (*pos, id.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    };
    match ctx.step_positions.get(id) {
        None => {
            let before = earlier(&ctx.step_positions);
            // `steps.my-step.output` parses as a subtraction; the fix is the subscript form.
            let hyphenated = ctx
                .step_positions
                .keys()
                .find(|k| k.starts_with(&format!("{id}-")));
            let help = if let Some(full) = hyphenated {
                format!("an id with `-` must be written `steps[\"{full}\"]` in templates")
            } else if let Some(near) = closest(id, before.iter().map(String::as_str)) {
                format!("did you mean `steps.{near}`?")
            } else if before.is_empty() {
                "no step runs before this one".to_string()
            } else {
                format!("steps before this one: {}", before.join(", "))
            };
            diags.error_with_help(span, format!("step {id:?} does not exist"), help);
        }
        Some(&pos) if pos == site.position || id == site.id => {
            diags.error_with_help(
                span,
                format!("step {id:?} refers to its own output"),
                "a step can only read the steps that run before it",
            );
        }
        Some(&pos) if pos > site.position => {
            diags.error_with_help(
                span,
                format!(
                    "step {id:?} runs later (step {} of the runbook), so its output is not available here",
                    pos + 1
                ),
                "a step can only read the steps that run before it; move this step after it",
            );
        }
        Some(_) => {
            if let Some(field) = rest.first()
                && *field != "output"
                && *field != "status"
            {
                diags.error_with_help(
                    span,
                    format!("`steps.{id}.{field}` does not exist"),
                    format!("a step has `steps.{id}.output` and `steps.{id}.status`"),
                );
            }
        }
    }
}

/// `"500ms"`, `"30s"`, `"2m"`, `"24h"`, `"7d"`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err("expected a number followed by a unit".to_string());
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| "the number is too large".to_string())?;
    if n == 0 {
        return Err("must be greater than zero".to_string());
    }
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| "the number is too large".to_string()),
        "h" => n
            .checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or_else(|| "the number is too large".to_string()),
        "d" => n
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .ok_or_else(|| "the number is too large".to_string()),
        "" => Err("missing unit".to_string()),
        other => Err(format!("unknown unit `{other}`")),
    }
}

fn toml_to_json(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} is not a finite number (JSON has no NaN or infinity)"))?,
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
                .collect::<Result<Map<_, _>, String>>()?,
        ),
    })
}

// ---- grants (shared with plugin manifests) ----

pub(crate) fn db_grant(raw: &RawDb, diags: &mut Diagnostics) -> DbGrant {
    let mut grant = DbGrant::default();
    let lists = [
        (StatementKind::Select, &raw.select, &mut grant.select),
        (StatementKind::Insert, &raw.insert, &mut grant.insert),
        (StatementKind::Update, &raw.update, &mut grant.update),
        (StatementKind::Delete, &raw.delete, &mut grant.delete),
        (StatementKind::Ddl, &raw.ddl, &mut grant.ddl),
    ];
    for (kind, list, out) in lists {
        for table in list_items(list) {
            let name = table.get_ref().trim().to_lowercase();
            if is_table_name(&name) {
                out.insert(name);
            } else {
                diags.error_with_help(
                    table.span(),
                    format!("invalid table name {:?} in `{kind}`", table.get_ref()),
                    "name each table, plain or schema-qualified, like \"usage_quotas\" or \"billing.invoices\"",
                );
            }
        }
    }
    grant
}

fn list_items(list: &Option<SpannedList>) -> &[Spanned<String>] {
    list.as_ref().map_or(&[], |l| l.get_ref().as_slice())
}

/// Grants name tables exactly (no wildcards): a grant is a reviewable list.
fn is_table_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').count() <= 3
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        })
}

pub(crate) fn stripe_grant(raw: &RawStripe, diags: &mut Diagnostics) -> StripeGrant {
    let mut grant = StripeGrant::default();
    for op in list_items(&raw.operations) {
        let name = op.get_ref().trim();
        let valid = name.split('.').count() >= 2
            && name.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
        if valid && crate::capability::stripe_operation(name).is_none() {
            let known: Vec<&str> = crate::capability::stripe_operation_names().collect();
            let help = match closest(name, known.iter().copied()) {
                Some(best) => format!(
                    "did you mean {best:?}? the host supports: {}",
                    known.join(", ")
                ),
                None => format!("the host supports: {}", known.join(", ")),
            };
            diags.error_with_help(
                op.span(),
                format!("unknown Stripe operation {:?}", op.get_ref()),
                help,
            );
        } else if valid {
            grant.operations.insert(name.to_string());
        } else {
            diags.error_with_help(
                op.span(),
                format!("invalid Stripe operation {:?}", op.get_ref()),
                "write `resource.action`, like \"refunds.create\" or \"subscriptions.retrieve\"",
            );
        }
    }
    grant.max_refund_amount = positive_amount(&raw.max_refund_amount, "max_refund_amount", diags);
    grant.max_refund_total = positive_amount(&raw.max_refund_total, "max_refund_total", diags);
    grant.max_writes = positive_amount(&raw.max_writes, "max_writes", diags)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    grant
}

fn positive_amount(
    value: &Option<Spanned<i64>>,
    key: &str,
    diags: &mut Diagnostics,
) -> Option<i64> {
    let value = value.as_ref()?;
    let v = *value.get_ref();
    if v < 0 {
        diags.error(
            value.span(),
            format!("`{key}` must not be negative, found {v}"),
        );
        return None;
    }
    Some(v)
}

pub(crate) fn webhook_grant(raw: &RawWebhook, diags: &mut Diagnostics) -> WebhookGrant {
    let mut grant = WebhookGrant::default();
    for endpoint in list_items(&raw.endpoints) {
        let name = endpoint.get_ref().trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            diags.error_with_help(
                endpoint.span(),
                format!("invalid webhook endpoint name {:?}", endpoint.get_ref()),
                "name an endpoint from `[webhooks.<name>]` in runbook.toml, like \"app\"",
            );
        } else {
            grant.endpoints.insert(name.to_string());
        }
    }
    grant
}

pub(crate) fn email_grant(raw: &RawEmail, diags: &mut Diagnostics) -> EmailGrant {
    let recipients = recipients(&raw.recipients, diags);
    let max_per_run = raw.max_per_run.as_ref().and_then(|m| {
        let v = *m.get_ref();
        match u32::try_from(v) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                diags.error(
                    m.span(),
                    format!(
                        "`max_per_run` must be between 1 and {}, found {v}",
                        u32::MAX
                    ),
                );
                None
            }
        }
    });
    EmailGrant {
        recipients,
        max_per_run,
    }
}

pub(crate) fn recipients(list: &Option<SpannedList>, diags: &mut Diagnostics) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in list_items(list) {
        // Rendered when the step starts; the rendered addresses are checked then.
        if r.get_ref().contains("{{") {
            out.push(r.get_ref().trim().to_string());
            continue;
        }
        let pattern = r.get_ref().trim().to_lowercase();
        let valid = match pattern.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !pattern.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if !valid {
            diags.error_with_help(
                r.span(),
                format!("invalid recipient pattern {:?}", r.get_ref()),
                "write an address or a pattern with `*`, like \"ops@example.com\" or \"*@example.com\"",
            );
        } else if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    out
}

pub(crate) struct Missing {
    pub text: String,
    pub help: String,
}

/// What the plugin's manifest says it needs that the step's grants do not give.
pub(crate) fn missing_grants(
    step_label: &str,
    plugin: &str,
    needs: &Grants,
    grants: &Grants,
) -> Vec<Missing> {
    let mut out = Vec::new();
    for (kind, table) in grants.db.missing(&needs.db) {
        out.push(Missing {
            text: format!(
                "{step_label}: plugin {plugin:?} needs {kind} on table {table:?}, which this step does not grant"
            ),
            help: format!("add it to the step: `[steps.grants.db]` {kind} = [{table:?}]"),
        });
    }
    if let Some(needed) = &needs.stripe {
        let granted = grants.stripe.as_ref().map(|s| &s.operations);
        let missing: Vec<&String> = needed
            .operations
            .iter()
            .filter(|op| !granted.is_some_and(|g| g.contains(*op)))
            .collect();
        for op in missing {
            out.push(Missing {
                text: format!(
                    "{step_label}: plugin {plugin:?} needs Stripe operation {op:?}, which this step does not grant"
                ),
                help: format!("add it to the step: `[steps.grants.stripe]` operations = [{op:?}]"),
            });
        }
        if needed.operations.is_empty() && granted.is_none() {
            out.push(Missing {
                text: format!(
                    "{step_label}: plugin {plugin:?} needs Stripe access, which this step does not grant"
                ),
                help: "add a `[steps.grants.stripe]` table listing the operations".to_string(),
            });
        }
    }
    if needs.webhook.is_some() && grants.webhook.is_none() {
        out.push(Missing {
            text: format!(
                "{step_label}: plugin {plugin:?} needs to deliver webhooks, which this step does not grant"
            ),
            help: "add a `[steps.grants.webhook]` table with `endpoints`".to_string(),
        });
    }
    if let Some(needed) = &needs.email {
        match &grants.email {
            None => out.push(Missing {
                text: format!(
                    "{step_label}: plugin {plugin:?} needs to send email, which this step does not grant"
                ),
                help: "add a `[steps.grants.email]` table with `recipients`".to_string(),
            }),
            Some(granted) => {
                for r in &needed.recipients {
                    if !granted.recipients.iter().any(|p| pattern_covers(p, r)) {
                        out.push(Missing {
                            text: format!(
                                "{step_label}: plugin {plugin:?} needs to email {r:?}, which this step does not grant"
                            ),
                            help: format!(
                                "add it to the step: `[steps.grants.email]` recipients = [{r:?}]"
                            ),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Whether the grant pattern `pattern` (`*` matches any text) covers `wanted`, which may
/// itself be a pattern: its `*` is matched as a literal, so `*@a.com` covers `*@a.com`
/// and `x@a.com` but `x@a.com` does not cover `*@a.com`.
pub(crate) fn pattern_covers(pattern: &str, wanted: &str) -> bool {
    crate::grant::glob_match(pattern, wanted)
}
