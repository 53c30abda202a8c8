//! A coupon's terms as the operator gave them: validated, turned into `coupons.create`
//! parameters, and checked against a coupon that already exists. Also finding the
//! coupon's discount on a subscription.

use runbook_sdk::Failure;
use runbook_sdk::serde_json::{Value, json};

const DURATIONS: [&str; 3] = ["once", "repeating", "forever"];

/// Only what was given: each `None` means "whatever the coupon says".
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    pub percent_off: Option<f64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    pub duration: Option<String>,
    pub duration_in_months: Option<i64>,
}

impl Terms {
    /// Empty text counts as not given (runbook parameters default to "").
    pub fn from_input(
        percent_off: Option<f64>,
        amount_off: Option<i64>,
        currency: Option<&str>,
        duration: Option<&str>,
        duration_in_months: Option<i64>,
    ) -> Result<Terms, Failure> {
        let given = |s: Option<&str>| {
            s.map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
        };
        let terms = Terms {
            percent_off,
            amount_off,
            currency: given(currency),
            duration: given(duration),
            duration_in_months,
        };
        if terms.percent_off.is_some() && terms.amount_off.is_some() {
            return Err(Failure::invalid_input(
                "give percent_off or amount_off, not both",
            ));
        }
        if terms.percent_off.is_some_and(|p| !(p > 0.0 && p <= 100.0)) {
            return Err(Failure::invalid_input(
                "percent_off must be above 0 and at most 100",
            ));
        }
        if terms.amount_off.is_some_and(|a| a <= 0) {
            return Err(Failure::invalid_input(
                "amount_off must be positive (smallest currency unit)",
            ));
        }
        if let Some(c) = &terms.currency
            && (c.len() != 3 || !c.chars().all(|c| c.is_ascii_lowercase()))
        {
            return Err(Failure::invalid_input(format!(
                "currency {c:?} is not an ISO code like usd"
            )));
        }
        if let Some(d) = &terms.duration
            && !DURATIONS.contains(&d.as_str())
        {
            return Err(Failure::invalid_input(format!(
                "duration {d:?}; one of {}",
                DURATIONS.join(", ")
            )));
        }
        match (terms.duration.as_deref(), terms.duration_in_months) {
            (Some("repeating"), Some(m)) if m >= 1 => {}
            (Some("repeating"), _) => {
                return Err(Failure::invalid_input(
                    "a repeating coupon needs duration_in_months >= 1",
                ));
            }
            (_, Some(_)) => {
                return Err(Failure::invalid_input(
                    "duration_in_months is for repeating coupons only",
                ));
            }
            _ => {}
        }
        Ok(terms)
    }

    /// Parameters of `coupons.create` for a coupon `id` with these terms.
    pub fn create_params(&self, id: &str) -> Result<Value, Failure> {
        let mut params =
            json!({ "id": id, "duration": self.duration.as_deref().unwrap_or("once") });
        match (self.percent_off, self.amount_off) {
            (Some(p), _) => params["percent_off"] = json!(p),
            (None, Some(a)) => {
                params["amount_off"] = json!(a);
                params["currency"] = json!(self.currency.as_deref().unwrap_or("usd"));
            }
            (None, None) => {
                return Err(Failure::invalid_input(format!(
                    "coupon {id} does not exist in Stripe; give percent_off or amount_off to create it"
                )));
            }
        }
        if let Some(m) = self.duration_in_months {
            params["duration_in_months"] = json!(m);
        }
        Ok(params)
    }

