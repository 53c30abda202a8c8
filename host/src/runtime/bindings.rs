//! Generated host bindings for the `runbook:plugin` WIT package. Private to the host:
//! the rest of the crate sees plain Rust types.

wasmtime::component::bindgen!({
    world: "procedure",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::runbook::plugin::{audit, db, email, log, stripe, types, webhook};
