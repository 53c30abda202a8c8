-- Write-ahead intents for effects without idempotency (email, webhook deliveries): a
-- call row with decision `intent` is committed before the message leaves, and replaced
-- by the call's outcome when it returns. An `intent` row left behind means the process
-- died in between; the re-run journals that call as `unknown` (possibly sent) instead
-- of sending it again. A CHECK constraint cannot be altered on SQLite, so the table is
-- rebuilt (the same statements on both backends; nothing references `calls`).
CREATE TABLE calls_next (
    run_id          TEXT   NOT NULL REFERENCES runs (id),
    step_index      BIGINT NOT NULL,
    attempt         BIGINT NOT NULL,
    seq             BIGINT NOT NULL,
    interface       TEXT   NOT NULL,
    operation       TEXT   NOT NULL,
    params          TEXT   NOT NULL,
    request_digest  TEXT   NOT NULL,
    decision        TEXT   NOT NULL CHECK (decision IN ('allowed', 'denied', 'replayed', 'dry-run', 'intent', 'unknown')),
    outcome         TEXT   NOT NULL CHECK (outcome IN ('ok', 'error')),
    effect          BIGINT NOT NULL,
    response        TEXT,
    error           TEXT,
    idempotency_key TEXT,
    started_at      TEXT   NOT NULL,
    duration_us     BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_index, attempt, seq)
);

INSERT INTO calls_next (run_id, step_index, attempt, seq, interface, operation, params,
    request_digest, decision, outcome, effect, response, error, idempotency_key,
    started_at, duration_us)
SELECT run_id, step_index, attempt, seq, interface, operation, params, request_digest,
    decision, outcome, effect, response, error, idempotency_key, started_at, duration_us
FROM calls;

DROP TABLE calls;

ALTER TABLE calls_next RENAME TO calls;
