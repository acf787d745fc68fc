//! Test helper: bring a sandbox stack up and down for a test, on its own port base and in its own
//! temporary state directory (so tests of different modules can run side by side), and query its
//! Prometheus.
//!
//! A stack uses the ports `base .. base + 100`. [`SandboxStack::up_free`] picks a free base in
//! 26000–29900 (below the Linux ephemeral range, clear of the fixed bases other tests use) and
//! retries on a clash, so the same tests can run at once in several worktrees; [`SandboxStack::up`]
//! takes a fixed base.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, anyhow, bail};
use f3_sandbox::Inventory;

use crate::binary;

/// A running sandbox stack, stopped (`f3-sandbox down`) when dropped.
pub struct SandboxStack {
    /// Stack name.
    pub name: String,
    /// First port of its range.
    pub port_base: u16,
    /// The inventory written by `up`.
    pub inventory: Inventory,
    /// How long `up` took.
    pub up_took: Duration,
    state_dir: tempfile::TempDir,
}

impl SandboxStack {
    /// Runs `f3-sandbox up --stack NAME --port-base BASE --state-dir <tmp> EXTRA…` and waits for it.
    pub fn up(name: &str, port_base: u16, extra: &[&str]) -> anyhow::Result<Self> {
        Self::up_with_env(name, port_base, extra, &[])
    }

    /// [`SandboxStack::up`] on a free port base (see the module docs).
    pub fn up_free(name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::up_free_with_env(name, extra, &[])
    }

    /// [`SandboxStack::up_with_env`] on a free port base (see the module docs).
    pub fn up_free_with_env(
        name: &str,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> anyhow::Result<Self> {
        const BASES: usize = 40;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // Start somewhere different in every process and call; 13 is coprime with 40, so the
        // walk visits every base once.
        let start = std::process::id() as usize * 7 + NEXT.fetch_add(1, Ordering::Relaxed) * 11;
        let mut last = None;
        for k in 0..BASES {
            let base = 26_000 + ((start + k * 13) % BASES) as u16 * 100;
            if !(base..base + 100).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
                continue;
            }
            match Self::up_with_env(name, base, extra, env) {
                Ok(stack) => return Ok(stack),
                Err(e) if e.to_string().contains("already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no free sandbox port base in 26000..30000")))
    }

    /// [`SandboxStack::up`] with extra environment variables for `f3-sandbox up` (e.g.
    /// `F3_SANDBOX_BIN`, the binary the stack's processes run).
    pub fn up_with_env(
        name: &str,
        port_base: u16,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> anyhow::Result<Self> {
        let state_dir = tempfile::Builder::new()
            .prefix("f3-sandbox-test-")
            .tempdir()?;
        let started = Instant::now();
        let out = Command::new(binary("f3-sandbox"))
            .args([
                "up",
                "--stack",
                name,
                "--port-base",
                &port_base.to_string(),
                "--output",
                "json",
            ])
            // Dead-man switch: a test killed before its `down` leaves no stack running for long.
            .args(["--ttl", "10m"])
            .arg("--state-dir")
            .arg(state_dir.path())
            .args(extra)
            .envs(env.iter().copied())
            .output()
            .context("cannot run f3-sandbox (build it first: cargo build -p f3-sandbox --bins)")?;
        let up_took = started.elapsed();
        if !out.status.success() {
            bail!(
                "f3-sandbox up failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let inventory: Inventory =
            serde_json::from_slice(&out.stdout).context("up --output json")?;
        Ok(Self {
            name: name.to_string(),
            port_base,
            inventory,
            up_took,
            state_dir,
        })
    }

    /// The state directory (pass to `f3_sandbox::load_inventory` and friends).
    pub fn state_dir(&self) -> &Path {
        self.state_dir.path()
    }

    /// Prometheus base URL.
    pub fn prometheus_url(&self) -> &str {
        &self.inventory.prometheus_url
    }

    /// Runs `f3-sandbox ARGS… --stack NAME --state-dir DIR`.
    pub fn sandbox(&self, args: &[&str]) -> Output {
        Command::new(binary("f3-sandbox"))
            .args(args)
            .args(["--stack", &self.name])
            .arg("--state-dir")
            .arg(self.state_dir.path())
            .output()
            .expect("run f3-sandbox")
    }

    /// The current inventory (PIDs change on restart and reconfigure).
    pub fn reload(&self) -> anyhow::Result<Inventory> {
        Ok(f3_sandbox::load_inventory(
            self.state_dir.path(),
            &self.name,
        )?)
    }

    /// PIDs of the processes whose labels include `key=value`.
    pub fn pids(&self, key: &str, value: &str) -> Vec<u32> {
        let selector = [(key.to_string(), value.to_string())].into_iter().collect();
        let inv = self.reload().unwrap_or_else(|_| self.inventory.clone());
        inv.select(&selector).map(|p| p.pid).collect()
    }

    /// Stops the stack; fails when `down` fails.
    pub fn down(&self) -> anyhow::Result<()> {
        let out = self.sandbox(&["down"]);
        if !out.status.success() {
            bail!(
                "f3-sandbox down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Evaluates an instant PromQL query against the stack's Prometheus; the value of the first
    /// sample, or None when the result is empty.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Option<f64>> {
        query(self.prometheus_url(), promql).await
    }

    /// Polls `promql` every 500 ms until `accept` holds for its value or `timeout` passes; returns
    /// the last value seen (so failures can print it).
    pub async fn wait_query(
        &self,
        promql: &str,
        timeout: Duration,
        accept: impl Fn(f64) -> bool,
    ) -> anyhow::Result<f64> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(Some(v)) = self.query(promql).await {
                last = Some(v);
                if accept(v) {
                    return Ok(v);
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "`{promql}` did not reach the expected value within {timeout:?}; last value {last:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for SandboxStack {
    fn drop(&mut self) {
        let _ = self.sandbox(&["down"]);
    }
}

/// Instant query against a Prometheus at `base_url`: the first sample's value, None when empty.
pub async fn query(base_url: &str, promql: &str) -> anyhow::Result<Option<f64>> {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{base_url}/api/v1/query"))
        .query(&[("query", promql)])
        .timeout(Duration::from_secs(5))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let Some(first) = body["data"]["result"].as_array().and_then(|r| r.first()) else {
        return Ok(None);
    };
    let value = first["value"][1].as_str().context("sample value")?;
    Ok(Some(value.parse()?))
}
