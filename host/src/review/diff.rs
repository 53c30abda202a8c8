//! `runbook grants --diff <rev>`: what the workspace now allows that it did not at the
//! revision, per runbook and step (new steps with grants, new writes, raised budgets,
//! new recipients, new interface imports, ddl, removed or weakened approval gates), and
//! what it no longer allows. Widenings are the point; `--deny widenings` fails on any.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Gate, GrantReview, Role, Settings, StepReview};
use crate::capability::Grants;

/// What `runbook grants --diff <rev> --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct GrantDiff {
    /// The revision compared with, as given.
    pub rev: String,
    /// What could not be compared (untracked plugin components, folders outside git).
    pub notes: Vec<String>,
    /// Only entries with a difference, in the order of the current review (removed
    /// entries last).
    pub steps: Vec<StepDiff>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepDiff {
    pub runbook: String,
    pub step: String,
    pub role: Role,
    /// What the step may do now and could not before.
    pub widened: Vec<String>,
    /// What it could do before and may not now.
    pub narrowed: Vec<String>,
    /// Changes that neither widen nor narrow the grant but need a look (another plugin
    /// or component).
    pub changed: Vec<String>,
}

impl GrantDiff {
    pub fn widens(&self) -> bool {
        self.steps.iter().any(|s| !s.widened.is_empty())
    }
}

type Key<'a> = (&'a str, &'a str, Role);

/// The entries of `review` by (runbook, step, role).
fn entries(review: &GrantReview) -> BTreeMap<Key<'_>, &StepReview> {
    review
        .runbooks
        .iter()
        .flat_map(|r| {
            r.steps
                .iter()
                .map(move |s| ((r.name.as_str(), s.step.as_str(), s.role), s))
        })
        .collect()
}

/// `new` compared with `old` (the review at `rev`).
pub fn diff(rev: &str, notes: Vec<String>, old: &GrantReview, new: &GrantReview) -> GrantDiff {
    let before = entries(old);
    let after = entries(new);
    let mut steps = Vec::new();
    for runbook in &new.runbooks {
        for step in &runbook.steps {
            let key = (runbook.name.as_str(), step.step.as_str(), step.role);
            let mut found = compare(before.get(&key).copied(), step);
            let (wider, narrower) = settings_changes(&old.settings, &new.settings, step);
            found.0.extend(wider);
            found.1.extend(narrower);
            push(&mut steps, &runbook.name, step, found);
        }
    }
    for ((runbook, _, _), step) in &before {
        let key = (*runbook, step.step.as_str(), step.role);
        if !after.contains_key(&key) {
            let mut narrowed = vec!["removed".to_string()];
            narrowed.extend(Grants::widened(&Grants::default(), &step.granted));
            push(
                &mut steps,
                runbook,
                step,
                (Vec::new(), narrowed, Vec::new()),
            );
        }
    }
    GrantDiff {
        rev: rev.to_string(),
        notes,
        steps,
    }
}

fn push(
    out: &mut Vec<StepDiff>,
    runbook: &str,
    step: &StepReview,
    (widened, narrowed, changed): (Vec<String>, Vec<String>, Vec<String>),
) {
    if widened.is_empty() && narrowed.is_empty() && changed.is_empty() {
        return;
    }
    out.push(StepDiff {
        runbook: runbook.to_string(),
        step: step.step.clone(),
        role: step.role,
        widened,
        narrowed,
        changed,
    });
}

