//! SQLite's own account of what a statement touches: the text is prepared (never stepped)
//! with an authorizer installed, and every (action, table) SQLite asks permission for is
//! collected. The SQL analyzer's second opinion; all of this module's `unsafe` is here.

use std::collections::BTreeSet;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

use super::TargetError;

/// What SQLite asked to do with one table while preparing a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TableAction {
    Read,
    Insert,
    Update,
    Delete,
    /// CREATE/DROP/ALTER of the table or of one of its indexes.
    Schema,
}

/// One table access SQLite authorized. Names are as SQLite holds them (the schema's
/// spelling), not folded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableAccess {
    pub action: TableAction,
    /// `main`, `temp`, or an attached database's name.
    pub database: String,
    pub table: String,
    /// For index DDL, the index's name (`table` is the table it belongs to).
    pub index: Option<String>,
}

/// Everything SQLite authorized while preparing a statement's text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqliteOpinion {
    /// Statements SQLite found in the text (the analyzer accepts exactly one; sqlx would
    /// run every one).
    pub statements: usize,
    pub tables: BTreeSet<TableAccess>,
    /// Functions the statement calls, lowercased.
    pub functions: BTreeSet<String>,
    /// Indexes SQLite rebuilds (`CREATE INDEX` reports its new index so).
    pub reindexed: BTreeSet<String>,
    /// Any other action (PRAGMA, ATTACH, TRANSACTION, triggers, views, virtual tables…),
    /// described as SQLite's action code and arguments. None is expected of a statement
    /// the analyzer accepts.
    pub other: BTreeSet<String>,
}

/// Prepares `sql` on `conn` with an authorizer installed, collects what SQLite asks to
/// do, and finalizes every prepared statement without running it.
///
/// Foreign-key enforcement and triggers are switched off for this prepare only: what they
/// do (a parent-key lookup, `ON DELETE CASCADE`, a trigger body) is the schema's, not the
/// statement text's, and would otherwise be reported as the statement's own reads and
/// writes. Both settings are restored before this returns, on every path.
pub async fn opinion(conn: &mut SqliteConnection, sql: &str) -> Result<SqliteOpinion, TargetError> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    // SAFETY: `handle` locks the connection's worker, so nothing else uses `db` until it
    // is dropped, which happens after `prepare_all` returns.
    let opinion = unsafe { prepare_all(db, sql) };
    drop(handle);
    // A round trip through the worker's queue: without it, back-to-back locks can leave
    // unlock requests queued until the queue fills while the worker waits for the lock
    // (seen as a hang after a few hundred opinions with nothing run between them).
    sqlx::Connection::ping(conn).await?;
    opinion
}

/// Collected by the authorizer callback.
#[derive(Default)]
struct Collected {
    opinion: SqliteOpinion,
    /// FROM items that read no column, by the name they were written with: SQLite
    /// reports them so whether they are tables or CTEs; the schema decides.
    columnless: BTreeSet<String>,
}

