-- The call journal: every capability call a step made (database, Stripe, webhook,
-- email), with its grant decision and outcome. Calls with outside effects are written as
-- soon as they are answered, so a re-run step can be answered from here instead of
-- repeating the effect (see src/state/journal.rs).
CREATE TABLE calls (
    run_id          TEXT   NOT NULL REFERENCES runs (id),
    step_index      BIGINT NOT NULL,
    attempt         BIGINT NOT NULL,
    seq             BIGINT NOT NULL,
    interface       TEXT   NOT NULL,
    operation       TEXT   NOT NULL,
    -- Redacted for display: secrets and card data never land here.
    params          TEXT   NOT NULL,
    -- sha256 of the unredacted request: a replay must be the same request.
    request_digest  TEXT   NOT NULL,
    decision        TEXT   NOT NULL CHECK (decision IN ('allowed', 'denied', 'replayed', 'dry-run')),
    outcome         TEXT   NOT NULL CHECK (outcome IN ('ok', 'error')),
    effect          BIGINT NOT NULL,
    response        TEXT,
    error           TEXT,
    idempotency_key TEXT,
    started_at      TEXT   NOT NULL,
    duration_us     BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_index, attempt, seq)
);

-- A dry run is recorded like any run, and says so.
ALTER TABLE runs ADD COLUMN dry_run BIGINT NOT NULL DEFAULT 0;
