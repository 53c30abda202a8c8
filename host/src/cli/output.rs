//! Terminal output: colour only on a terminal and never with NO_COLOR (anstream decides),
//! JSON for scripts, errors on stderr, and every value shown to a person escaped
//! ([`say!`], [`Shown`]) so text from a plugin, a runbook or the state store cannot forge
//! a line of output. A closed stdout or stderr (`runbook runs | head -1`) is a normal
//! end of the reader, not an error of the command: writes that fail are dropped, so the
//! command goes on and exits as it would have.

use std::borrow::Cow;
use std::fmt;
use std::io::{IsTerminal, Write};

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

/// Prints a line for a person: like `println!`, with every argument shown through
/// [`Shown`]. Styles are written inline (`{BOLD}…{BOLD:#}`); anything else goes in as an
/// argument, which `cargo xtask lint` checks (an inline `{name}` is a style or `style`).
macro_rules! say {
    () => { $crate::cli::output::out_line(format_args!("")) };
    ($fmt:literal $(, $arg:expr)* $(,)?) => {
        $crate::cli::output::out_line(format_args!($fmt $(, $crate::cli::output::Shown(&$arg))*))
    };
}
pub(crate) use say;

/// [`say!`] without the line end: a prompt, or a progress line to be replaced.
macro_rules! say_inline {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        $crate::cli::output::out(format_args!($fmt $(, $crate::cli::output::Shown(&$arg))*));
        $crate::cli::output::flush();
    }};
}
pub(crate) use say_inline;

/// [`say!`] on stderr.
macro_rules! say_err {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {
        $crate::cli::output::err_line(format_args!($fmt $(, $crate::cli::output::Shown(&$arg))*))
    };
}
pub(crate) use say_err;

/// A value as a person should see it on a terminal: control characters (CR, LF, ESC, …)
/// and Unicode's bidirectional overrides are escaped, so a plugin's audit detail, log line
/// or error cannot start a fake line, move the cursor, recolour the screen or reorder
/// the text after it. Width and alignment (`{:<12}`) apply to the escaped text. JSON
/// output is not shown through this: it stays exact.
pub struct Shown<'a, T: ?Sized>(pub &'a T);

impl<T: fmt::Display + ?Sized> fmt::Display for Shown<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&escape(&self.0.to_string()))
    }
}

impl<T: fmt::Debug + ?Sized> fmt::Debug for Shown<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&escape(&format!("{:?}", self.0)))
    }
}

/// `text` with every control character and bidirectional-formatting character written as
/// an escape (`\n`, `\r`, `\t`, `\u{1b}`, `\u{202e}`); anything else as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        // Bidirectional embeddings, overrides and isolates, and the marks.
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes to stdout (styles stripped unless it is a colour terminal); a failed write (the
/// reader went away) is dropped on purpose, where `print!` would panic.
pub fn out(args: fmt::Arguments<'_>) {
    let _ = anstream::stdout().write_fmt(args);
}

/// [`out`] and a line end.
pub fn out_line(args: fmt::Arguments<'_>) {
    let mut stdout = anstream::stdout().lock();
    let _ = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
}

/// [`out_line`] on stderr.
pub fn err_line(args: fmt::Arguments<'_>) {
    let mut stderr = anstream::stderr().lock();
    let _ = stderr
        .write_fmt(args)
        .and_then(|()| stderr.write_all(b"\n"));
}

/// `1 step`, `2 steps`, `0 errors`, `3 entries`: a count with its noun in English.
pub fn count(n: i64, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

pub fn error(message: &str) {
    say_err!("{FAIL}error{FAIL:#}: {}", message);
}

/// Problems in a file, each with its snippet and caret (miette renders them; the snippet
/// is the file's own text, shown as it is so the caret lines up).
pub fn diagnostics(diagnostics: &crate::spec::Diagnostics) {
    let _ = std::io::stderr().write_all(diagnostics.render(stderr_colour()).as_bytes());
}

/// Makes a prompt or a progress line visible before the program waits.
pub fn flush() {
    let _ = std::io::stdout().flush();
}

/// Erases the progress line the cursor is on (a terminal only).
pub fn clear_line() {
    // Not through anstream: it would strip the erase sequence under NO_COLOR.
    let _ = std::io::stdout().write_all(b"\r\x1b[2K");
}

pub fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        // Plain stdout: JSON is exact, never restyled.
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{text}");
        }
        Err(e) => error(&format!("cannot encode JSON output: {e}")),
    }
}

/// Bytes on stdout exactly as given (a completion script, a manual page): never
/// restyled or escaped, since a shell or `man` reads them, not a person.
pub fn exact(bytes: &[u8]) {
    let _ = std::io::stdout().lock().write_all(bytes);
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

#[cfg(test)]
mod tests {
    use super::{Shown, escape};

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_rest_is_kept() {
        assert_eq!(escape("refund ok"), "refund ok");
        assert_eq!(escape("naïve ünïcode €"), "naïve ünïcode €");
        assert_eq!(
            escape("x\n#42 2026-01-01 alice refund.issued"),
            "x\\n#42 2026-01-01 alice refund.issued"
        );
        assert_eq!(escape("a\rb\tc\u{1b}[2Jd"), "a\\rb\\tc\\u{1b}[2Jd");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("\u{7f}\u{85}"), "\\u{7f}\\u{85}");
    }

    #[test]
    fn counts_take_the_plural_they_need() {
        use super::count;
        assert_eq!(count(1, "step"), "1 step");
        assert_eq!(count(0, "error"), "0 errors");
        assert_eq!(count(2, "entry"), "2 entries");
        assert_eq!(count(3, "day"), "3 days");
    }

    #[test]
    fn width_applies_to_the_escaped_text() {
        assert_eq!(format!("[{:<6}]", Shown(&"a\nb")), "[a\\nb  ]");
        assert_eq!(format!("[{:>4}]", Shown(&7)), "[   7]");
        assert_eq!(format!("{:?}", Shown(&Some("x\ny"))), "Some(\"x\\ny\")");
    }
}
