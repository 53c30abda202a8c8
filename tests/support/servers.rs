//! Real servers for the Stripe, email and webhook capabilities, one set per test:
//! localstripe (a fake Stripe API), an SMTP server that keeps every message, and a Stripe
//! webhook endpoint that verifies signatures with the official library. They are the
//! Python scripts in tests/servers/, run from the venv `cargo xtask pyenv` makes in
//! target/py (or `RUNBOOK_TEST_PYTHON`). Each is a child process on its own free
//! 127.0.0.1 port, killed when its handle is dropped.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::repo_root;

/// The secret key localstripe accepts (any `sk_...` does); the seed uses this one.
pub const STRIPE_API_KEY: &str = "sk_test_12345";

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The interpreter with tests/servers/requirements.txt installed.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("RUNBOOK_TEST_PYTHON") {
        return python.into();
    }
    let python = repo_root().join("target/py/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `cargo xtask pyenv` (cargo xtask test does), or set \
         RUNBOOK_TEST_PYTHON to a Python with tests/servers/requirements.txt installed",
        python.display()
    );
    python
}

fn script(name: &str) -> PathBuf {
    repo_root().join("tests/servers").join(name)
}

/// A server script running as a child process, with a scratch folder of its own (its
/// stderr, and whatever it stores).
struct ServerProcess {
    name: &'static str,
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `tests/servers/<name>` with `--port 0 <args>` and waits for its
    /// `ready 127.0.0.1:<port>` line. The script binds the port itself, so there is no
    /// window in which another process can take it.
    fn start(name: &'static str, dir: tempfile::TempDir, args: Vec<OsString>) -> ServerProcess {
        let python = python();
        let stderr_path = dir.path().join("stderr.log");
        let stderr = File::create(&stderr_path).unwrap();
        let mut child = Command::new(&python)
            .arg("-u") // unbuffered: the readiness line arrives at once
            .arg("-B") // no __pycache__ in tests/servers
            .arg(script(name))
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {name} with {}: {e} (run `cargo xtask pyenv`)",
                    python.display()
                )
            });

        // Read stdout on a thread for the whole life of the child, so that it never
        // blocks on a full pipe; the first line that announces the port is sent back.
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let port = line
                    .strip_prefix("ready 127.0.0.1:")
                    .and_then(|p| p.trim().parse::<u16>().ok());
                if let (Some(port), Some(tx)) = (port, ready_tx.take()) {
                    let _ = tx.send(port);
                }
            }
        });

        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(port) => ServerProcess {
                name,
                child,
                port,
                dir,
            },
            Err(e) => {
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("not ready after {READY_TIMEOUT:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => "exited before it was ready".into(),
                };
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "{name}: {why} (exit status {status:?})\nstderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                )
            }
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server wrote on stderr so far, for failure messages.
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- a few blocking HTTP calls to the servers ------------------------------------------

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `(status, body)`; a connection failure panics.
fn http(
    method: &str,
    url: &str,
    auth: Option<&str>,
    content_type: &str,
    body: Option<String>,
) -> (u16, String) {
    let agent = agent();
    let bearer = auth.map(|key| format!("Bearer {key}"));
    let result = match method {
        "GET" | "DELETE" => {
            let mut request = if method == "GET" {
                agent.get(url)
            } else {
                agent.delete(url)
            };
            if let Some(bearer) = &bearer {
                request = request.header("Authorization", bearer);
            }
            request.call()
        }
        "POST" => {
            let mut request = agent.post(url).header("Content-Type", content_type);
            if let Some(bearer) = &bearer {
                request = request.header("Authorization", bearer);
            }
            request.send(body.unwrap_or_default())
        }
        other => panic!("unsupported method {other}"),
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"));
    (status, text)
}

fn parse_json(what: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
}

/// `application/x-www-form-urlencoded`, the way Stripe's API takes parameters
/// (`metadata[key]` style names are passed through as given).
fn form_encode(params: &[(&str, &str)]) -> String {
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

// --- localstripe -----------------------------------------------------------------------

/// One request localstripe received (recorded before it is answered, injected failures
/// included). `query` is the raw query string, empty if none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub idempotency_key: Option<String>,
}

/// localstripe on 127.0.0.1, empty at start, with request recording, failure injection
/// and Stripe's idempotency (a repeated `Idempotency-Key` gets the first answer) in
/// front (tests/servers/localstripe_server.py).
pub struct LocalStripe {
    process: ServerProcess,
}

impl LocalStripe {
    pub fn start() -> LocalStripe {
        let dir = tempfile::tempdir().unwrap();
        LocalStripe {
            process: ServerProcess::start("localstripe_server.py", dir, Vec::new()),
        }
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// `http://127.0.0.1:<port>`: the API base (paths start with `/v1/`).
    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn api_key(&self) -> &'static str {
        STRIPE_API_KEY
    }

    /// The default fixtures of tests/servers/stripe_seed.py (its docstring documents
    /// them); returns its JSON: `plans`, `customers` by key, `events`.
    pub fn seed(&self) -> Value {
        self.seed_with(None)
    }

    /// Like [`LocalStripe::seed`] with `spec` replacing the seed's `plans` and/or
    /// `customers` lists.
    pub fn seed_with(&self, spec: Option<&Value>) -> Value {
        let mut command = Command::new(python());
        command
            .arg("-B")
            .arg(script("stripe_seed.py"))
            .arg("--api-base")
            .arg(self.url());
        if let Some(spec) = spec {
            command.arg("--spec").arg(spec.to_string());
        }
        let out = command.output().expect("cannot run stripe_seed.py");
        assert!(
            out.status.success(),
            "stripe_seed.py failed ({})\nstderr:\n{}\nlocalstripe stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.process.stderr()
        );
        parse_json("stripe_seed.py", &String::from_utf8_lossy(&out.stdout))
    }

    /// GET an API path (with its query string), e.g. `/v1/refunds?charge=ch_x`, with the
    /// secret key; panics unless the answer is 2xx.
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = http(
            "GET",
            &format!("{}{path}", self.url()),
            Some(STRIPE_API_KEY),
            "",
            None,
        );
        assert!((200..300).contains(&status), "GET {path}: {status} {body}");
        parse_json(path, &body)
    }

    /// POST form parameters to an API path, to arrange state behind the host's back;
    /// panics unless the answer is 2xx.
    pub fn post(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = http(
            "POST",
            &format!("{}{path}", self.url()),
            Some(STRIPE_API_KEY),
            "application/x-www-form-urlencoded",
            Some(form_encode(params)),
        );
        assert!((200..300).contains(&status), "POST {path}: {status} {body}");
        parse_json(path, &body)
    }

    /// Every API request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let (status, body) = http(
            "GET",
            &format!("{}/_test/requests", self.url()),
            None,
            "",
            None,
        );
        assert_eq!(status, 200, "/_test/requests: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/_test/requests: {e}: {body}"))
    }

    /// The next `count` requests with this method and a path starting with `path_prefix`
    /// answer `status` with `{"error":{"type":"api_error","message":"injected"}}`
    /// without reaching localstripe.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, count: u32) {
        self.inject(method, path_prefix, status, count, false);
    }

    /// Like [`LocalStripe::fail_next`], but the requests do reach localstripe (their
    /// effect is made, and kept for their idempotency key); only the answer is lost on
    /// the way back, as a client sees a timeout or a reset connection.
    pub fn lose_next_answers(&self, method: &str, path_prefix: &str, status: u16, count: u32) {
        self.inject(method, path_prefix, status, count, true);
    }

    fn inject(&self, method: &str, path_prefix: &str, status: u16, count: u32, after: bool) {
        let rule = serde_json::json!({
            "method": method,
            "path_prefix": path_prefix,
            "status": status,
            "count": count,
            "after": after,
        });
        let (code, body) = http(
            "POST",
            &format!("{}/_test/fail-next", self.url()),
            None,
            "application/json",
            Some(rule.to_string()),
        );
        assert_eq!(code, 200, "/_test/fail-next: {body}");
    }

    /// Makes localstripe deliver its own events (signed `t=...,v1=...` with `secret`) to
    /// `url`, about a second after each event, like a Stripe webhook endpoint setting.
    pub fn register_webhook(&self, url: &str, secret: &str) {
        // localstripe keeps endpoints by id: one id per registration.
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let (status, body) = http(
            "POST",
            &format!("{}/_config/webhooks/endpoint-{id}", self.url()),
            None,
            "application/x-www-form-urlencoded",
            Some(form_encode(&[("url", url), ("secret", secret)])),
        );
        assert_eq!(status, 200, "/_config/webhooks: {body}");
    }
}

