//! Rendering faults into Chaos Mesh manifests (pure: no API calls), and validating them first.
//!
//! One fault becomes one or more [`Manifest`]s, each bound to one cluster of the stack:
//! - `network-partition` → a NetworkChaos `action: partition` in the cluster(s) the selector's
//!   `cloud` label names (every cluster when it names none). A `target` in the same cloud becomes a
//!   pod `target`; a `target` naming another cloud becomes that cloud's pod CIDRs in
//!   `externalTargets` (a pod selector cannot reach into another cluster).
//! - `cloud-loss` of cloud X → in X's cluster a NetworkChaos partitioning every pod of the
//!   cluster's namespaces from the other clouds' pod CIDRs and the stack's external targets; in each
//!   other cluster a NetworkChaos partitioning its pods from X's pod CIDRs, so X is lost as seen
//!   from both sides.
//! - `network-delay` → NetworkChaos `action: delay`; `pod-kill` → PodChaos `action: pod-kill`;
//!   `stress` → StressChaos with `cpu` and/or `memory` stressors.
//!
//! Chaos Mesh's admission webhook does not catch unsafe partitions, so [`render`] refuses: empty
//! selectors, a target equal to the selector, malformed CIDRs/hosts, external targets with a
//! direction other than `to` (Chaos Mesh applies `externalTargets` only to egress), and partitions
//! with no peer at all.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::ChaosMeshError;
use crate::config::{Cluster, Stack};
use crate::model::Cloud;
use crate::scenario::{Direction, Fault, FaultStep, Labels};

/// API group and version of every Chaos Mesh resource we create.
pub const API_VERSION: &str = "chaos-mesh.org/v1alpha1";
/// The `app.kubernetes.io/managed-by` value on every resource we create.
pub const MANAGED_BY: &str = "f3-chaos";
/// Label carrying the run id (a UUID).
pub const RUN_ID_LABEL: &str = "f3-chaos.io/run-id";
/// Label carrying the When step index.
pub const STEP_LABEL: &str = "f3-chaos.io/step";

/// The kinds of Chaos Mesh resources the driver creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChaosKind {
    /// `NetworkChaos` (plural `networkchaos`).
    NetworkChaos,
    /// `PodChaos` (plural `podchaos`).
    PodChaos,
    /// `StressChaos` (plural `stresschaos`).
    StressChaos,
}

impl ChaosKind {
    /// Every kind, for preflight checks.
    pub const ALL: [ChaosKind; 3] = [
        ChaosKind::NetworkChaos,
        ChaosKind::PodChaos,
        ChaosKind::StressChaos,
    ];

    /// The `kind` field.
    pub fn kind(self) -> &'static str {
        match self {
            ChaosKind::NetworkChaos => "NetworkChaos",
            ChaosKind::PodChaos => "PodChaos",
            ChaosKind::StressChaos => "StressChaos",
        }
    }

    /// The resource plural (Chaos Mesh's plurals equal the singular; guessing would be wrong).
    pub fn plural(self) -> &'static str {
        match self {
            ChaosKind::NetworkChaos => "networkchaos",
            ChaosKind::PodChaos => "podchaos",
            ChaosKind::StressChaos => "stresschaos",
        }
    }
}

/// Identifies one applied resource: enough to delete it from another process (stored in the
/// fault handle's `data.resources`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    /// Cluster name (from the stack config).
    pub cluster: String,
    /// Resource kind.
    pub kind: ChaosKind,
    /// Namespace the chaos resource lives in (the driver's namespace, e.g. `chaos-mesh`).
    pub namespace: String,
    /// Resource name.
    pub name: String,
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} {}/{}",
            self.cluster,
            self.kind.kind(),
            self.namespace,
            self.name
        )
    }
}

/// One manifest bound to one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it is applied and how it is named.
    pub resource: ResourceRef,
    /// The full object (apiVersion, kind, metadata, spec), as sent by server-side apply.
    pub object: Value,
}

/// Who the manifest belongs to: the run, the step and the TTL.
#[derive(Debug, Clone)]
pub struct RenderContext {
    /// The run (label `f3-chaos.io/run-id`).
    pub run_id: Uuid,
    /// The When step index (label `f3-chaos.io/step`, part of the name).
    pub step_index: usize,
    /// `spec.duration`: Chaos Mesh ends the fault on its own after this long (whole seconds,
    /// rounded up, at least 1 s).
    pub ttl: std::time::Duration,
    /// The fault ledger entry, recorded as an annotation (None in `--dry-run`).
    pub ledger_id: Option<Uuid>,
}

