//! What accepted statements need: the (kind, table) pairs of reads, writes, CTEs and DDL.

use super::*;

#[test]
fn plain_select() {
    let access = pg("SELECT id, amount FROM invoices WHERE id = $1");
    assert_eq!(access.statement, Select);
    assert!(access.returns_rows);
    assert_eq!(access.needs, set(&[(Select, "invoices")]));
    assert_eq!(
        access.requirements().collect::<Vec<_>>(),
        vec![(Select, "invoices")]
    );
    pg_needs("SELECT 1", &[]);
    pg_needs("VALUES (1, 'a'), (2, 'b')", &[]);
    pg_needs("SELECT * FROM invoices FOR UPDATE", &[(Select, "invoices")]);
}

#[test]
fn joins() {
    pg_needs(
        "SELECT * FROM invoices i JOIN customers c ON c.id = i.customer_id \
         LEFT JOIN payments p USING (invoice_id) CROSS JOIN plans, refunds",
        &[
            (Select, "customers"),
            (Select, "invoices"),
            (Select, "payments"),
            (Select, "plans"),
            (Select, "refunds"),
        ],
    );
}

#[test]
fn subqueries_everywhere() {
    pg_needs(
        "SELECT i.id, (SELECT max(p.amount) FROM payments p WHERE p.invoice_id = i.id) \
         FROM invoices i \
         WHERE i.customer_id IN (SELECT id FROM customers c \
             WHERE EXISTS (SELECT 1 FROM blocks b WHERE b.customer_id = c.id)) \
         GROUP BY i.id HAVING count(*) > (SELECT min(n) FROM limits) \
         ORDER BY (SELECT 1 FROM sort_keys LIMIT 1)",
        &[
            (Select, "blocks"),
            (Select, "customers"),
            (Select, "invoices"),
            (Select, "limits"),
            (Select, "payments"),
            (Select, "sort_keys"),
        ],
    );
}

#[test]
fn derived_tables_and_lateral() {
    pg_needs(
        "SELECT * FROM (SELECT * FROM a) x \
         CROSS JOIN LATERAL (SELECT * FROM b WHERE b.id = x.id) y",
        &[(Select, "a"), (Select, "b")],
    );
}

#[test]
fn cte_names_are_not_tables() {
    pg_needs(
        "WITH overdue AS (SELECT * FROM invoices WHERE due < now()) \
         SELECT * FROM overdue JOIN customers ON customers.id = overdue.customer_id",
        &[(Select, "customers"), (Select, "invoices")],
    );
    // A later CTE may use an earlier one, but not the other way round.
    pg_needs(
        "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM a, b",
        &[(Select, "b")],
    );
}

#[test]
fn cte_named_like_a_table_shadows_it_only_in_its_scope() {
    pg_needs(
        "WITH invoices AS (SELECT * FROM archive) SELECT * FROM invoices",
        &[(Select, "archive")],
    );
    // Without RECURSIVE the body's `invoices` is the real table.
    pg_needs(
        "WITH invoices AS (SELECT * FROM invoices WHERE paid) SELECT * FROM invoices",
        &[(Select, "invoices")],
    );
    // The CTE lives in the subquery; the outer `invoices` is the table.
    pg_needs(
        "SELECT * FROM invoices WHERE id IN \
         (WITH invoices AS (SELECT 1 AS id) SELECT id FROM invoices)",
        &[(Select, "invoices")],
    );
    pg_needs(
        "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) x, t",
        &[(Select, "t")],
    );
    // Schema-qualified names never refer to a CTE.
    pg_needs(
        "WITH invoices AS (SELECT 1) SELECT * FROM public.invoices",
        &[(Select, "public.invoices")],
    );
    // Quoted CTE names keep their case, so "Invoices" does not shadow invoices.
    pg_needs(
        "WITH \"Invoices\" AS (SELECT 1) SELECT * FROM invoices",
        &[(Select, "invoices")],
    );
}

#[test]
fn recursive_cte() {
    pg_needs(
        "WITH RECURSIVE tree(id, parent) AS ( \
             SELECT id, parent FROM accounts WHERE id = $1 \
             UNION ALL \
             SELECT a.id, a.parent FROM accounts a JOIN tree ON a.parent = tree.id) \
         SELECT * FROM tree",
        &[(Select, "accounts")],
    );
}

