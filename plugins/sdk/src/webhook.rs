//! Redelivery of events to the application's own webhook endpoints, signed by the host the
//! way Stripe signs them. The plugin names an endpoint from the host's configuration (the
//! step must grant it) and never sees its URL or signing secret.

use crate::__private::wit::runbook::plugin::webhook as wit;
use crate::CallError;
use crate::db::from_wit_error;

/// What the endpoint answered. A non-2xx answer is a delivery too: the plugin decides
/// what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The endpoint's HTTP status code.
    pub status: u16,
    /// The start of the endpoint's response body (at most 4 KiB).
    pub body: String,
}

impl Delivery {
    /// The endpoint accepted the event (HTTP 2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// POST `payload` (a Stripe event object as JSON text, sent byte for byte as given) to the
/// endpoint named `endpoint`.
pub fn deliver(endpoint: &str, payload: &str) -> Result<Delivery, CallError> {
    let delivery = wit::deliver(endpoint, payload).map_err(from_wit_error)?;
    Ok(Delivery {
        status: delivery.status,
        body: delivery.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_is_success() {
        let d = |status| Delivery {
            status,
            body: String::new(),
        };
        assert!(d(200).is_success());
        assert!(d(204).is_success());
        assert!(!d(199).is_success());
        assert!(!d(301).is_success());
        assert!(!d(400).is_success());
        assert!(!d(500).is_success());
    }
}
