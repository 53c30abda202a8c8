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
