//! Redaction of call parameters before they are journaled: secrets, tokens and card data
//! never reach the state store, the logs or the audit log.

use serde_json::Value;

/// Keys whose values are secret wherever they appear.
const SECRET_KEY_PARTS: &[&str] = &["secret", "password", "token", "api_key", "authorization"];
/// Card and bank fields (Stripe's names).
const SECRET_KEYS: &[&str] = &[
    "number",
    "cvc",
    "exp_month",
    "exp_year",
    "account_number",
    "routing_number",
    "iban",
];
/// Prefixes of Stripe credentials, in case one is passed under an innocent key.
const SECRET_PREFIXES: &[&str] = &["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"];

pub const REDACTED: &str = "[redacted]";

pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) {
                        Value::String(REDACTED.into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(s) if SECRET_PREFIXES.iter().any(|p| s.starts_with(p)) => {
            Value::String(REDACTED.into())
        }
        other => other.clone(),
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str()) || SECRET_KEY_PARTS.iter().any(|p| key.contains(p))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_and_card_data_are_replaced_at_any_depth() {
        let value = json!({
            "amount": 500,
            "card": {"number": "4242424242424242", "cvc": "123", "exp_month": 12},
            "metadata": {"client_secret": "pi_1_secret_x", "note": "sk_live_abc"},
            "items": [{"plan": "pro-monthly"}],
        });
        assert_eq!(
            redact(&value),
            json!({
                "amount": 500,
                "card": {"number": REDACTED, "cvc": REDACTED, "exp_month": REDACTED},
                "metadata": {"client_secret": REDACTED, "note": REDACTED},
                "items": [{"plan": "pro-monthly"}],
            })
        );
    }
}
