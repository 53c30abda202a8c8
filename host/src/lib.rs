//! `runbook`: turns billing operations runbooks into sandboxed, reviewed, repeatable
//! automation. Plugins are WebAssembly components; the host grants each step exactly the
//! capabilities its runbook names and records every side effect.

pub mod capability;
pub mod cli;
mod contract;
pub mod exec;
mod failpoint;
pub mod plugin;
pub mod review;
pub mod runtime;
pub mod spec;
pub mod state;
pub mod target;
pub mod template;
