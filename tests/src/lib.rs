//! Helpers shared by the end-to-end tests: locating the built binaries, temporary state
//! directories, and waiting for conditions with a deadline.

use std::path::PathBuf;

/// Path of a binary built by this workspace (`f3-chaos`, `f3-sandbox`), next to the test binary.
pub fn binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop(); // deps/
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// The repository root (for shipped `scenarios/`, `assertions/`, `config/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub mod alertmanager;
pub mod dashboard;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod sandbox;
pub mod scenarios;

/// Serialises the heavy end-to-end tests (each runs a sandbox at 300 TPS plus Prometheus): on a
/// 2-core machine two of them side by side would measure CPU contention, not the platform.
pub fn heavy_test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
