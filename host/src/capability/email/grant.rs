//! The `email` grant: recipient patterns and a per-run count, read from
//! `[steps.grants.email]`; a manifest's `[capabilities.email]` names recipients only.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::capability::delivery::Delivery;
use crate::capability::{GrantTable, Lint, Missing, budget_widened};
use crate::spec::Diagnostics;
use crate::spec::read::{SpannedList, items};

/// `[steps.grants.email]` as written.
#[derive(Debug, Deserialize)]
pub struct RawEmailGrant {
    pub recipients: Option<SpannedList>,
    pub max_per_run: Option<Spanned<i64>>,
    /// `at-most-once` (the default) or `at-least-once`: see [`Delivery`].
    pub delivery: Option<Spanned<String>>,
}

/// A plugin says whom it mails; how many mails a run may send is the operator's call,
/// so `max_per_run` is a step grant only.
#[derive(Debug, Deserialize)]
pub struct RawEmailNeeds {
    pub recipients: Option<SpannedList>,
}

/// Recipient patterns such as `*@example.com`. An entry written as a template
/// (`{{ steps.find.output.admins }}`) is rendered when the step starts, from the outputs
/// of earlier steps, so a step may mail exactly the addresses an earlier step read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmailGrant {
    pub recipients: Vec<String>,
    pub max_per_run: Option<u32>,
    /// Whether a message possibly sent before a crash is sent again on resume.
    pub delivery: Delivery,
}

impl GrantTable for EmailGrant {
    type Raw = RawEmailGrant;
    type RawNeeds = RawEmailNeeds;

    /// A step's grant: recipient patterns and the per-run count.
    fn parse(raw: &RawEmailGrant, diags: &mut Diagnostics) -> EmailGrant {
        let recipients = recipients(&raw.recipients, diags);
        let max_per_run = raw.max_per_run.as_ref().and_then(|m| {
            let v = *m.get_ref();
            match u32::try_from(v) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    diags.error(
                        m.span(),
                        format!(
                            "`max_per_run` must be between 1 and {}, found {v}",
                            u32::MAX
                        ),
                    );
                    None
                }
            }
        });
        EmailGrant {
            recipients,
            max_per_run,
            delivery: Delivery::parse(&raw.delivery, diags),
        }
    }

    /// What a plugin manifest says it mails.
    fn parse_needs(raw: &RawEmailNeeds, diags: &mut Diagnostics) -> EmailGrant {
        EmailGrant {
            recipients: recipients(&raw.recipients, diags),
            max_per_run: None,
            delivery: Delivery::AtMostOnce,
        }
    }

    fn missing(granted: Option<&EmailGrant>, needs: &EmailGrant) -> Vec<Missing> {
        let Some(granted) = granted else {
            return vec![Missing {
                need: "to send email".to_string(),
                help: "add a `[steps.grants.email]` table with `recipients`".to_string(),
            }];
        };
        needs
            .recipients
            .iter()
            .filter(|r| !granted.recipients.iter().any(|p| glob_match(p, r)))
            .map(|r| Missing {
                need: format!("to email {r:?}"),
                help: format!("add it to the step: `[steps.grants.email]` recipients = [{r:?}]"),
            })
            .collect()
    }

    fn describe(&self) -> Vec<String> {
        // A manifest declares that the plugin sends mail; the step's grant names to whom.
        let mut line = if self.recipients.is_empty() {
            "send (recipients named by the step's grant)".to_string()
        } else {
            format!("to: {}", self.recipients.join(", "))
        };
        if let Some(max) = self.max_per_run {
            line.push_str(&format!(" (at most {max} per run)"));
        }
        line.push_str(self.delivery.describe_suffix());
        vec![line]
    }

    fn writes(&self) -> Vec<String> {
        self.recipients
            .iter()
            .map(|r| format!("to {r:?}"))
            .collect()
    }

    /// A `*` lets the plugin choose the address; a template entry is rendered from an
    /// earlier step's output and is checked then.
    fn lints(&self) -> Vec<Lint> {
        self.recipients
            .iter()
            .filter(|r| !r.contains("{{") && r.contains('*'))
            .map(|r| {
                Lint::warning(
                    "wildcard-recipient",
                    format!("recipient pattern {r:?} lets the plugin mail any address it matches"),
                )
            })
            .collect()
    }

    /// A pattern that matches nothing the manifest names (a template entry counts as
    /// needed when the manifest declares email at all).
    fn unneeded(&self, needs: Option<&EmailGrant>) -> Vec<String> {
        self.recipients
            .iter()
            .filter(|p| match needs {
                None => true,
                Some(needs) => {
                    !p.contains("{{") && !needs.recipients.iter().any(|n| glob_match(p, n))
                }
            })
            .map(|p| format!("to {p:?}"))
            .collect()
    }

    fn widened(old: Option<&EmailGrant>, new: &EmailGrant) -> Vec<String> {
        let mut out: Vec<String> = new
            .recipients
            .iter()
            .filter(|r| !old.is_some_and(|o| o.recipients.contains(*r)))
            .map(|r| format!("to {r:?}"))
            .collect();
        if let Some(old) = old {
            out.extend(budget_widened(
                "max_per_run",
                old.max_per_run.map(i64::from),
                new.max_per_run.map(i64::from),
            ));
            out.extend(Delivery::widened(old.delivery, new.delivery));
        }
        out
    }
}

