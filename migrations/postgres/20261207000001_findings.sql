-- f3-chaos store, version 6: findings, the weaknesses the morning review tracks (docs/dashboard.md,
-- "Findings"). One row per (scenario, stack, Then step): a failed step on a planned night opens
-- it (or re-opens it); it resolves itself after the step passed on N nights with no failure
-- between (spec.findings.resolveAfterPassingNights). People attach a ticket and a note.
CREATE TABLE findings (
    id                  TEXT   PRIMARY KEY, -- UUID v7
    scenario            TEXT   NOT NULL,
    stack               TEXT   NOT NULL,
    step                TEXT   NOT NULL,    -- the Then step's display name
    owner               TEXT,               -- team slug of the step's owner
    status              TEXT   NOT NULL,    -- open | resolved
    first_failed_night  TEXT   NOT NULL,    -- YYYY-MM-DD, first failing night of this opening
    latest_failed_night TEXT   NOT NULL,    -- YYYY-MM-DD
    latest_failed_run   TEXT   NOT NULL,    -- run id
    passing_nights      BIGINT NOT NULL,    -- nights passed since the latest failure
    last_passed_night   TEXT,               -- YYYY-MM-DD
    first_opened_at     BIGINT NOT NULL,    -- Unix ms, UTC: first time ever opened
    opened_at           BIGINT NOT NULL,    -- Unix ms: this opening (re-opened: the re-opening)
    resolved_at         BIGINT,             -- Unix ms, while resolved
    reopened            BIGINT NOT NULL,    -- times re-opened after resolving
    ticket_url          TEXT,
    note                TEXT,
    annotated_by        TEXT,               -- who set the ticket or note last
    annotated_at        BIGINT,
    UNIQUE (scenario, stack, step)
);
CREATE INDEX findings_status_owner ON findings (status, owner);
