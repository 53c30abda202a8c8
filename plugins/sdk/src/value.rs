//! [`Value`]: one SQL value crossing the plugin boundary, the conversions into it (for
//! parameters) and out of it ([`FromValue`], for reading rows).
//!
//! Reading is deliberately forgiving where the two dialects differ and strict where a
//! mismatch means a bug: SQLite stores booleans as 0/1, PostgreSQL may hand a `NUMERIC`
//! aggregate over as text or float, so those convert; text never silently becomes a
//! number unless it is one.

use std::fmt;

use crate::Timestamp;

/// One SQL value; mirrors the WIT `value`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// RFC 3339 text in UTC (PostgreSQL timestamps; SQLite has none, it returns `Text`).
    Timestamp(String),
}

impl Value {
    /// A short description for error messages: the kind and a preview of the content.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Boolean(b) => format!("boolean {b}"),
            Value::Integer(i) => format!("integer {i}"),
            Value::Float(f) => format!("float {f}"),
            Value::Text(s) if s.chars().count() > 40 => {
                format!("text {:?}...", s.chars().take(40).collect::<String>())
            }
            Value::Text(s) => format!("text {s:?}"),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Timestamp(t) => format!("timestamp {t}"),
        }
    }

    /// The value as JSON: timestamps in [`Timestamp`]'s normal form, bytes as an array,
    /// non-finite floats as null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Boolean(b) => J::Bool(*b),
            Value::Integer(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Text(s) => J::String(s.clone()),
            Value::Bytes(b) => J::from(b.clone()),
            Value::Timestamp(t) => {
                J::String(Timestamp::parse(t).map_or_else(|| t.clone(), |t| t.to_string()))
            }
        }
    }
}

macro_rules! value_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from($v: $t) -> Value { $e }
        }
    )*};
}

value_from! {
    i64 => |v| Value::Integer(v),
    i32 => |v| Value::Integer(v.into()),
    i16 => |v| Value::Integer(v.into()),
    u32 => |v| Value::Integer(v.into()),
    u16 => |v| Value::Integer(v.into()),
    u8 => |v| Value::Integer(v.into()),
    f64 => |v| Value::Float(v),
    f32 => |v| Value::Float(v.into()),
    bool => |v| Value::Boolean(v),
    &str => |v| Value::Text(v.to_owned()),
    String => |v| Value::Text(v),
    &String => |v| Value::Text(v.clone()),
    Vec<u8> => |v| Value::Bytes(v),
    &[u8] => |v| Value::Bytes(v.to_vec()),
    Timestamp => |v| Value::Timestamp(v.into_string()),
    &Timestamp => |v| Value::Timestamp(v.as_str().to_owned()),
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Build the parameter list of a statement: `params![org_id, "api_calls", None::<i64>]`
/// gives a `&[Value]` for `$1`, `$2`, `$3`.
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[$crate::Value]
    };
    ($($param:expr),+ $(,)?) => {
        &[$($crate::Value::from($param)),+]
    };
}

/// A value could not be read as the requested type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// What the caller asked for, e.g. `an integer`.
    pub expected: &'static str,
    /// What the value was, see [`Value::describe`].
    pub found: String,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, found {}", self.expected, self.found)
    }
}

impl std::error::Error for ValueError {}

/// Types a [`Value`] can be read as. `Option<T>` reads NULL as `None`; every other type
/// rejects NULL.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, ValueError>;
}

fn mismatch<T>(expected: &'static str, value: &Value) -> Result<T, ValueError> {
    Err(ValueError {
        expected,
        found: value.describe(),
    })
}

/// Integers, integral floats, and integral decimal text (`"1200"`, `"1200.00"`, how a
/// PostgreSQL `NUMERIC` such as `SUM(bigint)` may arrive).
impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        const EXPECTED: &str = "an integer";
        match value {
            Value::Integer(i) => Ok(*i),
            // 2^63 as f64; `as` would saturate silently.
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18 => {
                Ok(*f as i64)
            }
            Value::Text(s) => {
                let s = s.trim();
                let whole = match s.split_once('.') {
                    Some((whole, frac)) if frac.bytes().all(|b| b == b'0') => whole,
                    Some(_) => return mismatch(EXPECTED, value),
                    None => s,
                };
                whole.parse().or_else(|_| mismatch(EXPECTED, value))
            }
            _ => mismatch(EXPECTED, value),
        }
    }
}

macro_rules! narrow_int {
    ($($t:ty => $expected:literal),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, ValueError> {
                let wide = i64::from_value(value)
                    .map_err(|e| ValueError { expected: $expected, found: e.found })?;
                <$t>::try_from(wide).or_else(|_| mismatch($expected, value))
            }
        }
    )*};
}

narrow_int!(i32 => "a 32-bit integer", u32 => "a non-negative 32-bit integer",
    u64 => "a non-negative integer", usize => "a non-negative integer");

/// Floats, integers, and numeric text.
impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        match value {
            Value::Float(f) => Ok(*f),
            Value::Integer(i) => Ok(*i as f64),
            Value::Text(s) => s.trim().parse().or_else(|_| mismatch("a number", value)),
            _ => mismatch("a number", value),
        }
    }
}

