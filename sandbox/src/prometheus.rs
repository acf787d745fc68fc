//! The Prometheus (and optional Alertmanager) of a stack: generated configuration and command
//! lines. The configuration is written as JSON, which is valid YAML, so no YAML library is needed.

use std::path::Path;

use serde_json::{Value, json};

use crate::ports;
use crate::settings::{CLOUDS, StackSettings};
use crate::stack::node_name;
use crate::state::StackPaths;

/// Scrape and rule-evaluation interval.
pub const SCRAPE_INTERVAL: &str = "1s";

/// The Prometheus configuration of a stack: jobs `payment-node`, `gateway` and `simulator`, every
/// target labelled `stack` (and `cloud`, `node` for nodes), scraped every second; rule files from
/// `<stack dir>/rules/*.yml`; alerts to the stack's Alertmanager when it has one.
pub fn config(settings: &StackSettings, paths: &StackPaths) -> Value {
    let base = settings.port_base;
    let stack = &settings.stack;
    let target = |port: u16| format!("127.0.0.1:{port}");
    let mut node_targets = Vec::new();
    for cloud in CLOUDS {
        for i in 0..settings.nodes_per_cloud {
            node_targets.push(json!({
                "targets": [target(ports::node(base, cloud, i))],
                "labels": {"stack": stack, "cloud": cloud, "node": node_name(cloud, i)},
            }));
        }
    }
    let job = |name: &str, static_configs: Value| json!({"job_name": name, "scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": "900ms", "static_configs": static_configs});
    let mut config = json!({
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": "900ms",
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"sandbox_stack": stack},
        },
        "rule_files": [format!("{}/*.yml", paths.prometheus_rules().display())],
        "scrape_configs": [
            job("payment-node", Value::Array(node_targets)),
            job("gateway", json!([{"targets": [target(ports::gateway(base))], "labels": {"stack": stack}}])),
            job("simulator", json!([{"targets": [target(ports::simulator(base))], "labels": {"stack": stack}}])),
            job("prometheus", json!([{"targets": [target(ports::prometheus(base))], "labels": {"stack": stack}}])),
        ],
    });
    if settings.alertmanager {
        config["alerting"] = json!({
            "alertmanagers": [{"static_configs": [{"targets": [target(ports::alertmanager(base))]}]}]
        });
    }
    config
}

/// Alertmanager configuration: one route to a receiver that drops everything (tests and the
/// orchestrator read alerts and create silences through the API).
pub fn alertmanager_config() -> Value {
    json!({
        "route": {"receiver": "null", "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "null"}],
    })
}

/// Command line of the stack's Prometheus.
pub fn prometheus_command(program: &Path, paths: &StackPaths, port: u16) -> Vec<String> {
    vec![
        program.to_string_lossy().into_owned(),
        format!("--config.file={}", paths.prometheus_config().display()),
        format!("--storage.tsdb.path={}", paths.prometheus_data().display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--web.enable-lifecycle".into(),
        "--web.enable-admin-api".into(),
        "--storage.tsdb.retention.time=2d".into(),
    ]
}

/// Command line of the stack's Alertmanager (clustering off).
pub fn alertmanager_command(program: &Path, paths: &StackPaths, port: u16) -> Vec<String> {
    vec![
        program.to_string_lossy().into_owned(),
        format!("--config.file={}", paths.alertmanager_config().display()),
        format!("--storage.path={}", paths.alertmanager_data().display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{GatewayProfile, GatewaySettings};

    #[test]
    fn scrapes_every_process_with_stack_cloud_node_labels() {
        let settings = StackSettings {
            stack: "local".into(),
            port_base: 19000,
            nodes_per_cloud: 2,
            tps: 300.0,
            node_latency_ms: 2,
            load_tick_ms: 50,
            ttl_secs: None,
            alertmanager: true,
            gateway: GatewaySettings::profile(GatewayProfile::Aggressive),
        };
        let paths = StackPaths::new(std::path::Path::new("/state"), "local");
        let c = config(&settings, &paths);
        assert_eq!(c["global"]["scrape_interval"], "1s");
        let jobs: Vec<&str> = c["scrape_configs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["job_name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(jobs, ["payment-node", "gateway", "simulator", "prometheus"]);
        let nodes = c["scrape_configs"][0]["static_configs"]
            .as_array()
            .expect("nodes");
        assert_eq!(nodes.len(), 6);
        assert_eq!(nodes[0]["targets"][0], "127.0.0.1:19010");
        assert_eq!(nodes[0]["labels"]["cloud"], "gcp");
        assert_eq!(nodes[0]["labels"]["node"], "gcp-node-0");
        assert_eq!(nodes[0]["labels"]["stack"], "local");
        assert_eq!(
            c["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
            "127.0.0.1:19093"
        );
    }
}
