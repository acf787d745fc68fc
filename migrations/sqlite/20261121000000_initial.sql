-- f3-chaos store, version 1 (SQLite). Forward-only; the PostgreSQL twin has the same version number.
-- Conventions (shared with migrations/postgres):
--   * ids are lowercase hyphenated UUID text (runs: UUID v7, so text order = creation order);
--   * instants are INTEGER milliseconds since the Unix epoch, UTC;
--   * JSON documents are TEXT (JSONB in PostgreSQL).

-- One row per run (a scenario executed against a stack). `status` is 'running' until the run
-- finishes, then its outcome (passed, failed, aborted, inconclusive, precondition-failed, void,
-- cleanup-failed, error, interrupted).
CREATE TABLE runs (
    id              TEXT    NOT NULL PRIMARY KEY,
    scenario        TEXT    NOT NULL,
    stack           TEXT    NOT NULL,
    triggered_via   TEXT    NOT NULL, -- cli | trigger | daemon | api
    started_by      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER,
    heartbeat_at    INTEGER NOT NULL,
    pid             INTEGER NOT NULL,
    host            TEXT    NOT NULL,
    scenario_digest TEXT,
    night           TEXT,             -- YYYY-MM-DD of the chaos window the run belongs to
    summary         TEXT,
    last_event_seq  INTEGER NOT NULL DEFAULT 0 -- seq of the run's last event
);
CREATE INDEX runs_started ON runs (started_at DESC);
CREATE INDEX runs_scenario_started ON runs (scenario, started_at DESC);
CREATE INDEX runs_stack_started ON runs (stack, started_at DESC);
CREATE INDEX runs_status_started ON runs (status, started_at DESC);
CREATE INDEX runs_night_stack ON runs (night, stack) WHERE night IS NOT NULL;

-- The durable event log of a run, in order (`seq` = 1, 2, … per run).
CREATE TABLE events (
    run_id  TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    payload TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- One row per Given/When/Then/abort/revert/recovery step of a run, upserted as it progresses.
CREATE TABLE steps (
    run_id     TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_index INTEGER NOT NULL,
    phase      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    owner      TEXT,
    verdict    TEXT,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    observed   REAL,
    threshold  REAL,
    evidence   TEXT,
    message    TEXT,
    PRIMARY KEY (run_id, step_index)
) WITHOUT ROWID;
CREATE INDEX steps_owner_verdict ON steps (owner, verdict) WHERE owner IS NOT NULL;

-- Stack leases: at most one row (one holder) per stack; a row whose expires_at has passed is free.
CREATE TABLE leases (
    stack       TEXT    NOT NULL PRIMARY KEY,
    run_id      TEXT    NOT NULL,
    scenario    TEXT    NOT NULL,
    holder      TEXT    NOT NULL,
    acquired_at INTEGER NOT NULL,
    renewed_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- The fault ledger: written before a fault is injected; the start-up sweep reverts open entries
-- (pending, injected, revert-failed) whose run is dead.
CREATE TABLE fault_ledger (
    id         TEXT    NOT NULL PRIMARY KEY,
    run_id     TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stack      TEXT    NOT NULL,
    driver     TEXT    NOT NULL,
    step_name  TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    handle     TEXT,
    state      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX fault_ledger_run ON fault_ledger (run_id);
CREATE INDEX fault_ledger_open ON fault_ledger (created_at)
    WHERE state IN ('pending', 'injected', 'revert-failed');

-- Notification outbox: one row per message to one team; a delivery worker picks rows with
-- status = 'pending' and next_attempt_at <= now, and records attempts / last_error.
CREATE TABLE outbox (
    id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    run_id          TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    team            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending', -- pending | delivered | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_run ON outbox (run_id);
