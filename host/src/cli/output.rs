//! Terminal output: colour only on a terminal and never with NO_COLOR (anstream decides),
//! JSON for scripts, errors on stderr.

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

pub const OK: Style = AnsiColor::Green.on_default().bold();
pub const FAIL: Style = AnsiColor::Red.on_default().bold();
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
pub const DIM: Style = Style::new().dimmed();
pub const BOLD: Style = Style::new().bold();

pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .try_init();
}

pub fn error(message: &str) {
    anstream::eprintln!("{FAIL}error{FAIL:#}: {message}");
}

pub fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => error(&format!("cannot encode JSON output: {e}")),
    }
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether to draw colour on stderr (used by diagnostics rendered outside anstream).
pub fn stderr_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn status_style(status: &str) -> Style {
    match status {
        "succeeded" | "intact" | "rolled-back" => OK,
        "failed" | "broken" | "rollback-failed" => FAIL,
        "skipped" | "running" | "awaiting-approval" | "interrupted" => WARN,
        _ => DIM,
    }
}