/// Booleans, and SQLite's 0/1.
impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        match value {
            Value::Boolean(b) => Ok(*b),
            Value::Integer(0) => Ok(false),
            Value::Integer(1) => Ok(true),
            _ => mismatch("a boolean", value),
        }
    }
}

/// Text, and a timestamp's text as the database gave it (use [`Timestamp`] to normalise).
impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        match value {
            Value::Text(s) | Value::Timestamp(s) => Ok(s.clone()),
            _ => mismatch("text", value),
        }
    }
}

/// A `timestamp`, or text that parses as one (SQLite).
impl FromValue for Timestamp {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        match value {
            Value::Timestamp(s) | Value::Text(s) => {
                Timestamp::parse(s).map_or_else(|| mismatch("a timestamp", value), Ok)
            }
            _ => mismatch("a timestamp", value),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        match value {
            Value::Bytes(b) => Ok(b.clone()),
            _ => mismatch("bytes", value),
        }
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        Ok(value.clone())
    }
}

impl FromValue for serde_json::Value {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        Ok(value.to_json())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: FromValue>(v: Value) -> Result<T, ValueError> {
        T::from_value(&v)
    }

    #[test]
    fn into_value() {
        assert_eq!(Value::from(7i32), Value::Integer(7));
        assert_eq!(Value::from(7u32), Value::Integer(7));
        assert_eq!(Value::from(1.5), Value::Float(1.5));
        assert_eq!(Value::from(true), Value::Boolean(true));
        assert_eq!(Value::from("a"), Value::Text("a".into()));
        assert_eq!(Value::from(String::from("b")), Value::Text("b".into()));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(Some("x")), Value::Text("x".into()));
    }

    #[test]
    fn params_macro() {
        let org = 42i64;
        let p: &[Value] = params![org, "api_calls", None::<i64>, 2.5, false];
        assert_eq!(
            p,
            [
                Value::Integer(42),
                Value::Text("api_calls".into()),
                Value::Null,
                Value::Float(2.5),
                Value::Boolean(false),
            ]
        );
        assert!(params![].is_empty());
        let bound = params![1, 2,];
        assert_eq!(bound.len(), 2);
    }

    #[test]
    fn integers_read_sensibly() {
        assert_eq!(read::<i64>(Value::Integer(5)), Ok(5));
        assert_eq!(read::<i64>(Value::Float(5.0)), Ok(5));
        assert_eq!(read::<i64>(Value::Text("1200".into())), Ok(1200));
        assert_eq!(read::<i64>(Value::Text("1200.00".into())), Ok(1200));
        assert!(read::<i64>(Value::Float(5.5)).is_err());
        assert!(read::<i64>(Value::Float(1e300)).is_err());
        assert!(read::<i64>(Value::Text("12.5".into())).is_err());
        assert!(read::<i64>(Value::Text("twelve".into())).is_err());
        assert!(read::<i64>(Value::Boolean(true)).is_err());
        assert_eq!(read::<i32>(Value::Integer(-3)), Ok(-3));
        assert!(read::<u32>(Value::Integer(-3)).is_err());
        assert!(read::<i32>(Value::Integer(1 << 40)).is_err());
    }

    #[test]
    fn floats_and_booleans() {
        assert_eq!(read::<f64>(Value::Integer(3)), Ok(3.0));
        assert_eq!(read::<f64>(Value::Text("0.25".into())), Ok(0.25));
        assert_eq!(read::<bool>(Value::Integer(1)), Ok(true));
        assert_eq!(read::<bool>(Value::Integer(0)), Ok(false));
        assert!(read::<bool>(Value::Integer(2)).is_err());
    }

    #[test]
    fn null_only_reads_as_option() {
        let err = read::<i64>(Value::Null).unwrap_err();
        assert_eq!(err.to_string(), "expected an integer, found NULL");
        assert_eq!(read::<Option<i64>>(Value::Null), Ok(None));
        assert_eq!(read::<Option<i64>>(Value::Integer(1)), Ok(Some(1)));
        assert!(read::<Option<i64>>(Value::Text("x".into())).is_err());
    }

    #[test]
    fn text_and_timestamps() {
        let pg = Value::Timestamp("2026-10-05T12:00:00Z".into());
        let lite = Value::Text("2026-10-05 12:00:00+00:00".into());
        assert_eq!(read::<String>(pg.clone()).unwrap(), "2026-10-05T12:00:00Z");
        assert_eq!(
            read::<Timestamp>(pg.clone()),
            read::<Timestamp>(lite.clone())
        );
        assert_eq!(pg.to_json(), serde_json::json!("2026-10-05T12:00:00Z"));
        assert!(read::<Timestamp>(Value::Text("no".into())).is_err());
        let err = read::<String>(Value::Integer(1)).unwrap_err();
        assert_eq!(err.to_string(), "expected text, found integer 1");
    }

    #[test]
    fn json() {
        assert_eq!(Value::Float(f64::NAN).to_json(), serde_json::Value::Null);
        assert_eq!(Value::Integer(3).to_json(), serde_json::json!(3));
        assert_eq!(
            Value::Text("2026-10-05 12:00:00".into()).to_json(),
            serde_json::json!("2026-10-05 12:00:00"),
            "text stays text; only typed timestamps are normalised"
        );
    }
}
