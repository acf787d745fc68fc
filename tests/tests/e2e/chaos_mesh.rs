//! End-to-end tests of the Chaos Mesh driver that need no cluster: `run --dry-run` renders the
//! exact manifests per cluster and touches nothing (no store, no API server).

use std::process::{Command, Output};

use f3_chaos_tests::{binary, repo_root};

fn f3_chaos(args: &[&str]) -> Output {
    Command::new(binary("f3-chaos"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("F3_CHAOS_CONFIG")
        // A store URL that cannot be opened: a dry run must not need one.
        .env(
            "F3_CHAOS_DATABASE_URL",
            "sqlite:///nonexistent-dir/f3-chaos-dry-run.db",
        )
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("run f3-chaos (build it first: cargo build -p f3-chaos --bins)")
}

#[test]
fn dry_run_prints_the_manifests_for_all_three_clusters() {
    let out = f3_chaos(&[
        "run",
        "--scenario",
        "gcp-failover-validation",
        "--stack",
        "uat-alpha",
        "--dry-run",
        "--config",
        "config/example-production",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for cluster in ["gke-uat-alpha", "eks-uat-alpha", "aks-uat-alpha"] {
        assert!(
            stdout.contains(&format!("# ===== cluster {cluster}")),
            "{cluster} missing:\n{stdout}"
        );
    }
    let docs: Vec<serde_json::Value> = stdout
        .split("\n---\n")
        .skip(1)
        .map(|doc| {
            let body: String = doc
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
            serde_yaml::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
        })
        .collect();
    assert_eq!(docs.len(), 3, "{stdout}");
    for doc in &docs {
        assert_eq!(doc["kind"], "NetworkChaos");
        assert_eq!(doc["spec"]["action"], "partition");
        assert_eq!(
            doc["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "f3-chaos"
        );
        assert!(
            doc["spec"]["duration"]
                .as_str()
                .is_some_and(|d| d.ends_with('s')),
            "{doc}"
        );
    }
    let gcp = &docs[0]["spec"]["externalTargets"];
    assert!(
        gcp.as_array()
            .is_some_and(|t| t.iter().any(|v| v == "fps-gw.test.scheme.example.net")),
        "{gcp}"
    );
}

#[test]
fn trigger_dry_run_prints_the_same_manifests_as_run() {
    let common = [
        "--scenario",
        "gcp-failover-validation",
        "--dry-run",
        "--config",
        "config/example-production",
    ];
    let run = f3_chaos(&[&["run", "--stack", "uat-alpha"][..], &common[..]].concat());
    let trigger =
        f3_chaos(&[&["trigger", "--target-stack", "uat-alpha"][..], &common[..]].concat());
    assert_eq!(
        trigger.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&trigger.stderr)
    );
    let stdout = String::from_utf8_lossy(&trigger.stdout);
    assert!(stdout.contains("kind: NetworkChaos"), "{stdout}");
    assert_eq!(stdout, String::from_utf8_lossy(&run.stdout));
}

#[test]
fn dry_run_on_the_local_stack_is_refused() {
    let out = f3_chaos(&[
        "run",
        "--scenario",
        "gcp-failover-validation",
        "--stack",
        "local",
        "--dry-run",
        "--config",
        "config/local",
    ]);
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
