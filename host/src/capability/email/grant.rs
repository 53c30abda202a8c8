//! The `email` grant: recipient patterns and a per-run count.

use serde::Serialize;

/// Recipient patterns such as `*@example.com`. An entry written as a template
/// (`{{ steps.find.output.admins }}`) is rendered when the step starts, from the outputs
/// of earlier steps, so a step may mail exactly the addresses an earlier step read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmailGrant {
    pub recipients: Vec<String>,
    pub max_per_run: Option<u32>,
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