/// # Safety
/// `db` must be a valid, open connection that no other thread uses during the call.
unsafe fn prepare_all(db: NonNull<ffi::sqlite3>, sql: &str) -> Result<SqliteOpinion, TargetError> {
    let db = db.as_ptr();
    let Ok(mut remaining) = c_int::try_from(sql.len()) else {
        return Err(TargetError::Prepare("the statement is too long".into()));
    };
    let mut collected = Box::new(Collected::default());
    // Uninstalls the authorizer and restores the settings when dropped, also on error.
    // SAFETY: `db` is valid (the caller's promise) and `collected` outlives the guard.
    let guard = unsafe { Installed::install(db, &mut collected) };
    let mut tail: *const c_char = sql.as_ptr().cast();
    let end = tail.wrapping_add(sql.len());
    let mut statements = 0;
    while remaining > 0 {
        let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
        let mut next: *const c_char = ptr::null();
        // SAFETY: `tail` points at `remaining` readable bytes of `sql` (SQLite reads no
        // further, no NUL terminator needed); `stmt` and `next` are valid out-pointers.
        let rc = unsafe { ffi::sqlite3_prepare_v2(db, tail, remaining, &mut stmt, &mut next) };
        if !stmt.is_null() {
            statements += 1;
            // SAFETY: `stmt` was just prepared on `db` and is never stepped or used again.
            unsafe { ffi::sqlite3_finalize(stmt) };
        }
        if rc != ffi::SQLITE_OK {
            // SAFETY: `db` is valid; the message is copied before anything else runs on it.
            let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) };
            return Err(TargetError::Prepare(message.to_string_lossy().into_owned()));
        }
        // An empty statement (only whitespace or comments left) prepares to null; SQLite
        // always advances `next` within the text.
        if next.is_null() || next <= tail || next > end {
            break;
        }
        remaining -= (next as usize - tail as usize) as c_int;
        tail = next;
    }
    // The lookups below must not be recorded, and must see the program as prepared
    // above: foreign keys and triggers stay off until the guard goes.
    guard.remove_authorizer();
    let mut opinion = std::mem::take(&mut collected.opinion);
    opinion.statements = statements;
    let columnless = std::mem::take(&mut collected.columnless);
    if !columnless.is_empty() {
        // SAFETY: as above.
        for table in unsafe { columnless_tables(db, sql, columnless, statements) }? {
            opinion.tables.insert(TableAccess {
                action: TableAction::Read,
                database: "main".to_string(),
                table,
                index: None,
            });
        }
    }
    drop(guard);
    Ok(opinion)
}

/// Which FROM items that read no column are tables of the main database the statement
/// really opens. SQLite reports such an item by the name it was written with, whether it
/// names a table or a CTE (`WITH t AS (...) SELECT count(*) FROM t`); the statement's
/// program settles it: a table it reads, it opens (the table or one of its indexes).
/// A view is left out (its own tables are reported), a virtual table kept.
///
/// # Safety
/// As [`prepare_all`].
unsafe fn columnless_tables(
    db: *mut ffi::sqlite3,
    sql: &str,
    names: BTreeSet<String>,
    statements: usize,
) -> Result<Vec<String>, TargetError> {
    // Root pages the program opens in the main database (EXPLAIN lists it, runs nothing).
    // More than one statement is a disagreement anyway: count every name as read then.
    let opened: Option<BTreeSet<i64>> = if statements == 1 {
        let mut pages = BTreeSet::new();
        // SAFETY: the caller's promise.
        unsafe {
            rows(db, &format!("EXPLAIN {sql}"), None, |stmt| {
                let opcode = column_text(stmt, 1);
                if matches!(opcode.as_str(), "OpenRead" | "OpenWrite" | "ReopenIdx")
                    && ffi::sqlite3_column_int64(stmt, 4) == 0
                {
                    pages.insert(ffi::sqlite3_column_int64(stmt, 3));
                }
            })?;
        }
        Some(pages)
    } else {
        None
    };
    let mut tables = Vec::new();
    for name in names {
        let mut objects: Vec<(String, i64)> = Vec::new();
        const OBJECTS: &str = "SELECT type, rootpage FROM main.sqlite_schema \
            WHERE tbl_name = ?1 COLLATE NOCASE AND type IN ('table', 'view', 'index')";
        // SAFETY: the caller's promise.
        unsafe {
            rows(db, OBJECTS, Some(&name), |stmt| {
                objects.push((column_text(stmt, 0), ffi::sqlite3_column_int64(stmt, 1)));
            })?;
        }
        let is_view = objects.iter().any(|(kind, _)| kind == "view");
        let is_virtual = objects
            .iter()
            .any(|(kind, page)| kind == "table" && *page == 0);
        let is_opened = opened
            .as_ref()
            .is_none_or(|pages| objects.iter().any(|(_, page)| pages.contains(page)));
        if !objects.is_empty() && !is_view && (is_virtual || is_opened) {
            tables.push(name);
        }
    }
    Ok(tables)
}