// --- SMTP ------------------------------------------------------------------------------

/// One message the SMTP server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// Envelope sender (`MAIL FROM`).
    pub from: String,
    /// Envelope recipients (`RCPT TO`), in order.
    pub to: Vec<String>,
    /// Decoded `Subject` header, empty if none.
    pub subject: String,
    /// Decoded text/plain body (else the HTML one), `\n` line ends.
    pub body: String,
    pub html: Option<String>,
    pub message_id: Option<String>,
    /// The message exactly as received.
    pub raw: String,
}

#[derive(Deserialize)]
struct MailSidecar {
    file: String,
    mail_from: String,
    rcpt_tos: Vec<String>,
    message_id: Option<String>,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
}

/// Plain SMTP (no TLS; AUTH accepted with any credentials, none required) on 127.0.0.1
/// (tests/servers/smtp_server.py).
pub struct SmtpServer {
    process: ServerProcess,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        SmtpServer {
            process: ServerProcess::start(
                "smtp_server.py",
                dir,
                vec!["--maildir".into(), maildir.into()],
            ),
        }
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.process.port)
    }

    /// Where each message is kept as `<n>.eml` with a `<n>.json` sidecar.
    pub fn maildir(&self) -> PathBuf {
        self.process.dir.path().join("mail")
    }

    /// Every message received so far, in order of arrival.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let maildir = self.maildir();
        let mut sidecars: Vec<PathBuf> = match std::fs::read_dir(&maildir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => Vec::new(),
        };
        sidecars.sort();
        sidecars.iter().map(|p| read_mail(&maildir, p)).collect()
    }
}

