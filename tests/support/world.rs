//! A PostgreSQL workspace with the demo data wired to real test servers: localstripe
//! (seeded, with the demo organizations pointing at the seeded customers), an SMTP sink
//! and a webhook receiver.

use serde_json::Value;

use super::servers::{LocalStripe, RecordedRequest, SmtpServer, WebhookReceiver};
use super::{Backend, Workspace};

/// The key the host reads from its environment. Distinctive, so a leak is findable.
pub const STRIPE_KEY: &str = "sk_test_runbook_leakcheck_7f3a9c";
pub const WEBHOOK_SECRET: &str = "whsec_runbook_test_secret_51c2";

/// One test's servers and a PostgreSQL workspace with the demo data, wired together.
pub struct World {
    pub ws: Workspace,
    pub stripe: LocalStripe,
    pub smtp: SmtpServer,
    pub receiver: WebhookReceiver,
    pub seed: Value,
}

impl World {
    pub fn new() -> World {
        World::on(Backend::Postgres)
    }

    /// The same world with its target (and state store) on `backend`.
    pub fn on(backend: Backend) -> World {
        let ws = Workspace::with_demo(backend);
        let stripe = LocalStripe::start();
        let smtp = SmtpServer::start();
        let receiver = WebhookReceiver::start(WEBHOOK_SECRET);
        let seed = stripe.seed();
        ws.write_config(&format!(
            "\n[stripe]\napi_key_env = \"RUNBOOK_TEST_STRIPE_KEY\"\nbase_url = \"{}\"\nmax_attempts = 3\n\n\
             [webhooks.app]\nurl = \"{}\"\nsecret_env = \"RUNBOOK_TEST_WEBHOOK_SECRET\"\n\n\
             [groups]\nbilling-leads = [\"lead-a\", \"lead-b\"]\n\n[email]\nfrom = \"billing-ops@example.com\"\n[email.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
            stripe.url(),
            receiver.endpoint(),
            smtp.port()
        ));
        let world = World {
            ws,
            stripe,
            smtp,
            receiver,
            seed,
        };
        world.link_organizations();
        world
    }

    /// Points the demo's failed webhook events at real events in Stripe and returns their
    /// ids, sorted, so a replay has something to fetch and deliver.
    pub fn link_failed_events(&self) -> Vec<String> {
        let mut events: Vec<String> = self.seed["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "customer.subscription.created")
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        assert!(events.len() >= 2);
        for (i, id) in events.iter().enumerate() {
            self.ws.target_execute(&format!(
                "UPDATE subscription_events SET stripe_event_id = '{id}'
                  WHERE id = (SELECT id FROM subscription_events
                              WHERE processed_at IS NULL OR processing_error IS NOT NULL
                              ORDER BY id LIMIT 1 OFFSET {i});"
            ));
        }
        events.sort();
        events
    }

    /// Points the demo organizations the seed mirrors at the seeded Stripe objects.
    pub fn link_organizations(&self) {
        for customer in self.seed["customers"].as_object().unwrap().values() {
            let org = customer["organization_id"].as_i64().unwrap();
            self.ws.target_execute(&format!(
                "UPDATE organizations SET stripe_customer_id = '{cus}' WHERE id = {org};
                 UPDATE subscriptions SET stripe_subscription_id = '{sub}'
                   WHERE id = (SELECT id FROM subscriptions WHERE organization_id = {org}
                               ORDER BY created_at DESC LIMIT 1);
                 UPDATE invoices SET stripe_invoice_id = '{inv}', stripe_charge_id = '{ch}'
                   WHERE id = (SELECT id FROM invoices WHERE organization_id = {org} AND status = 'paid'
                               ORDER BY paid_at DESC LIMIT 1);",
                cus = customer["id"].as_str().unwrap(),
                sub = customer["subscription"].as_str().unwrap(),
                inv = customer["invoice"].as_str().unwrap(),
                ch = customer["charge"].as_str().unwrap_or_default(),
            ));
        }
    }

    pub fn customer(&self, key: &str) -> &Value {
        &self.seed["customers"][key]
    }

    pub fn exec(&self, args: &[&str]) -> (i32, Value, std::process::Output) {
        let mut cmd = self.ws.command();
        cmd.env("RUNBOOK_TEST_STRIPE_KEY", STRIPE_KEY)
            .env("RUNBOOK_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .arg("exec")
            .args(args)
            .arg("--json");
        let out = cmd.output().unwrap();
        let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), report, out)
    }

    /// `runbook <args>` as `who`, with the host's secrets in the environment.
    pub fn run_as(&self, who: &str, args: &[&str]) -> (i32, Value, std::process::Output) {
        let out = self
            .ws
            .command()
            .env("RUNBOOK_OPERATOR", who)
            .env("RUNBOOK_TEST_STRIPE_KEY", STRIPE_KEY)
            .env("RUNBOOK_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .args(args)
            .output()
            .unwrap();
        let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), report, out)
    }

    pub fn status(&self, run_id: &str) -> Value {
        self.ws.json(&["status", run_id, "--json"])
    }

    pub fn posts_to(&self, prefix: &str) -> Vec<RecordedRequest> {
        self.stripe
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.starts_with(prefix))
            .collect()
    }
}