/// (widened, narrowed, changed) from `old` (`None`: a new entry) to `new`.
fn compare(old: Option<&StepReview>, new: &StepReview) -> (Vec<String>, Vec<String>, Vec<String>) {
    let none = Grants::default();
    let old_grants = old.map_or(&none, |o| &o.granted);
    let mut widened = Grants::widened(old_grants, &new.granted);
    let mut narrowed = Grants::widened(&new.granted, old_grants);
    let mut changed = Vec::new();
    let Some(old) = old else {
        if !widened.is_empty() {
            widened.insert(0, "new entry with grants".to_string());
        }
        return (widened, narrowed, changed);
    };
    if let (Some(was), Some(now)) = (&old.imports, &new.imports) {
        widened.extend(
            now.iter()
                .filter(|i| !was.contains(i))
                .map(|i| format!("imports the `{i}` interface")),
        );
        narrowed.extend(
            was.iter()
                .filter(|i| !now.contains(i))
                .map(|i| format!("no longer imports the `{i}` interface")),
        );
    }
    if old.gated && !new.gated && !new.writes.is_empty() {
        widened.push("no approval step comes before it any more".to_string());
    }
    if !old.gated && new.gated {
        narrowed.push("an approval step now comes before it".to_string());
    }
    if let (Some(was), Some(now)) = (&old.gate, &new.gate) {
        let (weaker, stronger) = gate_changes(was, now);
        widened.extend(weaker);
        narrowed.extend(stronger);
    }
    if old.plugin != new.plugin {
        changed.push(format!("plugin `{}` → `{}`", old.plugin, new.plugin));
    } else if let (Some(was), Some(now)) = (&old.digest, &new.digest)
        && was != now
    {
        changed.push(format!("component sha256:{was} → sha256:{now}"));
    }
    (widened, narrowed, changed)
}

/// What `runbook.toml` changed under a step: a granted endpoint's URL, an approver
/// group's members.
fn settings_changes(
    old: &Settings,
    new: &Settings,
    step: &StepReview,
) -> (Vec<String>, Vec<String>) {
    let mut wider = Vec::new();
    let mut narrower = Vec::new();
    let endpoints = step.granted.webhook.iter().flat_map(|w| w.endpoints.iter());
    for name in endpoints {
        let (was, now) = (old.endpoints.get(name), new.endpoints.get(name));
        if was != now && now.is_some() {
            wider.push(format!(
                "endpoint `{name}` now delivers to {} (was {})",
                now.map_or("nothing", String::as_str),
                was.map_or("not configured", String::as_str)
            ));
        }
    }
    let groups = step
        .gate
        .iter()
        .flat_map(|g| g.approvers.iter())
        .filter_map(|a| a.strip_prefix("group:"));
    for group in groups {
        let none = Vec::new();
        let was = old.groups.get(group).unwrap_or(&none);
        let now = new.groups.get(group).unwrap_or(&none);
        wider.extend(
            now.iter()
                .filter(|m| !was.contains(m))
                .map(|m| format!("group `{group}` gains approver `{m}`")),
        );
        narrower.extend(
            was.iter()
                .filter(|m| !now.contains(m))
                .map(|m| format!("group `{group}` loses approver `{m}`")),
        );
    }
    (wider, narrower)
}

/// How an approval gate got weaker (more approvers, fewer approvals needed,
/// self-approval, continuing on timeout) and stronger.
fn gate_changes(old: &Gate, new: &Gate) -> (Vec<String>, Vec<String>) {
    let mut weaker: Vec<String> = new
        .approvers
        .iter()
        .filter(|a| !old.approvers.contains(a))
        .map(|a| format!("approver `{a}` added"))
        .collect();
    let mut stronger: Vec<String> = old
        .approvers
        .iter()
        .filter(|a| !new.approvers.contains(a))
        .map(|a| format!("approver `{a}` removed"))
        .collect();
    let required = format!("approvals required: {} → {}", old.required, new.required);
    if new.required < old.required {
        weaker.push(required);
    } else if new.required > old.required {
        stronger.push(required);
    }
    if new.allow_self && !old.allow_self {
        weaker.push("the operator may now approve their own run".to_string());
    } else if old.allow_self && !new.allow_self {
        stronger.push("the operator may no longer approve their own run".to_string());
    }
    if new.on_timeout != old.on_timeout {
        let line = format!("on timeout: {} → {}", old.on_timeout, new.on_timeout);
        if new.on_timeout == "continue" {
            weaker.push(line);
        } else {
            stronger.push(line);
        }
    }
    (weaker, stronger)
}