fn read_mail(maildir: &Path, sidecar: &Path) -> ReceivedMail {
    let text = std::fs::read_to_string(sidecar).unwrap();
    let meta: MailSidecar =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", sidecar.display()));
    let raw = std::fs::read(maildir.join(&meta.file)).unwrap();
    ReceivedMail {
        from: meta.mail_from,
        to: meta.rcpt_tos,
        subject: meta.subject.unwrap_or_default(),
        body: meta.text.or_else(|| meta.html.clone()).unwrap_or_default(),
        html: meta.html,
        message_id: meta.message_id,
        raw: String::from_utf8_lossy(&raw).into_owned(),
    }
}

// --- webhook endpoint ------------------------------------------------------------------

/// An application's Stripe webhook endpoint on 127.0.0.1 that verifies `Stripe-Signature`
/// with `stripe.Webhook.construct_event` (tests/servers/webhook_receiver.py).
pub struct WebhookReceiver {
    process: ServerProcess,
    secret: String,
}

impl WebhookReceiver {
    pub fn start(secret: &str) -> WebhookReceiver {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("deliveries.jsonl");
        WebhookReceiver {
            process: ServerProcess::start(
                "webhook_receiver.py",
                dir,
                vec!["--secret".into(), secret.into(), "--log".into(), log.into()],
            ),
            secret: secret.to_string(),
        }
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.process.url()
    }

    /// The endpoint events are POSTed to: `<url>/webhooks/stripe`.
    pub fn endpoint(&self) -> String {
        format!("{}/webhooks/stripe", self.url())
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Every delivery so far, oldest first: `{"event_id", "type", "verified": true,
    /// "status"}`, or with `"verified": false` a `"reason"` (answered 400).
    pub fn deliveries(&self) -> Vec<Value> {
        let (status, body) = http(
            "GET",
            &format!("{}/_test/deliveries", self.url()),
            None,
            "",
            None,
        );
        assert_eq!(status, 200, "/_test/deliveries: {body}");
        match parse_json("/_test/deliveries", &body) {
            Value::Array(entries) => entries,
            other => panic!("/_test/deliveries: {other}"),
        }
    }

    /// Waits up to 10 s for at least `count` deliveries (localstripe's own webhooks
    /// arrive about a second after their event), then returns them all.
    pub fn wait_for_deliveries(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let deliveries = self.deliveries();
            if deliveries.len() >= count || Instant::now() > deadline {
                return deliveries;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The next `count` deliveries are verified and logged but answered `status`.
    pub fn fail_next(&self, status: u16, count: u32) {
        let rule = serde_json::json!({ "status": status, "count": count });
        let (code, body) = http(
            "POST",
            &format!("{}/_test/fail-next", self.url()),
            None,
            "application/json",
            Some(rule.to_string()),
        );
        assert_eq!(code, 200, "/_test/fail-next: {body}");
    }
}
