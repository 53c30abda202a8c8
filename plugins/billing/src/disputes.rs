//! Open disputes, from the `payment_events` log: a charge's dispute is open when its
//! latest dispute event is `dispute_opened` (no `dispute_closed` after it). While one is
//! open the organization's fate is the dispute's (seed "Handle Disputed Payment": lost,
//! downgrade to free; won, restore): procedures that change its plan wait for it.

use std::collections::BTreeMap;

use runbook_sdk::{Failure, Timestamp, db, params};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dispute {
    /// The `payment_events` row that opened it.
    pub payment_event_id: i64,
    pub stripe_charge_id: Option<String>,
    pub amount_cents: i64,
    pub opened_at: Timestamp,
}

/// One dispute event, as read from the log.
#[derive(Debug, Clone)]
pub struct DisputeEvent {
    pub id: i64,
    pub stripe_charge_id: Option<String>,
    pub event_type: String,
    pub amount_cents: i64,
    pub created_at: Timestamp,
}

/// The disputes still open after `events` (in any order), oldest first.
pub fn still_open(mut events: Vec<DisputeEvent>) -> Vec<Dispute> {
    events.sort_by(|a, b| (&a.created_at, a.id).cmp(&(&b.created_at, b.id)));
    let mut latest: BTreeMap<Option<String>, DisputeEvent> = BTreeMap::new();
    for e in events {
        latest.insert(e.stripe_charge_id.clone(), e);
    }
    let mut open: Vec<Dispute> = latest
        .into_values()
        .filter(|e| e.event_type == "dispute_opened")
        .map(|e| Dispute {
            payment_event_id: e.id,
            stripe_charge_id: e.stripe_charge_id,
            amount_cents: e.amount_cents,
            opened_at: e.created_at,
        })
        .collect();
    open.sort_by(|a, b| {
        (&a.opened_at, a.payment_event_id).cmp(&(&b.opened_at, b.payment_event_id))
    });
    open
}

/// The organization's open disputes.
///
/// Touches: select `payment_events`.
pub fn open_of(organization_id: i64) -> Result<Vec<Dispute>, Failure> {
    let rows = db::query(
        "SELECT id, stripe_charge_id, event_type, amount_cents, created_at FROM payment_events \
         WHERE organization_id = $1 AND event_type IN ('dispute_opened', 'dispute_closed')",
        params![organization_id],
    )?;
    let mut events = Vec::new();
    for row in &rows {
        events.push(DisputeEvent {
            id: row.get("id")?,
            stripe_charge_id: row.get("stripe_charge_id")?,
            event_type: row.get("event_type")?,
            amount_cents: row.get("amount_cents")?,
            created_at: row.get("created_at")?,
        });
    }
    Ok(still_open(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, charge: &str, kind: &str, at: &str) -> DisputeEvent {
        DisputeEvent {
            id,
            stripe_charge_id: Some(charge.into()),
            event_type: kind.into(),
            amount_cents: 9900,
            created_at: Timestamp::parse(at).unwrap(),
        }
    }

    #[test]
    fn a_close_ends_only_its_own_charges_dispute() {
        let open = still_open(vec![
            ev(3, "ch_a", "dispute_closed", "2026-11-12"),
            ev(1, "ch_a", "dispute_opened", "2026-11-01"),
            ev(2, "ch_b", "dispute_opened", "2026-11-05"),
        ]);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].stripe_charge_id.as_deref(), Some("ch_b"));
        assert_eq!(open[0].payment_event_id, 2);
    }

    #[test]
    fn reopened_after_closing_is_open() {
        let open = still_open(vec![
            ev(1, "ch_a", "dispute_opened", "2026-11-01"),
            ev(2, "ch_a", "dispute_closed", "2026-11-02"),
            ev(3, "ch_a", "dispute_opened", "2026-11-03"),
        ]);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].payment_event_id, 3);
        assert!(still_open(Vec::new()).is_empty());
    }
}
