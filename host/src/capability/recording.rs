//! What a step records besides its calls — log lines and audit entries — under the
//! step's volume caps (`max_log_bytes`, `max_audit_entries`, `max_audit_bytes`). One
//! recording lives for the whole step, across its attempts, so a retried step cannot
//! multiply its allowance.
//!
//! Past the log cap, lines are dropped and counted; one marker line says how many. Past
//! an audit cap, the plugin's `audit.record` fails the step instead (see
//! [`StepAudit::record`] for why entries are never dropped).

use std::collections::BTreeMap;

use crate::state::{AuditSpool, LogLine, NewAuditEntry};

/// The step's volume caps, as `runtime::StepLimits` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingLimits {
    pub max_log_bytes: usize,
    pub max_audit_entries: usize,
    pub max_audit_bytes: usize,
}

impl Default for RecordingLimits {
    /// The same defaults as `runtime::StepLimits`.
    fn default() -> Self {
        RecordingLimits {
            max_log_bytes: 8 << 20,
            max_audit_entries: 100_000,
            max_audit_bytes: 64 << 20,
        }
    }
}

/// Audit entries and log lines a step produced, stored with its outcome.
#[derive(Debug, Default)]
pub struct StepRecording {
    pub audit: StepAudit,
    pub log: StepLog,
}

impl StepRecording {
    pub fn new(limits: RecordingLimits) -> StepRecording {
        StepRecording {
            audit: StepAudit::new(limits.max_audit_entries, limits.max_audit_bytes),
            log: StepLog::new(limits.max_log_bytes),
        }
    }

    /// The log lines (with the marker line if any were dropped) and the audit entries.
    pub fn finish(self) -> (Vec<LogLine>, AuditSpool) {
        (self.log.finish(), self.audit.spool)
    }
}

