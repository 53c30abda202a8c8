//! [`Row::decode`](crate::Row::decode): a row read into any `Deserialize` type by column
//! name, through a small serde `Deserializer` over the row's values.
//!
//! Each value is read with the same rules as [`Row::get`](crate::Row::get) ([`FromValue`]),
//! not through JSON: a SQLite 0/1 still reads as a `bool` and a PostgreSQL `NUMERIC` sent
//! as text still reads as an `i64`, so decoding a struct and reading its fields one by one
//! agree on both backends.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

use crate::{FromValue, Row, RowError, Value, ValueError};

/// Reads `row` as a struct (or map) `T`.
pub(crate) fn decode<T: de::DeserializeOwned>(row: &Row<'_>) -> Result<T, RowError> {
    T::deserialize(RowDeserializer { row })
}

impl de::Error for RowError {
    fn custom<T: std::fmt::Display>(message: T) -> RowError {
        RowError::Decode {
            column: None,
            message: message.to_string(),
        }
    }
}

struct RowDeserializer<'r, 'a> {
    row: &'r Row<'a>,
}

impl<'de> de::Deserializer<'de> for RowDeserializer<'_, '_> {
    type Error = RowError;

    /// A map of every column, for `HashMap`s, `serde_json::Value` and `#[serde(flatten)]`.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        let columns = self.row.columns();
        visitor.visit_map(Columns {
            entries: columns
                .iter()
                .map(|c| c.name.as_str())
                .zip(self.row.values())
                .collect(),
            next: 0,
        })
    }

    /// Each field by name, looked up as [`Row::get`](crate::Row::get) does (exactly, then
    /// ignoring ASCII case). A field without a column is an error even when it is an
    /// `Option`: NULL is `None`, a missing column is a query that does not match the type.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, RowError> {
        let entries = fields
            .iter()
            .map(|&field| self.row.value(field).map(|value| (field, value)))
            .collect::<Result<_, _>>()?;
        visitor.visit_map(Columns { entries, next: 0 })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

/// (key, value) pairs handed to the visitor in order.
struct Columns<'a> {
    entries: Vec<(&'a str, &'a Value)>,
    next: usize,
}