/// The resource name: `f3-<12 hex of the run id>-s<step>-<cloud>` (DNS-1123, ≤ 63 characters).
/// The tail of a UUIDv7 is random, so two runs started in the same millisecond still differ.
pub fn resource_name(run_id: Uuid, step_index: usize, cloud: Cloud) -> String {
    let hex = run_id.simple().to_string();
    let tail = hex.get(hex.len().saturating_sub(12)..).unwrap_or(&hex);
    format!("f3-{tail}-s{step_index}-{}", cloud.as_str())
}

/// Renders `fault` into the manifests for `stack`, one per affected cluster, validating it first.
///
/// Errors: [`ChaosMeshError::InvalidFault`] with the reason (see the module docs).
pub fn render(
    stack: &Stack,
    chaos_namespace: &str,
    fault: &FaultStep,
    ctx: &RenderContext,
) -> Result<Vec<Manifest>, ChaosMeshError> {
    let invalid = |reason: String| ChaosMeshError::InvalidFault {
        step: fault.name.clone(),
        reason,
    };
    if stack.clusters.is_empty() {
        return Err(invalid(format!("stack `{}` has no clusters", stack.name)));
    }
    let duration = format!(
        "{}s",
        (ctx.ttl.as_secs() + u64::from(ctx.ttl.subsec_nanos() > 0)).max(1)
    );
    let mut out = Vec::new();
    let mut push = |cluster: &Cluster, kind: ChaosKind, spec: Value| {
        let mut spec = spec;
        spec["duration"] = json!(duration);
        let name = resource_name(ctx.run_id, ctx.step_index, cluster.cloud);
        let mut annotations = serde_json::Map::new();
        annotations.insert("f3-chaos.io/stack".into(), json!(stack.name));
        annotations.insert("f3-chaos.io/step-name".into(), json!(fault.name));
        if let Some(ledger) = ctx.ledger_id {
            annotations.insert("f3-chaos.io/ledger-id".into(), json!(ledger.to_string()));
        }
        let object = json!({
            "apiVersion": API_VERSION,
            "kind": kind.kind(),
            "metadata": {
                "name": name,
                "namespace": chaos_namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": MANAGED_BY,
                    RUN_ID_LABEL: ctx.run_id.to_string(),
                    STEP_LABEL: ctx.step_index.to_string(),
                },
                "annotations": annotations,
            },
            "spec": spec,
        });
        out.push(Manifest {
            resource: ResourceRef {
                cluster: cluster.name.clone(),
                kind,
                namespace: chaos_namespace.to_owned(),
                name,
            },
            object,
        });
    };
    match &fault.fault {
        Fault::NetworkPartition {
            selector,
            direction,
            target,
            external_targets,
            stack_external_targets,
        } => {
            if selector.is_empty() {
                return Err(invalid(
                    "a partition needs a non-empty selector (an empty one selects every pod)"
                        .into(),
                ));
            }
            if !target.is_empty() && target == selector {
                return Err(invalid("the partition target equals the selector: the pods would be cut from themselves".into()));
            }
            validate_labels(selector).map_err(&invalid)?;
            validate_labels(target).map_err(&invalid)?;
            let mut external_targets = external_targets.clone();
            if *stack_external_targets {
                if stack.external_targets.is_empty() {
                    return Err(invalid(format!(
                        "the partition cuts the stack's own external targets, and stack `{}` lists none (`externalTargets` in its config)",
                        stack.name
                    )));
                }
                external_targets.extend(stack.external_targets.iter().cloned());
            }
            for external in &external_targets {
                validate_external_target(external).map_err(&invalid)?;
            }
            let target_cloud = cloud_of(target).map_err(&invalid)?;
            for cluster in clusters_for(stack, selector).map_err(&invalid)? {
                let mut externals = external_targets.clone();
                let mut spec = json!({
                    "action": "partition",
                    "mode": "all",
                    "selector": pod_selector(cluster, selector),
                    "direction": direction_str(*direction),
                });
                match target_cloud {
                    Some(cloud) if cloud != cluster.cloud => {
                        let peer = cluster_of(stack, cloud).map_err(&invalid)?;
                        externals.extend(peer.pod_cidrs.iter().cloned());
                    }
                    _ if !target.is_empty() => {
                        spec["target"] =
                            json!({ "mode": "all", "selector": pod_selector(cluster, target) });
                    }
                    _ => {}
                }
                if spec.get("target").is_none() && externals.is_empty() {
                    return Err(invalid(
                        "a partition needs a `target` or `externalTargets` (a peer to cut from)"
                            .into(),
                    ));
                }
                if !externals.is_empty() {
                    if *direction != Direction::To {
                        return Err(invalid(format!(
                            "direction `{}` with external targets: Chaos Mesh applies externalTargets only with direction `to`",
                            direction_str(*direction)
                        )));
                    }
                    spec["externalTargets"] = json!(externals);
                }
                push(cluster, ChaosKind::NetworkChaos, spec);
            }
        }
        Fault::CloudLoss { cloud } => {
            let lost = cluster_of(stack, *cloud).map_err(&invalid)?;
            let mut externals: Vec<String> = stack
                .clusters
                .iter()
                .filter(|c| c.cloud != *cloud)
                .flat_map(|c| c.pod_cidrs.iter().cloned())
                .collect();
            externals.extend(stack.external_targets.iter().cloned());
            for external in &externals {
                validate_external_target(external).map_err(&invalid)?;
            }
            if externals.is_empty() {
                return Err(invalid(format!(
                    "cloud-loss of {cloud:?}: no other clouds' pod CIDRs and no external targets to cut from"
                )));
            }
            push(
                lost,
                ChaosKind::NetworkChaos,
                json!({
                    "action": "partition",
                    "mode": "all",
                    "selector": pod_selector(lost, &Labels::new()),
                    "direction": "to",
                    "externalTargets": externals,
                }),
            );
            for other in stack.clusters.iter().filter(|c| c.cloud != *cloud) {
                if lost.pod_cidrs.is_empty() {
                    return Err(invalid(format!(
                        "cluster `{}` has no podCidrs: the other clouds cannot be cut from it",
                        lost.name
                    )));
                }
                for cidr in &lost.pod_cidrs {
                    validate_external_target(cidr).map_err(&invalid)?;
                }
                push(
                    other,
                    ChaosKind::NetworkChaos,
                    json!({
                        "action": "partition",
                        "mode": "all",
                        "selector": pod_selector(other, &Labels::new()),
                        "direction": "to",
                        "externalTargets": lost.pod_cidrs,
                    }),
                );
            }
        }
        Fault::NetworkDelay {
            selector,
            latency,
            jitter,
        } => {
            validate_labels(selector).map_err(&invalid)?;
            if latency.0.is_zero() {
                return Err(invalid("network-delay with zero latency".into()));
            }
            for cluster in clusters_for(stack, selector).map_err(&invalid)? {
                push(
                    cluster,
                    ChaosKind::NetworkChaos,
                    json!({
                        "action": "delay",
                        "mode": "all",
                        "selector": pod_selector(cluster, selector),
                        "delay": { "latency": go_duration(latency.0), "jitter": go_duration(jitter.0), "correlation": "0" },
                    }),
                );
            }
        }
        Fault::PodKill { selector, max_pods } => {
            validate_labels(selector).map_err(&invalid)?;
            for cluster in clusters_for(stack, selector).map_err(&invalid)? {
                let mut spec =
                    json!({ "action": "pod-kill", "selector": pod_selector(cluster, selector) });
                match max_pods {
                    Some(0) => return Err(invalid("pod-kill with maxPods 0 kills nothing".into())),
                    Some(n) => {
                        spec["mode"] = json!("fixed");
                        spec["value"] = json!(n.to_string());
                    }
                    None => spec["mode"] = json!("all"),
                }
                push(cluster, ChaosKind::PodChaos, spec);
            }
        }
        Fault::Stress {
            selector,
            cpu_workers,
            cpu_load_percent,
            memory_size,
        } => {
            validate_labels(selector).map_err(&invalid)?;
            if *cpu_workers == 0 && memory_size.is_none() {
                return Err(invalid(
                    "stress with neither CPU workers nor a memory size".into(),
                ));
            }
            if *cpu_load_percent > 100 || *cpu_workers > 8192 {
                return Err(invalid(
                    "stress: CPU load is 0–100 % and workers at most 8192".into(),
                ));
            }
            let mut stressors = serde_json::Map::new();
            if *cpu_workers > 0 {
                stressors.insert(
                    "cpu".into(),
                    json!({ "workers": cpu_workers, "load": cpu_load_percent }),
                );
            }
            if let Some(size) = memory_size {
                stressors.insert(
                    "memory".into(),
                    json!({ "workers": (*cpu_workers).max(1), "size": size }),
                );
            }
            for cluster in clusters_for(stack, selector).map_err(&invalid)? {
                push(
                    cluster,
                    ChaosKind::StressChaos,
                    json!({ "mode": "all", "selector": pod_selector(cluster, selector), "stressors": stressors }),
                );
            }
        }
    }
    Ok(out)
}

