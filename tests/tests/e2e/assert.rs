//! End-to-end tests: assert.
