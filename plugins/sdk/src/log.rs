//! Structured log lines; they land in the step's log in the state store and in the
//! host's `tracing` output.
//!
//! ```no_run
//! use runbook_sdk::log::{self, Level};
//! # let (dimension, rows) = ("api_calls", 12u64);
//! log::info(format!("reset {rows} quotas"));
//! log::log_with(Level::Info, "quotas reset", &[("dimension", &dimension), ("rows", &rows)]);
//! ```

use std::fmt::Display;

use crate::__private::wit::runbook::plugin::log as wit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Log `message` with `fields`; any `Display` value works as a field value.
pub fn log_with(level: Level, message: impl AsRef<str>, fields: &[(&str, &dyn Display)]) {
    let level = match level {
        Level::Trace => wit::Level::Trace,
        Level::Debug => wit::Level::Debug,
        Level::Info => wit::Level::Info,
        Level::Warn => wit::Level::Warn,
        Level::Error => wit::Level::Error,
    };
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_string()))
        .collect();
    wit::log(level, message.as_ref(), &fields);
}

pub fn trace(message: impl AsRef<str>) {
    log_with(Level::Trace, message, &[]);
}

pub fn debug(message: impl AsRef<str>) {
    log_with(Level::Debug, message, &[]);
}

pub fn info(message: impl AsRef<str>) {
    log_with(Level::Info, message, &[]);
}

pub fn warn(message: impl AsRef<str>) {
    log_with(Level::Warn, message, &[]);
}

pub fn error(message: impl AsRef<str>) {
    log_with(Level::Error, message, &[]);
}