/// The label selector a fault's pods are counted with (blast radius), per manifest:
/// `k=v,k2=v2` (empty = every pod of the namespaces).
pub fn label_selector_string(object: &Value) -> String {
    object["spec"]["selector"]["labelSelectors"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Chaos Mesh pod selector: the cluster's allowed namespaces (blast radius by construction) and
/// the labels.
fn pod_selector(cluster: &Cluster, labels: &Labels) -> Value {
    let mut selector = json!({ "namespaces": cluster.namespaces });
    if !labels.is_empty() {
        selector["labelSelectors"] = json!(labels);
    }
    selector
}

fn direction_str(direction: Direction) -> &'static str {
    match direction {
        Direction::To => "to",
        Direction::From => "from",
        Direction::Both => "both",
    }
}

/// A duration in Go syntax (`250ms`, `5s`), as Chaos Mesh parses it.
fn go_duration(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The cloud a selector names with its `cloud` label, if any.
fn cloud_of(labels: &Labels) -> Result<Option<Cloud>, String> {
    match labels.get("cloud") {
        None => Ok(None),
        Some(value) => Cloud::ALL
            .into_iter()
            .find(|c| c.as_str() == value)
            .map(Some)
            .ok_or_else(|| {
                format!("unknown cloud `{value}` in selector (expected gcp, aws or azure)")
            }),
    }
}

fn cluster_of(stack: &Stack, cloud: Cloud) -> Result<&Cluster, String> {
    stack
        .clusters
        .iter()
        .find(|c| c.cloud == cloud)
        .ok_or_else(|| format!("stack `{}` has no {} cluster", stack.name, cloud.as_str()))
}

/// The clusters a selector applies to: the one its `cloud` label names, else all.
fn clusters_for<'a>(stack: &'a Stack, selector: &Labels) -> Result<Vec<&'a Cluster>, String> {
    Ok(match cloud_of(selector)? {
        Some(cloud) => vec![cluster_of(stack, cloud)?],
        None => stack.clusters.iter().collect(),
    })
}

