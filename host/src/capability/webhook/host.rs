//! The `webhook` host function: a delivery checked against the granted endpoints,
//! answered from the journal on a re-run, planned in a dry run, otherwise signed
//! (`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>`) and posted
//! behind a write-ahead intent, with a `Runbook-Delivery-Id` that is the same on a re-send.

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{WebhookHost, WebhookService};
use crate::capability::delivery::Resumed;
use crate::contract::types::CallError;
use crate::contract::webhook::{self, Delivery};
use crate::state::CallDecision;

/// How much of the endpoint's answer the plugin gets back.
const BODY_LIMIT: usize = 4096;

impl webhook::Host for WebhookHost<'_> {
    async fn deliver(
        &mut self,
        endpoint: String,
        payload: String,
    ) -> wasmtime::Result<Result<Delivery, CallError>> {
        Ok(self.deliver_webhook(&endpoint, payload).await)
    }
}

impl WebhookHost<'_> {
    async fn deliver_webhook(
        &mut self,
        endpoint: &str,
        payload: String,
    ) -> Result<Delivery, CallError> {
        let event: Value = serde_json::from_str(&payload)
            .map_err(|e| CallError::Invalid(format!("webhook payload is not JSON: {e}")))?;
        let summary = json!({
            "endpoint": endpoint,
            "event_id": event.get("id"),
            "event_type": event.get("type"),
            "bytes": payload.len(),
        });
        let call = self.calls.begin_call(
            "webhook",
            "deliver",
            &format!("{endpoint}\n{payload}"),
            summary,
            true,
        );
        let granted = self
            .step
            .grant
            .as_ref()
            .is_some_and(|g| g.endpoints.contains(endpoint));
        if !granted {
            let reason = format!("webhook endpoint `{endpoint}` is not granted to this step");
            let target = format!("webhook:{endpoint}");
            return Err(CallError::Denied(
                self.calls.deny_call(&call, &target, reason).await,
            ));
        }
        if let Some(answer) = self.calls.replay(&call).await {
            return answer.map(|response| delivery_from(&response));
        }
        if self.calls.dry_run {
            let response = json!({ "status": 0, "body": "[dry run] not delivered" });
            let record = self.calls.record(
                &call,
                CallDecision::DryRun,
                true,
                Some(response.clone()),
                None,
                None,
            );
            self.calls.journal(record).await;
            return Ok(delivery_from(&response));
        }
        // The same on every attempt and process: the receiver can dedupe a re-delivery.
        let delivery_id = self.calls.idempotency_key(&call);
        let delivery = self
            .step
            .grant
            .as_ref()
            .map(|g| g.delivery)
            .unwrap_or_default();
        let unknown = json!({ "status": 0, "body": "[unknown] possibly delivered before a crash; not re-sent", "delivery_id": delivery_id });
        let target = format!("webhook:{endpoint}");
        if let Resumed::Unknown(answer) = self
            .calls
            .resume_intent(&call, delivery, &target, &delivery_id, unknown)
            .await
        {
            return Ok(delivery_from(&answer));
        }
        // Committed before the request leaves (see the email capability).
        self.calls.journal_intent(&call, &delivery_id).await?;
        crate::failpoint::site("delivery.send.before");
        let result = post_signed(self.step.service.clone(), endpoint, payload, &delivery_id).await;
        crate::failpoint::after_send(&self.calls.context.step_id);
        let outcome = result.as_ref().map(|d| {
            Some(json!({ "status": d.status, "body": d.body, "delivery_id": delivery_id }))
        });
        self.calls.journal_sent(&call, outcome, &delivery_id).await;
        result
    }
}

/// Signs and posts one payload (a free function: the future must be `Send`, and the
/// store's data is not `Sync`).
async fn post_signed(
    service: std::sync::Arc<WebhookService>,
    endpoint: &str,
    payload: String,
    delivery_id: &str,
) -> Result<Delivery, CallError> {
    {
        let Some(hook) = service.endpoints.get(endpoint) else {
            return Err(CallError::Unavailable(format!(
                "no webhook endpoint `{endpoint}` is configured on this host (`[webhooks.{endpoint}]` in runbook.toml)"
            )));
        };
        let secret = hook
            .secret
            .as_ref()
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(secret, timestamp, &payload);
        let request = hyper::Request::post(&hook.url)
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "user-agent",
                concat!(
                    "runbook/",
                    env!("CARGO_PKG_VERSION"),
                    " (webhook redelivery)"
                ),
            )
            .header("stripe-signature", format!("t={timestamp},v1={signature}"))
            .header("runbook-delivery-id", delivery_id)
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| CallError::Invalid(format!("webhook request: {e}")))?;
        let exchange = async {
            let response = service
                .http
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(hook.timeout, exchange)
            .await
            .map_err(|_| {
                CallError::Failed(format!(
                    "webhook `{endpoint}`: no answer within {:?}",
                    hook.timeout
                ))
            })?
            .map_err(|e| CallError::Failed(format!("webhook `{endpoint}`: {e}")))?;
        let body = String::from_utf8_lossy(&body[..body.len().min(BODY_LIMIT)]).into_owned();
        Ok(Delivery { status, body })
    }
}

/// Stripe's scheme: HMAC-SHA256 over `"<timestamp>.<payload>"`, hex-encoded.
fn sign(secret: &str, timestamp: i64, payload: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn delivery_from(response: &Value) -> Delivery {
    Delivery {
        status: response["status"].as_u64().unwrap_or(0) as u16,
        body: response["body"].as_str().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_payload() {
        // HMAC-SHA256("whsec_test", "1700000000.{}") computed independently with
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test`.
        assert_eq!(
            sign("whsec_test", 1_700_000_000, "{}"),
            "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
