//! The moment a procedure acts at. Plugins have no clock of their own: they take `as_of`
//! from their input or ask the database.

use runbook_sdk::{Failure, Timestamp, db};

/// The database's clock (UTC).
///
/// Touches no table.
pub fn db_now() -> Result<Timestamp, Failure> {
    Ok(db::query("SELECT CURRENT_TIMESTAMP AS current_at", &[])?
        .one()?
        .get("current_at")?)
}

/// `as_of` when given (any form [`Timestamp::parse`] reads, e.g. `2026-11-21` or
/// `2026-11-21T02:00:00Z`), otherwise the database's clock. Empty text counts as not given.
pub fn as_of(input: Option<&str>) -> Result<Timestamp, Failure> {
    match input.map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Timestamp::parse(text).ok_or_else(|| {
            Failure::invalid_input(format!(
                "as_of {text:?} is not a timestamp (YYYY-MM-DD[THH:MM[:SS]][Z|±HH:MM])"
            ))
        }),
        None => db_now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_as_of_is_parsed() {
        assert_eq!(
            as_of(Some("2026-11-21")).unwrap().as_str(),
            "2026-11-21T00:00:00Z"
        );
        assert_eq!(
            as_of(Some(" 2026-11-21 02:00:00+01:00 ")).unwrap().as_str(),
            "2026-11-21T01:00:00Z"
        );
        let err = as_of(Some("yesterday")).unwrap_err();
        assert_eq!(err.code, "invalid-input");
    }
}
