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
    /// Bytes of log lines a step keeps (all lines, captured stdout/stderr included,
    /// counted as stored); the rest are dropped and counted in one marker line.
    pub max_log_bytes: usize,
    /// Audit entries a step's plugin may write; the next one fails the step.
    pub max_audit_entries: usize,
    /// Bytes of audit entries (action, target and detail) a step's plugin may write.
    pub max_audit_bytes: usize,
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits {
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(60),
            max_log_bytes: 8 << 20,
            max_audit_entries: 100_000,
            max_audit_bytes: 64 << 20,
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
