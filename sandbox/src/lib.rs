//! f3-sandbox: a miniature of one payment-platform stack on this machine — three "clouds" of
//! payment-API node processes, a gateway with health checks and failover, a payment simulator and
//! a real Prometheus scraping them all. The embedded default target of f3-chaos and the system
//! under test in its end-to-end tests.
//!
//! The library API used by f3-chaos: [`default_state_dir`], [`load_inventory`],
//! [`current_fingerprint`], [`restart_process`], [`cli_main`]; see docs/sandbox.md.

pub mod child;
pub mod claim;
pub mod cli;
pub mod error;
pub mod faults;
pub mod fingerprint;
pub mod inventory;
pub mod ports;
pub mod procs;
pub mod prometheus;
pub mod settings;
pub mod stack;
pub mod state;

pub use claim::{ClaimError, ExperimentClaim, claim_experiments};
pub use cli::{cli_exit_code, cli_main};
pub use error::SandboxError;
pub use fingerprint::current_fingerprint;
pub use inventory::{Inventory, ProcessEntry, Role};
pub use settings::{GatewayArgs, GatewayProfile, GatewaySettings, StackSettings};
pub use stack::{down, load_inventory, reconfigure, restart_process, up};
pub use state::default_state_dir;
