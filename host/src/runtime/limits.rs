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
    /// Rows one `db` call may return; past it the statement is stopped and the call
    /// refused. Far above any page a plugin should ask for, far below what would fill
    /// the host.
    pub max_result_rows: u64,
    /// Estimated decoded bytes (values plus their in-memory overhead) one `db` call may
    /// return, counted row by row while the result streams in.
    pub max_result_bytes: u64,
    /// Length of one statement's text: checked before it is parsed or sent.
    pub max_statement_bytes: u64,
    /// Size of one bound parameter.
    pub max_param_bytes: u64,
    /// Size of all parameters of one call together (each counted with its overhead, so
    /// millions of tiny parameters count too).
    pub max_params_bytes: u64,
    /// Log text one step may keep.
    pub max_log_bytes: u64,
    /// Audit entries one step may append.
    pub max_audit_entries: u64,
    /// Audit detail bytes one step may append.
    pub max_audit_bytes: u64,
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits {
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(60),
            max_result_rows: 100_000,
            max_result_bytes: 16 << 20,
            max_statement_bytes: 1 << 20,
            max_param_bytes: 1 << 20,
            max_params_bytes: 4 << 20,
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
