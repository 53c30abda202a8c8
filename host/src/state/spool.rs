//! Audit entries a step has recorded but not yet appended to the chain. They are appended
//! in the same transaction as the step's outcome; until then the newest few stay in memory
//! and the rest wait in an anonymous temporary file, so a step that audits every one of a
//! hundred thousand rows holds no more memory than one that audits ten.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use super::NewAuditEntry;

/// Entries kept in memory before the spool moves them to its file.
const IN_MEMORY: usize = 1_024;

/// Bytes of entries kept in memory before the spool moves them to its file: with
/// details of up to 64 KiB, counting entries alone would let the spool hold 64 MiB.
const IN_MEMORY_BYTES: usize = 1 << 20;

/// Entries handed to the appender at a time when the spool is drained.
pub(super) const CHUNK: usize = 512;

/// Bytes of entries read back from the file per chunk (a chunk ends at whichever of
/// [`CHUNK`] and this comes first), so draining a spool of large entries stays small.
const CHUNK_BYTES: usize = 4 << 20;

/// The text of an entry that its size in memory grows with.
fn entry_bytes(entry: &NewAuditEntry) -> usize {
    entry.actor.len() + entry.action.len() + entry.target.len() + entry.detail.len()
}

#[derive(Debug, Default)]
pub struct AuditSpool {
    /// The newest entries, after everything in `file`.
    memory: Vec<NewAuditEntry>,
    /// Text bytes of the entries in `memory`.
    memory_bytes: usize,
    /// Older entries as JSON lines; created on first spill, deleted by the OS when dropped.
    file: Option<BufWriter<File>>,
    spilled: usize,
    spill_failed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("audit spool file: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit spool file holds an unreadable entry: {0}")]
    Decode(#[from] serde_json::Error),
}

impl AuditSpool {
    pub fn new() -> AuditSpool {
        AuditSpool::default()
    }

    pub fn len(&self) -> usize {
        self.spilled + self.memory.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an entry after all others. Never loses one: should the spool file become
    /// unwritable, entries stay in memory instead.
    pub fn push(&mut self, entry: NewAuditEntry) {
        self.memory_bytes += entry_bytes(&entry);
        self.memory.push(entry);
        if (self.memory.len() >= IN_MEMORY || self.memory_bytes >= IN_MEMORY_BYTES)
            && !self.spill_failed
            && let Err(e) = self.spill()
        {
            tracing::warn!(target: "runbook::audit", "keeping audit entries in memory: {e}");
            self.spill_failed = true;
        }
    }

    /// Adds every entry of `other` after all of this spool's.
    pub fn extend(&mut self, other: AuditSpool) -> Result<(), SpoolError> {
        if self.is_empty() && other.file.is_some() {
            *self = other;
            return Ok(());
        }
        for chunk in other.into_chunks() {
            for entry in chunk? {
                self.push(entry);
            }
        }
        Ok(())
    }

    /// Keeps the entries `keep` accepts, in order, and hands the others to `dropped`.
    pub fn filter(
        self,
        mut keep: impl FnMut(&NewAuditEntry) -> bool,
        mut dropped: impl FnMut(&NewAuditEntry),
    ) -> Result<AuditSpool, SpoolError> {
        let mut kept = AuditSpool::new();
        for chunk in self.into_chunks() {
            for entry in chunk? {
                if keep(&entry) {
                    kept.push(entry);
                } else {
                    dropped(&entry);
                }
            }
        }
        Ok(kept)
    }

    /// Every entry, oldest first, at most [`CHUNK`] at a time.
    pub fn into_chunks(self) -> Chunks {
        Chunks {
            file: self.file.map(|writer| {
                writer
                    .into_inner()
                    .map_err(|e| SpoolError::Io(e.into_error()))
                    .and_then(|mut file| {
                        file.seek(SeekFrom::Start(0))?;
                        Ok(BufReader::new(file))
                    })
            }),
            remaining_in_file: self.spilled,
            memory: self.memory.into_iter(),
        }
    }

    /// Moves the in-memory entries to the end of the file. The entries are written
    /// before any is removed from memory, so a failed write loses none.
    fn spill(&mut self) -> Result<(), SpoolError> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(BufWriter::new(tempfile::tempfile()?)),
        };
        let mut lines = Vec::new();
        for entry in &self.memory {
            serde_json::to_writer(&mut lines, entry)?;
            lines.push(b'\n');
        }
        file.write_all(&lines)?;
        self.spilled += self.memory.len();
        self.memory.clear();
        self.memory_bytes = 0;
        Ok(())
    }
}

impl From<Vec<NewAuditEntry>> for AuditSpool {
    fn from(memory: Vec<NewAuditEntry>) -> AuditSpool {
        AuditSpool {
            memory_bytes: memory.iter().map(entry_bytes).sum(),
            memory,
            file: None,
            spilled: 0,
            spill_failed: false,
        }
    }
}

/// The entries of a spool in order: first the spilled ones, read back from the file,
/// then the ones still in memory.
pub struct Chunks {
    file: Option<Result<BufReader<File>, SpoolError>>,
    remaining_in_file: usize,
    memory: std::vec::IntoIter<NewAuditEntry>,
}

