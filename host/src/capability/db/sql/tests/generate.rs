//! A grammar-driven generator of SQL over a small schema (see [`SCHEMA`]): SELECT, INSERT,
//! UPDATE, DELETE, WITH (CTEs that shadow real table names), subqueries, joins, quoted and
//! schema-qualified names, comments, several statements, plus mutated and random text.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

/// The schema the generated SQL is written against; every table has the columns
/// `id`, `n` and `v`, so any table can stand in for any other.
pub(super) const SCHEMA: &str = "
    CREATE TABLE invoices (id INTEGER PRIMARY KEY, n INTEGER, v TEXT);
    CREATE TABLE payments (id INTEGER PRIMARY KEY, n INTEGER REFERENCES invoices (id) ON DELETE CASCADE, v TEXT);
    CREATE TABLE secrets (id INTEGER PRIMARY KEY, n INTEGER, v TEXT);
    CREATE TABLE \"Mixed\" (id INTEGER PRIMARY KEY, n INTEGER, v TEXT);
    CREATE TABLE \"odd.name\" (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER, v TEXT);
    CREATE INDEX payments_n ON payments (n);
";

/// Ways to name a real table: plain, quoted, in other case, schema-qualified.
const TABLES: &[&str] = &[
    "invoices",
    "\"invoices\"",
    "INVOICES",
    "main.invoices",
    "\"main\".\"invoices\"",
    "payments",
    "Payments",
    "secrets",
    "main.secrets",
    "\"Mixed\"",
    "mixed",
    "\"odd.name\"",
    "main.\"odd.name\"",
];

/// CTE names: some shadow real tables, one does not.
const CTE_NAMES: &[&str] = &["invoices", "secrets", "payments", "c1", "\"Mixed\""];

fn pick(items: &'static [&'static str]) -> BoxedStrategy<String> {
    proptest::sample::select(items)
        .prop_map(str::to_string)
        .boxed()
}

/// A table, or (inside a WITH) any name a CTE may have.
fn relation() -> BoxedStrategy<String> {
    prop_oneof![3 => pick(TABLES), 1 => pick(CTE_NAMES)].boxed()
}

/// A scalar expression over the columns `q.id`, `q.n`, `q.v` (`q` may be empty).
fn expr(depth: u32, q: &'static str) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        pick(&["1", "0", "NULL", "'x'", "?1", "-2.5", "X'00'"]),
        pick(&["id", "n", "v"]).prop_map(move |c| format!("{q}{c}")),
    ]
    .boxed();
    if depth == 0 {
        return leaf;
    }
    let inner = expr(depth - 1, q);
    prop_oneof![
        3 => leaf,
        2 => (inner.clone(), pick(&["+", "=", "<>", "AND", "OR", "||", "<"]), inner.clone())
            .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        1 => (pick(&["coalesce", "abs", "length", "lower", "typeof", "max"]), inner.clone())
            .prop_map(|(f, a)| format!("{f}({a})")),
        1 => (inner.clone(), inner.clone(), inner.clone())
            .prop_map(|(a, b, c)| format!("CASE WHEN {a} THEN {b} ELSE {c} END")),
        1 => scalar_subquery(depth - 1).prop_map(|s| format!("({s})")),
        1 => select(depth - 1).prop_map(|s| format!("EXISTS ({s})")),
        1 => (inner, scalar_subquery(depth - 1)).prop_map(|(a, s)| format!("{a} IN ({s})")),
    ]
    .boxed()
}

/// A one-column query.
fn scalar_subquery(depth: u32) -> BoxedStrategy<String> {
    (
        expr(0, ""),
        relation(),
        proptest::option::of(expr(depth, "")),
    )
        .prop_map(|(e, t, w)| match w {
            Some(w) => format!("SELECT {e} FROM {t} WHERE {w} LIMIT 1"),
            None => format!("SELECT {e} FROM {t}"),
        })
        .boxed()
}

