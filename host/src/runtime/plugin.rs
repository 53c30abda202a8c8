//! A plugin loaded into the engine: its digest, the host interfaces it imports, and a
//! pre-linked instance template for fast per-step instantiation.

use std::collections::BTreeSet;
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::RuntimeError;
use super::cache::CacheOutcome;
use super::store::StepState;
use crate::capability::{Grants, Interface};
use crate::contract::ProcedurePre;

/// The WIT package every plugin must import host interfaces from.
const PLUGIN_PACKAGE: &str = "runbook:plugin/";

pub struct LoadedPlugin {
    pub name: String,
    /// sha256 of the component bytes, hex.
    pub digest: String,
    /// The `runbook:plugin` interfaces the component imports.
    pub imports: BTreeSet<Interface>,
    pub cache: CacheOutcome,
    pub(super) pre: ProcedurePre<StepState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("imports", &self.imports)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// The imported capabilities the step's grant does not allow. Empty means it may load.
    pub fn ungranted_imports(&self, grants: &Grants) -> Vec<Interface> {
        self.imports
            .iter()
            .copied()
            .filter(|c| !grants.allows_interface(*c))
            .collect()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(super) fn read_component(name: &str, path: &Path) -> Result<(Vec<u8>, String), RuntimeError> {
    let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read {
        plugin: name.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let digest = sha256_hex(&bytes);
    Ok((bytes, digest))
}

/// Classifies a component's imports. Anything outside WASI and our own package is
/// refused here with a clear message instead of failing later at link time.
pub(super) fn imported_capabilities(
    name: &str,
    engine: &Engine,
    component: &Component,
) -> Result<BTreeSet<Interface>, RuntimeError> {
    let mut capabilities = BTreeSet::new();
    for (import, _) in component.component_type().imports(engine) {
        if let Some(rest) = import.strip_prefix(PLUGIN_PACKAGE) {
            let interface = rest.split('@').next().unwrap_or(rest);
            match Interface::from_name(interface) {
                Some(c) => {
                    capabilities.insert(c);
                }
                None if interface == "types" => {}
                None => {
                    return Err(RuntimeError::UnknownImport {
                        plugin: name.to_string(),
                        import: import.to_string(),
                    });
                }
            }
        } else if !import.starts_with("wasi:") {
            return Err(RuntimeError::UnknownImport {
                plugin: name.to_string(),
                import: import.to_string(),
            });
        }
    }
    Ok(capabilities)
}
