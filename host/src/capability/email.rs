//! `runbook:plugin/email`: messages rendered by the host from its templates and sent to
//! recipients the step's grant allows, through SMTP or into an outbox folder of `.eml`
//! files. In a dry run they are rendered and planned, not sent.

use std::path::Path;

use lettre::AsyncTransport;
use lettre::message::{Mailbox, header::ContentType};
use serde_json::{Value, json};

use super::services::MailTransport;
use crate::runtime::StepState;
use crate::runtime::email_bindings::{self, Message};
use crate::runtime::types_bindings::CallError;
use crate::state::CallDecision;

impl email_bindings::Host for StepState {
    async fn send(&mut self, message: Message) -> wasmtime::Result<Result<String, CallError>> {
        Ok(self.send_email(message).await)
    }
}

/// A template rendered for one message.
#[derive(Debug)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

impl StepState {
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
        let rendered = render_template(
            &self.effects.services.email.templates,
            &message.template,
            &context,
        )
        .map_err(CallError::Invalid)?;
        let params = json!({ "to": to, "template": message.template, "subject": rendered.subject });
        let call = self.begin_call(
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

        let Some(grant) = self.grants.email.clone() else {
            let reason = "sending email is not granted to this step".to_string();
            return Err(CallError::Denied(
                self.deny_call(&call, "email", reason).await,
            ));
        };
        if let Some(address) = to.iter().find(|a| !grant.allows(a)) {
            let reason = format!("recipient {address} is not allowed by this step's grant");
            let target = format!("email:{address}");
            return Err(CallError::Denied(
                self.deny_call(&call, &target, reason).await,
            ));
        }
        if let Some(done) = self.completed_effect(&call).await {
            let id = done
                .response
                .as_ref()
                .and_then(|r| r["message_id"].as_str())
                .unwrap_or_default()
                .to_string();
            let record = self.record(
                &call,
                CallDecision::Replayed,
                done.ok,
                done.response,
                done.error.clone(),
                None,
            );
            self.journal(record).await;
            return match done.error {
                Some(e) if !done.ok => Err(CallError::Failed(e)),
                _ => Ok(id),
            };
        }
        let spent = self.effects.budget.spent(&self.context.step_id);
        if let Some(max) = grant.max_per_run
            && spent.emails >= max
        {
            let reason = format!("this step may send at most {max} email(s) per run");
            return Err(CallError::Denied(
                self.deny_call(&call, "email", reason).await,
            ));
        }
        self.effects
            .budget
            .charge(&self.context.step_id, |s| s.emails += 1);

        // Deterministic, so a re-sent message is recognisably the same message.
        let message_id = format!(
            "runbook-{}-{}-{}@runbook.invalid",
            self.context.run_id, self.context.step_id, call.seq
        );
        if self.effects.dry_run {
            let response = json!({ "message_id": message_id, "body": rendered.body });
            let record = self.record(
                &call,
                CallDecision::DryRun,
                true,
                Some(response),
                None,
                None,
            );
            self.journal(record).await;
            return Ok(message_id);
        }
        let result = deliver_email(
            self.effects.services.clone(),
            mailboxes,
            &rendered,
            &message_id,
        )
        .await;
        let record = match &result {
            Ok(()) => self.record(
                &call,
                CallDecision::Allowed,
                true,
                Some(json!({ "message_id": message_id })),
                None,
                None,
            ),
            Err(e) => self.record(
                &call,
                CallDecision::Allowed,
                false,
                None,
                Some(e.message()),
                None,
            ),
        };
        self.journal(record).await;
        result.map(|()| message_id)
    }
}

/// Sends through the configured transport (a free function: the future must be `Send`,
/// and `StepState` is not `Sync`).
async fn deliver_email(
    services: std::sync::Arc<super::Services>,
    to: Vec<Mailbox>,
    rendered: &Rendered,
    message_id: &str,
) -> Result<(), CallError> {
    {
        let email = &services.email;
        let from = email.from.clone().map_err(CallError::Unavailable)?;
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
            .map_err(|e| CallError::Unavailable(e.clone()))?
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

/// Renders `<dir>/<name>.txt`: a `Subject:` line, a blank line, the body; both minijinja
/// templates over `context`, strict about undefined variables.
pub fn render_template(dir: &Path, name: &str, context: &Value) -> Result<Rendered, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!("{name:?} is not a template name"));
    }
    let path = dir.join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("email template `{name}` ({}): {e}", path.display()))?;
    let (head, body) = text.split_once("\n\n").ok_or_else(|| {
        format!("email template `{name}`: expected a `Subject:` line, a blank line, then the body")
    })?;
    let subject = head
        .strip_prefix("Subject:")
        .ok_or_else(|| format!("email template `{name}`: the first line must be `Subject: ...`"))?
        .trim();
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // Plain text mail: nothing to escape.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let context = crate::template::json_to_value(context);
    let render = |what: &str, source: &str| {
        env.render_str(source, &context)
            .map_err(|e| format!("email template `{name}` {what}: {e}"))
    };
    Ok(Rendered {
        subject: render("subject", subject)?.replace(['\r', '\n'], " "),
        body: render("body", body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_subject_and_body_strictly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("notice.txt"),
            "Subject: Payment failed for {{ org }}\n\nHello {{ name }},\nyour card was declined.\n",
        )
        .unwrap();
        let ok =
            render_template(dir.path(), "notice", &json!({"org": "Acme", "name": "Ann"})).unwrap();
        assert_eq!(ok.subject, "Payment failed for Acme");
        assert_eq!(ok.body, "Hello Ann,\nyour card was declined.");
        let err = render_template(dir.path(), "notice", &json!({"org": "Acme"})).unwrap_err();
        assert!(err.contains("body"), "{err}");
        assert!(render_template(dir.path(), "../etc/passwd", &json!({})).is_err());
    }
}
