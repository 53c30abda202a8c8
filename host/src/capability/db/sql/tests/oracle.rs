//! The differential tests' oracle: a real SQLite database with the generator's schema,
//! asked (through the host's own second-opinion path) what a statement touches.

use crate::target::{SqliteOpinion, StepTransaction, TargetDb, TargetError};

use super::generate::SCHEMA;

/// One SQLite file with [`SCHEMA`], one open transaction on it, and a runtime to drive
/// them from synchronous property tests.
pub(super) struct Oracle {
    runtime: tokio::runtime::Runtime,
    tx: Option<StepTransaction>,
    _db: TargetDb,
    _dir: tempfile::TempDir,
}

impl Oracle {
    pub(super) fn new() -> Oracle {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("oracle.db").display());
        let (db, tx) = runtime.block_on(async {
            let db = TargetDb::connect(&url).await.unwrap();
            db.run_script(SCHEMA).await.unwrap();
            let tx = db.begin().await.unwrap();
            (db, tx)
        });
        Oracle {
            runtime,
            tx: Some(tx),
            _db: db,
            _dir: dir,
        }
    }

    /// SQLite's account of `sql`, or its prepare error.
    pub(super) fn opinion(&mut self, sql: &str) -> Result<SqliteOpinion, TargetError> {
        let tx = self.tx.as_mut().expect("open until drop");
        self.runtime
            .block_on(tx.sqlite_opinion(sql))
            .map(|opinion| opinion.expect("a SQLite target"))
    }

    /// Runs `sql` for real on the oracle's transaction (to check foreign keys still hold
    /// after a second opinion).
    pub(super) fn execute(&mut self, sql: &str) -> Result<u64, TargetError> {
        let tx = self.tx.as_mut().expect("open until drop");
        self.runtime.block_on(tx.execute(sql, &[]))
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = self.runtime.block_on(tx.rollback());
        }
    }
}
