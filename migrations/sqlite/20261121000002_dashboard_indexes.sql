-- f3-chaos store, version 3: indexes for the dashboard over a year of history (≈ 100,000 runs,
-- 1,000,000 steps; see `orchestrator/benches/dashboard.rs`).
-- The team page lists the steps a team owns that did not pass lately: owner + verdict + time.
-- It replaces steps_owner_verdict, whose columns are this index's prefix.
CREATE INDEX steps_owner_verdict_started ON steps (owner, verdict, started_at) WHERE owner IS NOT NULL;
DROP INDEX steps_owner_verdict;
