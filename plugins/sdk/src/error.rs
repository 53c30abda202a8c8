//! The two kinds of error a plugin meets: [`CallError`] (a host call was not carried out)
//! and [`Failure`] (the step fails, with a machine-readable code). `?` turns the first
//! into the second, so plugin code mostly just writes `?`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a host call was not carried out; mirrors the WIT `call-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The step's grant does not allow the call. The host has already audited it.
    Denied(String),
    /// The request itself is malformed (bad SQL, a missing field, ...).
    Invalid(String),
    /// The call was allowed and made, and the other side failed.
    Failed(String),
    /// The capability exists but is not configured on this host.
    Unavailable(String),
}

impl CallError {
    /// The [`Failure`] code this error becomes: `denied`, `invalid`, `failed`, `unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Denied(_) => "denied",
            CallError::Invalid(_) => "invalid",
            CallError::Failed(_) => "failed",
            CallError::Unavailable(_) => "unavailable",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CallError::Denied(m)
            | CallError::Invalid(m)
            | CallError::Failed(m)
            | CallError::Unavailable(m) => m,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for CallError {}

/// The step failed. `code` is short and machine-readable (`invalid-input`, `precondition`,
/// `verification-failed`, `denied`, ...); `message` is for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The input is well-formed JSON but its values make no sense (an unknown dimension,
    /// a negative count). Malformed input gets this code from the SDK automatically.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Failure::new("invalid-input", message)
    }

    /// The world is not in the state the procedure requires; nothing was changed.
    pub fn precondition(message: impl Into<String>) -> Self {
        Failure::new("precondition", message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Failure {}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Failure::new(e.code(), e.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_errors_keep_their_kind_as_code() {
        let f: Failure = CallError::Denied("update on organizations not granted".into()).into();
        assert_eq!(f.code, "denied");
        assert_eq!(f.message, "update on organizations not granted");
        let f: Failure = CallError::Unavailable("stripe".into()).into();
        assert_eq!(f.code, "unavailable");
    }

    #[test]
    fn question_mark_converts() {
        fn call() -> Result<(), CallError> {
            Err(CallError::Failed("deadlock detected".into()))
        }
        fn step() -> Result<(), Failure> {
            call()?;
            Ok(())
        }
        assert_eq!(step().unwrap_err().to_string(), "failed: deadlock detected");
    }
}
