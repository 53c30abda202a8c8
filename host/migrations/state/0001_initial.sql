-- State store schema, shared verbatim by SQLite and PostgreSQL.
--
-- Only TEXT and BIGINT columns: the sqlx `Any` driver cannot carry booleans on
-- SQLite or native timestamps on PostgreSQL, and one code path serves both.
-- Timestamps are RFC 3339 UTC text with exactly six fractional digits
-- ("2025-01-31T09:30:00.123456Z"): fixed width, so text order is time order.
-- JSON documents (params, input, output, logs) are TEXT.

CREATE TABLE runs (
    id              TEXT   NOT NULL PRIMARY KEY,
    runbook         TEXT   NOT NULL,
    runbook_digest  TEXT   NOT NULL,
    params          TEXT   NOT NULL,
    operator        TEXT   NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at      TEXT   NOT NULL,
    finished_at     TEXT,
    error           TEXT
);

-- `list_runs` pages newest first.
CREATE INDEX runs_started_at ON runs (started_at, id);

CREATE TABLE steps (
    run_id          TEXT   NOT NULL REFERENCES runs (id),
    step_index      BIGINT NOT NULL,
    step_id         TEXT   NOT NULL,
    plugin          TEXT   NOT NULL,
    plugin_digest   TEXT   NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    input           TEXT   NOT NULL,
    output          TEXT,
    error           TEXT,
    logs            TEXT   NOT NULL,
    started_at      TEXT   NOT NULL,
    finished_at     TEXT,
    duration_ms     BIGINT,
    PRIMARY KEY (run_id, step_index)
);

-- Append-only, hash-chained audit log (see src/state/audit.rs for the hash).
-- `seq` is assigned by the store, never by the database: on SQLite only the
-- exact type name "INTEGER PRIMARY KEY" makes a column an auto-assigned rowid
-- alias, and BIGINT deliberately is not. There is deliberately no foreign key
-- to `runs`: recording an audit entry must never fail because of, or block the
-- removal of, run bookkeeping.
CREATE TABLE audit_log (
    seq             BIGINT NOT NULL PRIMARY KEY CHECK (seq >= 1),
    at              TEXT   NOT NULL,
    actor           TEXT   NOT NULL,
    run_id          TEXT,
    step_id         TEXT,
    plugin          TEXT,
    plugin_digest   TEXT,
    action          TEXT   NOT NULL,
    target          TEXT   NOT NULL,
    detail          TEXT   NOT NULL,
    prev_hash       TEXT   NOT NULL,
    hash            TEXT   NOT NULL
);

-- `audit_entries(Some(run_id), ..)` reads one run's entries by seq.
CREATE INDEX audit_log_run_seq ON audit_log (run_id, seq);
