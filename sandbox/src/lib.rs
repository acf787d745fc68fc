//! f3-sandbox: a miniature of one payment-platform stack on this machine — three "clouds" of
//! payment-API node processes, a gateway with health checks and failover, a payment simulator and
//! a real Prometheus scraping them all. The embedded default target of f3-chaos and the system
//! under test in its end-to-end tests.

pub mod inventory;

pub use inventory::{Inventory, ProcessEntry, Role};
