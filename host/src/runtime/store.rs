//! What one step's `Store` holds: an empty WASI context, the memory cap, the step's
//! identity and grant, its database session, its effect session (services, journal,
//! budgets), and everything it recorded.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::MemoryCap;
use crate::capability::EffectSession;
use crate::grant::{AnalysisCache, Grants};
use crate::state::{AuditSpool, LogLine, NewAuditEntry};
use crate::target::{StepTransaction, TargetDb};

/// Captured guest stdout/stderr per step; more is a trap rather than unbounded memory.
const OUTPUT_CAPACITY: usize = 1 << 20;
/// Log lines kept per step; the rest are counted, not stored.
pub const MAX_LOG_LINES: usize = 10_000;

/// Who is doing what: stamped on every audit record the step writes.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub run_id: String,
    pub step_id: String,
    pub plugin: String,
    pub plugin_digest: String,
    pub operator: String,
}

/// The step's view of the target database. The transaction is opened on first use so a
/// step that never touches the database holds no connection.
pub struct DbSession {
    pub target: Option<TargetDb>,
    pub tx: Option<StepTransaction>,
    pub analysis: Arc<AnalysisCache>,
    /// Set when a statement failed: the rest of the step's statements are refused.
    pub poisoned: Option<String>,
}

/// Side effects the step recorded, flushed to the state store when it ends.
#[derive(Debug, Default)]
pub struct StepRecord {
    pub audit: AuditSpool,
    pub logs: Vec<LogLine>,
    pub dropped_logs: u64,
}

pub struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) memory: MemoryCap,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    pub context: Arc<StepContext>,
    pub grants: Arc<Grants>,
    pub db: DbSession,
    pub effects: EffectSession,
    pub record: StepRecord,
}

impl StepState {
    pub fn new(
        context: Arc<StepContext>,
        grants: Arc<Grants>,
        db: DbSession,
        effects: EffectSession,
        memory_bytes: usize,
    ) -> StepState {
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
            context,
            grants,
            db,
            effects,
            record: StepRecord::default(),
        }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.contents()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    pub fn push_log(&mut self, line: LogLine) {
        if self.record.logs.len() < MAX_LOG_LINES {
            self.record.logs.push(line);
        } else {
            self.record.dropped_logs += 1;
        }
    }

    /// An audit record stamped with this step's identity.
    pub fn audit_entry(&self, action: &str, target: &str, detail: String) -> NewAuditEntry {
        let c = &self.context;
        NewAuditEntry {
            at: chrono::Utc::now(),
            actor: c.operator.clone(),
            run_id: Some(c.run_id.clone()),
            step_id: Some(c.step_id.clone()),
            plugin: Some(c.plugin.clone()),
            plugin_digest: Some(c.plugin_digest.clone()),
            action: action.to_string(),
            target: target.to_string(),
            detail,
        }
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
