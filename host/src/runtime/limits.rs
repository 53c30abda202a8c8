//! Per-step resource limits, and the memory limiter that remembers why growth was refused
//! so a memory bomb is reported as such rather than as a bare trap.

use std::time::Duration;

use wasmtime::ResourceLimiter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    /// Wasm instructions (roughly) a step may execute.
    pub fuel: u64,
    pub memory_bytes: usize,
    pub timeout: Duration,
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits {
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
pub struct MemoryCap {
    max_bytes: usize,
    /// The largest size a guest asked for and was refused, if any.
    pub refused: Option<usize>,
}

impl MemoryCap {
    pub fn new(max_bytes: usize) -> Self {
        MemoryCap {
            max_bytes,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = Some(self.refused.map_or(desired, |r| r.max(desired)));
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
