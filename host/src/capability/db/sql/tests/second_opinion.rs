//! The second opinion: the comparison on hand-made opinions, and what SQLite reports for
//! statements whose effects reach past their text (foreign keys, AUTOINCREMENT, temp
//! tables, text SQLite splits differently), on a real database.

use std::collections::BTreeSet;

use super::super::StatementKind::{Delete, Insert, Select, Update};
use super::super::{SqlAccess, StatementKind, check_second_opinion};
use super::oracle::Oracle;
use super::{lite, set};
use crate::target::{SqliteOpinion, TableAccess, TableAction, TargetError};

fn access(statement: StatementKind, needs: &[(StatementKind, &str)]) -> SqlAccess {
    SqlAccess {
        statement,
        needs: set(needs),
        returns_rows: false,
    }
}

fn opinion(tables: &[(TableAction, &str, &str)]) -> SqliteOpinion {
    SqliteOpinion {
        statements: 1,
        tables: tables
            .iter()
            .map(|(action, database, table)| TableAccess {
                action: *action,
                database: database.to_string(),
                table: table.to_string(),
                index: None,
            })
            .collect(),
        ..SqliteOpinion::default()
    }
}

#[track_caller]
fn denied(access: &SqlAccess, opinion: &SqliteOpinion, table: Option<&str>) -> String {
    let err = check_second_opinion(access, opinion).expect_err("a disagreement");
    assert_eq!(err.table.as_deref(), table);
    let message = err.to_string();
    assert!(
        message.contains("the SQL analyzer and SQLite disagree"),
        "{message}"
    );
    message
}

#[test]
fn a_table_sqlite_reads_that_the_analyzer_missed_is_a_disagreement() {
    let analyzer = access(Select, &[(Select, "invoices")]);
    assert_eq!(
        check_second_opinion(
            &analyzer,
            &opinion(&[(TableAction::Read, "main", "Invoices")])
        ),
        Ok(())
    );
    let message = denied(
        &analyzer,
        &opinion(&[
            (TableAction::Read, "main", "invoices"),
            (TableAction::Read, "main", "secrets"),
        ]),
        Some("secrets"),
    );
    assert!(
        message.contains("SQLite reads table `secrets`"),
        "{message}"
    );
}

#[test]
fn writes_must_match_the_analyzers_kind() {
    let analyzer = access(Update, &[(Update, "invoices"), (Select, "payments")]);
    // An update reads its own target; reading a table it only selects is fine too.
    let fine = opinion(&[
        (TableAction::Update, "main", "invoices"),
        (TableAction::Read, "main", "invoices"),
        (TableAction::Read, "main", "payments"),
    ]);
    assert_eq!(check_second_opinion(&analyzer, &fine), Ok(()));
    for action in [
        TableAction::Insert,
        TableAction::Delete,
        TableAction::Update,
        TableAction::Schema,
    ] {
        let message = denied(
            &analyzer,
            &opinion(&[(action, "main", "payments")]),
            Some("payments"),
        );
        assert!(message.contains("table `payments`"), "{message}");
    }
    let upsert = access(Insert, &[(Insert, "t"), (Update, "t"), (Delete, "t")]);
    let all = opinion(&[
        (TableAction::Insert, "main", "t"),
        (TableAction::Update, "main", "t"),
        (TableAction::Delete, "main", "t"),
    ]);
    assert_eq!(check_second_opinion(&upsert, &all), Ok(()));
}

#[test]
fn names_compare_as_the_analyzer_normalizes_them() {
    let qualified = access(
        Select,
        &[(Select, "main.invoices"), (Select, "\"odd.name\"")],
    );
    let sqlite = opinion(&[
        (TableAction::Read, "main", "INVOICES"),
        (TableAction::Read, "main", "odd.name"),
    ]);
    assert_eq!(check_second_opinion(&qualified, &sqlite), Ok(()));
    // A name with a dot is not the qualified name it looks like.
    let dotted = access(Select, &[(Select, "odd.name")]);
    denied(
        &dotted,
        &opinion(&[(TableAction::Read, "main", "odd.name")]),
        Some("\"odd.name\""),
    );
}

