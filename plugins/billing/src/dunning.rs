//! The dunning flow of a past-due subscription (`dunning_events`): day 0 `notice`, day 3
//! `retry`, then `downgrade` when the tier's grace period ends (day 7, Enterprise 14: the
//! same [`tier::grace_days`] that `grace-period-expirations` judges by), all counted from
//! when the payment failed (`subscriptions.updated_at` of a past-due subscription).
//!
//! A flow belongs to one past-due episode: the events scheduled at or after the episode
//! began. A subscription past due without any starts a new flow; one whose flow was closed
//! (done, skipped in an emergency, overridden) does not get another until it is past due
//! again. A step is due once `scheduled_for` has come and it is not completed; due steps
//! run in flow order, and a step that fails holds back the later ones of its subscription.

use runbook_sdk::{Failure, Timestamp, db, params};
use serde::{Deserialize, Serialize};

use crate::subscription::Subscription;
use crate::tier;

/// The steps of a flow, in order.
pub const STEPS: [&str; 3] = ["notice", "retry", "downgrade"];

/// Days after the failed payment that Stripe is asked to retry it.
pub const RETRY_DAY: i64 = 3;

/// Why a step was completed (`dunning_events.completion_reason`).
pub const DONE: &str = "done";
pub const RECOVERED: &str = "recovered";
pub const EMERGENCY_SKIP: &str = "emergency_skip";
pub const MANUAL_OVERRIDE: &str = "manual_override";

/// One row of `dunning_events` (`id` 0: planned, not yet in the database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub subscription_id: i64,
    pub step: String,
    pub scheduled_for: Timestamp,
    pub completed: bool,
    pub completed_at: Option<Timestamp>,
    pub completion_reason: Option<String>,
}

impl Event {
    /// Pending and its time has come.
    pub fn is_due(&self, as_of: &Timestamp) -> bool {
        !self.completed && self.scheduled_for <= *as_of
    }
}

/// A past-due subscription's current flow.
#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    pub subscription: Subscription,
    pub past_due_since: Timestamp,
    /// The flow is only planned: its events are not in the database yet.
    pub planned: bool,
    /// In flow order.
    pub events: Vec<Event>,
}

impl Flow {
    /// Steps due at `as_of`, in flow order.
    pub fn due(&self, as_of: &Timestamp) -> Vec<&Event> {
        self.events.iter().filter(|e| e.is_due(as_of)).collect()
    }

    pub fn step(&self, step: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.step == step)
    }
}

fn step_index(step: &str) -> usize {
    STEPS.iter().position(|s| *s == step).unwrap_or(STEPS.len())
}