#[test]
fn nested_ctes() {
    pg_needs(
        "WITH a AS (WITH b AS (SELECT * FROM t1) SELECT * FROM b JOIN t2 ON true) \
         SELECT * FROM a, b",
        &[(Select, "b"), (Select, "t1"), (Select, "t2")],
    );
}

#[test]
fn data_modifying_ctes_need_their_write_kind() {
    let access = pg("WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d");
    assert_eq!(access.statement, Select);
    assert!(access.returns_rows);
    assert_eq!(access.needs, set(&[(Delete, "a")]));

    let access = pg(
        "WITH moved AS (DELETE FROM sessions WHERE expires < now() RETURNING *) \
         INSERT INTO sessions_archive SELECT * FROM moved",
    );
    assert_eq!(access.statement, Insert);
    assert!(!access.returns_rows);
    assert_eq!(
        access.needs,
        set(&[(Delete, "sessions"), (Insert, "sessions_archive")])
    );

    // A write target is always the real table, even when a CTE has its name.
    pg_needs(
        "WITH t AS (SELECT 1 AS id) DELETE FROM t WHERE id IN (SELECT id FROM t)",
        &[(Delete, "t")],
    );
    pg_needs(
        "WITH u AS (UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING id) \
         INSERT INTO ledger (account_id) SELECT id FROM u",
        &[(Insert, "ledger"), (Update, "accounts")],
    );
}

#[test]
fn with_wrapping_a_write() {
    let access = pg(
        "WITH stale AS (SELECT id FROM sessions WHERE expires < now()) \
         DELETE FROM sessions WHERE id IN (SELECT id FROM stale)",
    );
    assert_eq!(access.statement, Delete);
    assert!(!access.returns_rows);
    assert_eq!(
        access.needs,
        set(&[(Delete, "sessions"), (Select, "sessions")])
    );
}

#[test]
fn update_from_and_self_reads() {
    let access = pg("UPDATE invoices SET status = 'paid' FROM payments \
         WHERE payments.invoice_id = invoices.id");
    assert_eq!(access.statement, Update);
    assert!(!access.returns_rows);
    assert_eq!(
        access.needs,
        set(&[(Select, "payments"), (Update, "invoices")])
    );
    pg_needs(
        "UPDATE t SET x = (SELECT max(x) FROM t)",
        &[(Select, "t"), (Update, "t")],
    );
    pg_needs("UPDATE t SET x = x + 1 WHERE id = $1", &[(Update, "t")]);
}

#[test]
fn delete_using() {
    let access = pg("DELETE FROM invoices USING customers \
         WHERE customers.id = invoices.customer_id AND customers.deleted");
    assert_eq!(access.statement, Delete);
    assert_eq!(
        access.needs,
        set(&[(Delete, "invoices"), (Select, "customers")])
    );
}

#[test]
fn inserts() {
    let access = pg("INSERT INTO t (a, b) VALUES ($1, $2)");
    assert_eq!(access.statement, Insert);
    assert!(!access.returns_rows);
    assert_eq!(access.needs, set(&[(Insert, "t")]));
    pg_needs(
        "INSERT INTO archive (id) SELECT id FROM invoices WHERE paid",
        &[(Insert, "archive"), (Select, "invoices")],
    );
    pg_needs(
        "INSERT INTO t SELECT * FROM t",
        &[(Insert, "t"), (Select, "t")],
    );
    pg_needs(
        "INSERT INTO t (a) VALUES ((SELECT max(a) FROM u))",
        &[(Insert, "t"), (Select, "u")],
    );
}

#[test]
fn on_conflict() {
    // An upsert overwrites existing rows, so it needs Update on the target too.
    pg_needs(
        "INSERT INTO balances (customer_id, amount) VALUES ($1, $2) \
         ON CONFLICT (customer_id) DO UPDATE SET amount = balances.amount + EXCLUDED.amount \
         WHERE balances.locked = (SELECT false FROM flags)",
        &[
            (Insert, "balances"),
            (Select, "flags"),
            (Update, "balances"),
        ],
    );
    pg_needs(
        "INSERT INTO t (id) VALUES (1) ON CONFLICT DO NOTHING",
        &[(Insert, "t")],
    );
    pg_needs(
        "INSERT INTO t VALUES (1) ON CONFLICT ON CONSTRAINT t_pkey DO NOTHING",
        &[(Insert, "t")],
    );
}

