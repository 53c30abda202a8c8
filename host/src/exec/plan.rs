//! The plan of a dry run: every effect the run would have had, gathered from its call
//! journal. Each capability renders its own section (`Capability::plan`); this module
//! adds what no capability owns: the calls the grants refused and the approval gates.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::capability::{PlanSection, PlannedCall, registry};
use crate::state::{CallDecision, CallRecord};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// One section per capability with effects, in registry order.
    pub sections: Vec<PlanSection>,
    /// Calls the grants refused during the dry run: they would be refused for real too.
    pub denied: Vec<PlannedCall>,
    /// Approval steps a real run would stop at.
    pub approvals: Vec<String>,
}

impl Plan {
    /// `step_ids[i]` names step index `i`.
    pub fn from_calls(calls: &[CallRecord], step_ids: &[String]) -> Plan {
        let step_name = |i: i64| {
            usize::try_from(i)
                .ok()
                .and_then(|i| step_ids.get(i))
                .cloned()
                .unwrap_or_else(|| format!("#{i}"))
        };
        let (denied, allowed): (Vec<&CallRecord>, Vec<&CallRecord>) = calls
            .iter()
            .partition(|call| call.decision == CallDecision::Denied);
        let sections = registry::ALL
            .iter()
            .filter_map(|capability| {
                let interface = capability.interface();
                let calls: Vec<&CallRecord> = allowed
                    .iter()
                    .copied()
                    .filter(|call| call.interface == interface)
                    .collect();
                capability.plan(&calls, &step_name)
            })
            .collect();
        let denied = denied
            .into_iter()
            .map(|call| PlannedCall {
                step: step_name(call.step_index),
                operation: format!("{}.{}", call.interface, call.operation),
                params: call.params.clone(),
                reason: call.error.clone(),
            })
            .collect();
        Plan {
            sections,
            denied,
            approvals: Vec::new(),
        }
    }

    /// Whether the run would have had no effect at all.
    pub fn is_empty(&self) -> bool {
        self.sections.iter().all(|s| s.entries.is_empty())
    }
}

/// `{"<section key>": [entries], ..., "denied": [...], "approvals": [...]}`: the `plan`
/// of `--json` output.
impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.sections.len() + 2))?;
        for section in &self.sections {
            let entries: Vec<&serde_json::Value> =
                section.entries.iter().map(|e| &e.json).collect();
            map.serialize_entry(section.key, &entries)?;
        }
        map.serialize_entry("denied", &self.denied)?;
        map.serialize_entry("approvals", &self.approvals)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(step: i64, interface: &str, operation: &str, decision: CallDecision) -> CallRecord {
        CallRecord {
            step_index: step,
            attempt: 1,
            seq: 0,
            interface: interface.to_string(),
            operation: operation.to_string(),
            params: serde_json::Value::Null,
            request_digest: String::new(),
            decision,
            ok: true,
            effect: false,
            response: None,
            error: None,
            idempotency_key: None,
            started_at: chrono::Utc::now(),
            duration_us: 0,
        }
    }

    #[test]
    fn every_capability_renders_its_section_and_denials_are_listed_apart() {
        let mut update = call(0, "db", "execute", CallDecision::Allowed);
        update.params = json!({"sql": "UPDATE t SET a = 1", "statement": "update",
            "writes": ["t"], "executions": 3});
        update.response = Some(json!({"affected": 2}));
        let mut refund = call(1, "stripe", "refunds.create", CallDecision::DryRun);
        refund.params = json!({"charge": "ch_1"});
        let read = call(1, "stripe", "charges.retrieve", CallDecision::Allowed);
        let mut mail = call(1, "email", "send", CallDecision::DryRun);
        mail.params = json!({"to": ["a@x.com"], "subject": "Hi", "template": "t"});
        let mut refused = call(7, "stripe", "customers.delete", CallDecision::Denied);
        refused.error = Some("not granted".into());
        let calls = [update, refund, read, mail, refused];
        let plan = Plan::from_calls(&calls, &["fix".into(), "pay".into()]);
        assert!(!plan.is_empty());
        assert_eq!(
            serde_json::to_value(&plan).unwrap(),
            json!({
                "db": [{"step": "fix", "table": "t", "statement": "update",
                        "sql": "UPDATE t SET a = 1", "executions": 3, "rows": 2}],
                "stripe": [{"step": "pay", "operation": "refunds.create",
                            "params": {"charge": "ch_1"}}],
                "emails": [{"step": "pay", "to": ["a@x.com"], "subject": "Hi", "template": "t"}],
                "webhooks": [],
                "denied": [{"step": "#7", "operation": "stripe.customers.delete",
                            "params": null, "reason": "not granted"}],
                "approvals": [],
            })
        );
        let lines: Vec<&str> = plan
            .sections
            .iter()
            .flat_map(|s| &s.entries)
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(
            lines,
            [
                "     2 row(s) update  t                       ",
                "refunds.create {\"charge\":\"ch_1\"}",
                "to a@x.com \"Hi\""
            ]
        );
    }

    #[test]
    fn a_run_without_effects_has_an_empty_plan() {
        let plan = Plan::from_calls(
            &[call(0, "stripe", "balance.retrieve", CallDecision::Allowed)],
            &[],
        );
        assert!(plan.is_empty());
    }
}