    /// A `precondition` failure if the existing `coupon` is not valid any more or
    /// contradicts a term that was given.
    pub fn check_against(&self, coupon: &Value) -> Result<(), Failure> {
        let id = coupon["id"].as_str().unwrap_or("?");
        if coupon["valid"] == json!(false) {
            return Err(Failure::precondition(format!(
                "coupon {id} exists but is no longer valid"
            )));
        }
        let mut differ = Vec::new();
        if let Some(p) = self.percent_off
            && coupon["percent_off"]
                .as_f64()
                .is_none_or(|c| (c - p).abs() > 1e-9)
        {
            differ.push(format!(
                "percent_off {p} (Stripe: {})",
                coupon["percent_off"]
            ));
        }
        if let Some(a) = self.amount_off
            && coupon["amount_off"].as_i64() != Some(a)
        {
            differ.push(format!("amount_off {a} (Stripe: {})", coupon["amount_off"]));
        }
        if self.amount_off.is_some()
            && let Some(c) = &self.currency
            && coupon["currency"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref()
                != Some(c)
        {
            differ.push(format!("currency {c} (Stripe: {})", coupon["currency"]));
        }
        if let Some(d) = &self.duration
            && coupon["duration"].as_str() != Some(d)
        {
            differ.push(format!("duration {d} (Stripe: {})", coupon["duration"]));
        }
        if let Some(m) = self.duration_in_months
            && coupon["duration_in_months"].as_i64() != Some(m)
        {
            differ.push(format!(
                "duration_in_months {m} (Stripe: {})",
                coupon["duration_in_months"]
            ));
        }
        if differ.is_empty() {
            Ok(())
        } else {
            Err(Failure::precondition(format!(
                "coupon {id} already exists with other terms: {}",
                differ.join(", ")
            )))
        }
    }
}

/// The subscription's discount for `coupon_id`: `discount` (one coupon), or an expanded
/// entry of `discounts` (API versions with several).
pub fn discount_with<'a>(subscription: &'a Value, coupon_id: &str) -> Option<&'a Value> {
    let is_it = |d: &&Value| d["coupon"]["id"].as_str() == Some(coupon_id);
    std::iter::once(&subscription["discount"])
        .chain(subscription["discounts"].as_array().into_iter().flatten())
        .find(is_it)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(
        p: Option<f64>,
        a: Option<i64>,
        d: Option<&str>,
        m: Option<i64>,
    ) -> Result<Terms, Failure> {
        Terms::from_input(p, a, Some(""), d, m)
    }

    #[test]
    fn validation() {
        assert!(terms(Some(20.0), None, Some("once"), None).is_ok());
        assert!(
            terms(None, None, None, None).is_ok(),
            "using an existing coupon"
        );
        assert!(
            terms(None, None, Some(""), None)
                .unwrap()
                .duration
                .is_none()
        );
        for bad in [
            terms(Some(20.0), Some(500), None, None),
            terms(Some(0.0), None, None, None),
            terms(Some(120.0), None, None, None),
            terms(None, Some(-5), None, None),
            terms(Some(10.0), None, Some("weekly"), None),
            terms(Some(10.0), None, Some("repeating"), None),
            terms(Some(10.0), None, Some("once"), Some(3)),
            Terms::from_input(None, Some(500), Some("dollars"), None, None),
        ] {
            assert_eq!(bad.unwrap_err().code, "invalid-input");
        }
    }

    #[test]
    fn create_params() {
        let t = terms(Some(20.0), None, None, None).unwrap();
        assert_eq!(
            t.create_params("LAUNCH20").unwrap(),
            json!({"id": "LAUNCH20", "duration": "once", "percent_off": 20.0})
        );
        let t =
            Terms::from_input(None, Some(500), Some("EUR"), Some("repeating"), Some(3)).unwrap();
        assert_eq!(
            t.create_params("FIVE").unwrap(),
            json!({"id": "FIVE", "duration": "repeating", "amount_off": 500,
                   "currency": "eur", "duration_in_months": 3})
        );
        let err = terms(None, None, None, None)
            .unwrap()
            .create_params("X")
            .unwrap_err();
        assert_eq!(err.code, "invalid-input");
    }

    #[test]
    fn existing_coupons() {
        let coupon = json!({"id": "LAUNCH20", "percent_off": 20.0, "amount_off": null,
                            "duration": "once", "duration_in_months": null, "valid": true});
        assert!(
            terms(None, None, None, None)
                .unwrap()
                .check_against(&coupon)
                .is_ok()
        );
        assert!(
            terms(Some(20.0), None, Some("once"), None)
                .unwrap()
                .check_against(&coupon)
                .is_ok()
        );
        let err = terms(Some(25.0), None, Some("forever"), None)
            .unwrap()
            .check_against(&coupon)
            .unwrap_err();
        assert_eq!(err.code, "precondition");
        assert!(
            err.message.contains("percent_off 25") && err.message.contains("duration forever"),
            "{}",
            err.message
        );
        let mut expired = coupon.clone();
        expired["valid"] = json!(false);
        assert_eq!(
            terms(None, None, None, None)
                .unwrap()
                .check_against(&expired)
                .unwrap_err()
                .code,
            "precondition"
        );
    }

    #[test]
    fn finding_the_discount() {
        let sub = json!({"discount": {"coupon": {"id": "LAUNCH20"}}});
        assert!(discount_with(&sub, "LAUNCH20").is_some());
        assert!(discount_with(&sub, "OTHER").is_none());
        let sub = json!({"discount": null, "discounts": [{"coupon": {"id": "A"}}, {"coupon": {"id": "B"}}]});
        assert_eq!(discount_with(&sub, "B").unwrap()["coupon"]["id"], "B");
        assert!(discount_with(&json!({"discounts": ["di_123"]}), "B").is_none());
        assert!(discount_with(&json!({}), "B").is_none());
    }
}
