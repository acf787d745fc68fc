-- f3-chaos store, version 2: the plans the daemon made for each night, newest last.
-- Each (re-)plan is a new row, so the morning dashboard can show the first plan, the final one,
-- and why it changed (reason: initial, overrun, ended-early, given-failed, stack-busy, reservation,
-- takeover).
CREATE TABLE night_plans (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    night      TEXT   NOT NULL, -- YYYY-MM-DD of the chaos window
    created_at BIGINT NOT NULL, -- Unix ms, UTC
    reason     TEXT   NOT NULL,
    plan       TEXT  NOT NULL  -- the planner's Plan as JSON (slots, skipped with reasons, window)
);
CREATE INDEX night_plans_night ON night_plans (night, id);
