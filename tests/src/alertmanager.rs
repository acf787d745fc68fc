//! Test helper: a real Alertmanager process on loopback.
//!
//! [`TestAlertmanager::start`] runs `/usr/bin/prometheus-alertmanager` (Debian package
//! `prometheus-alertmanager`; else `alertmanager` on `PATH`) on a free loopback port with a
//! minimal config (one receiver that sends nothing), `--storage.path` in a temporary directory
//! and clustering disabled (`--cluster.listen-address=`). It is killed on drop.
//! [`TestAlertmanager::silences`] reads its silences through API v2 (`GET /api/v2/silences`),
//! independently of the f3-chaos client under test.
//!
//! ```no_run
//! # async fn demo() {
//! use f3_chaos_tests::alertmanager::TestAlertmanager;
//! let am = TestAlertmanager::start().await;
//! assert!(am.silences().await.is_empty());
//! # }
//! ```

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::process;

/// Minimal configuration: every alert goes to a receiver with no integrations.
const CONFIG: &str = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n";

/// A running Alertmanager (see the module docs). Killed when dropped.
pub struct TestAlertmanager {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl TestAlertmanager {
    /// How long [`TestAlertmanager::start`] waits for `/-/ready`.
    pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

    /// Starts Alertmanager and waits until it is ready. Panics with the tail of its log (or how
    /// to install it) when it does not become ready.
    pub async fn start() -> TestAlertmanager {
        let dir = tempfile::Builder::new()
            .prefix("f3-test-alertmanager-")
            .tempdir()
            .expect("create a temporary directory for Alertmanager");
        std::fs::write(dir.path().join("alertmanager.yml"), CONFIG)
            .expect("write the Alertmanager config");
        let (child, addr) = process::start_ready(
            "Alertmanager",
            "install it with `apt-get install -y prometheus-alertmanager`",
            &dir.path().join("alertmanager.log"),
            Self::READY_TIMEOUT,
            |addr| {
                let mut command = Command::new(process::installed_or_on_path(
                    "/usr/bin/prometheus-alertmanager",
                    "alertmanager",
                ));
                command
                    .arg(format!(
                        "--config.file={}",
                        dir.path().join("alertmanager.yml").display()
                    ))
                    .arg(format!(
                        "--storage.path={}",
                        dir.path().join("data").display()
                    ))
                    .arg(format!("--web.listen-address={addr}"))
                    .arg("--cluster.listen-address=");
                command
            },
        )
        .await;
        TestAlertmanager {
            child: Some(child),
            dir,
            addr,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every silence (API v2 `gettableSilence` objects: `id`, `status.state` — `active`,
    /// `pending` or `expired` —, `matchers`, `startsAt`, `endsAt`, `createdBy`, `comment`).
    ///
    /// # Panics
    /// When Alertmanager does not answer 200 with a JSON array.
    pub async fn silences(&self) -> Vec<Value> {
        let answer: Value = reqwest::Client::new()
            .get(format!("{}/api/v2/silences", self.url()))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("GET /api/v2/silences")
            .json()
            .await
            .expect("silences as JSON");
        answer
            .as_array()
            .cloned()
            .expect("GET /api/v2/silences answers an array")
    }

    /// The silences whose only matcher is `name="value"` (equality, not regex).
    pub async fn silences_matching(&self, name: &str, value: &str) -> Vec<Value> {
        let wanted = serde_json::json!([
            {"name": name, "value": value, "isRegex": false, "isEqual": true}
        ]);
        self.silences()
            .await
            .into_iter()
            .filter(|s| s["matchers"] == wanted)
            .collect()
    }

    /// Kills the server now and waits for it to exit (idempotent).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last 40 lines of its log.
    pub fn log_tail(&self) -> String {
        process::log_tail(&self.dir.path().join("alertmanager.log"))
    }
}

impl Drop for TestAlertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback URL where nothing listens (a port bound and released at once): connections are
/// refused — "Alertmanager is down".
pub fn unreachable_url() -> String {
    format!("http://{}", process::free_port())
}
