//! Run-time templating of step inputs and `when` conditions (minijinja, strict undefined),
//! and the compile-time view of the same templates that load-time validation checks.

use std::collections::HashSet;

use minijinja::value::ValueKind;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Number, Value};

use super::context::TemplateContext;

/// Nesting deeper than this in a template result is refused rather than followed.
const MAX_DEPTH: usize = 128;

/// A step's input or condition could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{location}: template does not compile: {source}")]
    Compile {
        location: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("{location}: template failed: {source}")]
    Render {
        location: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("{location}: `{expr}` is undefined")]
    Undefined { location: String, expr: String },
    #[error("{location}: result is not representable as JSON: {reason}")]
    NotJson { location: String, reason: String },
}

/// How a string in a step input is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TemplateKind<'s> {
    /// No template syntax: passed through as is.
    Literal,
    /// Exactly one `{{ expr }}`: evaluated, keeping the value's type.
    Expression(&'s str),
    /// Anything else with template syntax: rendered to text.
    Text,
}

pub(crate) fn classify(s: &str) -> TemplateKind<'_> {
    if !s.contains("{{") && !s.contains("{%") {
        return TemplateKind::Literal;
    }
    let trimmed = s.trim();
    if let Some(inner) = trimmed
        .strip_prefix("{{")
        .and_then(|rest| rest.strip_suffix("}}"))
    {
        let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
        let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
        let nested = ["{{", "}}", "{%", "%}", "{#", "#}"]
            .iter()
            .any(|d| inner.contains(d));
        if !nested && !inner.trim().is_empty() {
            return TemplateKind::Expression(inner.trim());
        }
    }
    TemplateKind::Text
}

