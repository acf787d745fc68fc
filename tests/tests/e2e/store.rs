//! End-to-end tests: store.