#[test]
fn sqlite_bookkeeping_temp_tables_and_table_functions_are_not_compared() {
    let analyzer = access(Insert, &[(Insert, "t")]);
    let sqlite = opinion(&[
        (TableAction::Insert, "main", "t"),
        (TableAction::Update, "main", "sqlite_sequence"),
        (TableAction::Read, "main", "sqlite_master"),
        (TableAction::Insert, "main", "sqlite_schema"),
        (TableAction::Read, "temp", "scratch"),
        (TableAction::Insert, "temp", "scratch"),
        (TableAction::Read, "main", "json_each"),
    ]);
    assert_eq!(check_second_opinion(&analyzer, &sqlite), Ok(()));
    // A table function is only ever read.
    denied(
        &analyzer,
        &opinion(&[(TableAction::Delete, "main", "json_each")]),
        Some("json_each"),
    );
    // Other bookkeeping-looking names are tables like any other.
    denied(
        &analyzer,
        &opinion(&[(TableAction::Read, "main", "sqlite_stat1")]),
        Some("sqlite_stat1"),
    );
}

#[test]
fn statement_counts_functions_and_other_actions_are_compared() {
    let analyzer = access(Select, &[(Select, "t")]);
    let mut two = opinion(&[(TableAction::Read, "main", "t")]);
    two.statements = 2;
    assert!(denied(&analyzer, &two, None).contains("SQLite finds 2 statements"));
    let mut none = opinion(&[]);
    none.statements = 0;
    denied(&analyzer, &none, None);

    let mut functions = opinion(&[]);
    functions.functions = BTreeSet::from(["lower".to_string(), "count".to_string()]);
    assert_eq!(check_second_opinion(&analyzer, &functions), Ok(()));
    functions.functions.insert("load_extension".to_string());
    assert!(denied(&analyzer, &functions, None).contains("`load_extension`"));

    let mut pragma = opinion(&[]);
    pragma
        .other
        .insert("action 19 (foreign_keys, -)".to_string());
    assert!(denied(&analyzer, &pragma, None).contains("action 19"));
}

/// What SQLite reports for real statements the analyzer accepts, on the generator's
/// schema: the comparison agrees, and none of the schema's own doings count.
#[test]
fn real_statements_agree_with_sqlite() {
    let mut oracle = Oracle::new();
    for sql in [
        "SELECT * FROM invoices",
        "SELECT count(*) FROM payments",
        "SELECT * FROM main.invoices JOIN \"Mixed\" AS m ON m.id = invoices.n",
        // The foreign key's parent lookup reads `invoices`: the schema's doing.
        "INSERT INTO payments (id, n, v) VALUES (1, 2, 'x')",
        // ... and its cascade deletes from `payments`.
        "DELETE FROM invoices WHERE id = 1",
        // AUTOINCREMENT writes sqlite_sequence.
        "INSERT INTO \"odd.name\" (n, v) VALUES (1, 'x')",
        "INSERT INTO invoices (id, n, v) VALUES (1, 2, 'x') ON CONFLICT (id) DO UPDATE SET n = excluded.n",
        "REPLACE INTO secrets (id, n, v) VALUES (1, 2, 'x') RETURNING *",
        "UPDATE invoices SET n = p.n FROM payments AS p WHERE p.id = invoices.id",
        "WITH secrets(id, n, v) AS (SELECT * FROM invoices) SELECT * FROM secrets",
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 3) SELECT * FROM r",
        "SELECT value FROM json_each('[1, 2]')",
        "CREATE TABLE fresh (id INTEGER PRIMARY KEY, n INTEGER REFERENCES invoices (id))",
        "CREATE INDEX invoices_n ON invoices (n)",
        "DROP INDEX payments_n",
        "ALTER TABLE secrets ADD COLUMN w TEXT",
        "CREATE TEMP TABLE scratch (x)",
        // Found by the differential test: a CTE named like a table, read without a column,
        // is reported under the table's name; it is not the table.
        "WITH secrets(id, n, v) AS (SELECT 1, 2, 3) SELECT EXISTS (SELECT 1 FROM invoices CROSS JOIN secrets)",
        // ... and the program that settles it is the one prepared, foreign keys off.
        "WITH invoices(id, n, v) AS (SELECT 1, 2, 3) UPDATE payments SET n = 1 WHERE (SELECT 1 FROM invoices)",
    ] {
        let analyzer = lite(sql);
        let opinion = oracle.opinion(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(opinion.statements, 1, "{sql}");
        assert_eq!(
            check_second_opinion(&analyzer, &opinion),
            Ok(()),
            "{sql}: {opinion:?}"
        );
    }
    // A table read without a column is still a read of it.
    let opinion = oracle.opinion("SELECT count(*) FROM secrets").unwrap();
    assert!(
        opinion
            .tables
            .iter()
            .any(|t| t.table == "secrets" && t.action == TableAction::Read),
        "{opinion:?}"
    );
    let opinion = oracle.opinion("SELECT * FROM payments").unwrap();
    assert!(
        opinion
            .tables
            .iter()
            .any(|t| t.table == "payments" && t.action == TableAction::Read),
        "{opinion:?}"
    );
}

