//! The test servers themselves (tests/support/servers.rs): each starts on its own port,
//! answers, and records what the capability tests assert on.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use serde_json::Value;
use support::servers::{LocalStripe, RecordedRequest, SmtpServer, WebhookReceiver};

#[test]
fn localstripe_records_requests_and_injects_failures() {
    let stripe = LocalStripe::start();
    let other = LocalStripe::start();
    assert_ne!(stripe.port(), other.port());

    let customer = stripe.post("/v1/customers", &[("email", "a@example.com")]);
    let id = customer["id"].as_str().unwrap();
    assert!(id.starts_with("cus_"), "{customer}");
    assert_eq!(
        stripe.get(&format!("/v1/customers/{id}"))["email"],
        "a@example.com"
    );
    // Separate instances, separate state.
    assert_eq!(other.get("/v1/customers")["data"], serde_json::json!([]));

    stripe.fail_next("POST", "/v1/customers", 503, 1);
    let before = stripe.requests().len();
    let answer = ureq::post(format!("{}/v1/customers", stripe.url()))
        .header("Authorization", "Bearer sk_test_12345")
        .header("Idempotency-Key", "key-1")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("email=b%40example.com");
    assert!(
        matches!(answer, Err(ureq::Error::StatusCode(503))),
        "{answer:?}"
    );
    let requests = stripe.requests();
    assert_eq!(requests.len(), before + 1);
    assert_eq!(
        requests.last().unwrap(),
        &RecordedRequest {
            method: "POST".into(),
            path: "/v1/customers".into(),
            query: String::new(),
            idempotency_key: Some("key-1".into()),
        }
    );
    // The injected failure never reached localstripe.
    assert_eq!(
        stripe.get("/v1/customers")["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Only one failure was asked for.
    stripe.post("/v1/customers", &[("email", "c@example.com")]);
}

/// A raw POST to localstripe with an idempotency key: `(status, replayed, body)`.
fn post_with_key(stripe: &LocalStripe, path: &str, key: &str, form: &str) -> (u16, bool, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut answer = agent
        .post(format!("{}{path}", stripe.url()))
        .header("Authorization", "Bearer sk_test_12345")
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form)
        .unwrap();
    let replayed = answer.headers().get("Idempotent-Replayed").is_some();
    let body = answer.body_mut().read_to_string().unwrap();
    (
        answer.status().as_u16(),
        replayed,
        serde_json::from_str(&body).unwrap(),
    )
}

#[test]
fn localstripe_answers_a_repeated_idempotency_key_as_stripe_does() {
    let stripe = LocalStripe::start();
    let (status, replayed, first) =
        post_with_key(&stripe, "/v1/customers", "key-a", "email=a%40example.com");
    assert_eq!((status, replayed), (200, false), "{first}");
    // The same key and parameters: the first answer again, and no second customer.
    let (status, replayed, again) =
        post_with_key(&stripe, "/v1/customers", "key-a", "email=a%40example.com");
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    // The same key with other parameters is refused.
    let (status, _, refused) =
        post_with_key(&stripe, "/v1/customers", "key-a", "email=b%40example.com");
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["type"], "idempotency_error");
    assert_eq!(
        stripe.get("/v1/customers")["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // An answer lost on the way back: the customer exists, and the retry gets it.
    stripe.lose_next_answers("POST", "/v1/customers", 502, 1);
    let (status, _, _) = post_with_key(&stripe, "/v1/customers", "key-b", "email=c%40example.com");
    assert_eq!(status, 502);
    let (status, replayed, kept) =
        post_with_key(&stripe, "/v1/customers", "key-b", "email=c%40example.com");
    assert_eq!((status, replayed), (200, true), "{kept}");
    assert_eq!(kept["email"], "c@example.com");
    assert_eq!(
        stripe.get("/v1/customers")["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A failure before localstripe keeps nothing: the retry is made.
    stripe.fail_next("POST", "/v1/customers", 500, 1);
    let (status, _, _) = post_with_key(&stripe, "/v1/customers", "key-c", "email=d%40example.com");
    assert_eq!(status, 500);
    let (status, replayed, _) =
        post_with_key(&stripe, "/v1/customers", "key-c", "email=d%40example.com");
    assert_eq!((status, replayed), (200, false));
    assert_eq!(
        stripe.get("/v1/customers")["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn localstripe_seed_creates_paid_subscriptions() {
    let stripe = LocalStripe::start();
    let seed = stripe.seed();
    assert_eq!(seed["plans"]["pro-monthly"]["amount"], 9900);
    let paid = &seed["customers"]["brightline"];
    assert_eq!(paid["subscription_status"], "active");
    assert_eq!(paid["invoice_status"], "paid");
    assert_eq!(paid["charge_status"], "succeeded");
    let charge = paid["charge"].as_str().unwrap();
    assert_eq!(stripe.get(&format!("/v1/charges/{charge}"))["paid"], true);
    let refunds = stripe.get(&format!("/v1/refunds?charge={charge}"));
    assert_eq!(refunds["data"], serde_json::json!([]));
    let declined = &seed["customers"]["ember"];
    assert_eq!(declined["subscription_status"], "incomplete");
    assert_eq!(declined["invoice_status"], "open");
    assert_eq!(declined["charge_status"], "failed");
    let events = seed["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "invoice.payment_succeeded")
    );
}

/// A minimal SMTP client: the host's own client is what the capability tests use.
fn send_mail(port: u16, from: &str, to: &[&str], message: &str) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut expect = |code: &str| loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect("220");
    let mut say = |line: String, code: &str| {
        writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        expect(code);
    };
    say("EHLO test".into(), "250");
    say(format!("MAIL FROM:<{from}>"), "250");
    for rcpt in to {
        say(format!("RCPT TO:<{rcpt}>"), "250");
    }
    say("DATA".into(), "354");
    say(format!("{}\r\n.", message.replace('\n', "\r\n")), "250");
    say("QUIT".into(), "221");
}

#[test]
fn smtp_server_keeps_messages() {
    let smtp = SmtpServer::start();
    assert!(smtp.messages().is_empty());
    send_mail(
        smtp.port(),
        "ops@example.com",
        &["billing@brightline.media", "cc@example.com"],
        "From: Billing Ops <ops@example.com>\nTo: billing@brightline.media\n\
         Subject: =?utf-8?q?Paiement_=C3=A9chou=C3=A9?=\nMessage-ID: <m1@example.com>\n\
         Content-Type: text/plain; charset=utf-8\n\nYour payment failed.\nSecond line.",
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];
    assert_eq!(mail.from, "ops@example.com");
    assert_eq!(mail.to, ["billing@brightline.media", "cc@example.com"]);
    assert_eq!(mail.subject, "Paiement échoué");
    assert_eq!(mail.body, "Your payment failed.\nSecond line.\n");
    assert_eq!(mail.message_id.as_deref(), Some("<m1@example.com>"));
    assert!(mail.raw.contains("Subject: =?utf-8?q?Paiement"));
}

#[test]
fn webhook_receiver_verifies_signatures() {
    let receiver = WebhookReceiver::start("whsec_smoke");
    let stripe = LocalStripe::start();
    // localstripe signs its events the way Stripe does.
    stripe.register_webhook(&receiver.endpoint(), receiver.secret());
    let customer = stripe.post("/v1/customers", &[("email", "a@example.com")]);
    let deliveries = receiver.wait_for_deliveries(1);
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["type"], "customer.created");
    assert_eq!(deliveries[0]["verified"], true);
    let events = stripe.get("/v1/events?type=customer.created");
    assert_eq!(deliveries[0]["event_id"], events["data"][0]["id"]);
    assert_eq!(events["data"][0]["data"]["object"]["id"], customer["id"]);

    // Signed with another secret: refused and logged as such.
    let other = WebhookReceiver::start("whsec_other");
    stripe.register_webhook(&other.endpoint(), "whsec_wrong");
    receiver.fail_next(500, 1);
    stripe.post("/v1/customers", &[("email", "b@example.com")]);
    let refused = other.wait_for_deliveries(1);
    assert_eq!(refused[0]["verified"], false, "{refused:?}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("No signatures found")
    );
    // The first endpoint still verified the second event, but answered the injected 500.
    let deliveries = receiver.wait_for_deliveries(2);
    assert_eq!(deliveries[1]["verified"], true);
    assert_eq!(deliveries[1]["status"], 500);
}
