-- f3-chaos store, version 4: the daemon's nights as a persisted state machine
-- (waiting → planning → running → drained → closed; see docs/daemon.md). One row per chaos night,
-- written by whichever daemon leads, so a restart or a takeover resumes the night where it was and
-- the morning digest is queued exactly once (digest_queued_at is claimed in the transaction that
-- queues the digest's outbox rows).
CREATE TABLE nights (
    night            TEXT   PRIMARY KEY, -- YYYY-MM-DD of the chaos window (local date it starts)
    state            TEXT   NOT NULL,    -- waiting | planning | running | drained | closed
    window_start     BIGINT NOT NULL,    -- Unix ms, UTC
    window_end       BIGINT NOT NULL,    -- Unix ms, UTC
    updated_at       BIGINT NOT NULL,    -- Unix ms of the last transition
    planned_at       BIGINT,             -- first plan of the night
    started_at       BIGINT,             -- first slot started (or resumed)
    drained_at       BIGINT,             -- last time nothing was left that fits
    closed_at        BIGINT,             -- window ended and every run of the night ended
    digest_queued_at BIGINT,             -- morning digest queued (claimed once)
    leader           TEXT                -- holder that made the last transition ("host pid N")
);
CREATE INDEX nights_digest_due ON nights (window_end) WHERE digest_queued_at IS NULL;