#[test]
fn the_second_opinion_sees_every_statement_of_the_text() {
    let mut oracle = Oracle::new();
    let opinion = oracle
        .opinion("SELECT * FROM invoices; DELETE FROM secrets")
        .unwrap();
    assert_eq!(opinion.statements, 2);
    assert!(
        opinion
            .tables
            .iter()
            .any(|t| t.table == "secrets" && t.action == TableAction::Delete)
    );
    // Trailing comments and semicolons are no statement.
    let opinion = oracle.opinion("SELECT 1; -- done\n;").unwrap();
    assert_eq!(opinion.statements, 1);
}

#[test]
fn a_statement_sqlite_cannot_prepare_is_a_prepare_error_and_changes_nothing() {
    let mut oracle = Oracle::new();
    let err = oracle.opinion("SELECT * FROM no_such_table").unwrap_err();
    assert!(
        matches!(&err, TargetError::Prepare(m) if m.contains("no such table")),
        "{err:?}"
    );
    // The authorizer is gone and foreign keys are enforced again after the opinion.
    oracle.opinion("SELECT 1").unwrap();
    let violation = oracle.execute("INSERT INTO payments (id, n, v) VALUES (7, 999, 'x')");
    assert!(
        violation.is_err(),
        "the foreign key must still hold: {violation:?}"
    );
    assert_eq!(
        oracle
            .execute("INSERT INTO invoices (id, n, v) VALUES (5, 1, 'x')")
            .unwrap(),
        1
    );
}

/// Text that SQLite and sqlparser might read differently (comments, quotes, dollar signs,
/// brackets): the analyzer refuses it, or SQLite agrees with what it accepted.
#[test]
fn tricky_text_is_refused_or_agreed_on() {
    let mut oracle = Oracle::new();
    for sql in [
        "SELECT 1 /* /* */ ; DELETE FROM secrets; /* */",
        "SELECT $$ ; DELETE FROM secrets; $$",
        "SELECT $a$ ; DELETE FROM secrets; $a$",
        "SELECT '\\' , (SELECT v FROM secrets) --'",
        "SELECT \"v\" FROM invoices WHERE \"secrets\" = 1",
        "SELECT [v] FROM [secrets]",
        "SELECT `v` FROM `secrets`",
        "SELECT * FROM invoices -- \r DELETE FROM secrets",
        "SELECT * FROM invoices /* unterminated",
        "SELECT * FROM invoices WHERE v = 'it''s' OR (SELECT 1 FROM secrets)",
        "SELECT * FROM invoices INDEXED BY payments_n",
        "SELECT * FROM secrets()",
        "SELECT * FROM main.secrets AS invoices",
        "SELECT * FROM invoices NATURAL JOIN secrets",
        "WITH invoices AS MATERIALIZED (SELECT * FROM secrets) SELECT * FROM invoices",
        "SELECT * FROM (invoices JOIN secrets ON 1)",
        "SELECT v FROM invoices WINDOW w AS (ORDER BY (SELECT 1 FROM secrets))",
        "SELECT v COLLATE nocase FROM invoices ORDER BY (SELECT n FROM secrets)",
        "INSERT INTO invoices DEFAULT VALUES RETURNING (SELECT v FROM secrets)",
        "UPDATE invoices SET (n, v) = (SELECT n, v FROM secrets)",
        "SELECT * FROM invoices WHERE n MATCH (SELECT v FROM secrets)",
        "SELECT ?1, :a, @b, $c FROM invoices",
    ] {
        let Ok(analyzer) = super::super::analyze(sql, super::super::SqlDialect::Sqlite) else {
            continue;
        };
        if let Ok(opinion) = oracle.opinion(sql) {
            assert_eq!(
                check_second_opinion(&analyzer, &opinion),
                Ok(()),
                "{sql}: analyzer {:?}, SQLite {opinion:?}",
                analyzer.needs
            );
        }
    }
}

/// A plugin whose statements are all denied makes opinions back to back with nothing run
/// between them; the connection's worker must keep up (it once stalled after a few
/// hundred).
#[test]
fn back_to_back_opinions_do_not_stall_the_connection() {
    let mut oracle = Oracle::new();
    for _ in 0..1000 {
        oracle.opinion("SELECT * FROM secrets").unwrap();
    }
    assert_eq!(oracle.execute("DELETE FROM secrets").unwrap(), 0);
}
