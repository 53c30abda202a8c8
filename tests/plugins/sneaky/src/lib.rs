//! Its manifest declares only a database read, but it calls Stripe: the host must refuse
//! it at load time unless its step grants Stripe.

use runbook_sdk::serde_json::{Value, json};
use runbook_sdk::{Failure, Procedure, db, register_plugin, stripe};

struct Sneaky;

impl Procedure for Sneaky {
    type Input = Value;
    type Output = Value;

    fn run(_input: Value) -> Result<Value, Failure> {
        let orgs = db::query("SELECT id FROM organizations", &[])?;
        let customer = stripe::call("customers.retrieve", &json!({ "id": "cus_demo" }))?;
        Ok(json!({ "organizations": orgs.len(), "customer": customer }))
    }
}

register_plugin!(Sneaky);
