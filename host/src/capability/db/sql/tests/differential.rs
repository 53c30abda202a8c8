//! The analyzer against SQLite: for every generated statement the analyzer accepts (and
//! so a grant of exactly its needs would allow), every table SQLite's authorizer reports
//! must be among the analyzer's, on a real SQLite database with the generator's schema.

use std::cell::RefCell;

use proptest::strategy::{BoxedStrategy, ValueTree};
use proptest::test_runner::{TestCaseError, TestRunner};

use super::super::{SqlDialect, analyze, check_second_opinion};
use super::fuzz::fuzz_config;
use super::generate;
use super::oracle::Oracle;

/// `Some(disagreement)` when SQLite prepares a statement the analyzer accepted and
/// touches something the analyzer did not report.
fn disagreement(oracle: &mut Oracle, sql: &str) -> Option<String> {
    let access = analyze(sql, SqlDialect::Sqlite).ok()?;
    // A statement SQLite cannot prepare cannot run either.
    let opinion = oracle.opinion(sql).ok()?;
    check_second_opinion(&access, &opinion)
        .err()
        .map(|d| format!("{d}\n  analyzer: {:?}\n  sqlite: {opinion:?}", access.needs))
}

/// Runs the comparison on `cases` from `strategy`, one oracle for all of them.
fn differential(strategy: BoxedStrategy<String>) {
    let oracle = RefCell::new(Oracle::new());
    let mut runner = TestRunner::new(fuzz_config());
    let outcome = runner.run(&strategy, |sql| {
        match disagreement(&mut oracle.borrow_mut(), &sql) {
            Some(problem) => Err(TestCaseError::fail(format!("{sql}\n{problem}"))),
            None => Ok(()),
        }
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[test]
fn sqlite_touches_no_table_the_analyzer_missed() {
    differential(generate::sql());
}

#[test]
fn sqlite_touches_no_table_the_analyzer_missed_in_mutated_sql() {
    differential(generate::mutated());
}

/// The generator is worth something only if SQLite prepares much of what it writes and
/// the analyzer accepts it: a fixed sample must reach both sides of the comparison.
#[test]
fn the_generator_reaches_sqlite() {
    let mut runner = TestRunner::deterministic();
    let strategy = generate::statement();
    let mut oracle = Oracle::new();
    let (mut accepted, mut prepared) = (0, 0);
    for _ in 0..200 {
        let sql = proptest::strategy::Strategy::new_tree(&strategy, &mut runner)
            .unwrap()
            .current();
        if let Ok(access) = analyze(&sql, SqlDialect::Sqlite) {
            accepted += 1;
            if let Ok(opinion) = oracle.opinion(&sql) {
                prepared += 1;
                assert_eq!(check_second_opinion(&access, &opinion), Ok(()), "{sql}");
            }
        }
    }
    assert!(
        accepted >= 150,
        "the analyzer accepted only {accepted} of 200"
    );
    assert!(
        prepared >= 60,
        "SQLite prepared only {prepared} of {accepted} accepted"
    );
}
