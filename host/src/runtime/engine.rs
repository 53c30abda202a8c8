//! The process-wide wasmtime engine, its configuration, and the epoch ticker that turns
//! wall-clock time into guest interruptions.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A step's timeout is enforced to this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

pub fn build_engine() -> wasmtime::Result<Engine> {
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool()));
    // The pool reserves its address space up front; where that is refused (a low
    // `ulimit -v`, say), allocate per instance instead: slower, same behaviour.
    let engine = match Engine::new(&config) {
        Ok(engine) => engine,
        Err(e) => {
            tracing::warn!(target: "runbook::runtime", "pooling allocator unavailable ({e:#}); allocating per instance");
            Engine::new(&base_config())?
        }
    };
    spawn_epoch_ticker(&engine);
    Ok(engine)
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Fuel bounds work done; epochs bound wall time even when a guest never calls out.
    config.consume_fuel(true);
    config.epoch_interruption(true);
    // `RUNBOOK_WASM_PROFILER=perfmap` names plugin functions for `perf` (see
    // BENCHMARKS.md, "Profiling").
    if std::env::var("RUNBOOK_WASM_PROFILER").as_deref() == Ok("perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// Instance slots are reused from step to step, so instantiating a plugin maps no new
/// memory and a finished step unmaps none (no page-table work, no TLB shootdowns). The
/// host runs one step at a time; the pool leaves room for rollbacks and tools that hold
/// a few stores at once. Memories may grow to wasm32's 4 GiB here; the step's memory
/// limit (see `limits.rs`) is what really caps them.
fn pool() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_STORES)
        .total_core_instances(POOLED_STORES * 16)
        .total_memories(POOLED_STORES * 2)
        .total_tables(POOLED_STORES * 8)
        .total_stacks(POOLED_STORES)
        .max_memory_size(4 << 30);
    pool
}

/// Plugin instances that can be alive at once.
const POOLED_STORES: u32 = 16;

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
