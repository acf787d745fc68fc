//! The store: runs, steps, events, evidence, fault ledger, stack leases (SQLite, PostgreSQL).