impl Iterator for Chunks {
    type Item = Result<Vec<NewAuditEntry>, SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining_in_file > 0 {
            let reader = match self.file.as_mut()? {
                Ok(reader) => reader,
                Err(_) => {
                    self.remaining_in_file = 0;
                    return self.file.take().and_then(Result::err).map(Err);
                }
            };
            let mut chunk = Vec::with_capacity(CHUNK.min(self.remaining_in_file));
            let mut line = String::new();
            let mut bytes = 0;
            while chunk.len() < CHUNK && bytes < CHUNK_BYTES && self.remaining_in_file > 0 {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => {
                        self.remaining_in_file = 0;
                        return Some(Err(SpoolError::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the spool file ended early",
                        ))));
                    }
                    Ok(_) => match serde_json::from_str(&line) {
                        Ok(entry) => {
                            bytes += entry_bytes(&entry);
                            chunk.push(entry);
                        }
                        Err(e) => {
                            self.remaining_in_file = 0;
                            return Some(Err(e.into()));
                        }
                    },
                    Err(e) => {
                        self.remaining_in_file = 0;
                        return Some(Err(e.into()));
                    }
                }
                self.remaining_in_file -= 1;
            }
            return Some(Ok(chunk));
        }
        let chunk: Vec<NewAuditEntry> = self.memory.by_ref().take(CHUNK).collect();
        (!chunk.is_empty()).then_some(Ok(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> NewAuditEntry {
        NewAuditEntry {
            at: chrono::Utc::now(),
            actor: "ops".into(),
            run_id: Some("r".into()),
            step_id: None,
            plugin: None,
            plugin_digest: None,
            action: "thing.done".into(),
            target: format!("thing:{n}"),
            detail: format!("{{\"n\":{n}}}"),
        }
    }

    fn targets(spool: AuditSpool) -> Vec<String> {
        spool
            .into_chunks()
            .flat_map(|c| c.unwrap())
            .map(|e| e.target)
            .collect()
    }

    #[test]
    fn order_survives_spilling_and_chunks_are_bounded() {
        let mut spool = AuditSpool::new();
        let n = IN_MEMORY * 3 + 17;
        for i in 0..n {
            spool.push(entry(i));
        }
        assert_eq!(spool.len(), n);
        assert!(
            spool.memory.len() < IN_MEMORY,
            "older entries moved to the file"
        );
        let chunks: Vec<_> = spool.into_chunks().map(|c| c.unwrap()).collect();
        assert!(chunks.iter().all(|c| c.len() <= CHUNK && !c.is_empty()));
        let got: Vec<String> = chunks.into_iter().flatten().map(|e| e.target).collect();
        let want: Vec<String> = (0..n).map(|i| format!("thing:{i}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn spilled_entries_round_trip_exactly() {
        let mut spool = AuditSpool::new();
        let originals: Vec<NewAuditEntry> = (0..IN_MEMORY + 1).map(entry).collect();
        for e in &originals {
            spool.push(e.clone());
        }
        let back: Vec<NewAuditEntry> = spool.into_chunks().flat_map(|c| c.unwrap()).collect();
        assert_eq!(back, originals);
    }

    #[test]
    fn large_entries_spill_by_bytes_and_come_back_in_bounded_chunks() {
        let mut spool = AuditSpool::new();
        let detail = "x".repeat(64 * 1024);
        let n = 200;
        for i in 0..n {
            let mut e = entry(i);
            e.detail = detail.clone();
            spool.push(e);
            assert!(
                spool.memory_bytes < IN_MEMORY_BYTES,
                "at most 1 MiB of entries in memory"
            );
        }
        assert!(spool.memory.len() < 16, "{}", spool.memory.len());
        let mut seen = 0;
        for chunk in spool.into_chunks() {
            let chunk = chunk.unwrap();
            let bytes: usize = chunk.iter().map(entry_bytes).sum();
            assert!(bytes < CHUNK_BYTES + 70 * 1024, "chunk of {bytes} bytes");
            seen += chunk.len();
        }
        assert_eq!(seen, n);
    }

    #[test]
    fn extend_and_filter_keep_order() {
        let mut a = AuditSpool::from(vec![entry(0), entry(1)]);
        let mut b = AuditSpool::new();
        for i in 2..IN_MEMORY + 5 {
            b.push(entry(i));
        }
        a.extend(b).unwrap();
        assert_eq!(a.len(), IN_MEMORY + 5);
        let mut dropped = 0;
        let even = a
            .filter(
                |e| e.target.ends_with(['0', '2', '4', '6', '8']),
                |_| dropped += 1,
            )
            .unwrap();
        let kept = targets(even);
        assert_eq!(kept.len() + dropped, IN_MEMORY + 5);
        assert_eq!(kept[..3], ["thing:0", "thing:2", "thing:4"]);

        // Extending an empty spool with a spilled one takes it over as is.
        let mut empty = AuditSpool::new();
        let mut big = AuditSpool::new();
        for i in 0..IN_MEMORY + 1 {
            big.push(entry(i));
        }
        empty.extend(big).unwrap();
        assert_eq!(targets(empty).len(), IN_MEMORY + 1);
    }
}
