//! Load-time errors in a TOML file (a runbook, a plugin manifest or `runbook.toml`):
//! where they are and how they are shown to a person (miette snippets) or to a program
//! (`line`/`column`).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use serde::Serialize;

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file name as given to the parser.
    pub file: String,
    pub message: String,
    pub help: Option<String>,
    /// Byte range in the file text. `None` only when the file could not be read at all.
    pub span: Option<Range<usize>>,
    /// 1-based line of the span start.
    pub line: Option<usize>,
    /// 1-based column of the span start, counted in characters.
    pub column: Option<usize>,
}

/// Every problem found in one file, with the text they point into.
///
/// Validation collects rather than stops at the first error, so that a runbook author
/// fixes a file in one round trip.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    source_name: String,
    source: Arc<str>,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(source_name: &str, source: &str) -> Self {
        Diagnostics {
            source_name: source_name.to_string(),
            source: Arc::from(source),
            items: Vec::new(),
        }
    }

    /// A file-level failure that has no position, such as an unreadable file.
    pub fn without_source(source_name: &str, message: impl Into<String>) -> Self {
        let mut d = Diagnostics::new(source_name, "");
        d.items.push(Diagnostic {
            file: source_name.to_string(),
            message: message.into(),
            help: None,
            span: None,
            line: None,
            column: None,
        });
        d
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, message.into(), None);
    }

    pub fn error_with_help(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(span, message.into(), Some(help.into()));
    }

    fn push(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        let span = self.clamp(span);
        let (line, column) = line_column(&self.source, span.start);
        self.items.push(Diagnostic {
            file: self.source_name.clone(),
            message,
            help,
            span: Some(span),
            line: Some(line),
            column: Some(column),
        });
    }

    /// Spans come from several parsers; a span that is out of range or splits a character
    /// would make the snippet renderer fail, so it is pulled back onto the text.
    fn clamp(&self, span: Range<usize>) -> Range<usize> {
        let len = self.source.len();
        let mut start = span.start.min(len);
        let mut end = span.end.clamp(start, len);
        while !self.source.is_char_boundary(start) {
            start -= 1;
        }
        while !self.source.is_char_boundary(end) {
            end += 1;
        }
        start..end
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    pub fn source_text(&self) -> &str {
        &self.source
    }

    /// Keeps the report in file order, which is the order an author reads and fixes it.
    pub(crate) fn sort(&mut self) {
        self.items
            .sort_by_key(|d| d.span.as_ref().map(|s| (s.start, s.end)));
        self.items.dedup();
    }

    /// `Ok(value)` when nothing was reported.
    pub(crate) fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.items.is_empty() {
            Ok(value)
        } else {
            self.sort();
            Err(self)
        }
    }

    /// The diagnostics as a JSON array (`file`, `message`, `help`, `span`, `line`,
    /// `column`), for `--json` output.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.items).unwrap_or_else(|_| serde_json::Value::Array(Vec::new()))
    }

    /// For a reader that gave up: what was reported, and never an empty list.
    pub(crate) fn into_failure(mut self, fallback: &str) -> Diagnostics {
        if self.items.is_empty() {
            self.error(0..0, fallback);
        }
        self.sort();
        self
    }

    /// Snippets with `file:line:column` and the offending text underlined. Without colour
    /// the output is plain text (no ANSI escapes), suitable for logs and tests.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_links(false);
        let named = NamedSource::new(&self.source_name, Arc::clone(&self.source));
        let mut out = String::new();
        for item in &self.items {
            let report = Report {
                item,
                source: &named,
            };
            let mut one = String::new();
            if item.span.is_some() && handler.render_report(&mut one, &report).is_ok() {
                out.push_str(&one);
            } else {
                out.push_str(&plain_line(item));
                out.push('\n');
            }
        }
        let n = self.items.len();
        out.push_str(&format!(
            "{n} error{} in {}\n",
            if n == 1 { "" } else { "s" },
            self.source_name
        ));
        out
    }
}

