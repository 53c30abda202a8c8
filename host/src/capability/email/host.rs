//! The `email` host function: a message rendered from the host's templates, checked
//! against the granted recipients and the per-run count, answered from the journal on a
//! re-run, planned in a dry run, otherwise sent through SMTP or into the outbox behind a
//! write-ahead intent (a message possibly sent before a crash is not sent again unless
//! the grant is at-least-once).

use std::path::Path;

use lettre::AsyncTransport;
use lettre::message::{Mailbox, header::ContentType};
use serde_json::{Value, json};

use super::EmailHost;
use super::render::{Rendered, render_template};
use super::service::{EmailService, MailTransport};
use crate::capability::delivery::Resumed;
use crate::contract::email::{self, Message};
use crate::contract::types::CallError;
use crate::state::CallDecision;

impl email::Host for EmailHost<'_> {
    async fn send(&mut self, message: Message) -> wasmtime::Result<Result<String, CallError>> {
        Ok(self.send_email(message).await)
    }
}

impl EmailHost<'_> {
    async fn send_email(&mut self, message: Message) -> Result<String, CallError> {
        let context: Value = serde_json::from_str(&message.context)
            .map_err(|e| CallError::Invalid(format!("email context is not JSON: {e}")))?;
        let to: Vec<String> = message.to.iter().map(|a| a.trim().to_lowercase()).collect();
        if to.is_empty() {
            return Err(CallError::Invalid(
                "an email needs at least one recipient".into(),
            ));
        }
        let mut mailboxes = Vec::with_capacity(to.len());
        for address in &to {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|e| CallError::Invalid(format!("recipient {address:?}: {e}")))?;
            mailboxes.push(mailbox);
        }
        let rendered = render_template(&self.step.service.templates, &message.template, &context)
            .map_err(|e| CallError::Invalid(e.to_string()))?;
        let params = json!({ "to": to, "template": message.template, "subject": rendered.subject });
        let call = self.calls.begin_call(
            "email",
            "send",
            &format!(
                "{}\n{}\n{}",
                to.join(","),
                message.template,
                message.context
            ),
            params,
            true,
        );

        let Some(grant) = self.step.grant.clone() else {
            let reason = "sending email is not granted to this step".to_string();
            return Err(CallError::Denied(
                self.calls.deny_call(&call, "email", reason).await,
            ));
        };
        if let Some(address) = to.iter().find(|a| !grant.allows(a)) {
            let reason = format!("recipient {address} is not allowed by this step's grant");
            let target = format!("email:{address}");
            return Err(CallError::Denied(
                self.calls.deny_call(&call, &target, reason).await,
            ));
        }
        if let Some(answer) = self.calls.replay(&call).await {
            return answer.map(|response| {
                response["message_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
        }
        // Deterministic (run, step, call number; never the attempt or the process), so a
        // re-sent message is recognisably the same message.
        let message_id = format!(
            "runbook-{}-{}-{}@runbook.invalid",
            self.calls.context.run_id, self.calls.context.step_id, call.seq
        );
        let resumed = if self.calls.dry_run {
            Resumed::Send
        } else {
            let answer = json!({ "message_id": message_id });
            let target = format!("email:{}", to.join(","));
            self.calls
                .resume_intent(&call, grant.delivery, &target, &message_id, answer)
                .await
        };
        match resumed {
            Resumed::Unknown(_) => return Ok(message_id),
            // The message the earlier attempt's intent names was counted then.
            Resumed::Resend => {}
            Resumed::Send => {
                let spent = self.calls.budget.spent(&self.calls.context.step_id);
                if let Some(max) = grant.max_per_run
                    && spent.emails >= max
                {
                    let reason = format!("this step may send at most {max} email(s) per run");
                    return Err(CallError::Denied(
                        self.calls.deny_call(&call, "email", reason).await,
                    ));
                }
                self.calls
                    .budget
                    .charge(&self.calls.context.step_id, |s| s.emails += 1);
            }
        }

        if self.calls.dry_run {
            let response = json!({ "message_id": message_id, "body": rendered.body });
            let record = self.calls.record(
                &call,
                CallDecision::DryRun,
                true,
                Some(response),
                None,
                None,
            );
            self.calls.journal(record).await;
            return Ok(message_id);
        }
        // Committed before the message leaves: a crash during the exchange leaves it
        // behind, and the resumed step then knows the message was possibly sent.
        self.calls.journal_intent(&call, &message_id).await?;
        crate::failpoint::site("delivery.send.before");
        let result =
            deliver_email(self.step.service.clone(), mailboxes, &rendered, &message_id).await;
        crate::failpoint::after_send(&self.calls.context.step_id);
        let outcome = result
            .as_ref()
            .map(|()| Some(json!({ "message_id": message_id })));
        self.calls.journal_sent(&call, outcome, &message_id).await;
        result.map(|()| message_id)
    }
}

/// Sends through the configured transport (a free function: the future must be `Send`,
/// and the store's data is not `Sync`).
async fn deliver_email(
    email: std::sync::Arc<EmailService>,
    to: Vec<Mailbox>,
    rendered: &Rendered,
    message_id: &str,
) -> Result<(), CallError> {
    {
        let from = email
            .from
            .clone()
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        let mut builder = lettre::Message::builder()
            .from(from)
            .subject(rendered.subject.clone())
            .message_id(Some(format!("<{message_id}>")))
            .header(ContentType::TEXT_PLAIN);
        for mailbox in to {
            builder = builder.to(mailbox);
        }
        let message = builder
            .body(rendered.body.clone())
            .map_err(|e| CallError::Invalid(format!("email: {e}")))?;
        match email
            .transport
            .as_ref()
            .map_err(|e| CallError::Unavailable(e.to_string()))?
        {
            MailTransport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| CallError::Failed(format!("SMTP: {e}"))),
            MailTransport::Outbox(dir) => write_outbox(dir, message_id, &message.formatted())
                .await
                .map_err(|e| CallError::Failed(format!("outbox {}: {e}", dir.display()))),
        }
    }
}

/// Writes `<id>.eml` atomically, so a reader never sees half a message.
async fn write_outbox(dir: &Path, message_id: &str, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let name: String = message_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, dir.join(format!("{name}.eml"))).await
}