/// Runs a host-written read-only query (`?1` bound to `param`), calling `row` per row.
///
/// # Safety
/// As [`prepare_all`]; `row` may only read columns of the statement it is given.
unsafe fn rows(
    db: *mut ffi::sqlite3,
    sql: &str,
    param: Option<&str>,
    mut row: impl FnMut(*mut ffi::sqlite3_stmt),
) -> Result<(), TargetError> {
    let too_long = || TargetError::Prepare("the statement is too long".into());
    let len = c_int::try_from(sql.len()).map_err(|_| too_long())?;
    let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
    // SAFETY: `sql` is `len` readable bytes; out-pointers are valid; a bound parameter is
    // copied by SQLite (SQLITE_TRANSIENT); the statement is finalized on every path.
    unsafe {
        let mut rc =
            ffi::sqlite3_prepare_v2(db, sql.as_ptr().cast(), len, &mut stmt, ptr::null_mut());
        if let (ffi::SQLITE_OK, Some(param)) = (rc, param) {
            let param_len = c_int::try_from(param.len()).map_err(|_| too_long())?;
            rc = ffi::sqlite3_bind_text(
                stmt,
                1,
                param.as_ptr().cast(),
                param_len,
                ffi::SQLITE_TRANSIENT(),
            );
        }
        if rc == ffi::SQLITE_OK && !stmt.is_null() {
            loop {
                rc = ffi::sqlite3_step(stmt);
                if rc != ffi::SQLITE_ROW {
                    break;
                }
                row(stmt);
            }
            if rc == ffi::SQLITE_DONE {
                rc = ffi::SQLITE_OK;
            }
        }
        let result = if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(TargetError::Prepare(
                CStr::from_ptr(ffi::sqlite3_errmsg(db))
                    .to_string_lossy()
                    .into_owned(),
            ))
        };
        ffi::sqlite3_finalize(stmt);
        result
    }
}

/// A column of the current row as text ("" for NULL).
///
/// # Safety
/// `stmt` is a statement positioned on a row, `i` one of its columns.
unsafe fn column_text(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> String {
    // SAFETY: the caller's promise; the text is copied before the next step.
    unsafe {
        let text = ffi::sqlite3_column_text(stmt, i);
        if text.is_null() {
            String::new()
        } else {
            CStr::from_ptr(text.cast()).to_string_lossy().into_owned()
        }
    }
}

/// The authorizer (and the switched-off settings) while a statement is prepared.
struct Installed {
    db: *mut ffi::sqlite3,
    foreign_keys: c_int,
    triggers: c_int,
}

impl Installed {
    /// # Safety
    /// `db` must be valid for the guard's life, and `collected` must outlive it.
    unsafe fn install(db: *mut ffi::sqlite3, collected: &mut Collected) -> Installed {
        // SAFETY: the caller's promises; `set_flag` only reads and writes the two flags.
        unsafe {
            let guard = Installed {
                db,
                foreign_keys: set_flag(db, ffi::SQLITE_DBCONFIG_ENABLE_FKEY, 0),
                triggers: set_flag(db, ffi::SQLITE_DBCONFIG_ENABLE_TRIGGER, 0),
            };
            ffi::sqlite3_set_authorizer(
                db,
                Some(authorize),
                (collected as *mut Collected).cast::<c_void>(),
            );
            guard
        }
    }
}

impl Installed {
    fn remove_authorizer(&self) {
        // SAFETY: `db` is still valid (see `install`); after this the callback can no
        // longer reach the collector.
        unsafe { ffi::sqlite3_set_authorizer(self.db, None, ptr::null_mut()) };
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.remove_authorizer();
        // SAFETY: `db` is still valid (see `install`).
        unsafe {
            set_flag(self.db, ffi::SQLITE_DBCONFIG_ENABLE_FKEY, self.foreign_keys);
            set_flag(self.db, ffi::SQLITE_DBCONFIG_ENABLE_TRIGGER, self.triggers);
        }
    }
}

/// Sets a boolean `sqlite3_db_config` option; returns its value before.
///
/// # Safety
/// `db` must be a valid connection.
unsafe fn set_flag(db: *mut ffi::sqlite3, op: c_int, value: c_int) -> c_int {
    let mut before: c_int = 0;
    // SAFETY: `op` is a boolean option, whose variadic arguments are (int, int*).
    unsafe {
        ffi::sqlite3_db_config(db, op, -1, &mut before as *mut c_int);
        ffi::sqlite3_db_config(db, op, value, ptr::null_mut::<c_int>());
    }
    before
}

/// The authorizer callback: records the request and allows it, so SQLite reports the
/// whole statement. Never unwinds into C.
unsafe extern "C" fn authorize(
    user: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    database: *const c_char,
    _context: *const c_char,
) -> c_int {
    let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `user` is the `Collected` installed with this callback, alive and not
        // otherwise borrowed while SQLite prepares (see `Installed::install`); the
        // arguments are NUL-terminated strings or null, valid for this call.
        let collected = unsafe { &mut *user.cast::<Collected>() };
        let (arg1, arg2, database) = unsafe { (text(arg1), text(arg2), text(database)) };
        if action == ffi::SQLITE_READ && database.is_none() && arg2.as_deref() == Some("") {
            collected.columnless.extend(arg1);
        } else {
            record(&mut collected.opinion, action, arg1, arg2, database);
        }
    }));
    match recorded {
        Ok(()) => ffi::SQLITE_OK,
        Err(_) => ffi::SQLITE_DENY,
    }
}

