//! The validated runbook: what the engine runs once a file has passed every load-time check.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::capability::Grants;
use crate::spec::limits::LimitOverrides;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runbook {
    pub name: String,
    pub description: String,
    /// In file order.
    pub params: Vec<Param>,
    /// In file order, which is the order they run in.
    pub steps: Vec<Step>,
    /// The file name as given to the loader.
    pub source: String,
    /// SHA-256 (hex) of the file text, so a run record names exactly what was run.
    pub digest: String,
    /// A template over `params`: while a run with the same rendered key is unfinished,
    /// another is refused.
    pub concurrency_key: Option<String>,
    /// Who may roll a run back on demand (`runbook rollback`): people or `group:<name>`;
    /// empty means anyone who may run the runbook.
    pub rollback_approvers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
    pub default: Option<Value>,
    pub required: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    String,
    Integer,
    Float,
    Boolean,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub id: String,
    pub name: Option<String>,
    pub plugin: String,
    /// A minijinja expression (no braces); the step is skipped when it is false.
    pub when: Option<String>,
    /// The step's own limits (flat keys and `[steps.limits]`); each `None` means the
    /// configured default applies.
    #[serde(flatten)]
    pub limits: LimitOverrides,
    /// How often and when the step is re-run after a transient failure. A re-run's
    /// effects already made are answered from the call journal, not repeated.
    pub retry: RetryPolicy,
    /// A human gate instead of a plugin (`plugin` is empty then).
    pub approval: Option<Approval>,
    pub on_failure: OnFailure,
    /// How to undo the step once it succeeded, if it can be undone.
    pub rollback: Option<Rollback>,
    /// Always a JSON object; strings in it may be templates, rendered at run time.
    pub input: Value,
    pub grants: Grants,
}

/// A command-line parameter value (`--param k=v`) that is not of its declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got `{raw}`")]
pub struct ParamValueError {
    expected: &'static str,
    raw: String,
}

impl ParamKind {
    pub const ALL: [ParamKind; 4] = [
        ParamKind::String,
        ParamKind::Integer,
        ParamKind::Float,
        ParamKind::Boolean,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Integer => "integer",
            ParamKind::Float => "float",
            ParamKind::Boolean => "boolean",
        }
    }

    pub fn from_name(name: &str) -> Option<ParamKind> {
        ParamKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// "an integer", "a string": for messages.
    pub fn article(self) -> &'static str {
        match self {
            ParamKind::String => "a string",
            ParamKind::Integer => "an integer",
            ParamKind::Float => "a float",
            ParamKind::Boolean => "a boolean",
        }
    }

    /// Reads a command-line value (`--param k=v`) as this type.
    pub fn parse_value(&self, raw: &str) -> Result<Value, ParamValueError> {
        let wrong = |expected| ParamValueError {
            expected,
            raw: raw.to_string(),
        };
        match self {
            ParamKind::String => Ok(Value::String(raw.to_string())),
            ParamKind::Integer => raw
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| wrong("an integer")),
            ParamKind::Float => raw
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| wrong("a finite number")),
            ParamKind::Boolean => match raw.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(wrong("`true` or `false`")),
            },
        }
    }

    /// Whether `v` is a value of this type. Integers are accepted as floats.
    pub fn accepts(&self, v: &Value) -> bool {
        match self {
            ParamKind::String => v.is_string(),
            ParamKind::Integer => v.is_i64() || v.is_u64(),
            ParamKind::Float => v.is_number(),
            ParamKind::Boolean => v.is_boolean(),
        }
    }

    /// `v` as this type, assuming [`accepts`](Self::accepts): a float parameter given `2`
    /// becomes `2.0`, so plugins see one JSON type per parameter.
    pub(crate) fn normalize(&self, v: Value) -> Value {
        match (self, &v) {
            (ParamKind::Float, Value::Number(n)) if !n.is_f64() => n
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map_or(v, Value::Number),
            _ => v,
        }
    }
}