/// A step's log lines, kept while they fit in `max_bytes`.
#[derive(Debug)]
pub struct StepLog {
    lines: Vec<LogLine>,
    bytes: usize,
    max_bytes: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl Default for StepLog {
    fn default() -> Self {
        StepLog::new(RecordingLimits::default().max_log_bytes)
    }
}

impl StepLog {
    pub fn new(max_bytes: usize) -> StepLog {
        StepLog {
            lines: Vec::new(),
            bytes: 0,
            max_bytes,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    /// Keeps `line` if it fits; `false` if it was dropped. Once one line is dropped every
    /// later one is too: the stored log is a prefix of what was written, never one with
    /// silent holes in it.
    pub fn push(&mut self, line: LogLine) -> bool {
        let cost = line_bytes(&line);
        if self.dropped_lines == 0 && self.bytes.saturating_add(cost) <= self.max_bytes {
            self.bytes += cost;
            self.lines.push(line);
            return true;
        }
        self.dropped_lines += 1;
        self.dropped_bytes = self.dropped_bytes.saturating_add(cost as u64);
        false
    }

    /// Whether lines are being dropped (a plugin that keeps logging is not worth
    /// echoing to `tracing` either).
    pub fn is_full(&self) -> bool {
        self.dropped_lines > 0
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// The lines kept so far (without the marker [`finish`](Self::finish) adds).
    pub fn lines(&self) -> &[LogLine] {
        &self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The kept lines, then one marker line counting what was dropped. The marker is
    /// outside the cap: it is the one line that must always be there.
    pub fn finish(mut self) -> Vec<LogLine> {
        if self.dropped_lines > 0 {
            let message = format!(
                "log limit reached: dropped {} lines ({} bytes) past max_log_bytes = {}",
                self.dropped_lines, self.dropped_bytes, self.max_bytes
            );
            let fields = BTreeMap::from([
                ("dropped_lines".to_owned(), self.dropped_lines.to_string()),
                ("dropped_bytes".to_owned(), self.dropped_bytes.to_string()),
                ("max_log_bytes".to_owned(), self.max_bytes.to_string()),
            ]);
            self.lines.push(LogLine {
                at: chrono::Utc::now(),
                level: "warn".into(),
                stream: "host".into(),
                message,
                fields,
            });
        }
        self.lines
    }
}

/// What a line costs against the cap: its size as the state store receives it (JSON),
/// near enough — every string as escaped, plus a fixed allowance for the time, the keys
/// and the punctuation. Counting escapes matters: a line of control characters is six
/// times larger stored than in memory.
fn line_bytes(line: &LogLine) -> usize {
    const FIXED: usize = 96;
    let fields: usize = line
        .fields
        .iter()
        .map(|(k, v)| json_len(k) + json_len(v) + 2)
        .sum();
    FIXED + json_len(&line.level) + json_len(&line.stream) + json_len(&line.message) + fields
}

/// Length of `text` as a JSON string literal (serde_json's escaping).
fn json_len(text: &str) -> usize {
    let escapes: usize = text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    text.len() + escapes + 2
}

/// The plugin's `audit.record` was refused: the step's audit cap is reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the step's audit limit is reached ({entries} entries, {bytes} bytes recorded; max_audit_entries = {max_entries}, max_audit_bytes = {max_bytes}); an entry of {refused_bytes} bytes was refused"
)]
pub struct AuditLimitReached {
    pub entries: usize,
    pub bytes: usize,
    pub max_entries: usize,
    pub max_bytes: usize,
    pub refused_bytes: usize,
}

/// A step's audit entries (waiting in a spool: memory, then a temporary file) and what
/// they add up to.
#[derive(Debug)]
pub struct StepAudit {
    spool: AuditSpool,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// Set by the first refused plugin entry; later calls are refused alike.
    refused: Option<AuditLimitReached>,
    /// Whether the refusal was already noted in the chain.
    noted: bool,
}

impl Default for StepAudit {
    fn default() -> Self {
        let limits = RecordingLimits::default();
        StepAudit::new(limits.max_audit_entries, limits.max_audit_bytes)
    }
}

impl StepAudit {
    pub fn new(max_entries: usize, max_bytes: usize) -> StepAudit {
        StepAudit {
            spool: AuditSpool::new(),
            bytes: 0,
            max_entries,
            max_bytes,
            refused: None,
            noted: false,
        }
    }

    /// `true` the first time it is asked after a refusal: the host notes the limit in the
    /// chain once, however often the plugin tries again.
    pub fn note_limit_once(&mut self) -> bool {
        self.refused.is_some() && !std::mem::replace(&mut self.noted, true)
    }

    /// A host-written entry (a denial, a refused statement, a rollback): always kept.
    /// It is the host's own evidence, small and bounded by the calls the plugin can make,
    /// and counts towards the caps so the plugin's own entries stop earlier.
    pub fn push(&mut self, entry: NewAuditEntry) {
        self.bytes = self.bytes.saturating_add(entry_bytes(&entry));
        self.spool.push(entry);
    }

    /// A plugin-written entry, refused once it would take the step past a cap.
    ///
    /// An audit entry is evidence, so past the cap nothing is dropped silently; and the
    /// WIT `audit.record` returns nothing, so a refusal cannot reach the plugin as an
    /// error without changing the API every plugin is built against. So the step fails:
    /// the caller traps the plugin (its database writes roll back, the step is not
    /// retried) after appending one host entry, `audit.limit_reached`, with these
    /// counts. Everything recorded before stays in the chain.
    pub fn record(&mut self, entry: NewAuditEntry) -> Result<(), AuditLimitReached> {
        if let Some(refused) = &self.refused {
            return Err(refused.clone());
        }
        let cost = entry_bytes(&entry);
        if self.spool.len() >= self.max_entries || self.bytes.saturating_add(cost) > self.max_bytes
        {
            let refused = AuditLimitReached {
                entries: self.spool.len(),
                bytes: self.bytes,
                max_entries: self.max_entries,
                max_bytes: self.max_bytes,
                refused_bytes: cost,
            };
            self.refused = Some(refused.clone());
            return Err(refused);
        }
        self.push(entry);
        Ok(())
    }

    /// The refusal that ended the plugin's recording, if any.
    pub fn limit_reached(&self) -> Option<&AuditLimitReached> {
        self.refused.as_ref()
    }

    pub fn len(&self) -> usize {
        self.spool.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spool.is_empty()
    }

    /// Replaces the entries (a dry run keeps only refusals), keeping the counts.
    pub fn map_spool<E>(
        &mut self,
        f: impl FnOnce(AuditSpool) -> Result<AuditSpool, E>,
    ) -> Result<(), E> {
        let spool = std::mem::take(&mut self.spool);
        self.spool = f(spool)?;
        Ok(())
    }
}

/// What an entry costs against `max_audit_bytes`: the text the plugin chose.
fn entry_bytes(entry: &NewAuditEntry) -> usize {
    entry.action.len() + entry.target.len() + entry.detail.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> LogLine {
        LogLine {
            at: chrono::Utc::now(),
            level: "info".into(),
            stream: "log".into(),
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }

    fn entry(detail: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: chrono::Utc::now(),
            actor: "ops".into(),
            run_id: Some("r".into()),
            step_id: Some("s".into()),
            plugin: None,
            plugin_digest: None,
            action: "a.b".into(),
            target: "t".into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn the_log_keeps_a_prefix_that_fits_and_counts_the_rest_in_one_marker() {
        let one = line_bytes(&line("hello"));
        let mut log = StepLog::new(one * 3);
        for _ in 0..3 {
            assert!(log.push(line("hello")));
        }
        assert!(!log.is_full());
        assert!(!log.push(line("hello")), "the fourth does not fit");
        assert!(!log.push(line("")), "nothing after the first drop is kept");
        assert!(log.is_full());
        let lines = log.finish();
        assert_eq!(lines.len(), 4);
        let marker = &lines[3];
        assert_eq!(marker.stream, "host");
        assert_eq!(marker.fields["dropped_lines"], "2");
        assert_eq!(
            marker.fields["dropped_bytes"],
            (one + line_bytes(&line(""))).to_string()
        );
        assert!(marker.message.contains("dropped 2 lines"), "{marker:?}");
    }

    #[test]
    fn a_log_that_fits_has_no_marker() {
        let mut log = StepLog::new(1 << 20);
        log.push(line("x"));
        assert_eq!(log.finish().len(), 1);
    }

    #[test]
    fn log_bytes_count_what_the_store_receives() {
        let plain = line_bytes(&line("ab"));
        // Two control characters are stored as \u0001\u0002: ten bytes more than "ab".
        assert_eq!(line_bytes(&line("\u{1}\u{2}")), plain + 10);
        assert_eq!(json_len("a\"b"), 6);
        // The cost is never below the stored JSON.
        let mut l = line("quote \" tab \t nul \0 é");
        l.fields.insert("k\n".into(), "v\u{7}".into());
        let stored = serde_json::to_string(&l).unwrap().len();
        assert!(line_bytes(&l) >= stored, "{} < {stored}", line_bytes(&l));
    }

    #[test]
    fn audit_past_either_cap_is_refused_and_stays_refused() {
        let mut audit = StepAudit::new(2, 1 << 20);
        audit.record(entry("1")).unwrap();
        audit.record(entry("2")).unwrap();
        let refused = audit.record(entry("3")).unwrap_err();
        assert_eq!((refused.entries, refused.max_entries), (2, 2));
        // Host entries are still kept, and the plugin stays refused.
        audit.push(entry("host"));
        assert_eq!(audit.len(), 3);
        assert!(audit.record(entry("4")).is_err());
        assert_eq!(audit.limit_reached(), Some(&refused));

        let mut audit = StepAudit::new(100, 10);
        audit.record(entry("")).unwrap(); // "a.b" + "t": 4 bytes
        let refused = audit.record(entry("1234567")).unwrap_err();
        assert_eq!((refused.bytes, refused.refused_bytes), (4, 11));
        assert_eq!(audit.len(), 1);
    }

    #[test]
    fn one_recording_spans_the_attempts_of_a_step() {
        let mut recording = StepRecording::new(RecordingLimits {
            max_log_bytes: line_bytes(&line("x")),
            max_audit_entries: 1,
            max_audit_bytes: 1 << 20,
        });
        assert!(recording.log.push(line("x")));
        recording.audit.record(entry("first attempt")).unwrap();
        // A second attempt continues the same recording: both caps are already used up.
        assert!(!recording.log.push(line("x")));
        assert!(recording.audit.record(entry("second attempt")).is_err());
        let (logs, audit) = recording.finish();
        assert_eq!(logs.len(), 2, "the line and the marker");
        assert_eq!(audit.len(), 1);
    }
}
