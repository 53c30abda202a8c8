//! The process-wide wasmtime engine, its configuration, and the epoch ticker that turns
//! wall-clock time into guest interruptions.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances. A step's timeout is enforced to this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

pub fn build_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Fuel bounds work done; epochs bound wall time even when a guest never calls out.
    config.consume_fuel(true);
    config.epoch_interruption(true);
    let engine = Engine::new(&config)?;
    spawn_epoch_ticker(&engine);
    Ok(engine)
}

/// A background thread that ends by itself once the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning a thread at start-up");
}

/// A stable fingerprint of everything that makes a precompiled component loadable by this
/// engine (wasmtime version, target, tunables such as fuel and epochs).
pub fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