impl<'de> MapAccess<'de> for Columns<'_> {
    type Error = RowError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, RowError> {
        let Some((key, _)) = self.entries.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, RowError> {
        let (column, value) = self.entries[self.next];
        self.next += 1;
        seed.deserialize(ValueDeserializer(value))
            .map_err(|e| match e {
                RowError::Decode {
                    column: None,
                    message,
                } => RowError::Decode {
                    column: Some(column.to_owned()),
                    message,
                },
                RowError::Value { error, .. } => RowError::Value {
                    column: column.to_owned(),
                    error,
                },
                other => other,
            })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

/// One value. Typed requests go through [`FromValue`]; `deserialize_any` (for
/// `serde_json::Value` fields and untyped visitors) follows the value's own kind.
struct ValueDeserializer<'a>(&'a Value);

impl ValueDeserializer<'_> {
    fn read<T: FromValue>(&self) -> Result<T, RowError> {
        T::from_value(self.0).map_err(|error| RowError::Value {
            column: String::new(),
            error,
        })
    }
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = RowError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Text(s) | Value::Timestamp(s) => visitor.visit_str(s),
            Value::Bytes(b) => visitor.visit_bytes(b),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        visitor.visit_bool(self.read()?)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        visitor.visit_i64(self.read()?)
    }

    // Narrower and unsigned integers: read as i64, and let the visitor refuse what does
    // not fit (serde's message names the type).
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.read::<i64>()? {
            n if n < 0 => visitor.visit_i64(n),
            n => visitor.visit_u64(n as u64),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        visitor.visit_f64(self.read()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        visitor.visit_string(self.read()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        visitor.visit_byte_buf(self.read()?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            other => Err(RowError::Value {
                column: String::new(),
                error: ValueError {
                    expected: "NULL",
                    found: other.describe(),
                },
            }),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, RowError> {
        visitor.visit_newtype_struct(self)
    }

    /// Text as a unit variant: `status TEXT` straight into an enum of statuses.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, RowError> {
        let text: String = self.read()?;
        visitor.visit_enum(text.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str bytes unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        self.deserialize_f64(visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use crate::{Column, Rows, Timestamp, Value};

    fn rows(columns: &[&str], values: Vec<Vec<Value>>) -> Rows {
        let columns = columns
            .iter()
            .map(|name| Column {
                name: (*name).into(),
                type_name: "TEXT".into(),
            })
            .collect();
        Rows::new(columns, values)
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Status {
        Active,
        PastDue,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Subscription {
        id: i64,
        organization_id: u32,
        status: Status,
        cancel_at_period_end: bool,
        amount: i64,
        current_period_end: Timestamp,
        canceled_at: Option<Timestamp>,
        note: Option<String>,
        share: f64,
    }

    #[test]
    fn decodes_by_column_name_with_the_getters_rules() {
        // Columns in another order than the fields, one extra, and one in another case
        // (PostgreSQL folds unquoted aliases, SQLite keeps them as written).
        let rows = rows(
            &[
                "status",
                "id",
                "ignored",
                "Organization_ID",
                "cancel_at_period_end",
                "amount",
                "current_period_end",
                "canceled_at",
                "note",
                "share",
            ],
            vec![vec![
                Value::Text("past_due".into()),
                Value::Integer(7),
                Value::Bytes(vec![1]),
                Value::Integer(2),
                // SQLite's boolean, and a NUMERIC sum as PostgreSQL may send it.
                Value::Integer(1),
                Value::Text("1200.00".into()),
                Value::Text("2026-10-05 12:00:00+00:00".into()),
                Value::Null,
                Value::Text("vip".into()),
                Value::Integer(1),
            ]],
        );
        let subs: Vec<Subscription> = rows.decode().unwrap();
        assert_eq!(
            subs[0],
            Subscription {
                id: 7,
                organization_id: 2,
                status: Status::PastDue,
                cancel_at_period_end: true,
                amount: 1200,
                current_period_end: Timestamp::parse("2026-10-05T12:00:00Z").unwrap(),
                canceled_at: None,
                note: Some("vip".into()),
                share: 1.0,
            }
        );
        assert_ne!(subs[0].status, Status::Active);
    }

    #[test]
    fn tuples_maps_and_json_values() {
        let rows = rows(&["n", "label"], vec![vec![Value::Integer(3), Value::Null]]);
        let row = rows.one().unwrap();
        let map: std::collections::BTreeMap<String, Option<i64>> = row.decode().unwrap();
        assert_eq!(map["n"], Some(3));
        assert_eq!(map["label"], None);
        let json: serde_json::Value = row.decode().unwrap();
        assert_eq!(json, serde_json::json!({"n": 3, "label": null}));
    }

    #[test]
    fn errors_name_the_column() {
        let rows = rows(
            &["id", "status", "big"],
            vec![vec![
                Value::Text("x".into()),
                Value::Text("gone".into()),
                Value::Integer(300),
            ]],
        );
        let row = rows.one().unwrap();

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Id {
            id: i64,
        }
        assert_eq!(
            row.decode::<Id>().unwrap_err().to_string(),
            "column `id`: expected an integer, found text \"x\""
        );

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Missing {
            id: String,
            note: Option<String>,
        }
        assert_eq!(
            row.decode::<Missing>().unwrap_err().to_string(),
            "no column `note` in the result (columns: id, status, big)",
            "an Option field still needs its column"
        );

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Bad {
            status: Status,
        }
        let err = row.decode::<Bad>().unwrap_err().to_string();
        assert!(
            err.starts_with("column `status`: unknown variant `gone`"),
            "{err}"
        );

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Narrow {
            big: u8,
        }
        let err = row.decode::<Narrow>().unwrap_err().to_string();
        assert!(
            err.starts_with("column `big`: invalid value: integer `300`"),
            "{err}"
        );
        let failure: crate::Failure = row.decode::<Narrow>().unwrap_err().into();
        assert_eq!(failure.code, "schema-mismatch");
    }
}