impl std::fmt::Display for ParamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Runbook {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The `params` object templates see: given values checked against their types,
    /// defaults filled in, and every problem reported at once. A declared parameter with
    /// neither a value nor a default is `null`, so `params.x is none` works in templates
    /// instead of tripping strict undefined.
    pub fn resolve_params(
        &self,
        given: &BTreeMap<String, Value>,
    ) -> Result<Map<String, Value>, Vec<String>> {
        let mut errors = Vec::new();
        for name in given.keys() {
            if self.param(name).is_none() {
                let declared: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                errors.push(if declared.is_empty() {
                    format!("unknown parameter `{name}`: this runbook takes no parameters")
                } else {
                    format!(
                        "unknown parameter `{name}` (this runbook takes: {})",
                        declared.join(", ")
                    )
                });
            }
        }
        let mut out = Map::new();
        for p in &self.params {
            let value = match given.get(&p.name) {
                Some(v) if p.kind.accepts(v) => p.kind.normalize(v.clone()),
                Some(v) => {
                    errors.push(format!(
                        "parameter `{}` must be {}, got {}",
                        p.name,
                        p.kind.article(),
                        describe_json(v)
                    ));
                    continue;
                }
                None => match &p.default {
                    Some(d) => d.clone(),
                    None if p.required => {
                        errors.push(format!("missing required parameter `{}`", p.name));
                        continue;
                    }
                    None => Value::Null,
                },
            };
            out.insert(p.name.clone(), value);
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

fn describe_json(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("float `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) => format!("string {}", Value::String(s.clone())),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Runs in all, counting the first.
    pub attempts: u32,
    pub backoff: Backoff,
    /// Wait before the second attempt.
    pub delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            backoff: Backoff::Exponential,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `next` (2 for the first retry): capped, with jitter so
    /// retries of many runs do not arrive together.
    pub fn delay_before(&self, next: u32) -> Duration {
        let base = match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Exponential => self
                .delay
                .saturating_mul(1u32 << next.saturating_sub(2).min(16)),
        }
        .min(self.max_delay);
        // Equal jitter: at least half the delay, at most all of it.
        base / 2 + base.mul_f64(fastrand::f64() / 2.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    Fixed,
    Exponential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Undo the completed steps in reverse order (the default).
    Rollback,
    /// Record the failure and go on with the next step.
    Continue,
    /// Stop without undoing anything.
    Abort,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    /// A template over params and earlier outputs: what the approver is agreeing to.
    pub message: String,
    /// `name` or `group:<name>` (groups from `runbook.toml`).
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub required: u32,
    /// Whether the operator who started the run may approve it.
    pub allow_self: bool,
    pub timeout: Option<Duration>,
    pub on_timeout: OnTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    Reject,
    Continue,
}

impl OnTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Reject => "reject",
            OnTimeout::Continue => "continue",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollback {
    pub plugin: String,
    /// Extra input (templated); the host adds the step's input, output and call journal.
    pub input: Value,
    pub grants: Grants,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::spec::runbook::fixtures::{HEAD, catalog};
    use crate::spec::runbook::parse_runbook;

    fn params_runbook() -> Runbook {
        let text = format!(
            r#"{HEAD}[params.hours]
type = "integer"
default = 24
[params.account]
type = "string"
required = true
[params.ratio]
type = "float"
[params.dry_run]
type = "boolean"
default = true
[[steps]]
id = "a"
plugin = "echo"
"#
        );
        parse_runbook("p.toml", &text, &catalog()).unwrap()
    }

    #[test]
    fn resolve_params_fills_defaults_and_checks_types() {
        let rb = params_runbook();
        let given = BTreeMap::from([
            ("account".to_string(), json!("acme")),
            ("ratio".to_string(), json!(2)),
        ]);
        let resolved = rb.resolve_params(&given).unwrap();
        assert_eq!(
            serde_json::Value::Object(resolved),
            json!({"hours": 24, "account": "acme", "ratio": 2.0, "dry_run": true})
        );

        let resolved = rb
            .resolve_params(&BTreeMap::from([("account".to_string(), json!("x"))]))
            .unwrap();
        assert_eq!(resolved["ratio"], serde_json::Value::Null);

        let errs = rb
            .resolve_params(&BTreeMap::from([
                ("hours".to_string(), json!("many")),
                ("bogus".to_string(), json!(1)),
            ]))
            .unwrap_err();
        assert_eq!(
            errs,
            vec![
                "unknown parameter `bogus` (this runbook takes: hours, account, ratio, dry_run)"
                    .to_string(),
                "parameter `hours` must be an integer, got string \"many\"".to_string(),
                "missing required parameter `account`".to_string(),
            ]
        );
    }

    #[test]
    fn param_kinds_parse_command_line_values() {
        assert_eq!(ParamKind::Integer.parse_value(" 42 "), Ok(json!(42)));
        assert!(ParamKind::Integer.parse_value("4.2").is_err());
        assert_eq!(ParamKind::Float.parse_value("4.5"), Ok(json!(4.5)));
        assert!(ParamKind::Float.parse_value("NaN").is_err());
        assert_eq!(ParamKind::Boolean.parse_value("TRUE"), Ok(json!(true)));
        assert!(ParamKind::Boolean.parse_value("yes").is_err());
        assert_eq!(ParamKind::String.parse_value(" a b "), Ok(json!(" a b ")));
        assert!(ParamKind::Float.accepts(&json!(1)));
        assert!(!ParamKind::Integer.accepts(&json!(1.5)));
        assert!(!ParamKind::String.accepts(&json!(1)));
        assert_eq!(
            serde_json::to_value(ParamKind::Boolean).unwrap(),
            json!("boolean")
        );
    }

    #[test]
    fn retry_delays_grow_are_capped_and_jittered() {
        let policy = RetryPolicy {
            attempts: 5,
            backoff: Backoff::Exponential,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        for _ in 0..50 {
            let second = policy.delay_before(2);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&second));
            let third = policy.delay_before(3);
            assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&third));
            let fifth = policy.delay_before(5);
            assert!((Duration::from_millis(150)..=Duration::from_millis(300)).contains(&fifth));
        }
    }
}
