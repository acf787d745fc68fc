-- f3-chaos store, version 5: the dashboard's list pages (/nights, /scenarios, /stacks) count the
-- runs of the last 90 days per night, scenario, stack and outcome (≈ 25,000 runs on 13 stacks).
-- A covering index answers those counts without reading the runs' rows. Its first column serves
-- every read runs_started served (newest first is a backward scan), so it replaces it.
CREATE INDEX runs_started_brief ON runs (started_at, night, scenario, stack, status);
DROP INDEX runs_started;