/// # Safety
/// `p` is null or a valid NUL-terminated string.
unsafe fn text(p: *const c_char) -> Option<String> {
    // SAFETY: the caller's promise.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Sorts one authorizer request into the opinion. The argument meanings per action are
/// SQLite's (https://www.sqlite.org/c3ref/c_alter_table.html).
fn record(
    opinion: &mut SqliteOpinion,
    action: c_int,
    arg1: Option<String>,
    arg2: Option<String>,
    database: Option<String>,
) {
    let database = database.unwrap_or_else(|| "main".to_string());
    let mut table = |action, table: Option<String>, index: Option<String>| {
        let table = table.unwrap_or_default();
        opinion.tables.insert(TableAccess {
            action,
            database: database.clone(),
            table,
            index,
        });
    };
    match action {
        ffi::SQLITE_READ => table(TableAction::Read, arg1, None),
        ffi::SQLITE_INSERT => table(TableAction::Insert, arg1, None),
        ffi::SQLITE_UPDATE => table(TableAction::Update, arg1, None),
        ffi::SQLITE_DELETE => table(TableAction::Delete, arg1, None),
        ffi::SQLITE_CREATE_TABLE
        | ffi::SQLITE_CREATE_TEMP_TABLE
        | ffi::SQLITE_DROP_TABLE
        | ffi::SQLITE_DROP_TEMP_TABLE => table(TableAction::Schema, arg1, None),
        ffi::SQLITE_CREATE_INDEX
        | ffi::SQLITE_CREATE_TEMP_INDEX
        | ffi::SQLITE_DROP_INDEX
        | ffi::SQLITE_DROP_TEMP_INDEX => table(TableAction::Schema, arg2, arg1),
        // ALTER TABLE names the database first, then the table.
        ffi::SQLITE_ALTER_TABLE => table(TableAction::Schema, arg2, None),
        ffi::SQLITE_REINDEX => {
            opinion.reindexed.extend(arg1);
        }
        ffi::SQLITE_FUNCTION => {
            opinion
                .functions
                .insert(arg2.unwrap_or_default().to_ascii_lowercase());
        }
        // A query, a recursive CTE: no table of their own.
        ffi::SQLITE_SELECT | ffi::SQLITE_RECURSIVE => {}
        other => {
            opinion.other.insert(format!(
                "action {other} ({}, {})",
                arg1.as_deref().unwrap_or("-"),
                arg2.as_deref().unwrap_or("-")
            ));
        }
    }
}
