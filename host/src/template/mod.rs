//! Run-time templating of step inputs and `when` conditions (minijinja, strict undefined),
//! and the compile-time view of the same templates that load-time validation checks.

pub mod context;
mod value;

use std::collections::HashSet;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

pub use context::{RunContext, TemplateContext};
pub(crate) use value::json_to_value;
use value::{NotJson, value_to_json};

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
    NotJson { location: String, reason: NotJson },
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx() -> serde_json::Value {
        json!({
            "params": {"window_hours": 24, "name": "acme", "ratio": 0.5, "flag": true, "none": null},
            "steps": {
                "assess": {"output": {"count": 3, "ids": [1, 2], "ok": true}, "status": "succeeded"},
                "skip": {"output": null, "status": "skipped"}
            }
        })
    }

    #[test]
    fn whole_expression_strings_keep_their_type() {
        let t = Templates::new();
        let input = json!({
            "n": "{{ params.window_hours }}",
            "padded": "  {{ params.window_hours * 2 }}  ",
            "f": "{{ params.ratio }}",
            "b": "{{ params.flag }}",
            "null": "{{ params.none }}",
            "obj": "{{ steps.assess.output }}",
            "list": "{{ steps.assess.output.ids }}",
            "trim": "{{- params.name -}}",
            "str": "{{ params.name }}",
            "nested": {"deep": ["{{ steps.assess.output.count }}", 7, false]},
            "untouched": 5,
        });
        let out = t.render_input(&input, &ctx()).unwrap();
        assert_eq!(
            out,
            json!({
                "n": 24,
                "padded": 48,
                "f": 0.5,
                "b": true,
                "null": null,
                "obj": {"count": 3, "ids": [1, 2], "ok": true},
                "list": [1, 2],
                "trim": "acme",
                "str": "acme",
                "nested": {"deep": [3, 7, false]},
                "untouched": 5,
            })
        );
    }

    #[test]
    fn mixed_strings_render_as_text() {
        let t = Templates::new();
        let input = json!({
            "a": "last {{ params.window_hours }} hours",
            "b": "{{ params.name }}-{{ params.window_hours }}",
            "c": "{% if steps.assess.output.ok %}yes{% else %}no{% endif %}",
            "d": "plain text",
            "e": "line\n",
        });
        let out = t.render_input(&input, &ctx()).unwrap();
        assert_eq!(
            out,
            json!({"a": "last 24 hours", "b": "acme-24", "c": "yes", "d": "plain text", "e": "line\n"})
        );
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let t = Templates::new();
        for input in [
            json!({"x": "{{ params.missing }}"}),
            json!({"x": "value: {{ params.missing }}"}),
            json!({"x": ["{{ steps.nope.output.count }}"]}),
            json!({"x": "{{ steps.skip.output.count }}"}),
        ] {
            let err = t.render_input(&input, &ctx()).unwrap_err();
            assert!(err.to_string().starts_with("input.x"), "{err}");
        }
        let err = t
            .render_input(&json!({"k": {"x": "{{ params.missing }}"}}), &ctx())
            .unwrap_err();
        assert!(
            matches!(&err, TemplateError::Undefined { location, expr } if location == "input.k.x" && expr == "params.missing"),
            "{err:?}"
        );
        let err = t
            .render_input(&json!({"x": "{{ oops"}), &ctx())
            .unwrap_err();
        assert!(matches!(err, TemplateError::Compile { .. }), "{err:?}");
    }

    #[test]
    fn eval_condition_uses_truthiness() {
        let t = Templates::new();
        let c = ctx();
        assert!(t.eval_condition("params.window_hours > 0", &c).unwrap());
        assert!(!t.eval_condition("params.window_hours > 100", &c).unwrap());
        assert!(t.eval_condition("steps.assess.output.ids", &c).unwrap());
        assert!(!t.eval_condition("steps.skip.output", &c).unwrap());
        assert!(!t.eval_condition("''", &c).unwrap());
        assert!(!t.eval_condition("0", &c).unwrap());
        assert!(!t.eval_condition("[]", &c).unwrap());
        assert!(t.eval_condition("'x'", &c).unwrap());
        assert!(
            t.eval_condition("steps.assess.status == 'succeeded'", &c)
                .unwrap()
        );
        assert!(t.eval_condition("params.none is none", &c).unwrap());
        assert!(t.eval_condition("params.missing", &c).is_err());
        assert!(t.eval_condition("params.window_hours >", &c).is_err());
    }
}