#[test]
fn returning() {
    for (sql, kind) in [
        ("INSERT INTO t (a) VALUES (1) RETURNING id", Insert),
        ("UPDATE t SET a = 1 RETURNING *", Update),
        ("DELETE FROM t WHERE a = 1 RETURNING id", Delete),
    ] {
        let access = pg(sql);
        assert_eq!(access.statement, kind, "{sql}");
        assert!(access.returns_rows, "{sql}");
        assert_eq!(access.needs, set(&[(kind, "t")]), "{sql}");
    }
    let access = lite("DELETE FROM t RETURNING id");
    assert!(access.returns_rows);
    assert_eq!(access.needs, set(&[(Delete, "t")]));
}

#[test]
fn set_operations() {
    pg_needs(
        "SELECT id FROM a UNION SELECT id FROM b EXCEPT SELECT id FROM c \
         INTERSECT (SELECT id FROM d)",
        &[(Select, "a"), (Select, "b"), (Select, "c"), (Select, "d")],
    );
    // `TABLE t` carries the name as a bare string the analysis cannot check.
    assert_eq!(pg_err("SELECT 1 UNION TABLE secret"), unsupported("TABLE"));
}

#[test]
fn table_functions_are_not_tables() {
    pg_needs("SELECT * FROM generate_series(1, 10) g", &[]);
    pg_needs(
        "SELECT * FROM invoices i, LATERAL jsonb_array_elements(i.lines) l",
        &[(Select, "invoices")],
    );
    pg_needs("SELECT * FROM unnest(ARRAY[1, 2]) AS u(x)", &[]);
    lite_needs(
        "SELECT j.value FROM events e, json_each(e.payload) j",
        &[(Select, "events")],
    );
    lite_needs("SELECT value FROM generate_series(1, 10)", &[]);
    // In SQLite a virtual table can be queried with function syntax: it is still read.
    lite_needs("SELECT * FROM docs_fts('needle')", &[(Select, "docs_fts")]);
    lite_needs("SELECT * FROM dbstat('main')", &[(Select, "dbstat")]);
    assert_eq!(
        pg_err("SELECT * FROM pg_ls_dir('.')"),
        forbidden("pg_ls_dir")
    );
    assert_eq!(
        pg_err("SELECT * FROM t, LATERAL dblink('x', 'select 1') AS d(a int)"),
        forbidden("dblink")
    );
}

#[test]
fn names_are_normalized() {
    pg_needs(
        "SELECT * FROM public.Invoices \
         JOIN \"Billing\".\"Customers\" ON true \
         JOIN \"weird.name\" ON true \
         JOIN \"a\"\"b\" ON true \
         JOIN PUBLIC.\"plans\" ON true",
        &[
            (Select, "Billing.Customers"),
            (Select, "\"a\"\"b\""),
            (Select, "\"weird.name\""),
            (Select, "public.invoices"),
            (Select, "public.plans"),
        ],
    );
    pg_needs(
        "DELETE FROM Billing.Sessions",
        &[(Delete, "billing.sessions")],
    );
    // SQLite compares identifiers case-insensitively, quoted or not.
    lite_needs(
        "SELECT * FROM main.Invoices JOIN \"Customers\" ON 1 JOIN [Plans] ON 1 \
         JOIN `Refunds` ON 1",
        &[
            (Select, "customers"),
            (Select, "main.invoices"),
            (Select, "plans"),
            (Select, "refunds"),
        ],
    );
    // Only ASCII letters fold: `Ä` and `ä` are different tables.
    pg_needs("SELECT * FROM Äpfel", &[(Select, "Äpfel")]);
}

