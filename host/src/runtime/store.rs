//! What one step's `Store` holds: an empty WASI context, the memory cap, captured
//! stdout/stderr, and the step's capability states (grants, services, journal, what it
//! recorded), which the capabilities see through [`HasCapabilities`].

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::MemoryCap;
use crate::capability::{HasCapabilities, StepCapabilities};

/// Captured guest stdout/stderr per step; more is a trap rather than unbounded memory.
const OUTPUT_CAPACITY: usize = 1 << 20;

pub struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) memory: MemoryCap,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    pub capabilities: StepCapabilities,
}

impl StepState {
    pub fn new(capabilities: StepCapabilities, memory_bytes: usize) -> StepState {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        // Deny by default: no env, args, preopens, network or name lookup; stdin closed.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        StepState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap::new(memory_bytes),
            stdout,
            stderr,
            capabilities,
        }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.contents()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

impl HasCapabilities for StepState {
    fn capabilities(&mut self) -> &mut StepCapabilities {
        &mut self.capabilities
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
