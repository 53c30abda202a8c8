//! Token-level checks, nesting bounds and inputs that must never take the host down.

use super::*;

#[test]
fn escaped_identifiers_cannot_hide_a_function() {
    assert!(matches!(
        pg_err("SELECT U&\"pg\\005fsleep\"(1)"),
        SqlError::Parse(_)
    ));
    assert!(matches!(
        pg_err("SELECT u&\"set\\005fconfig\"('a', 'b', false)"),
        SqlError::Parse(_)
    ));
    // A bitwise AND on a quoted column, written with spaces, is fine.
    pg_needs("SELECT u & \"flags\" FROM t", &[(Select, "t")]);
}

#[test]
fn tokenizer_agrees_with_the_database_on_strings_and_comments() {
    // E-strings use backslash escapes: the string ends before the subquery.
    pg_needs(
        "SELECT E'\\\\' , (SELECT x FROM secrets) --'",
        &[(Select, "secrets")],
    );
    pg_needs(
        "SELECT E'\\'' , (SELECT x FROM secrets) --'",
        &[(Select, "secrets")],
    );
    pg_needs(
        "SELECT e'a\\\\' , (SELECT x FROM secrets) --'",
        &[(Select, "secrets")],
    );
    // Without E, a backslash is an ordinary character.
    pg_needs(
        "SELECT 'a\\' , (SELECT x FROM secrets) --'",
        &[(Select, "secrets")],
    );
    // Postgres ends `--` comments at a carriage return too.
    pg_needs(
        "SELECT 1 -- note\r, (SELECT x FROM secrets)",
        &[(Select, "secrets")],
    );
    // Postgres nests block comments; SQLite does not.
    pg_needs("SELECT 1 /* /* */ , (SELECT x FROM secrets) -- */", &[]);
    lite_needs(
        "SELECT 1 /* /* */ , (SELECT x FROM secrets) -- */",
        &[(Select, "secrets")],
    );
    // sqlparser would read `$1$ ... $1$` as one string; Postgres reads `$1` then SQL.
    assert!(matches!(
        pg_err("SELECT $1$ , (SELECT x FROM secrets) , $1$"),
        SqlError::Parse(_)
    ));
    pg_needs("SELECT $tag$ it's $$ fine $tag$", &[]);
}

#[test]
fn deep_nesting_is_rejected_without_overflowing_the_stack() {
    let too_deep = |sql: String| {
        let err = analyze(&sql, SqlDialect::Postgres).expect_err("too deep");
        assert!(
            matches!(&err, SqlError::Parse(m) if m.contains("nested too deeply")),
            "{err}"
        );
    };
    too_deep(format!("SELECT 1{}", " + 1".repeat(100_000)));
    too_deep(format!(
        "SELECT * FROM t WHERE {}true",
        "a = 1 OR ".repeat(50_000)
    ));
    // The parser builds the chain before it fails, then drops it.
    too_deep(format!("SELECT 1{} +", " + 1".repeat(100_000)));
    too_deep(format!("SELECT (1{}", "::int".repeat(100_000)));
    too_deep(format!("SELECT 1{}", " IS NULL".repeat(100_000)));
    too_deep(format!("SELECT 1{}", "!".repeat(100_000)));
    too_deep(format!("SELECT NULL::int{}", "[]".repeat(100_000)));
    too_deep(format!(
        "SELECT 1, 2{}",
        " UNION SELECT 1, 2".repeat(50_000)
    ));
    // Short chains add up across brackets: 45 levels of 22 additions each.
    let level = format!("({}", "1 + ".repeat(22));
    too_deep(format!("SELECT {}1{}", level.repeat(45), ")".repeat(45)));
    // sqlparser's own recursion limit covers bracket nesting.
    assert!(matches!(
        pg_err(&format!(
            "SELECT {}1{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        )),
        SqlError::Parse(_)
    ));
}

#[test]
fn long_flat_statements_are_fine() {
    let rows = vec!["($1::uuid, 'x', 2.5, NULL)"; 5_000].join(", ");
    pg_needs(&format!("INSERT INTO t VALUES {rows}"), &[(Insert, "t")]);
    let ids = vec!["$1::bigint"; 5_000].join(", ");
    pg_needs(
        &format!("SELECT * FROM t WHERE id IN ({ids})"),
        &[(Select, "t")],
    );
    let conditions = vec!["status = 'x'"; 200].join(" OR ");
    pg_needs(
        &format!("SELECT * FROM t WHERE {conditions}"),
        &[(Select, "t")],
    );
}

#[test]
fn odd_input_never_panics() {
    let mut inputs: Vec<String> = [
        "",
        ";",
        ";;;",
        "SELECT",
        "SELECT (",
        ")))",
        "SELECT * FROM",
        "WITH",
        "WITH a AS (",
        "INSERT INTO",
        "'",
        "\"",
        "$$",
        "/*",
        "--",
        "\0",
        "SELECT \0 FROM t",
        "SELECT 'é' FROM 表",
        "U&\"\"",
        "SELECT * FROM t WHERE a = $",
        "DROP",
        "CREATE TABLE",
        "ALTER TABLE t",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    inputs.push("(".repeat(100_000));
    inputs.push(format!("SELECT {}", "(".repeat(100_000)));
    inputs.push(format!("SELECT {}", "[".repeat(100_000)));
    inputs.push(format!(
        "SELECT * FROM {}",
        "(SELECT * FROM ".repeat(10_000)
    ));
    inputs.push("NOT ".repeat(100_000));
    // A fixed pseudo-random generator keeps the inputs the same on every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> = "SELECT FROM WHERE ()[],;.'\"$?:+-*/|&!~<>=_ab1\\\n\t\r é"
        .chars()
        .collect();
    for _ in 0..300 {
        let len = (next() % 64) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        inputs.push(text);
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        inputs.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    for input in &inputs {
        for dialect in [SqlDialect::Postgres, SqlDialect::Sqlite] {
            let _ = analyze(input, dialect);
        }
    }
    assert!(matches!(pg_err("SELECT"), SqlError::Parse(_)));
    assert!(matches!(pg_err("SELECT * FROM"), SqlError::Parse(_)));
}