impl fmt::Display for Diagnostics {
    /// One `file:line:column: message` line per problem, the shape compilers use, so
    /// editors and `grep` understand it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(&plain_line(item))?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

fn plain_line(item: &Diagnostic) -> String {
    let mut s = match (item.line, item.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", item.file, item.message),
        _ => format!("{}: {}", item.file, item.message),
    };
    if let Some(help) = &item.help {
        s.push_str(&format!(" (help: {help})"));
    }
    s
}

/// 1-based line and character column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Adapter so one [`Diagnostic`] can go through miette's renderer.
struct Report<'a> {
    item: &'a Diagnostic,
    source: &'a NamedSource<Arc<str>>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.item, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.item.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.item
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.item.span.clone()?;
        let len = span.end - span.start;
        // No label text: the message above already says what is wrong.
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(None, (span.start, len)),
        )))
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::diagnostic;
    use crate::spec::runbook::fixtures::{HEAD, catalog};
    use crate::spec::runbook::parse_runbook;

    #[test]
    fn rendered_output_has_positions_and_underlines_and_no_ansi() {
        let text = format!("{HEAD}[[steps]]\nid = \"a\"\nplugin = \"webhook-impct\"\n");
        let err = parse_runbook("file.toml", &text, &catalog()).unwrap_err();
        let out = err.render(false);
        assert!(out.contains("file.toml:5:10"), "{out}");
        assert!(out.contains("unknown plugin \"webhook-impct\""), "{out}");
        assert!(out.contains("did you mean \"webhook-impact\"?"), "{out}");
        assert!(out.contains("plugin = \"webhook-impct\""), "{out}");
        // The underline sits exactly under the value `"webhook-impct"`.
        let lines: Vec<&str> = out.lines().collect();
        let source_line = lines
            .iter()
            .position(|l| l.contains("plugin = \"webhook-impct\""))
            .unwrap_or_else(|| panic!("no snippet in:\n{out}"));
        let underline: Vec<char> = lines[source_line + 1].chars().collect();
        let source: Vec<char> = lines[source_line].chars().collect();
        let value_start = source.iter().position(|c| *c == '"').unwrap();
        assert_eq!(
            underline[value_start..value_start + "\"webhook-impct\"".len()]
                .iter()
                .collect::<String>(),
            "─".repeat("\"webhook-impct\"".len()),
            "{out}"
        );
        assert!(!out.contains('\x1b'), "{out:?}");
        assert!(out.ends_with("1 error in file.toml\n"), "{out}");

        let colored = err.render(true);
        assert!(colored.contains('\x1b'));

        // Display is the compact one-line-per-error form.
        assert_eq!(
            err.to_string(),
            "file.toml:5:10: unknown plugin \"webhook-impct\" (help: did you mean \"webhook-impact\"?)"
        );
        let json = err.to_json();
        assert_eq!(json[0]["line"], 5);
        assert_eq!(json[0]["column"], 10);
        assert_eq!(json[0]["file"], "file.toml");
    }

    #[test]
    fn rendering_survives_odd_positions() {
        // Error at end of input, multi-byte text before the error, and an empty file.
        for text in [
            "name = \"é\"\ndescription = \"ü\"\nx = ",
            "",
            "\u{feff}",
            "[[steps]]\nid = 3",
        ] {
            let err = parse_runbook("odd.toml", text, &catalog()).unwrap_err();
            let out = err.render(false);
            assert!(out.contains("odd.toml"), "{out}");
            assert!(!err.is_empty());
        }
        let text = format!(
            "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"echo\"\ninput = {{ \"é\" = \"{{{{ nope }}}}\" }}\n"
        );
        let err = parse_runbook("odd.toml", &text, &catalog()).unwrap_err();
        // Columns count characters, not bytes.
        let d = &err.items()[0];
        assert_eq!((d.line, d.column), (Some(6), Some(17)), "{err}");
        assert_eq!(diagnostic::line_column("aé b", 4), (1, 4));
    }
}
