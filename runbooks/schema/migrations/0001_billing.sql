-- Reference billing schema for runbook's shipped runbooks.
--
-- Portable on purpose: the same file runs unchanged on PostgreSQL 15 and SQLite 3.4x
-- (applied by sqlx's Migrator). Hence explicit BIGINT ids (no SERIAL/AUTOINCREMENT),
-- money as BIGINT cents (no NUMERIC: SQLite would store it as a float), JSON payloads as
-- TEXT, CURRENT_TIMESTAMP defaults. SQLite stores TIMESTAMPTZ values as the text written
-- to it; write them as 'YYYY-MM-DD HH:MM:SS+00:00' so that strftime() can read them.
-- Enumerations from the source runbooks are CHECK constraints.

-- Tenants. plan_tier mirrors the active subscription's tier (free when there is none).
CREATE TABLE organizations (
    id                 BIGINT PRIMARY KEY,
    name               TEXT NOT NULL,
    plan_tier          TEXT NOT NULL DEFAULT 'free'
                       CHECK (plan_tier IN ('free', 'starter', 'pro', 'enterprise')),
    billing_email      TEXT NOT NULL,
    stripe_customer_id TEXT UNIQUE,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- People of an organization; owners and admins get billing notifications.
CREATE TABLE organization_members (
    id              BIGINT PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    name            TEXT,
    role            TEXT NOT NULL DEFAULT 'member'
                    CHECK (role IN ('owner', 'admin', 'member')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (organization_id, email)
);

-- Quota per tier and dimension (the limits the upgrade/downgrade procedures write).
CREATE TABLE plan_limits (
    plan_tier   TEXT NOT NULL CHECK (plan_tier IN ('free', 'starter', 'pro', 'enterprise')),
    dimension   TEXT NOT NULL
                CHECK (dimension IN ('sites', 'posts', 'users', 'storage_bytes', 'api_calls')),
    quota_limit BIGINT NOT NULL CHECK (quota_limit >= 0),
    PRIMARY KEY (plan_tier, dimension)
);

CREATE TABLE subscriptions (
    id                     BIGINT PRIMARY KEY,
    organization_id        BIGINT NOT NULL REFERENCES organizations (id),
    stripe_subscription_id TEXT NOT NULL UNIQUE,
    plan_tier              TEXT NOT NULL
                           CHECK (plan_tier IN ('free', 'starter', 'pro', 'enterprise')),
    billing_cycle          TEXT NOT NULL DEFAULT 'monthly'
                           CHECK (billing_cycle IN ('monthly', 'annual')),
    -- Price per billing cycle: an annual subscription's MRR is amount_cents / 12.
    amount_cents           BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency               TEXT NOT NULL DEFAULT 'usd',
    status                 TEXT NOT NULL
                           CHECK (status IN ('active', 'past_due', 'canceled', 'trialing')),
    current_period_end     TIMESTAMPTZ,
    cancel_at_period_end   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    -- For past_due subscriptions: when the payment failed (the grace period starts).
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    canceled_at            TIMESTAMPTZ,
    CHECK ((status = 'canceled') = (canceled_at IS NOT NULL))
);
CREATE INDEX subscriptions_organization ON subscriptions (organization_id);
CREATE INDEX subscriptions_status ON subscriptions (status);

CREATE TABLE invoices (
    id                BIGINT PRIMARY KEY,
    organization_id   BIGINT NOT NULL REFERENCES organizations (id),
    subscription_id   BIGINT REFERENCES subscriptions (id),
    stripe_invoice_id TEXT NOT NULL UNIQUE,
    stripe_charge_id  TEXT,
    amount_due_cents  BIGINT NOT NULL CHECK (amount_due_cents >= 0),
    amount_paid_cents BIGINT NOT NULL DEFAULT 0 CHECK (amount_paid_cents >= 0),
    currency          TEXT NOT NULL DEFAULT 'usd',
    status            TEXT NOT NULL
                      CHECK (status IN ('draft', 'open', 'paid', 'uncollectible', 'void')),
    period_start      TIMESTAMPTZ,
    period_end        TIMESTAMPTZ,
    paid_at           TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CHECK ((status = 'paid') = (paid_at IS NOT NULL))
);
CREATE INDEX invoices_organization ON invoices (organization_id);
CREATE INDEX invoices_status_paid_at ON invoices (status, paid_at);

-- The Stripe webhook event log: one row per delivered event. An event is failed while it
-- is unprocessed (processed_at NULL) or carries a processing_error.
CREATE TABLE subscription_events (
    id               BIGINT PRIMARY KEY,
    stripe_event_id  TEXT NOT NULL UNIQUE,
    event_type       TEXT NOT NULL,
    organization_id  BIGINT REFERENCES organizations (id),
    -- The Stripe object the event is about (sub_..., in_..., ch_...).
    stripe_object_id TEXT,
    payload          TEXT NOT NULL DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    processed_at     TIMESTAMPTZ,
    processing_error TEXT,
    attempts         BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0)
);
CREATE INDEX subscription_events_created_at ON subscription_events (created_at);
CREATE INDEX subscription_events_failed ON subscription_events (event_type)
    WHERE processed_at IS NULL OR processing_error IS NOT NULL;

CREATE TABLE usage_quotas (
    organization_id BIGINT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    dimension       TEXT NOT NULL
                    CHECK (dimension IN ('sites', 'posts', 'users', 'storage_bytes', 'api_calls')),
    current_usage   BIGINT NOT NULL DEFAULT 0 CHECK (current_usage >= 0),
    quota_limit     BIGINT NOT NULL CHECK (quota_limit >= 0),
    last_reset_at   TIMESTAMPTZ,
    PRIMARY KEY (organization_id, dimension)
);
CREATE INDEX usage_quotas_dimension ON usage_quotas (dimension);

-- Dunning flow per past_due subscription: day 0 notice, day 3 retry, day 7 downgrade.
CREATE TABLE dunning_events (
    id                BIGINT PRIMARY KEY,
    subscription_id   BIGINT NOT NULL REFERENCES subscriptions (id),
    step              TEXT NOT NULL CHECK (step IN ('notice', 'retry', 'downgrade')),
    step_started_at   TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    scheduled_for     TIMESTAMPTZ NOT NULL,
    completed         BOOLEAN NOT NULL DEFAULT FALSE,
    completed_at      TIMESTAMPTZ,
    completion_reason TEXT
                      CHECK (completion_reason IN ('done', 'recovered', 'emergency_skip', 'manual_override')),
    CHECK (completed = (completed_at IS NOT NULL))
);
CREATE INDEX dunning_events_subscription ON dunning_events (subscription_id);

-- Features an organization may use, derived from its plan or granted by hand.
CREATE TABLE entitlements (
    id              BIGINT PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    feature         TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    source          TEXT NOT NULL DEFAULT 'plan' CHECK (source IN ('plan', 'manual', 'trial')),
    granted_at      TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at      TIMESTAMPTZ,
    UNIQUE (organization_id, feature)
);

-- Prepaid credits: the balance, and the ledger every change to it must be written to.
CREATE TABLE credit_balances (
    organization_id BIGINT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    balance         BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE credit_transactions (
    id              BIGINT PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations (id),
    -- Signed: a purchase or grant is positive, a claim is negative.
    amount          BIGINT NOT NULL CHECK (amount <> 0),
    reason          TEXT NOT NULL
                    CHECK (reason IN ('purchase', 'usage', 'refund', 'webhook_failure',
                                      'manual_adjustment', 'promotion')),
    -- Who made the change: 'system', 'stripe', or an operator's email.
    actor           TEXT NOT NULL,
    reference       TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX credit_transactions_organization ON credit_transactions (organization_id);

-- Payment attempts as Stripe reported them (charges, failures, refunds, disputes).
CREATE TABLE payment_events (
    id                BIGINT PRIMARY KEY,
    organization_id   BIGINT NOT NULL REFERENCES organizations (id),
    invoice_id        BIGINT REFERENCES invoices (id),
    stripe_event_id   TEXT UNIQUE,
    stripe_charge_id  TEXT,
    event_type        TEXT NOT NULL
                      CHECK (event_type IN ('payment_succeeded', 'payment_failed', 'refunded',
                                            'dispute_opened', 'dispute_closed')),
    amount_cents      BIGINT NOT NULL DEFAULT 0,
    failure_code      TEXT,
    failure_message   TEXT,
    correlation_id    TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX payment_events_organization ON payment_events (organization_id);