#[test]
fn ddl() {
    let access = pg("CREATE TABLE refunds (id bigint PRIMARY KEY, note text)");
    assert_eq!(access.statement, Ddl);
    assert!(!access.returns_rows);
    assert_eq!(access.needs, set(&[(Ddl, "refunds")]));

    pg_needs(
        "CREATE TABLE snapshot AS SELECT * FROM invoices",
        &[(Ddl, "snapshot"), (Select, "invoices")],
    );
    pg_needs(
        "CREATE TABLE lines (id int, invoice_id int REFERENCES invoices (id), \
         plan_id int, FOREIGN KEY (plan_id) REFERENCES billing.plans (id))",
        &[
            (Ddl, "lines"),
            (Select, "billing.plans"),
            (Select, "invoices"),
        ],
    );
    pg_needs(
        "CREATE TABLE copy (LIKE invoices)",
        &[(Ddl, "copy"), (Select, "invoices")],
    );
    pg_needs(
        "CREATE TABLE p2024 PARTITION OF payments FOR VALUES IN (2024)",
        &[(Ddl, "p2024"), (Ddl, "payments")],
    );
    pg_needs(
        "CREATE TABLE child (x int) INHERITS (parent)",
        &[(Ddl, "child"), (Ddl, "parent")],
    );
    pg_needs(
        "CREATE UNIQUE INDEX invoices_number ON invoices (number)",
        &[(Ddl, "invoices")],
    );
    pg_needs(
        "ALTER TABLE invoices ADD COLUMN note text, ALTER COLUMN amount SET NOT NULL, \
         RENAME COLUMN a TO b",
        &[(Ddl, "invoices")],
    );
    pg_needs(
        "ALTER TABLE invoices ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id)",
        &[(Ddl, "invoices"), (Select, "customers")],
    );
    pg_needs(
        "ALTER TABLE billing.old RENAME TO new",
        &[(Ddl, "billing.new"), (Ddl, "billing.old")],
    );
    pg_needs("DROP TABLE a, b", &[(Ddl, "a"), (Ddl, "b")]);
    pg_needs("DROP TABLE IF EXISTS a", &[(Ddl, "a")]);
    // An index is named by itself; its table is not in the statement.
    pg_needs("DROP INDEX invoices_number", &[(Ddl, "invoices_number")]);
    pg_needs("TRUNCATE a, b", &[(Ddl, "a"), (Ddl, "b")]);
    lite_needs(
        "CREATE TABLE IF NOT EXISTS t (a INTEGER) STRICT",
        &[(Ddl, "t")],
    );
    lite_needs("CREATE INDEX i ON t (a)", &[(Ddl, "t")]);
    lite_needs("DROP INDEX i", &[(Ddl, "i")]);
}

#[test]
fn select_into_creates_a_table() {
    let access = pg("SELECT * INTO TEMP snapshot FROM invoices");
    assert_eq!(access.statement, Ddl);
    assert!(!access.returns_rows);
    assert_eq!(
        access.needs,
        set(&[(Ddl, "snapshot"), (Select, "invoices")])
    );
}

#[test]
fn sqlite_specifics() {
    let access = lite("INSERT OR REPLACE INTO t (id, a) VALUES (?, ?)");
    assert_eq!(access.statement, Insert);
    assert_eq!(access.needs, set(&[(Delete, "t"), (Insert, "t")]));
    lite_needs("REPLACE INTO t VALUES (1)", &[(Delete, "t"), (Insert, "t")]);
    lite_needs("INSERT OR IGNORE INTO t VALUES (1)", &[(Insert, "t")]);
    lite_needs(
        "UPDATE OR REPLACE t SET id = 5 WHERE id = 4",
        &[(Delete, "t"), (Update, "t")],
    );
    assert_eq!(
        lite_err("INSERT OR ROLLBACK INTO t VALUES (1)"),
        unsupported("INSERT OR ROLLBACK")
    );
    assert_eq!(
        lite_err("UPDATE OR ROLLBACK t SET a = 1"),
        unsupported("UPDATE OR ROLLBACK")
    );
    lite_needs(
        "SELECT strftime('%Y-%m', created_at) AS month, sum(amount) FROM payments \
         GROUP BY month",
        &[(Select, "payments")],
    );
    lite_needs(
        "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
        &[(Insert, "t"), (Update, "t")],
    );
}

#[test]
fn placeholders() {
    pg_needs(
        "SELECT * FROM t WHERE a = $1 AND b = ANY($2) LIMIT $3",
        &[(Select, "t")],
    );
    lite_needs(
        "SELECT * FROM t WHERE a = ? AND b = ?2 AND c = $1 AND d = :name AND e = @e",
        &[(Select, "t")],
    );
    lite_needs("INSERT INTO t VALUES (?, ?)", &[(Insert, "t")]);
}
