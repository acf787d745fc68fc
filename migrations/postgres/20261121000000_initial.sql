-- f3-chaos store, version 1 (PostgreSQL). Forward-only; the SQLite twin has the same version number.
-- Conventions (shared with migrations/sqlite):
--   * ids are lowercase hyphenated UUID text (runs: UUID v7, so text order = creation order),
--     COLLATE "C" so that ordering and id-prefix ranges are bytewise, as in SQLite;
--   * instants are BIGINT milliseconds since the Unix epoch, UTC;
--   * JSON documents are JSONB.

-- One row per run (a scenario executed against a stack). `status` is 'running' until the run
-- finishes, then its outcome (passed, failed, aborted, inconclusive, precondition-failed, void,
-- cleanup-failed, error, interrupted).
CREATE TABLE runs (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    scenario        TEXT   NOT NULL,
    stack           TEXT   NOT NULL,
    triggered_via   TEXT   NOT NULL, -- cli | trigger | daemon | api
    started_by      TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    started_at      BIGINT NOT NULL,
    ended_at        BIGINT,
    heartbeat_at    BIGINT NOT NULL,
    pid             BIGINT NOT NULL,
    host            TEXT   NOT NULL,
    scenario_digest TEXT,
    night           TEXT,            -- YYYY-MM-DD of the chaos window the run belongs to
    summary         JSONB,
    last_event_seq  BIGINT NOT NULL DEFAULT 0 -- seq of the run's last event
);
CREATE INDEX runs_started ON runs (started_at DESC);
CREATE INDEX runs_scenario_started ON runs (scenario, started_at DESC);
CREATE INDEX runs_stack_started ON runs (stack, started_at DESC);
CREATE INDEX runs_status_started ON runs (status, started_at DESC);
CREATE INDEX runs_night_stack ON runs (night, stack) WHERE night IS NOT NULL;

-- The durable event log of a run, in order (`seq` = 1, 2, … per run).
CREATE TABLE events (
    run_id  TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    payload JSONB  NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- One row per Given/When/Then/abort/revert/recovery step of a run, upserted as it progresses.
CREATE TABLE steps (
    run_id     TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_index BIGINT NOT NULL,
    phase      TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    owner      TEXT,
    verdict    TEXT,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    observed   DOUBLE PRECISION,
    threshold  DOUBLE PRECISION,
    evidence   JSONB,
    message    TEXT,
    PRIMARY KEY (run_id, step_index)
);
CREATE INDEX steps_owner_verdict ON steps (owner, verdict) WHERE owner IS NOT NULL;

-- Stack leases: at most one row (one holder) per stack; a row whose expires_at has passed is free.
CREATE TABLE leases (
    stack       TEXT   NOT NULL PRIMARY KEY,
    run_id      TEXT COLLATE "C" NOT NULL,
    scenario    TEXT   NOT NULL,
    holder      TEXT   NOT NULL,
    acquired_at BIGINT NOT NULL,
    renewed_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- The fault ledger: written before a fault is injected; the start-up sweep reverts open entries
-- (pending, injected, revert-failed) whose run is dead.
CREATE TABLE fault_ledger (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    run_id     TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stack      TEXT   NOT NULL,
    driver     TEXT   NOT NULL,
    step_name  TEXT   NOT NULL,
    spec       JSONB  NOT NULL,
    handle     JSONB,
    state      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX fault_ledger_run ON fault_ledger (run_id);
CREATE INDEX fault_ledger_open ON fault_ledger (created_at)
    WHERE state IN ('pending', 'injected', 'revert-failed');

-- Notification outbox: one row per message to one team; a delivery worker picks rows with
-- status = 'pending' and next_attempt_at <= now, and records attempts / last_error.
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    team            TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    payload         JSONB  NOT NULL,
    status          TEXT   NOT NULL DEFAULT 'pending', -- pending | delivered | dead
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_run ON outbox (run_id);