/// Kubernetes label keys (optional DNS prefix + name ≤ 63) and values (≤ 63, alphanumeric ends).
fn validate_labels(labels: &Labels) -> Result<(), String> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    for (key, value) in labels {
        let name =
            key.rsplit_once('/').map_or(
                key.as_str(),
                |(prefix, name)| if is_hostname(prefix) { name } else { "" },
            );
        if !name_ok(name) {
            return Err(format!("`{key}` is not a valid label key"));
        }
        if !value.is_empty() && !name_ok(value) {
            return Err(format!(
                "`{value}` (label `{key}`) is not a valid label value"
            ));
        }
    }
    Ok(())
}

/// An external target is an IP address, a CIDR (prefix within the address family) or a DNS name.
pub fn validate_external_target(target: &str) -> Result<(), String> {
    if let Some((addr, prefix)) = target.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{target}`: not a CIDR (bad address)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        match prefix.parse::<u8>() {
            Ok(p) if p <= max => Ok(()),
            _ => Err(format!("`{target}`: not a CIDR (prefix must be 0–{max})")),
        }
    } else if target.parse::<IpAddr>().is_ok() || is_hostname(target) {
        Ok(())
    } else {
        Err(format!(
            "`{target}` is neither an IP address, a CIDR nor a host name"
        ))
    }
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && !s
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
}