/// When each step of a flow that started at `since` is scheduled.
pub fn schedule(
    since: &Timestamp,
    plan_tier: &str,
) -> Result<[(&'static str, Timestamp); 3], Failure> {
    let at = |days: i64| {
        since.plus_days(days).ok_or_else(|| {
            Failure::new(
                "schema-mismatch",
                format!("past due since {since}: out of range"),
            )
        })
    };
    Ok([
        (STEPS[0], since.clone()),
        (STEPS[1], at(RETRY_DAY)?),
        (STEPS[2], at(tier::grace_days(plan_tier))?),
    ])
}

/// The events of the episode that began at `since`, in flow order; a planned flow if
/// there are none.
pub fn episode(
    subscription: &Subscription,
    since: &Timestamp,
    events: Vec<Event>,
) -> Result<(bool, Vec<Event>), Failure> {
    let mut current: Vec<Event> = events
        .into_iter()
        .filter(|e| e.scheduled_for >= *since)
        .collect();
    if !current.is_empty() {
        current.sort_by(|a, b| {
            (step_index(&a.step), &a.scheduled_for, a.id).cmp(&(
                step_index(&b.step),
                &b.scheduled_for,
                b.id,
            ))
        });
        return Ok((false, current));
    }
    let planned = schedule(since, &subscription.plan_tier)?
        .into_iter()
        .map(|(step, at)| Event {
            id: 0,
            subscription_id: subscription.id,
            step: step.to_owned(),
            scheduled_for: at,
            completed: false,
            completed_at: None,
            completion_reason: None,
        })
        .collect();
    Ok((true, planned))
}

const EVENT_COLUMNS: &str =
    "id, subscription_id, step, scheduled_for, completed, completed_at, completion_reason";

fn read_events(filter: &str, params: &[runbook_sdk::Value]) -> Result<Vec<Event>, Failure> {
    let rows = db::query(
        &format!(
            "SELECT {EVENT_COLUMNS} FROM dunning_events WHERE {filter} ORDER BY scheduled_for, id"
        ),
        params,
    )?;
    Ok(rows.decode()?)
}

/// The subscription's current flow (see the module's rules).
///
/// Touches: select `dunning_events`.
pub fn flow(subscription: Subscription) -> Result<Flow, Failure> {
    let since = subscription.updated_at.clone();
    let events = read_events("subscription_id = $1", params![subscription.id])?;
    let (planned, events) = episode(&subscription, &since, events)?;
    Ok(Flow {
        subscription,
        past_due_since: since,
        planned,
        events,
    })
}

/// Every event not completed yet, of any subscription.
///
/// Touches: select `dunning_events`.
pub fn pending() -> Result<Vec<Event>, Failure> {
    read_events("completed = FALSE", &[])
}

/// Write a planned flow's events; returns the flow with their ids.
///
/// Touches: select, insert `dunning_events`.
pub fn start(mut flow: Flow) -> Result<Flow, Failure> {
    if !flow.planned {
        return Ok(flow);
    }
    let first: i64 = db::query(
        "SELECT COALESCE(MAX(id), 0) + 1 AS next_id FROM dunning_events",
        &[],
    )?
    .one()?
    .get("next_id")?;
    for (id, event) in (first..).zip(flow.events.iter_mut()) {
        // As the reference data does: a step starts when it is scheduled.
        db::execute(
            "INSERT INTO dunning_events (id, subscription_id, step, step_started_at, scheduled_for, completed) \
             VALUES ($1, $2, $3, $4, $4, FALSE)",
            params![id, event.subscription_id, &event.step, &event.scheduled_for],
        )?;
        event.id = id;
    }
    flow.planned = false;
    Ok(flow)
}

/// Complete one event with `reason`.
///
/// Touches: update `dunning_events`.
pub fn complete(event_id: i64, reason: &str, now: &Timestamp) -> Result<bool, Failure> {
    Ok(db::execute(
        "UPDATE dunning_events SET completed = TRUE, completed_at = $1, completion_reason = $2 \
         WHERE id = $3 AND completed = FALSE",
        params![now, reason, event_id],
    )? == 1)
}

/// Complete every pending event of the subscription with `reason`; returns them.
///
/// Touches: select, update `dunning_events`.
pub fn close(subscription_id: i64, reason: &str, now: &Timestamp) -> Result<Vec<Event>, Failure> {
    let open = read_events(
        "subscription_id = $1 AND completed = FALSE",
        params![subscription_id],
    )?;
    let mut closed = Vec::new();
    for mut event in open {
        if complete(event.id, reason, now)? {
            event.completed = true;
            event.completed_at = Some(now.clone());
            event.completion_reason = Some(reason.to_owned());
            closed.push(event);
        }
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn sub(tier: &str, since: &str) -> Subscription {
        Subscription {
            id: 106,
            organization_id: 6,
            stripe_subscription_id: "sub_demo106".into(),
            plan_tier: tier.into(),
            billing_cycle: "monthly".into(),
            amount_cents: 9900,
            currency: "usd".into(),
            status: "past_due".into(),
            current_period_end: None,
            cancel_at_period_end: false,
            created_at: ts("2026-02-14"),
            updated_at: ts(since),
            canceled_at: None,
        }
    }

    fn event(id: i64, step: &str, at: &str, reason: Option<&str>) -> Event {
        Event {
            id,
            subscription_id: 106,
            step: step.into(),
            scheduled_for: ts(at),
            completed: reason.is_some(),
            completed_at: reason.map(|_| ts(at)),
            completion_reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn schedule_by_tier() {
        let since = ts("2026-11-03T07:25:00Z");
        let pro = schedule(&since, "pro").unwrap();
        assert_eq!(pro[0], ("notice", since.clone()));
        assert_eq!(pro[1], ("retry", ts("2026-11-06T07:25:00Z")));
        assert_eq!(
            pro[2],
            ("downgrade", ts("2026-11-10T07:25:00Z")),
            "the demo's day 7"
        );
        let ent = schedule(&since, "enterprise").unwrap();
        assert_eq!(ent[2].1, ts("2026-11-17T07:25:00Z"));
    }

    #[test]
    fn the_demo_flow_is_due_for_its_downgrade() {
        let s = sub("pro", "2026-11-03 07:25:00+00:00");
        let events = vec![
            event(1, "notice", "2026-11-03 07:25:00+00:00", Some("done")),
            event(3, "downgrade", "2026-11-10 07:25:00+00:00", None),
            event(2, "retry", "2026-11-06 07:25:00+00:00", Some("done")),
        ];
        let (planned, events) = episode(&s, &s.updated_at, events).unwrap();
        assert!(!planned);
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
        let flow = Flow {
            past_due_since: s.updated_at.clone(),
            subscription: s,
            planned,
            events,
        };
        assert!(flow.due(&ts("2026-11-10T07:24:59Z")).is_empty());
        let due = flow.due(&ts("2026-11-21"));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].step, "downgrade");
    }

    #[test]
    fn a_new_episode_plans_a_new_flow() {
        let s = sub("starter", "2026-11-20 10:00:00+00:00");
        // An earlier episode's flow, recovered.
        let old = vec![event(
            1,
            "notice",
            "2026-10-01 10:00:00+00:00",
            Some("recovered"),
        )];
        let (planned, events) = episode(&s, &s.updated_at, old).unwrap();
        assert!(planned);
        assert!(events.iter().all(|e| e.id == 0 && !e.completed));
        let flow = Flow {
            past_due_since: s.updated_at.clone(),
            subscription: s,
            planned,
            events,
        };
        let steps = |at: &str| -> Vec<String> {
            flow.due(&ts(at)).iter().map(|e| e.step.clone()).collect()
        };
        assert_eq!(steps("2026-11-20T10:00:00Z"), ["notice"]);
        assert_eq!(steps("2026-11-23T10:00:00Z"), ["notice", "retry"]);
        assert_eq!(steps("2026-11-28"), ["notice", "retry", "downgrade"]);
    }

    #[test]
    fn a_closed_flow_stays_closed() {
        let s = sub("pro", "2026-11-03 07:25:00+00:00");
        let skipped = vec![
            event(
                1,
                "notice",
                "2026-11-03 07:25:00+00:00",
                Some("emergency_skip"),
            ),
            event(
                2,
                "retry",
                "2026-11-06 07:25:00+00:00",
                Some("emergency_skip"),
            ),
            event(
                3,
                "downgrade",
                "2026-11-10 07:25:00+00:00",
                Some("emergency_skip"),
            ),
        ];
        let (planned, events) = episode(&s, &s.updated_at, skipped).unwrap();
        assert!(!planned, "no new flow for the same episode");
        assert!(events.iter().all(|e| !e.is_due(&ts("2026-12-01"))));
    }
}
