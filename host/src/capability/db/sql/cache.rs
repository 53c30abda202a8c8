//! Memoized analyses, so a statement a plugin runs many times is parsed once.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::{SqlAccess, SqlDialect, SqlError, analyze};

type CacheEntry = Result<Arc<SqlAccess>, SqlError>;

/// Analyses keyed by (dialect, SQL text), so a plugin that runs the same statement
/// 100k times parses it once. Bounded: when full, it is cleared, which keeps every
/// operation O(1) and costs one re-parse per statement still in use.
pub struct AnalysisCache {
    capacity: usize,
    /// One map per dialect, so lookups borrow the SQL text instead of building a key.
    entries: Mutex<[HashMap<String, CacheEntry>; 2]>,
}

/// Statements longer than this are analyzed but not cached: they are typically bulk
/// inserts with inline values that never repeat, and would make the bound on entries a
/// poor bound on memory.
const MAX_CACHED_SQL_LEN: usize = 16 * 1024;

impl AnalysisCache {
    pub fn new(capacity: usize) -> Self {
        AnalysisCache {
            capacity,
            entries: Mutex::new([HashMap::new(), HashMap::new()]),
        }
    }

    pub fn analyze(&self, sql: &str, dialect: SqlDialect) -> Result<Arc<SqlAccess>, SqlError> {
        let slot = match dialect {
            SqlDialect::Postgres => 0,
            SqlDialect::Sqlite => 1,
        };
        if let Some(hit) = self.lock()[slot].get(sql) {
            return hit.clone();
        }
        // Parse without holding the lock; two threads may both parse a new statement,
        // which is cheaper than serializing every parse.
        let entry = analyze(sql, dialect).map(Arc::new);
        if self.capacity > 0 && sql.len() <= MAX_CACHED_SQL_LEN {
            let mut entries = self.lock();
            if entries.iter().map(HashMap::len).sum::<usize>() >= self.capacity {
                entries.iter_mut().for_each(HashMap::clear);
            }
            return entries[slot]
                .entry(sql.to_string())
                .or_insert(entry)
                .clone();
        }
        entry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [HashMap<String, CacheEntry>; 2]> {
        // Nothing panics while the lock is held, and the maps stay valid even if it did.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for AnalysisCache {
    fn default() -> Self {
        AnalysisCache::new(1024)
    }
}

impl fmt::Debug for AnalysisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len: usize = self.lock().iter().map(HashMap::len).sum();
        f.debug_struct("AnalysisCache")
            .field("capacity", &self.capacity)
            .field("len", &len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::StatementKind::{Delete, Select};
    use super::super::tests::{forbidden, set};
    use super::{AnalysisCache, SqlDialect};

    #[test]
    fn cache_returns_the_same_analysis() {
        let cache = AnalysisCache::default();
        let sql = "SELECT * FROM invoices WHERE id = $1";
        let first = cache.analyze(sql, SqlDialect::Postgres).unwrap();
        let second = cache.analyze(sql, SqlDialect::Postgres).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.needs, set(&[(Select, "invoices")]));

        // Each dialect has its own entry.
        let sqlite = cache.analyze(sql, SqlDialect::Sqlite).unwrap();
        assert!(!Arc::ptr_eq(&first, &sqlite));

        assert_eq!(
            cache.analyze("SELECT pg_sleep(1)", SqlDialect::Postgres),
            Err(forbidden("pg_sleep"))
        );
        assert_eq!(
            cache.analyze("SELECT pg_sleep(1)", SqlDialect::Postgres),
            Err(forbidden("pg_sleep"))
        );
    }

    #[test]
    fn cache_stays_bounded() {
        let cache = AnalysisCache::new(2);
        let a = cache
            .analyze("SELECT * FROM a", SqlDialect::Postgres)
            .unwrap();
        cache
            .analyze("SELECT * FROM b", SqlDialect::Postgres)
            .unwrap();
        // Full: the next insert starts over, so `a` is analyzed afresh.
        cache
            .analyze("SELECT * FROM c", SqlDialect::Postgres)
            .unwrap();
        let again = cache
            .analyze("SELECT * FROM a", SqlDialect::Postgres)
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &again));
        assert_eq!(again.needs, set(&[(Select, "a")]));

        let uncached = AnalysisCache::new(0);
        let first = uncached.analyze("SELECT 1", SqlDialect::Sqlite).unwrap();
        let second = uncached.analyze("SELECT 1", SqlDialect::Sqlite).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(first, second);
    }

    #[test]
    fn cache_is_shared_across_threads() {
        let cache = Arc::new(AnalysisCache::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    cache
                        .analyze("DELETE FROM t WHERE id = $1", SqlDialect::Postgres)
                        .unwrap()
                })
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap().needs, set(&[(Delete, "t")]));
        }
    }
}
