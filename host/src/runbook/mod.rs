//! Runbook files: reading a TOML runbook and validating it against the installed plugins
//! (the templating its steps use at run time is [`crate::template`]).

mod control;
pub mod diagnostic;
mod grants;
pub mod model;
pub(crate) mod raw;
mod references;
pub(crate) mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::{
    Approval, Backoff, OnFailure, OnTimeout, Param, ParamKind, RetryPolicy, Rollback, Runbook, Step,
};

use crate::plugin::manifest::PluginCatalog;

/// Reads and validates the runbook at `path`. The file name in diagnostics is `path` as
/// given.
pub fn load_runbook(path: &Path, plugins: &dyn PluginCatalog) -> Result<Runbook, Diagnostics> {
    let name = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                return Err(Diagnostics::without_source(
                    &name,
                    "the file is not valid UTF-8 text",
                ));
            }
        },
        Err(e) => {
            return Err(Diagnostics::without_source(
                &name,
                format!("cannot read the file: {e}"),
            ));
        }
    };
    parse_runbook(&name, &text, plugins)
}

/// Validates runbook text; `source_name` is what diagnostics and [`Runbook::source`] call it.
pub fn parse_runbook(
    source_name: &str,
    text: &str,
    plugins: &dyn PluginCatalog,
) -> Result<Runbook, Diagnostics> {
    let mut diags = Diagnostics::new(source_name, text);
    let Some(doc) = raw::read_document::<raw::RawRunbook>(text, raw::runbook_keys_at, &mut diags)
    else {
        return Err(diags.into_failure("the runbook could not be read"));
    };
    let runbook = validate::runbook(source_name, text, doc.value, &doc.tree, plugins, &mut diags);
    diags.into_result(runbook)
}
