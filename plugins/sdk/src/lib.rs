//! The guest SDK for `runbook` plugins.
//!
//! A plugin is one procedure of a runbook: it receives its step's input as a typed value,
//! talks to the host through capability-checked calls ([`db`], [`audit`], [`log`],
//! [`stripe`], [`email`], [`webhook`]) and returns a typed output. The host turns both ends
//! into JSON. A component imports only the interfaces it calls, and its step must grant
//! each of them.
//!
//! ```no_run
//! use runbook_sdk::{Failure, Procedure, audit, db, params, register_plugin};
//!
//! #[derive(serde::Deserialize)]
//! struct Input { organization_id: i64 }
//!
//! struct CountQuotas;
//!
//! impl Procedure for CountQuotas {
//!     type Input = Input;
//!     type Output = i64;
//!
//!     fn run(input: Input) -> Result<i64, Failure> {
//!         let rows = db::query(
//!             "SELECT COUNT(*) AS n FROM usage_quotas WHERE organization_id = $1",
//!             params![input.organization_id],
//!         )?;
//!         Ok(rows.one()?.get("n")?)
//!     }
//! }
//!
//! register_plugin!(CountQuotas);
//! ```
//!
//! The generated WIT bindings are private: plugins depend on this crate only, so the SDK
//! can evolve its ergonomics without touching every plugin. Like `zed_extension_api`, the
//! SDK owns the export glue (the component's `run` export is generated and compiled here);
//! `register_plugin!` only names the type that implements [`Procedure`].
//!
//! The pure parts ([`Value`], [`Rows`], [`Timestamp`], [`Failure`]) compile and test on the
//! native target; the host calls there compile to stubs that panic if called.

pub mod audit;
pub mod db;
mod decode;
pub mod email;
mod error;
pub mod log;
pub mod rollback;
mod rows;
pub mod stripe;
mod timestamp;
mod value;
pub mod webhook;

pub use error::{CallError, Failure};
pub use rows::{Column, Row, RowError, Rows};
pub use timestamp::Timestamp;
pub use value::{FromValue, Value, ValueError};

/// Re-exported so plugins need not depend on serde themselves for the common cases.
pub use serde;
pub use serde_json;

/// One procedure: typed input in, typed output or a [`Failure`] out.
///
/// `Input` is deserialized from the step's JSON input object; if that fails the step
/// fails with code `invalid-input` (never a trap). Prefer
/// `#[serde(deny_unknown_fields)]` on the input so a typo in a runbook is an error rather
/// than a silently ignored key.
pub trait Procedure {
    type Input: serde::de::DeserializeOwned;
    type Output: serde::Serialize;

    fn run(input: Self::Input) -> Result<Self::Output, Failure>;
}

/// Export `$ty` (a type implementing [`Procedure`]) as this component's `run` function.
/// Use it exactly once per plugin crate: a component built without it fails to link with
/// ``undefined symbol: __runbook_procedure_run``.
#[macro_export]
macro_rules! register_plugin {
    ($ty:ty) => {
        /// The plugin's procedure, called by the SDK's `run` export (see
        /// `runbook_sdk::__private`); the name and signature are the SDK's.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub fn __runbook_procedure_run(
            input: &str,
        ) -> ::core::result::Result<::std::string::String, $crate::Failure> {
            $crate::__private::run_json::<$ty>(input)
        }
    };
}

// No generated type is re-exported: every type a plugin meets is the SDK's own
// (`CallError`, `Value`, `Rows`, `webhook::Delivery`, ...), converted at one point per
// interface module, so this list is empty on purpose. A generated type that plugins should
// see is added here by name, never by a glob, so the public API changes only by decision.

/// Not part of the API: what `register_plugin!` expands to needs.
///
/// The component's `run` export is generated and compiled here, in the SDK. It forwards to
/// `__runbook_procedure_run`, a Rust-ABI function `register_plugin!` defines in the plugin
/// crate: `Procedure` has associated types and no `self`, so the SDK cannot hold the
/// plugin as a value as Zed does with its `Box<dyn Extension>` (filled in by an
/// `init-extension` export our world does not have); a link-time symbol does the same job
/// without changing the WIT.
#[doc(hidden)]
pub mod __private {
    use crate::{Failure, Procedure};

    /// The generated bindings of the engine's own WIT, the one source of truth for host
    /// and guests. Interface modules reach their imports through here.
    #[allow(clippy::all, missing_docs)]
    pub(crate) mod wit {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "runbook:plugin/procedure",
        });
    }

    /// The component's `run` export. Compiled for components only: a native build (the
    /// SDK's and plugins' unit tests) has no component to export from.
    #[cfg(target_arch = "wasm32")]
    struct Exported;

    #[cfg(target_arch = "wasm32")]
    impl wit::Guest for Exported {
        fn run(input: String) -> Result<String, wit::Failure> {
            unsafe extern "Rust" {
                // Defined by `register_plugin!` in the plugin crate, with this signature.
                fn __runbook_procedure_run(input: &str) -> Result<String, Failure>;
            }
            // SAFETY: the symbol is defined once, by `register_plugin!`, with exactly this
            // signature, and compiled by the same compiler as this crate.
            unsafe { __runbook_procedure_run(&input) }.map_err(|f| wit::Failure {
                code: f.code,
                message: f.message,
            })
        }
    }

    #[cfg(target_arch = "wasm32")]
    wit::export!(Exported with_types_in wit);

    /// JSON in, JSON out. Kept generic and out of the macro so it is type-checked here,
    /// once, and unit-testable without the host.
    pub fn run_json<P: Procedure>(input: &str) -> Result<String, Failure> {
        let input: P::Input = serde_json::from_str(input)
            .map_err(|e| Failure::new("invalid-input", format!("step input: {e}")))?;
        let output = P::run(input)?;
        serde_json::to_string(&output)
            .map_err(|e| Failure::new("invalid-output", format!("step output: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        n: i64,
    }

    struct Double;

    impl Procedure for Double {
        type Input = Input;
        type Output = serde_json::Value;

        fn run(input: Input) -> Result<Self::Output, Failure> {
            if input.n < 0 {
                return Err(Failure::new("precondition", "n must not be negative"));
            }
            Ok(serde_json::json!({ "doubled": input.n * 2 }))
        }
    }

    #[test]
    fn json_round_trip() {
        let out = __private::run_json::<Double>(r#"{"n": 21}"#).unwrap();
        assert_eq!(out, r#"{"doubled":42}"#);
    }

    #[test]
    fn bad_input_is_invalid_input_not_a_trap() {
        let err = __private::run_json::<Double>(r#"{"n": "x"}"#).unwrap_err();
        assert_eq!(err.code, "invalid-input");
        let err = __private::run_json::<Double>(r#"{"n": 1, "typo": 2}"#).unwrap_err();
        assert_eq!(err.code, "invalid-input");
        assert!(err.message.contains("typo"), "{}", err.message);
    }

    #[test]
    fn business_failure_passes_through() {
        let err = __private::run_json::<Double>(r#"{"n": -1}"#).unwrap_err();
        assert_eq!(err, Failure::new("precondition", "n must not be negative"));
    }
}