/// A FROM clause whose columns are reachable as `q.id`, `q.n`, `q.v`.
fn from(depth: u32) -> BoxedStrategy<(String, &'static str)> {
    let single = relation().prop_map(|t| (format!("{t} AS j1"), "j1."));
    let join = (
        relation(),
        pick(&["JOIN", "LEFT JOIN", "CROSS JOIN", ","]),
        relation(),
    )
        .prop_map(|(a, how, b)| match how.as_str() {
            "," | "CROSS JOIN" => (format!("{a} AS j1 {how} {b} AS j2"), "j1."),
            _ => (format!("{a} AS j1 {how} {b} AS j2 ON j1.id = j2.n"), "j2."),
        });
    if depth == 0 {
        return prop_oneof![single, join].boxed();
    }
    let derived = select(depth - 1).prop_map(|s| (format!("({s}) AS j1"), "j1."));
    prop_oneof![2 => single, 1 => join, 1 => derived].boxed()
}

/// A query with the columns `id`, `n`, `v`.
pub(super) fn select(depth: u32) -> BoxedStrategy<String> {
    let body = from(depth).prop_flat_map(move |(from, q)| {
        (
            expr(depth.min(1), q),
            proptest::option::of(expr(depth, q)),
            pick(&["", " ORDER BY 1", " LIMIT 3", " GROUP BY 1"]),
        )
            .prop_map(move |(first, filter, tail)| {
                let filter = filter.map(|w| format!(" WHERE {w}")).unwrap_or_default();
                format!("SELECT {first} AS id, {q}n AS n, {q}v AS v FROM {from}{filter}{tail}")
            })
    });
    let body = body.boxed();
    if depth == 0 {
        return body;
    }
    let compound = (
        body.clone(),
        pick(&["UNION", "UNION ALL", "EXCEPT", "INTERSECT"]),
        body.clone(),
    )
        .prop_map(|(a, op, b)| format!("{a} {op} {b}"));
    prop_oneof![3 => body, 1 => compound].boxed()
}

/// `WITH ...` (maybe RECURSIVE), its CTEs named like real tables or not.
fn with(depth: u32) -> BoxedStrategy<String> {
    let cte = (pick(CTE_NAMES), select(depth))
        .prop_map(|(name, body)| format!("{name}(id, n, v) AS ({body})"));
    (any::<bool>(), proptest::collection::vec(cte, 1..3))
        .prop_map(|(recursive, ctes)| {
            let recursive = if recursive { "RECURSIVE " } else { "" };
            format!("WITH {recursive}{} ", ctes.join(", "))
        })
        .boxed()
}

fn insert(depth: u32) -> BoxedStrategy<String> {
    let source = prop_oneof![
        (expr(depth, ""), expr(0, "")).prop_map(|(a, b)| format!("VALUES ({a}, {b}, 'v')")),
        select(depth),
        Just("DEFAULT VALUES".to_string()),
    ];
    (
        pick(&[
            "INSERT INTO",
            "INSERT OR REPLACE INTO",
            "REPLACE INTO",
            "INSERT OR IGNORE INTO",
        ]),
        pick(TABLES),
        source,
        pick(&[
            "",
            " ON CONFLICT DO NOTHING",
            " ON CONFLICT (id) DO UPDATE SET n = excluded.n",
            " RETURNING *",
            " RETURNING id",
        ]),
    )
        .prop_map(|(verb, table, source, tail)| {
            // An upsert after `SELECT` needs a WHERE to parse unambiguously in SQLite.
            let source = if tail.contains("ON CONFLICT") && source.starts_with("SELECT") {
                format!("{source} WHERE true")
            } else {
                source
            };
            let columns = if source == "DEFAULT VALUES" {
                ""
            } else {
                " (id, n, v)"
            };
            let tail = if source == "DEFAULT VALUES" && tail.contains("ON CONFLICT") {
                ""
            } else {
                &tail
            };
            format!("{verb} {table}{columns} {source}{tail}")
        })
        .boxed()
}

