//! Which of the source runbooks' causes a `processing_error` text points at.
//!
//! "Identify root cause: signature verification failure → check WEBHOOK_SECRET; database
//! connection → check pool status; application crash → check process status." The
//! patterns are the messages those failures produce in the usual stacks (Stripe SDKs,
//! node-postgres/pgbouncer/sqlx, JavaScript/Python/Java runtimes). Order matters: a
//! signature error that mentions a timeout is still a signature error.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    Signature,
    Database,
    Application,
    Unknown,
}

const SIGNATURE: &[&str] = &[
    "signature",
    "webhook secret",
    "webhook_secret",
    "tolerance zone",
    "timestamp outside",
];

const DATABASE: &[&str] = &[
    "could not obtain connection",
    "connection pool",
    "pool exhausted",
    "pool timed out",
    "too many clients",
    "remaining connection slots",
    "deadlock",
    "could not serialize access",
    "lock timeout",
    "statement timeout",
    "econnrefused",
    "connection refused",
    "connection terminated",
    "server closed the connection",
    "database",
    "sqlstate",
    "duplicate key value",
];

const APPLICATION: &[&str] = &[
    "typeerror",
    "referenceerror",
    "syntaxerror",
    "rangeerror",
    "cannot read properties",
    "cannot read property",
    "is not a function",
    "undefined",
    "nullpointerexception",
    "null pointer",
    "keyerror",
    "attributeerror",
    "panicked",
    "unhandled",
    "exception",
    "not found",
    "internal server error",
];

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Signature => "signature",
            Cause::Database => "database",
            Cause::Application => "application",
            Cause::Unknown => "unknown",
        }
    }

    /// Classify one failed event by its `processing_error` (None: never processed and no
    /// error recorded, which tells nothing about the cause).
    pub fn of(error: Option<&str>) -> Cause {
        let Some(error) = error else {
            return Cause::Unknown;
        };
        let error = error.to_lowercase();
        let matches = |patterns: &[&str]| patterns.iter().any(|p| error.contains(p));
        if matches(SIGNATURE) {
            Cause::Signature
        } else if matches(DATABASE) {
            Cause::Database
        } else if matches(APPLICATION) {
            Cause::Application
        } else {
            Cause::Unknown
        }
    }

    /// What the source runbooks say to do about it.
    pub fn recommended_action(self) -> &'static str {
        match self {
            Cause::Signature => {
                "Check WEBHOOK_SECRET (STRIPE_WEBHOOK_SECRET): it must match the endpoint's \
                 signing secret in Stripe Dashboard > Developers > Webhooks. Also check that \
                 proxies pass the raw request body unchanged and that the server clock is in \
                 sync. Update the secret and restart the webhook service."
            }
            Cause::Database => {
                "Check the database connection pool: active connections (pg_stat_activity), \
                 idle-in-transaction sessions, pool size and deadlocks. The database must \
                 accept connections again before the events are replayed."
            }
            Cause::Application => {
                "Application error in the webhook handler: check the process status and the \
                 application logs for the stack trace; fix or roll back the handler before \
                 replaying, or the replayed events fail the same way."
            }
            Cause::Unknown => {
                "No recognised error: check that the webhook endpoint is up and the process \
                 is running, and read the application logs (grep -i webhook) for these events."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_messages() {
        let cases = [
            (
                "No signatures found matching the expected signature for payload",
                Cause::Signature,
            ),
            ("Invalid Stripe webhook signature", Cause::Signature),
            (
                "Webhook signature verification failed: timestamp outside the tolerance zone",
                Cause::Signature,
            ),
            (
                "could not obtain connection from pool: timeout after 30000ms",
                Cause::Database,
            ),
            ("deadlock detected", Cause::Database),
            ("Database connection failed", Cause::Database),
            ("connection pool exhausted", Cause::Database),
            (
                "TypeError: Cannot read properties of undefined (reading 'plan')",
                Cause::Application,
            ),
            ("Profile not found", Cause::Application),
            ("something odd happened", Cause::Unknown),
        ];
        for (text, want) in cases {
            assert_eq!(Cause::of(Some(text)), want, "{text}");
        }
        assert_eq!(Cause::of(None), Cause::Unknown);
    }

    #[test]
    fn signature_wins_over_timeouts() {
        assert_eq!(
            Cause::of(Some("signature check timed out: connection pool")),
            Cause::Signature
        );
    }
}
