//! The size caps on a `db` request (statement text, each parameter, all parameters),
//! checked before the statement is parsed or sent; the result caps are counted by
//! `target/` while the result streams in.

use super::DbCaps;
use crate::contract::types::Value;

/// A request past one of the step's caps; the message names the cap and how to raise it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverCap {
    #[error(
        "the statement is {size} bytes, more than `max_statement_bytes` ({cap}); bind large values as parameters, or {}",
        raise("max_statement_bytes")
    )]
    Statement { size: u64, cap: u64 },
    #[error(
        "parameter ${number} is {size} bytes, more than `max_param_bytes` ({cap}); {}",
        raise("max_param_bytes")
    )]
    Param { number: usize, size: u64, cap: u64 },
    #[error(
        "the {count} parameters are {size} bytes together, more than `max_params_bytes` ({cap}); {}",
        raise("max_params_bytes")
    )]
    Params { count: usize, size: u64, cap: u64 },
}

fn raise(key: &str) -> String {
    format!("raise `{key}` in the step's `[steps.limits]` or in `[limits]` of runbook.toml")
}

impl DbCaps {
    /// Whether a request is within the caps on statement text and parameters.
    pub(super) fn check_request(&self, sql: &str, params: &[Value]) -> Result<(), OverCap> {
        let size = sql.len() as u64;
        if size > self.statement_bytes {
            return Err(OverCap::Statement {
                size,
                cap: self.statement_bytes,
            });
        }
        let mut total: u64 = 0;
        for (i, param) in params.iter().enumerate() {
            let size = param_bytes(param);
            if size > self.param_bytes {
                return Err(OverCap::Param {
                    number: i + 1,
                    size,
                    cap: self.param_bytes,
                });
            }
            total = total.saturating_add(size);
        }
        if total > self.params_bytes {
            return Err(OverCap::Params {
                count: params.len(),
                size: total,
                cap: self.params_bytes,
            });
        }
        Ok(())
    }
}

/// A parameter's cost in host memory: the value itself and its text or bytes, so a
/// million NULLs count as well as one large text.
fn param_bytes(value: &Value) -> u64 {
    let heap = match value {
        Value::Text(s) | Value::Timestamp(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Null | Value::Boolean(_) | Value::Integer(_) | Value::Float(_) => 0,
    };
    (std::mem::size_of::<Value>() + heap) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::ResultCaps;

    fn caps() -> DbCaps {
        DbCaps {
            statement_bytes: 10,
            param_bytes: 100,
            params_bytes: 150,
            result: ResultCaps {
                max_rows: 1,
                max_bytes: 1,
            },
        }
    }

    #[test]
    fn each_cap_is_named_with_how_to_raise_it() {
        let caps = caps();
        assert_eq!(caps.check_request("SELECT 1", &[]), Ok(()));
        let long = caps.check_request("SELECT 1 + 1", &[]).unwrap_err();
        assert_eq!(long, OverCap::Statement { size: 12, cap: 10 });
        assert!(
            long.to_string().contains("`max_statement_bytes` (10)"),
            "{long}"
        );
        assert!(long.to_string().contains("[steps.limits]"), "{long}");

        let big = Value::Text("x".repeat(200));
        assert!(matches!(
            caps.check_request("SELECT $1", &[Value::Null, big]),
            Err(OverCap::Param { number: 2, .. })
        ));
        let half = Value::Text("x".repeat(60));
        assert!(matches!(
            caps.check_request("SELECT $1", &[half.clone(), half.clone(), half]),
            Err(OverCap::Params { count: 3, .. })
        ));
    }

    #[test]
    fn many_nulls_cost_memory_too() {
        let nulls = vec![Value::Null; 10];
        assert!(matches!(
            caps().check_request("SELECT 1", &nulls),
            Err(OverCap::Params { .. })
        ));
    }
}
