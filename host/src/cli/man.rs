//! `runbook man`: the manual pages (roff, section 1), rendered by clap_mangen from the same
//! command definition as `--help`. A command's closing help text (exit codes,
//! environment) becomes the page's own EXIT STATUS and ENVIRONMENT sections, so a page
//! and `--help` say the same thing from one source.

use std::path::{Path, PathBuf};

use clap::Args;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use super::exit;
use super::output::{self, OK, say};

#[derive(Debug, Args)]
#[command(after_help = "View it with: runbook man | man -l -")]
pub struct ManArgs {
    /// Write runbook.1 and a page per subcommand (runbook-exec.1, runbook-audit-show.1, …)
    /// into this folder instead of printing runbook.1
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the page for `command` (the whole `runbook` command line), or writes it and
/// every subcommand's page into `--dir`.
pub fn man(command: clap::Command, args: ManArgs) -> u8 {
    // The pages name each other (runbook-exec(1)); `help` has no page of its own.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let result = match &args.dir {
        None => render(&command).map(|page| output::exact(&page)),
        Some(dir) => write_pages(&command, dir).map(|written| {
            say!(
                "{OK}wrote{OK:#} {} in {}",
                output::count(written as i64, "manual page"),
                dir.display()
            );
        }),
    };
    match result {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            output::error(&format!("cannot write the manual pages: {e}"));
            exit::FAILED
        }
    }
}

/// `command`'s page and, depth first, its subcommands' pages; how many were written.
fn write_pages(command: &clap::Command, dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut written = 0;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_pages(sub, dir)?;
    }
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name());
    std::fs::write(dir.join(format!("{name}.1")), render(command)?)?;
    Ok(written + 1)
}

/// One page: clap_mangen's sections, with the command's closing help text (exit codes,
/// environment, lint codes) as sections of their own rather than clap_mangen's "EXTRA".
fn render(command: &clap::Command) -> std::io::Result<Vec<u8>> {
    let after_help = command
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    let man = Man::new(command.clone().after_help(None::<&str>));
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    // The sections clap_mangen's own `render` would leave out (it fails on a version
    // section without a version).
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if command.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    closing_sections(&after_help).to_writer(&mut page)?;
    if command.get_version().is_some() || command.get_long_version().is_some() {
        man.render_version_section(&mut page)?;
    }
    Ok(page)
}

/// `Exit codes:` → EXIT STATUS, `Environment:` → ENVIRONMENT, any other `Heading:` (or
/// `Heading (remark):`) in capitals; each indented `key  text` line a tagged paragraph, a
/// line indented deeper than its entry continuing that entry's text; any other line a
/// paragraph (under NOTES when no heading came before it).
fn closing_sections(text: &str) -> Roff {
    let mut roff = Roff::new();
    let mut in_section = false;
    let mut entry_indent = None;
    let mut entry: Option<(String, String)> = None;
    let flush = |roff: &mut Roff, entry: &mut Option<(String, String)>| {
        if let Some((key, text)) = entry.take() {
            roff.control("TP", []).text([bold(key)]).text([roman(text)]);
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();
        if trimmed.is_empty() {
            continue;
        }
        if indent == 0
            && let Some(heading) = trimmed.strip_suffix(':')
        {
            flush(&mut roff, &mut entry);
            let heading = heading.split(" (").next().unwrap_or(heading);
            let heading = match heading {
                "Exit codes" => "EXIT STATUS".to_string(),
                other => other.to_uppercase(),
            };
            roff.control("SH", [heading.as_str()]);
            in_section = true;
            entry_indent = None;
            continue;
        }
        if !in_section {
            roff.control("SH", ["NOTES"]);
            in_section = true;
        }
        match (entry_indent, trimmed.split_once("  ")) {
            (Some(at), _) if indent > at && entry.is_some() => {
                if let Some((_, text)) = &mut entry {
                    text.push(' ');
                    text.push_str(trimmed);
                }
            }
            (_, Some((key, text))) if indent > 0 => {
                flush(&mut roff, &mut entry);
                entry_indent = Some(indent);
                entry = Some((key.to_string(), text.trim().to_string()));
            }
            _ => {
                flush(&mut roff, &mut entry);
                roff.control("PP", []).text([roman(trimmed)]);
            }
        }
    }
    flush(&mut roff, &mut entry);
    roff
}

#[cfg(test)]
mod tests {
    use super::closing_sections;

    #[test]
    fn the_help_s_closing_text_becomes_sections_with_tagged_entries() {
        let roff = closing_sections(
            "Exit codes:\n  0  success\n  2  invalid input;\n     nothing ran\n\n\
             Environment:\n  NO_COLOR   disables colour\n",
        )
        .to_roff();
        assert!(roff.contains(".SH \"EXIT STATUS\""), "{roff}");
        assert!(roff.contains(".TP\n\\fB0\\fR\nsuccess"), "{roff}");
        assert!(roff.contains("invalid input; nothing ran"), "{roff}");
        assert!(roff.contains(".SH ENVIRONMENT"), "{roff}");
        assert!(roff.contains("\\fBNO_COLOR\\fR\ndisables colour"), "{roff}");
        let roff =
            closing_sections("View it with: runbook man\nLints (see the README):\n").to_roff();
        assert!(
            roff.contains(".SH NOTES\n.PP\nView it with: runbook man"),
            "{roff}"
        );
        assert!(roff.contains(".SH LINTS\n"), "{roff}");
    }
}
