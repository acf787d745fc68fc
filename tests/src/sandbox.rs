//! Test helper: bring a sandbox stack up and down for a test.
