//! The on-disk cache of precompiled components, keyed by the component's sha256 and the
//! engine fingerprint, so the second run of a runbook compiles nothing.

use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    fingerprint: String,
}

/// Where a component came from, for progress output and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

impl ComponentCache {
    /// `dir = None` disables the cache (every load compiles).
    pub fn new(dir: Option<PathBuf>, fingerprint: String) -> Self {
        ComponentCache { dir, fingerprint }
    }

    fn entry_path(&self, digest: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{}.cwasm", self.fingerprint)))
    }

    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(path) = self.entry_path(digest) else {
            return Ok((
                Component::from_binary(engine, wasm)?,
                CacheOutcome::Compiled,
            ));
        };
        if path.is_file() {
            // SAFETY: only files this host wrote under its own cache directory are loaded,
            // and their names bind them to the exact component digest and engine settings.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}")
                }
            }
        }
        let precompiled = engine.precompile_component(wasm)?;
        if let Err(e) = write_atomically(&path, &precompiled) {
            tracing::warn!(path = %path.display(), "cannot write the component cache: {e}");
        }
        // SAFETY: the bytes were produced by this engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &precompiled)? };
        Ok((component, CacheOutcome::Compiled))
    }
}

/// Writes to a temporary file and renames it, so a concurrent reader never maps a
/// half-written entry.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
