//! The WebAssembly runtime: one engine and linker per process, plugins compiled once
//! (or loaded from the precompiled cache), and one fresh `Store` per step.

mod cache;
mod engine;
mod invoke;
mod limits;
mod plugin;
mod store;

use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::capability;
use crate::contract::ProcedurePre;
pub use cache::CacheOutcome;
pub use invoke::{Fault, PluginOutcome};
pub use limits::StepLimits;
pub use plugin::{LoadedPlugin, sha256_hex};
pub use store::StepState;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read plugin `{plugin}` at {path}: {source}")]
    Read {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin `{plugin}` is not a valid component: {message}")]
    Compile { plugin: String, message: String },
    #[error("plugin `{plugin}` imports `{import}`, which this host does not provide")]
    UnknownImport { plugin: String, import: String },
    #[error("plugin `{plugin}` cannot be linked: {message}")]
    Link { plugin: String, message: String },
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<StepState>,
    cache: cache::ComponentCache,
}

impl Runtime {
    /// `cache_dir = None` compiles every plugin on every run.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Runtime, RuntimeError> {
        let engine = engine::build_engine().map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        // Plugins built with std import WASI even when they never use it; the context
        // behind these imports is empty (see `StepState::new`).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| capability::registry::link(&mut linker))
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let fingerprint = engine::engine_fingerprint(&engine);
        Ok(Runtime {
            cache: cache::ComponentCache::new(cache_dir, fingerprint),
            engine,
            linker,
        })
    }

    /// Reads, compiles (or loads from cache) and pre-links one plugin.
    pub fn load(&self, name: &str, wasm_path: &Path) -> Result<LoadedPlugin, RuntimeError> {
        let (bytes, digest) = plugin::read_component(name, wasm_path)?;
        let (component, cache) = self
            .cache
            .load_or_compile(&self.engine, &digest, &bytes)
            .map_err(|e| RuntimeError::Compile {
                plugin: name.to_string(),
                message: format!("{e:#}"),
            })?;
        let imports = plugin::imported_capabilities(name, &self.engine, &component)?;
        let link_error = |e: wasmtime::Error| RuntimeError::Link {
            plugin: name.to_string(),
            message: format!("{e:#}"),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(link_error)?;
        let pre = ProcedurePre::new(instance_pre).map_err(link_error)?;
        Ok(LoadedPlugin {
            name: name.to_string(),
            digest,
            imports,
            cache,
            pre,
        })
    }
}