impl EmailGrant {
    /// Whether `address` (lower-cased) matches one of the (rendered) patterns.
    pub fn allows(&self, address: &str) -> bool {
        let address = address.trim().to_lowercase();
        self.recipients
            .iter()
            .any(|p| !p.contains("{{") && glob_match(p, &address))
    }
}

fn recipients(list: &Option<SpannedList>, diags: &mut Diagnostics) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in items(list) {
        // Rendered when the step starts; the rendered addresses are checked then.
        if r.get_ref().contains("{{") {
            out.push(r.get_ref().trim().to_string());
            continue;
        }
        let pattern = r.get_ref().trim().to_lowercase();
        let valid = match pattern.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !pattern.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if !valid {
            diags.error_with_help(
                r.span(),
                format!("invalid recipient pattern {:?}", r.get_ref()),
                "write an address or a pattern with `*`, like \"ops@example.com\" or \"*@example.com\"",
            );
        } else if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    out
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let w: Vec<char> = text.chars().collect();
    // Iterative glob match with backtracking to the last star: linear memory, no recursion.
    let (mut pi, mut wi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while wi < w.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, wi));
            pi += 1;
        } else if pi < p.len() && p[pi] == w[wi] {
            pi += 1;
            wi += 1;
        } else if let Some((sp, sw)) = star {
            pi = sp + 1;
            wi = sw + 1;
            star = Some((sp, sw + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_need_without_recipients_reads_as_sending_mail() {
        assert_eq!(
            grant(&[], None).describe(),
            ["send (recipients named by the step's grant)"]
        );
        assert_eq!(
            grant(&["ops@example.com"], Some(2)).describe(),
            ["to: ops@example.com (at most 2 per run)"]
        );
    }

    fn grant(recipients: &[&str], max_per_run: Option<u32>) -> EmailGrant {
        EmailGrant {
            recipients: recipients.iter().map(|s| s.to_string()).collect(),
            max_per_run,
            delivery: Delivery::AtMostOnce,
        }
    }

    #[test]
    fn wildcards_are_linted_and_templates_are_not() {
        let g = grant(
            &["*@example.com", "ops@example.com", "{{ steps.a.output.x }}"],
            None,
        );
        let lints = g.lints();
        assert_eq!(lints.len(), 1);
        assert_eq!(lints[0].code, "wildcard-recipient");
        assert!(lints[0].message.contains("*@example.com"));
        assert_eq!(g.writes().len(), 3);
    }

    #[test]
    fn unneeded_and_widened_recipients() {
        let g = grant(&["*@example.com", "ceo@corp.com"], Some(2));
        let needs = grant(&["ops@example.com"], None);
        assert_eq!(g.unneeded(Some(&needs)), ["to \"ceo@corp.com\""]);
        let wider = grant(&["*@example.com", "*@corp.com"], None);
        assert_eq!(
            EmailGrant::widened(Some(&g), &wider),
            [
                "to \"*@corp.com\"".to_string(),
                "max_per_run removed (was 2): no limit".to_string()
            ]
        );
        assert!(EmailGrant::widened(Some(&g), &g).is_empty());
    }

    #[test]
    fn a_pattern_covers_an_address_or_a_narrower_pattern() {
        assert!(glob_match("*@example.com", "ops@example.com"));
        // The wanted side's `*` is matched as a literal: a pattern covers itself...
        assert!(glob_match("*@example.com", "*@example.com"));
        // ...but an address does not cover a pattern.
        assert!(!glob_match("ops@example.com", "*@example.com"));
        assert!(!glob_match("*@example.com", "ops@example.org"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }
}
