//! Plugin manifests (`<name>.toml` beside `<name>.wasm`): what a plugin is and which
//! capabilities it needs, read like every other file ([`crate::spec::read`]).

mod model;
mod raw;
mod validate;

pub use model::{PluginCatalog, PluginManifest};
pub use validate::parse_plugin_manifest;
