//! End-to-end tests: validate.