fn update(depth: u32) -> BoxedStrategy<String> {
    (
        pick(&["UPDATE", "UPDATE OR REPLACE", "UPDATE OR IGNORE"]),
        pick(TABLES),
        expr(depth, ""),
        proptest::option::of(relation()),
        proptest::option::of(expr(depth, "")),
        pick(&["", " RETURNING *", " RETURNING n"]),
    )
        .prop_map(|(verb, table, value, from, filter, tail)| {
            let from = from
                .map(|f| format!(" FROM {f} AS src"))
                .unwrap_or_default();
            let filter = filter.map(|w| format!(" WHERE {w}")).unwrap_or_default();
            format!("{verb} {table} SET n = {value}{from}{filter}{tail}")
        })
        .boxed()
}

fn delete(depth: u32) -> BoxedStrategy<String> {
    (
        pick(TABLES),
        proptest::option::of(expr(depth, "")),
        pick(&["", " RETURNING *"]),
    )
        .prop_map(|(table, filter, tail)| {
            let filter = filter.map(|w| format!(" WHERE {w}")).unwrap_or_default();
            format!("DELETE FROM {table}{filter}{tail}")
        })
        .boxed()
}

/// One statement, maybe under a WITH.
pub(super) fn statement() -> BoxedStrategy<String> {
    let depth = 2;
    let plain = prop_oneof![
        3 => select(depth),
        2 => insert(1),
        2 => update(1),
        2 => delete(1),
    ];
    (proptest::option::of(with(1)), plain)
        .prop_map(|(with, plain)| format!("{}{plain}", with.unwrap_or_default()))
        .boxed()
}

/// A statement with comments between some of its words, maybe followed by another.
pub(super) fn sql() -> BoxedStrategy<String> {
    (
        statement(),
        any::<u64>(),
        proptest::option::weighted(0.1, statement()),
    )
        .prop_map(|(statement, seed, second)| {
            let mut out = sprinkle_comments(&statement, seed);
            if let Some(second) = second {
                out.push_str("; ");
                out.push_str(&second);
            }
            out
        })
        .boxed()
}

/// Replaces some spaces with comments, chosen by the bits of `seed`.
fn sprinkle_comments(sql: &str, seed: u64) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut bits = seed;
    let mut in_quote = false;
    for c in sql.chars() {
        if c == '\'' {
            in_quote = !in_quote;
        }
        if c == ' ' && !in_quote && bits != 0 {
            match bits & 7 {
                1 => out.push_str(" /* ; DROP TABLE secrets */ "),
                2 => out.push_str(" -- secrets\n"),
                _ => out.push(' '),
            }
            bits >>= 3;
        } else {
            out.push(c);
        }
    }
    out
}

/// Valid SQL with random edits: bytes dropped, inserted or repeated.
pub(super) fn mutated() -> BoxedStrategy<String> {
    let edit = (
        any::<proptest::sample::Index>(),
        0u8..4,
        pick(&[
            "'", "\"", ";", "(", ")", "--", "/*", "$$", "`", "[", "\0", "é", "secrets",
        ]),
    );
    (statement(), proptest::collection::vec(edit, 1..6))
        .prop_map(|(sql, edits)| {
            let mut chars: Vec<char> = sql.chars().collect();
            for (at, how, text) in edits {
                let i = at.index(chars.len() + 1);
                match how {
                    0 if i < chars.len() => {
                        chars.remove(i);
                    }
                    1 if i < chars.len() => {
                        let c = chars[i];
                        chars.insert(i, c);
                    }
                    _ => {
                        for (k, c) in text.chars().enumerate() {
                            chars.insert(i + k, c);
                        }
                    }
                }
            }
            chars.into_iter().collect()
        })
        .boxed()
}

/// Any text at all, biased towards SQL's punctuation.
pub(super) fn garbage() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,80}",
        proptest::collection::vec(
            pick(&[
                "SELECT", "FROM", "WITH", "(", ")", ",", ";", "'", "\"", "x", "1", " ", "--", "/*",
                "*/", "$1", "?", "UNION", "secrets", "INSERT", "INTO", "VALUES"
            ]),
            0..40
        )
        .prop_map(|words| words.join(" ")),
    ]
    .boxed()
}
