//! The analyzer on any text: it answers (accepts or refuses) and never panics, for
//! generated SQL, mutated SQL and random text, under both dialects.

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::super::{SqlDialect, analyze_unguarded};
use super::generate;

/// Cases per property: `RUNBOOK_FUZZ_CASES`, or a default that keeps the fuzz tests to
/// seconds in `cargo test` (CI can run more for a bounded time).
pub(super) fn fuzz_config() -> Config {
    let cases = std::env::var("RUNBOOK_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        // Failures are kept as unit tests by hand, not as files in the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Calls the analyzer without its panic guard, so a panic fails the test.
fn answers(sql: &str) {
    for dialect in [SqlDialect::Sqlite, SqlDialect::Postgres] {
        let _ = analyze_unguarded(sql, dialect);
    }
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn generated_sql_never_panics(sql in generate::sql()) {
        answers(&sql);
    }

    #[test]
    fn mutated_sql_never_panics(sql in generate::mutated()) {
        answers(&sql);
    }

    #[test]
    fn random_text_never_panics(sql in generate::garbage()) {
        answers(&sql);
    }
}
