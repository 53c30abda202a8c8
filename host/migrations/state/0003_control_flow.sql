-- Control flow: who holds a run (a lease renewed by a heartbeat, so a run whose process
-- died shows as interrupted), the concurrency key, approvals, and rollbacks.
-- `runs.status` stays running/succeeded/failed: a run waiting for approval or
-- interrupted is still running; `rollback_status` says how a failed run was undone.
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_expires_at TEXT;
ALTER TABLE runs ADD COLUMN rollback_status TEXT;
CREATE INDEX runs_concurrency ON runs (runbook, concurrency_key, status);

ALTER TABLE steps ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;

-- What an approval step asked for, rendered when the run reached it.
CREATE TABLE approvals (
    run_id          TEXT   NOT NULL REFERENCES runs (id),
    step_index      BIGINT NOT NULL,
    message         TEXT   NOT NULL,
    approvers       TEXT   NOT NULL,
    required        BIGINT NOT NULL,
    allow_self      BIGINT NOT NULL,
    requested_at    TEXT   NOT NULL,
    deadline        TEXT,
    on_timeout      TEXT   NOT NULL,
    PRIMARY KEY (run_id, step_index)
);

-- One decision per person per approval.
CREATE TABLE approval_decisions (
    run_id          TEXT   NOT NULL REFERENCES runs (id),
    step_index      BIGINT NOT NULL,
    actor           TEXT   NOT NULL,
    decision        TEXT   NOT NULL CHECK (decision IN ('approve', 'reject')),
    comment         TEXT,
    at              TEXT   NOT NULL,
    PRIMARY KEY (run_id, step_index, actor)
);

-- How each completed step was undone when its run failed (or on demand).
CREATE TABLE rollbacks (
    run_id          TEXT   NOT NULL REFERENCES runs (id),
    step_index      BIGINT NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('succeeded', 'failed')),
    output          TEXT,
    error           TEXT,
    logs            TEXT   NOT NULL,
    started_at      TEXT   NOT NULL,
    duration_ms     BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_index)
);
