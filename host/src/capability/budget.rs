//! Per-run budgets of a step's grant: Stripe writes, refunded amounts and emails, counted
//! across the step's attempts so a retry cannot spend a budget twice.

use std::collections::HashMap;
use std::sync::Mutex;

/// What one step has spent so far in this run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Spent {
    pub stripe_writes: u32,
    pub refunded: i64,
    pub emails: u32,
}

/// Shared by every step of one run, keyed by step id.
#[derive(Debug, Default)]
pub struct RunBudget {
    spent: Mutex<HashMap<String, Spent>>,
    /// Idempotency keys already charged: a write retried under the same key is the same
    /// write, and is not charged (or refused) twice.
    charged: Mutex<std::collections::HashSet<String>>,
}

impl RunBudget {
    pub fn spent(&self, step_id: &str) -> Spent {
        self.lock().get(step_id).copied().unwrap_or_default()
    }

    pub fn charge(&self, step_id: &str, apply: impl FnOnce(&mut Spent)) {
        apply(self.lock().entry(step_id.to_string()).or_default());
    }

    /// Whether the write with this idempotency key was already charged.
    pub fn charged(&self, key: &str) -> bool {
        self.charged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    /// Charges a write once per idempotency key.
    pub fn charge_write(&self, step_id: &str, key: &str, apply: impl FnOnce(&mut Spent)) {
        let mut charged = self.charged.lock().unwrap_or_else(|e| e.into_inner());
        if charged.insert(key.to_string()) {
            self.charge(step_id, apply);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Spent>> {
        // A poisoned lock only means another step panicked mid-update of plain counters.
        self.spent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RunBudget {
    /// The spend of a run so far, from its call journal: a resumed run keeps the budgets
    /// its earlier process already used.
    pub fn from_journal(calls: &[crate::state::CallRecord], step_ids: &[String]) -> RunBudget {
        use crate::state::CallDecision;
        let budget = RunBudget::default();
        for call in calls {
            let counted = call.effect
                && call.ok
                && matches!(
                    call.decision,
                    CallDecision::Allowed | CallDecision::Replayed | CallDecision::Intent
                );
            let Some(step_id) = usize::try_from(call.step_index)
                .ok()
                .and_then(|i| step_ids.get(i))
            else {
                continue;
            };
            if !counted {
                continue;
            }
            match call.interface.as_str() {
                "stripe" => {
                    let Some(key) = &call.idempotency_key else {
                        continue;
                    };
                    let refunded = if call.operation == "refunds.create" {
                        call.response
                            .as_ref()
                            .and_then(|r| r["amount"].as_i64())
                            .unwrap_or(0)
                    } else {
                        0
                    };
                    budget.charge_write(step_id, key, |s| {
                        s.stripe_writes += 1;
                        s.refunded += refunded;
                    });
                }
                // An intent without an outcome was possibly sent: it counts.
                "email"
                    if matches!(call.decision, CallDecision::Allowed | CallDecision::Intent) =>
                {
                    budget.charge(step_id, |s| s.emails += 1);
                }
                _ => {}
            }
        }
        budget
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::{CallDecision, CallRecord};

    fn call(
        step: i64,
        op: &str,
        decision: CallDecision,
        ok: bool,
        key: &str,
        amount: i64,
    ) -> CallRecord {
        CallRecord {
            step_index: step,
            attempt: 1,
            seq: 0,
            interface: "stripe".into(),
            operation: op.into(),
            params: json!({}),
            request_digest: String::new(),
            decision,
            ok,
            effect: true,
            response: Some(json!({ "amount": amount })),
            error: None,
            idempotency_key: Some(key.into()),
            started_at: chrono::Utc::now(),
            duration_us: 0,
        }
    }

    #[test]
    fn a_resumed_run_keeps_what_it_already_spent() {
        let ids = vec!["find".to_string(), "refund".to_string()];
        let calls = vec![
            call(1, "refunds.create", CallDecision::Allowed, true, "k0", 700),
            // The same write answered from the journal on a re-run: counted once.
            call(1, "refunds.create", CallDecision::Replayed, true, "k0", 700),
            call(1, "refunds.create", CallDecision::Allowed, true, "k1", 300),
            // Failed and denied writes spent nothing.
            call(1, "refunds.create", CallDecision::Allowed, false, "k2", 900),
            call(1, "refunds.create", CallDecision::Denied, false, "k3", 900),
        ];
        let budget = RunBudget::from_journal(&calls, &ids);
        let spent = budget.spent("refund");
        assert_eq!((spent.stripe_writes, spent.refunded), (2, 1000));
        assert!(budget.charged("k0") && budget.charged("k1"));
        assert!(!budget.charged("k2"));
        assert_eq!(budget.spent("find").stripe_writes, 0);
    }
}
