//! Statements, clauses and functions the analysis refuses.

use super::*;

#[test]
fn only_is_rejected_rather_than_misread() {
    let err = SqlError::Parse("`ONLY <table>` is not supported".to_string());
    assert_eq!(pg_err("SELECT * FROM ONLY invoices"), err);
    assert_eq!(pg_err("DELETE FROM ONLY invoices"), err);
    assert_eq!(pg_err("UPDATE ONLY invoices SET a = 1"), err);
}

#[test]
fn statement_count() {
    assert_eq!(pg_err(""), SqlError::StatementCount(0));
    assert_eq!(pg_err("  -- nothing\n"), SqlError::StatementCount(0));
    assert_eq!(pg_err(";"), SqlError::StatementCount(0));
    assert_eq!(pg_err("SELECT 1; SELECT 2"), SqlError::StatementCount(2));
    assert_eq!(
        pg_err("SELECT * FROM t; DROP TABLE t"),
        SqlError::StatementCount(2)
    );
    assert_eq!(
        lite_err("SELECT 1; SELECT 2; SELECT 3"),
        SqlError::StatementCount(3)
    );
    pg_needs("SELECT * FROM t;", &[(Select, "t")]);
    lite_needs("SELECT * FROM t ; ", &[(Select, "t")]);
}

#[test]
fn transaction_control_is_unsupported() {
    for (sql, name) in [
        ("BEGIN", "BEGIN"),
        ("START TRANSACTION", "START TRANSACTION"),
        ("COMMIT", "COMMIT"),
        ("ROLLBACK", "ROLLBACK"),
        ("SAVEPOINT a", "SAVEPOINT"),
        ("RELEASE SAVEPOINT a", "RELEASE SAVEPOINT"),
        ("ROLLBACK TO SAVEPOINT a", "ROLLBACK"),
    ] {
        assert_eq!(pg_err(sql), unsupported(name), "{sql}");
    }
    assert_eq!(lite_err("BEGIN IMMEDIATE"), unsupported("BEGIN"));
    assert_eq!(lite_err("END"), unsupported("COMMIT"));
}

