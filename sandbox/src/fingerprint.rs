//! The stack fingerprint: a SHA-256 over what makes the stack behave as it does, recomputed live so
//! that a run can tell whether the stack changed under it (reconfigured, or a binary replaced).
//!
//! Hashed, in order: the stack's `settings.json`; then for every process of the inventory (sorted
//! by name) its name, the identity of its binary — for a running process `/proc/PID/exe`'s target
//! (with the kernel's ` (deleted)` marker when the file was replaced on disk), size, mtime and inode
//! of the image it runs; for a process that is not running (killed by a fault) the same read from
//! its recorded program path — and its command line. PIDs are not hashed: a node killed and
//! restarted with the same command and binary keeps the fingerprint.

use std::fs;
use std::os::unix::fs::MetadataExt;

use sha2::{Digest, Sha256};

use crate::procs;
use crate::{Inventory, SandboxError};

/// Recomputes the fingerprint of the stack described by `inv` from the live system
/// (`sha256:<hex>`). Fails when the settings file cannot be read.
pub fn current_fingerprint(inv: &Inventory) -> Result<String, SandboxError> {
    let settings_path = if inv.settings_path.as_os_str().is_empty() {
        inv.state_dir.join("settings.json")
    } else {
        inv.settings_path.clone()
    };
    let settings = fs::read(&settings_path).map_err(SandboxError::io(format!(
        "cannot read {}",
        settings_path.display()
    )))?;
    let mut hasher = Sha256::new();
    field(&mut hasher, b"settings", &settings);
    let mut processes: Vec<_> = inv.processes.iter().collect();
    processes.sort_by(|a, b| a.name.cmp(&b.name));
    for p in processes {
        field(&mut hasher, b"name", p.name.as_bytes());
        let running = procs::is_ours(p.pid, &p.command);
        let (exe, meta) = if running {
            let exe = fs::read_link(format!("/proc/{}/exe", p.pid))
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            (exe, fs::metadata(format!("/proc/{}/exe", p.pid)).ok())
        } else {
            let program = p.command.first().map(String::as_str).unwrap_or_default();
            let path = resolve_program(program);
            let exe = fs::canonicalize(&path)
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or(path.clone());
            (exe, fs::metadata(&path).ok())
        };
        field(&mut hasher, b"exe", exe.as_bytes());
        let identity = meta
            .map(|m| format!("{}:{}:{}:{}", m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
            .unwrap_or_else(|| "missing".into());
        field(&mut hasher, b"exe-meta", identity.as_bytes());
        let cmdline = if running {
            procs::cmdline(p.pid).unwrap_or_default()
        } else {
            p.command.clone()
        };
        field(&mut hasher, b"cmdline", cmdline.join("\0").as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// Length-prefixed field, so adjacent fields cannot run into each other.
fn field(hasher: &mut Sha256, tag: &[u8], value: &[u8]) {
    hasher.update(tag);
    hasher.update((value.len() as u64).to_le_bytes());
    hasher.update(value);
}

/// A program path as the kernel would run it: absolute paths as they are, bare names looked up on PATH.
fn resolve_program(program: &str) -> String {
    if program.contains('/') {
        return program.to_string();
    }
    crate::stack::which(program)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProcessEntry, Role};

    fn inventory(dir: &std::path::Path) -> Inventory {
        Inventory {
            stack: "t".into(),
            state_dir: dir.to_path_buf(),
            prometheus_url: String::new(),
            alertmanager_url: None,
            processes: vec![ProcessEntry {
                name: "gcp-node-0".into(),
                role: Role::PaymentNode,
                pid: 0, // not running: identity read from the program path
                port: 1,
                labels: Default::default(),
                command: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            }],
            fingerprint: String::new(),
            started_at: chrono::Utc::now(),
            port_base: 0,
            gateway_url: String::new(),
            simulator_url: String::new(),
            settings_path: dir.join("settings.json"),
            gateway_profile: String::new(),
        }
    }

    #[test]
    fn changes_with_settings_and_command_not_with_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("settings.json"), "{\"a\":1}").expect("write");
        let mut inv = inventory(dir.path());
        let fp = current_fingerprint(&inv).expect("fingerprint");
        assert!(fp.starts_with("sha256:"));
        assert_eq!(current_fingerprint(&inv).expect("again"), fp, "stable");

        inv.processes[0].pid = 999_999_999; // a PID that is not ours: still "not running"
        assert_eq!(
            current_fingerprint(&inv).expect("pid"),
            fp,
            "PIDs are not hashed"
        );

        inv.processes[0].command.push("--extra".into());
        let changed_command = current_fingerprint(&inv).expect("command");
        assert_ne!(changed_command, fp);

        std::fs::write(dir.path().join("settings.json"), "{\"a\":2}").expect("write");
        assert_ne!(
            current_fingerprint(&inv).expect("settings"),
            changed_command
        );
    }

    #[test]
    fn missing_settings_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(current_fingerprint(&inventory(dir.path())).is_err());
    }
}
