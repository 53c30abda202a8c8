//! Conversions between serde_json values and minijinja values, both ways: the template
//! context is built from JSON, and a whole-expression template yields JSON again.

use minijinja::value::ValueKind;
use serde_json::{Map, Number, Value};

/// Nesting deeper than this in a template result is refused rather than followed.
const MAX_DEPTH: usize = 128;

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

/// Why a template's result has no JSON form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotJson {
    #[error("nested too deeply")]
    TooDeep,
    #[error("contains an undefined value")]
    Undefined,
    #[error("{0} is not a finite number")]
    NotFinite(f64),
    /// minijinja could not iterate, index or convert the value (its own words).
    #[error("{0}")]
    Unreadable(String),
}

impl From<minijinja::Error> for NotJson {
    fn from(e: minijinja::Error) -> NotJson {
        NotJson::Unreadable(e.to_string())
    }
}

pub(super) fn value_to_json(v: &minijinja::Value, depth: usize) -> Result<Value, NotJson> {
    if depth > MAX_DEPTH {
        return Err(NotJson::TooDeep);
    }
    Ok(match v.kind() {
        ValueKind::Undefined => return Err(NotJson::Undefined),
        ValueKind::None => Value::Null,
        ValueKind::Bool => Value::Bool(v.is_true()),
        ValueKind::Number => number_to_json(v)?,
        ValueKind::String | ValueKind::Bytes => match v.as_str() {
            Some(s) => Value::String(s.to_string()),
            None => Value::String(v.to_string()),
        },
        ValueKind::Seq | ValueKind::Iterable => {
            let iter = v.try_iter()?;
            let mut out = Vec::new();
            for item in iter {
                out.push(value_to_json(&item, depth + 1)?);
            }
            Value::Array(out)
        }
        ValueKind::Map => {
            let iter = v.try_iter()?;
            let mut out = Map::new();
            for key in iter {
                let item = v.get_item(&key)?;
                let key = match key.as_str() {
                    Some(s) => s.to_string(),
                    None => key.to_string(),
                };
                out.insert(key, value_to_json(&item, depth + 1)?);
            }
            Value::Object(out)
        }
        ValueKind::Plain => Value::String(v.to_string()),
        ValueKind::Invalid => return Err(NotJson::Unreadable(v.to_string())),
        // ValueKind is non-exhaustive; a future kind still has a text form.
        _ => Value::String(v.to_string()),
    })
}

fn number_to_json(v: &minijinja::Value) -> Result<Value, NotJson> {
    if v.is_integer() {
        if let Ok(i) = i64::try_from(v.clone()) {
            return Ok(Value::from(i));
        }
        if let Ok(u) = u64::try_from(v.clone()) {
            return Ok(Value::from(u));
        }
    }
    let f = f64::try_from(v.clone())?;
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or(NotJson::NotFinite(f))
}
