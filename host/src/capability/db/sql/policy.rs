//! What the analysis refuses outright, by name: functions that reach past the granted
//! tables, and the SQLite table-valued functions that are not tables.

/// Function name prefixes that reach past the granted tables: server files and settings,
/// other sessions, large objects, other databases, sequences shared by every writer, or
/// SQL text that the function runs itself (which the analysis cannot see).
pub(super) const FORBIDDEN_FUNCTION_PREFIXES: &[&str] = &[
    "pg_",
    "lo_",
    "dblink",
    "query_to_xml",
    "table_to_xml",
    "schema_to_xml",
    "database_to_xml",
    "cursor_to_xml",
    "crosstab",
    "pragma_",
];

/// Exact function names denied for the same reasons as [`FORBIDDEN_FUNCTION_PREFIXES`].
pub(super) const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "set_config",
    "current_setting",
    "setval",
    "loread",
    "lowrite",
    "ts_stat",
    "ts_rewrite",
    "connectby",
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    "fsdir",
    "zipfile",
    "sqlar_compress",
    "sqlar_uncompress",
];

/// Whether a function (its unqualified name) is one of the forbidden ones.
pub(super) fn is_forbidden_function(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    FORBIDDEN_FUNCTION_PREFIXES
        .iter()
        .any(|prefix| lower.starts_with(prefix))
        || FORBIDDEN_FUNCTIONS.contains(&lower.as_str())
}

/// SQLite table-valued functions that are not tables. SQLite lets any virtual table be
/// called like a function (`FROM docs_fts('needle')`), so under SQLite every other
/// `name(...)` in FROM is read as the table it names.
pub(super) const SQLITE_TABLE_FUNCTIONS: &[&str] = &[
    "json_each",
    "json_tree",
    "jsonb_each",
    "jsonb_tree",
    "generate_series",
];
