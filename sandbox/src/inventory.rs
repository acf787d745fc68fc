//! The sandbox inventory: a machine-readable description of one running sandbox stack, written by
//! `f3-sandbox up` to `<state_dir>/<stack>/inventory.json` and read by f3-chaos's local fault driver
//! to turn a label selector (`cloud: gcp`) into processes.
//!
//! This is a contract between crates: add fields freely, rename with care.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// One running sandbox stack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Inventory {
    /// Stack name (`local` by default).
    pub stack: String,
    /// Directory holding this stack's inventory, logs, Prometheus config and data.
    pub state_dir: PathBuf,
    /// Prometheus base URL, e.g. `http://127.0.0.1:19090`.
    pub prometheus_url: String,
    /// Alertmanager base URL when started with `--alertmanager`.
    pub alertmanager_url: Option<String>,
    /// Every process of the stack (nodes, gateway, simulator, prometheus, alertmanager).
    pub processes: Vec<ProcessEntry>,
    /// Hash of the stack's configuration and binaries at `up` time; see `fingerprint`.
    pub fingerprint: String,
    /// When the stack was started (RFC 3339 UTC).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// First port of the stack's port range (see `f3_sandbox::ports`).
    #[serde(default)]
    pub port_base: u16,
    /// Gateway base URL (payments go to `POST {gateway_url}/payments`).
    #[serde(default)]
    pub gateway_url: String,
    /// Payment simulator base URL (load control: `GET`/`POST {simulator_url}/tps`).
    #[serde(default)]
    pub simulator_url: String,
    /// The stack settings file whose hash is part of the fingerprint.
    #[serde(default)]
    pub settings_path: PathBuf,
    /// The gateway profile the stack runs with (`aggressive` or `slow`; see docs/sandbox.md).
    #[serde(default)]
    pub gateway_profile: String,
}

/// Role of a sandbox process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A payment-API node of one cloud's cluster.
    PaymentNode,
    /// The gateway routing payments to healthy clusters.
    Gateway,
    /// The payment simulator (load generator).
    Simulator,
    /// Prometheus.
    Prometheus,
    /// Alertmanager.
    Alertmanager,
}

/// One process of the stack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessEntry {
    /// Unique name within the stack, e.g. `gcp-node-0`, `gateway`.
    pub name: String,
    /// What it is.
    pub role: Role,
    /// Current PID (updated when the sandbox restarts the process).
    pub pid: u32,
    /// Loopback port it listens on.
    pub port: u16,
    /// Labels for selectors: always `app`, plus `cloud` and `cluster` for payment nodes.
    pub labels: BTreeMap<String, String>,
    /// The command line it was started with (program first), so it can be restarted identically.
    pub command: Vec<String>,
}

impl Inventory {
    /// The process named `name`.
    pub fn process(&self, name: &str) -> Option<&ProcessEntry> {
        self.processes.iter().find(|p| p.name == name)
    }

    /// Reads an inventory file.
    pub fn read(path: &Path) -> Result<Self, SandboxError> {
        let text = std::fs::read(path)
            .map_err(SandboxError::io(format!("cannot read {}", path.display())))?;
        serde_json::from_slice(&text).map_err(|source| SandboxError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the inventory atomically to `path`.
    pub fn write(&self, path: &Path) -> Result<(), SandboxError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| SandboxError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        json.push(b'\n');
        crate::state::write_atomic(path, &json)
    }

    /// Processes whose labels include every `key: value` of `selector` (empty selector = none:
    /// a fault must name what it breaks).
    pub fn select<'a>(
        &'a self,
        selector: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a ProcessEntry> + 'a {
        self.processes.iter().filter(move |p| {
            !selector.is_empty() && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
        })
    }
}