/// The one template environment of a run. Undefined is strict, so a misspelt name is an
/// error rather than an empty string passed silently to a plugin.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // An input string is a value, not a file: a trailing newline in it is data.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        Templates { env }
    }

    pub fn environment(&self) -> &Environment<'static> {
        &self.env
    }

    /// Renders every template string in `input` against `ctx`
    /// (`{"params": {..}, "steps": {"<id>": {"output": .., "status": ..}}}`).
    pub fn render_input(
        &self,
        input: &Value,
        ctx: &dyn TemplateContext,
    ) -> Result<Value, TemplateError> {
        let ctx = ctx.template_value();
        let mut location = String::from("input");
        self.render_node(input, &ctx, &mut location)
    }

    /// Evaluates a `when` expression with minijinja truthiness.
    pub fn eval_condition(
        &self,
        expr: &str,
        ctx: &dyn TemplateContext,
    ) -> Result<bool, TemplateError> {
        let location = "when";
        let compiled =
            self.env
                .compile_expression(expr)
                .map_err(|source| TemplateError::Compile {
                    location: location.to_string(),
                    source,
                })?;
        let value =
            compiled
                .eval(ctx.template_value())
                .map_err(|source| TemplateError::Render {
                    location: location.to_string(),
                    source,
                })?;
        if value.is_undefined() {
            return Err(TemplateError::Undefined {
                location: location.to_string(),
                expr: expr.trim().to_string(),
            });
        }
        Ok(value.is_true())
    }

    /// Renders one string the way [`render_input`](Self::render_input) renders a string
    /// inside an input.
    pub fn render_string(
        &self,
        s: &str,
        ctx: &dyn TemplateContext,
    ) -> Result<Value, TemplateError> {
        self.render_str(s, &ctx.template_value(), "value")
    }

    fn render_node(
        &self,
        node: &Value,
        ctx: &minijinja::Value,
        location: &mut String,
    ) -> Result<Value, TemplateError> {
        match node {
            Value::String(s) => self.render_str(s, ctx, location),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = location.len();
                    location.push_str(&format!("[{i}]"));
                    let rendered = self.render_node(item, ctx, location);
                    location.truncate(len);
                    out.push(rendered?);
                }
                Ok(Value::Array(out))
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let len = location.len();
                    location.push('.');
                    location.push_str(k);
                    let rendered = self.render_node(v, ctx, location);
                    location.truncate(len);
                    out.insert(k.clone(), rendered?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn render_str(
        &self,
        s: &str,
        ctx: &minijinja::Value,
        location: &str,
    ) -> Result<Value, TemplateError> {
        let compile = |source| TemplateError::Compile {
            location: location.to_string(),
            source,
        };
        let render = |source| TemplateError::Render {
            location: location.to_string(),
            source,
        };
        match classify(s) {
            TemplateKind::Literal => Ok(Value::String(s.to_string())),
            TemplateKind::Expression(expr) => {
                let compiled = self.env.compile_expression(expr).map_err(compile)?;
                let value = compiled.eval(ctx.clone()).map_err(render)?;
                if value.is_undefined() {
                    return Err(TemplateError::Undefined {
                        location: location.to_string(),
                        expr: expr.to_string(),
                    });
                }
                value_to_json(&value, 0).map_err(|reason| TemplateError::NotJson {
                    location: location.to_string(),
                    reason,
                })
            }
            TemplateKind::Text => {
                let template = self.env.template_from_str(s).map_err(compile)?;
                template
                    .render(ctx.clone())
                    .map(Value::String)
                    .map_err(render)
            }
        }
    }

    /// Compiles `s` as it would be at run time and returns the dotted variable paths it
    /// reads (`steps.assess.output`), without the environment's own globals (`range`, ...).
    /// `None` for a string without template syntax.
    pub(crate) fn string_references(
        &self,
        s: &str,
    ) -> Result<Option<HashSet<String>>, minijinja::Error> {
        let vars = match classify(s) {
            TemplateKind::Literal => return Ok(None),
            TemplateKind::Expression(expr) => self
                .env
                .compile_expression(expr)?
                .undeclared_variables(true),
            TemplateKind::Text => self.env.template_from_str(s)?.undeclared_variables(true),
        };
        Ok(Some(self.without_globals(vars)))
    }

    /// Like [`string_references`](Self::string_references) for a bare expression (`when`).
    pub(crate) fn expression_references(
        &self,
        expr: &str,
    ) -> Result<HashSet<String>, minijinja::Error> {
        let vars = self
            .env
            .compile_expression(expr)?
            .undeclared_variables(true);
        Ok(self.without_globals(vars))
    }

    fn without_globals(&self, vars: HashSet<String>) -> HashSet<String> {
        vars.into_iter()
            .filter(|v| {
                let root = v.split('.').next().unwrap_or(v);
                !self.env.globals().any(|(name, _)| name == root)
            })
            .collect()
    }
}

/// serde_json → minijinja without minijinja's optional serde support.
pub(crate) fn json_to_value(v: &Value) -> minijinja::Value {
    match v {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                minijinja::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                minijinja::Value::from(u)
            } else {
                minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(items) => items.iter().map(json_to_value).collect(),
        Value::Object(map) => {
            minijinja::Value::from_pairs(map.iter().map(|(k, v)| (k.as_str(), json_to_value(v))))
        }
    }
}

fn value_to_json(v: &minijinja::Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".to_string());
    }
    Ok(match v.kind() {
        ValueKind::Undefined => return Err("contains an undefined value".to_string()),
        ValueKind::None => Value::Null,
        ValueKind::Bool => Value::Bool(v.is_true()),
        ValueKind::Number => number_to_json(v)?,
        ValueKind::String | ValueKind::Bytes => match v.as_str() {
            Some(s) => Value::String(s.to_string()),
            None => Value::String(v.to_string()),
        },
        ValueKind::Seq | ValueKind::Iterable => {
            let iter = v.try_iter().map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for item in iter {
                out.push(value_to_json(&item, depth + 1)?);
            }
            Value::Array(out)
        }
        ValueKind::Map => {
            let iter = v.try_iter().map_err(|e| e.to_string())?;
            let mut out = Map::new();
            for key in iter {
                let item = v.get_item(&key).map_err(|e| e.to_string())?;
                let key = match key.as_str() {
                    Some(s) => s.to_string(),
                    None => key.to_string(),
                };
                out.insert(key, value_to_json(&item, depth + 1)?);
            }
            Value::Object(out)
        }
        ValueKind::Plain => Value::String(v.to_string()),
        ValueKind::Invalid => return Err(v.to_string()),
        // ValueKind is non-exhaustive; a future kind still has a text form.
        _ => Value::String(v.to_string()),
    })
}

fn number_to_json(v: &minijinja::Value) -> Result<Value, String> {
    if v.is_integer() {
        if let Ok(i) = i64::try_from(v.clone()) {
            return Ok(Value::from(i));
        }
        if let Ok(u) = u64::try_from(v.clone()) {
            return Ok(Value::from(u));
        }
    }
    let f = f64::try_from(v.clone()).map_err(|e| e.to_string())?;
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{f} is not a finite number"))
}