#[test]
fn session_and_admin_statements_are_unsupported() {
    for (sql, name) in [
        ("SET search_path = evil", "SET"),
        ("SET ROLE admin", "SET"),
        ("RESET ALL", "RESET"),
        ("SHOW search_path", "SHOW"),
        ("COPY invoices TO '/tmp/x'", "COPY"),
        ("COPY invoices FROM PROGRAM 'id'", "COPY"),
        ("GRANT SELECT ON invoices TO bob", "GRANT"),
        ("REVOKE SELECT ON invoices FROM bob", "REVOKE"),
        ("CALL refund_all()", "CALL"),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
        ("EXPLAIN ANALYZE DELETE FROM invoices", "EXPLAIN"),
        (
            "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
            "CREATE FUNCTION",
        ),
        ("CREATE EXTENSION dblink", "CREATE EXTENSION"),
        ("CREATE ROLE bob", "CREATE ROLE"),
        ("CREATE VIEW v AS SELECT * FROM invoices", "CREATE VIEW"),
        ("CREATE SCHEMA s", "CREATE SCHEMA"),
        ("VACUUM", "VACUUM"),
        ("LISTEN c", "LISTEN"),
        ("NOTIFY c", "NOTIFY"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("LOCK TABLE invoices", "LOCK"),
        ("DISCARD ALL", "DISCARD"),
        (
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "MERGE",
        ),
        ("DROP VIEW v", "DROP VIEW"),
        ("DROP SCHEMA s", "DROP SCHEMA"),
        ("DROP ROLE bob", "DROP ROLE"),
    ] {
        assert_eq!(pg_err(sql), unsupported(name), "{sql}");
    }
    // sqlparser does not know DO; it is still denied.
    assert!(matches!(pg_err("DO $$BEGIN END$$"), SqlError::Parse(_)));
}

#[test]
fn sqlite_only_statements_are_unsupported() {
    for (sql, name) in [
        ("PRAGMA writable_schema = 1", "PRAGMA"),
        ("ATTACH 'other.db' AS other", "ATTACH"),
        (
            "CREATE VIRTUAL TABLE v USING fts5(body)",
            "CREATE VIRTUAL TABLE",
        ),
        (
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; END",
            "CREATE TRIGGER",
        ),
        ("VACUUM", "VACUUM"),
        ("ANALYZE", "ANALYZE"),
    ] {
        assert_eq!(lite_err(sql), unsupported(name), "{sql}");
    }
    assert!(matches!(lite_err("DETACH other"), SqlError::Parse(_)));
}

#[test]
fn ddl_that_reaches_other_objects_is_unsupported() {
    assert_eq!(
        pg_err("DROP TABLE t CASCADE"),
        unsupported("DROP ... CASCADE")
    );
    assert_eq!(
        pg_err("TRUNCATE t CASCADE"),
        unsupported("TRUNCATE ... CASCADE")
    );
    assert_eq!(
        pg_err("ALTER TABLE t DROP COLUMN a CASCADE"),
        unsupported("ALTER TABLE ... DROP ... CASCADE")
    );
    assert_eq!(
        pg_err("ALTER TABLE t OWNER TO bob"),
        unsupported("ALTER TABLE ... OWNER TO")
    );
    assert_eq!(
        pg_err("ALTER TABLE t DISABLE ROW LEVEL SECURITY"),
        unsupported("ALTER TABLE ... DISABLE ROW")
    );
    assert_eq!(
        lite_err("CREATE TABLE t (a INT UNIQUE ON CONFLICT ROLLBACK)"),
        unsupported("ON CONFLICT ROLLBACK")
    );
}

#[test]
fn forbidden_functions() {
    for (sql, name) in [
        ("SELECT pg_sleep(10)", "pg_sleep"),
        ("SELECT PG_SLEEP(10)", "PG_SLEEP"),
        ("SELECT \"pg_sleep\"(10)", "\"pg_sleep\""),
        (
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
            "pg_catalog.pg_read_file",
        ),
        (
            "SELECT * FROM invoices WHERE id IN (SELECT lo_import('/etc/passwd'))",
            "lo_import",
        ),
        (
            "SELECT pg_terminate_backend(pid) FROM sessions",
            "pg_terminate_backend",
        ),
        ("SELECT set_config('role', 'admin', false)", "set_config"),
        (
            "SELECT current_setting('data_directory')",
            "current_setting",
        ),
        ("SELECT dblink_exec('db', 'DROP TABLE t')", "dblink_exec"),
        (
            "SELECT query_to_xml('select 1', true, true, '')",
            "query_to_xml",
        ),
        (
            "SELECT table_to_xml('secrets', true, true, '')",
            "table_to_xml",
        ),
        ("SELECT * FROM ts_stat('select v from secrets')", "ts_stat"),
        ("SELECT setval('invoice_number_seq', 1)", "setval"),
        (
            "UPDATE invoices SET note = pg_read_file('x') WHERE id = 1",
            "pg_read_file",
        ),
        (
            "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = pg_sleep(1)",
            "pg_sleep",
        ),
        ("SELECT * FROM t ORDER BY pg_sleep(1)", "pg_sleep"),
        ("WITH x AS (SELECT pg_sleep(1)) SELECT * FROM x", "pg_sleep"),
        (
            "CREATE TABLE t (a text DEFAULT current_setting('x'))",
            "current_setting",
        ),
    ] {
        assert_eq!(pg_err(sql), forbidden(name), "{sql}");
    }
    for (sql, name) in [
        ("SELECT load_extension('evil.so')", "load_extension"),
        ("SELECT readfile('/etc/passwd')", "readfile"),
        ("SELECT writefile('/tmp/x', 'y')", "writefile"),
        ("SELECT edit('x')", "edit"),
        ("SELECT fts3_tokenizer('simple')", "fts3_tokenizer"),
        (
            "SELECT * FROM pragma_table_info('secrets')",
            "pragma_table_info",
        ),
    ] {
        assert_eq!(lite_err(sql), forbidden(name), "{sql}");
    }
    pg_needs(
        "SELECT now(), lower(name), coalesce(a, b), count(*), \
         date_trunc('month', created_at) FROM t",
        &[(Select, "t")],
    );
}

#[test]
fn writes_that_touch_other_tables_are_unsupported() {
    assert_eq!(
        pg_err("UPDATE a JOIN b ON a.id = b.id SET a.x = 1"),
        unsupported("UPDATE ... JOIN")
    );
    assert_eq!(
        pg_err("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id"),
        unsupported("multi-table DELETE")
    );
}
