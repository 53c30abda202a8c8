//! The plugin API as the host sees it: the generated bindings of the `runbook:plugin` WIT
//! package, kept in one private module, and the explicit list of what the rest of the host
//! may use from them; and `json`, the shapes carried inside the WIT's JSON strings. A leaf:
//! `runtime/` (the world, to instantiate plugins) and each capability (its interface, to
//! serve it) both depend on it, not on each other.

mod wit {
    wasmtime::component::bindgen!({
        world: "procedure",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

// One module per interface: a capability needs its interface's `Host` trait,
// `add_to_linker` and records; listed explicitly so a new WIT interface is a decision here.
pub(crate) use wit::ProcedurePre;
pub(crate) use wit::runbook::plugin::{audit, db, email, log, stripe, types, webhook};

// The JSON inside the WIT's strings (rollback input, Stripe error text, dry-run
// placeholder), from the crate the SDK compiles too, so neither side restates a shape.
pub(crate) use runbook_contract as json;
