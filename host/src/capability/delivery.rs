//! Write-ahead intents for effects without idempotency (email, webhook deliveries): the
//! grant's `delivery` key, the intent committed before a message leaves, and what a
//! re-run does with an intent an earlier attempt left without an outcome.

use serde::Serialize;
use serde_json::Value;
use toml::Spanned;

use super::calls::{Call, CallSession};
use crate::contract::types::CallError;
use crate::spec::Diagnostics;
use crate::state::{CallDecision, LogLine};

/// What a re-run does with a message an earlier attempt possibly sent before a crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Never send it again: the call is journaled as unknown (possibly sent) and audited.
    #[default]
    AtMostOnce,
    /// Send it again with the same id (receivers can dedupe): a duplicate is better than
    /// a loss.
    AtLeastOnce,
}

impl Delivery {
    /// The `delivery` key of an email or webhook grant (absent: at-most-once).
    pub fn parse(raw: &Option<Spanned<String>>, diags: &mut Diagnostics) -> Delivery {
        let Some(raw) = raw else {
            return Delivery::AtMostOnce;
        };
        match raw.get_ref().trim() {
            "at-most-once" => Delivery::AtMostOnce,
            "at-least-once" => Delivery::AtLeastOnce,
            other => {
                diags.error_with_help(
                    raw.span(),
                    format!("unknown delivery {other:?}"),
                    "write \"at-most-once\" (the default) or \"at-least-once\"",
                );
                Delivery::AtMostOnce
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtMostOnce => "at-most-once",
            Delivery::AtLeastOnce => "at-least-once",
        }
    }

    /// What `describe()` appends to a grant's line: nothing for the default.
    pub fn describe_suffix(self) -> &'static str {
        match self {
            Delivery::AtMostOnce => "",
            Delivery::AtLeastOnce => " (delivery at-least-once: re-sent after a crash)",
        }
    }

    /// A switch to at-least-once lets a crash duplicate a message: a widening.
    pub fn widened(old: Delivery, new: Delivery) -> Option<String> {
        (old == Delivery::AtMostOnce && new == Delivery::AtLeastOnce)
            .then(|| "delivery at-least-once (was at-most-once)".to_string())
    }
}

/// What to do with a call about to send a message.
pub(crate) enum Resumed {
    /// No earlier attempt left an intent: send it.
    Send,
    /// An earlier attempt possibly sent it and the grant is at-least-once: send it again.
    Resend,
    /// An earlier attempt possibly sent it and the grant is at-most-once: answer the
    /// plugin with this (journaled as unknown and audited), send nothing.
    Unknown(Value),
}

impl CallSession {
    /// Looks for an intent an earlier attempt left for this call without an outcome and
    /// decides by `delivery`. `id` names the message (its Message-ID, the delivery id);
    /// `answer` is what the plugin gets back when the message is not sent again.
    pub(crate) async fn resume_intent(
        &mut self,
        call: &Call,
        delivery: Delivery,
        target: &str,
        id: &str,
        answer: Value,
    ) -> Resumed {
        if self.attempt <= 1 {
            return Resumed::Send;
        }
        let found = self
            .state
            .open_intent(
                &self.context.run_id,
                self.step_index,
                call.seq,
                &call.digest,
                self.attempt,
            )
            .await;
        let earlier = match found {
            Ok(None) => return Resumed::Send,
            Ok(Some(intent)) => format!("attempt {}", intent.attempt),
            Err(e) => {
                // Not knowing whether it left is not the same as "it did not".
                tracing::error!(target: "runbook::journal", "intent lookup failed: {e}");
                format!("an earlier attempt (the journal could not be read: {e})")
            }
        };
        let interface = call.interface;
        match delivery {
            Delivery::AtMostOnce => {
                let detail = serde_json::json!({
                    "id": id,
                    "note": format!("possibly sent by {earlier} before a crash; not re-sent (at-most-once)"),
                })
                .to_string();
                let entry = self.audit_entry(&format!("{interface}.unknown"), target, detail);
                self.recording.audit.push(entry);
                self.host_log(
                    "warn",
                    format!("{interface} {id}: unknown, possibly sent by {earlier} before a crash; not re-sent (at-most-once)"),
                );
                let record = self.record(
                    call,
                    CallDecision::Unknown,
                    true,
                    Some(answer.clone()),
                    None,
                    Some(id.to_string()),
                );
                self.journal_now(record).await;
                Resumed::Unknown(answer)
            }
            Delivery::AtLeastOnce => {
                let detail = serde_json::json!({
                    "id": id,
                    "note": format!("possibly sent by {earlier} before a crash; re-sent with the same id (at-least-once)"),
                })
                .to_string();
                let entry = self.audit_entry(&format!("{interface}.resent"), target, detail);
                self.recording.audit.push(entry);
                self.host_log(
                    "warn",
                    format!("{interface} {id}: possibly sent by {earlier} before a crash; re-sent (at-least-once)"),
                );
                Resumed::Resend
            }
        }
    }

    /// Commits the intent to send `call` (identified by `id`) before it leaves. Refuses
    /// the call when the intent cannot be written: an unjournaled send is what a resume
    /// could not tell from "never sent".
    pub(crate) async fn journal_intent(&mut self, call: &Call, id: &str) -> Result<(), CallError> {
        let record = self.record(
            call,
            CallDecision::Intent,
            true,
            None,
            None,
            Some(id.to_string()),
        );
        self.state
            .record_calls(&self.context.run_id, std::slice::from_ref(&record))
            .await
            .map_err(|e| {
                CallError::Unavailable(format!(
                    "could not journal the intent to send {id} ({e}); not sent"
                ))
            })
    }

    fn host_log(&mut self, level: &str, message: String) {
        self.push_log(LogLine {
            at: chrono::Utc::now(),
            level: level.into(),
            stream: "host".into(),
            message,
            fields: Default::default(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_defaults_to_at_most_once_and_rejects_other_words() {
        let mut diags = Diagnostics::new("runbook.toml", "x");
        assert_eq!(Delivery::parse(&None, &mut diags), Delivery::AtMostOnce);
        let raw = Some(Spanned::new(0..1, "at-least-once".to_string()));
        assert_eq!(Delivery::parse(&raw, &mut diags), Delivery::AtLeastOnce);
        assert!(diags.is_empty());
        let raw = Some(Spanned::new(0..1, "exactly-once".to_string()));
        assert_eq!(Delivery::parse(&raw, &mut diags), Delivery::AtMostOnce);
        assert_eq!(diags.len(), 1);
        assert_eq!(
            Delivery::widened(Delivery::AtMostOnce, Delivery::AtLeastOnce).as_deref(),
            Some("delivery at-least-once (was at-most-once)")
        );
        assert!(Delivery::widened(Delivery::AtLeastOnce, Delivery::AtMostOnce).is_none());
    }
}
