//! The Chaos Mesh driver: faults on Kubernetes stacks as Chaos Mesh resources.
//!
//! A stack has one cluster per cloud; each is reached through its kubeconfig context (or the
//! in-cluster config when none is named) with one [`kube::Client`] per cluster, created on first
//! use. Faults are rendered by [`manifest::render`] and then, per manifest:
//!
//! 1. blast radius: the pods its selector matches in the cluster's allowed namespaces are counted
//!    and refused above `maxPods` (cloud-loss is exempt: it is the whole cloud by definition and is
//!    bounded by the namespaces alone);
//! 2. server-side apply (`fieldManager=f3-chaos`, forced) of the object, which carries
//!    `spec.duration` = the fault's TTL: Chaos Mesh ends the fault on its own if we die;
//! 3. wait until the condition `AllInjected=True` (polling GET; timeout ⇒ everything applied so far
//!    is reverted and the inject fails).
//!
//! Revert deletes each resource and waits until it is gone: Chaos Mesh's `chaos-mesh/records`
//! finalizer recovers the pods before the object disappears. The forced clean-finalizer
//! annotation is never used: it would leave the fault in place. A revert that cannot reach the
//! API fails naming the resource; its `spec.duration` still ends it.
//!
//! The target claim ([`FaultDriver::claim`]) is a `coordination.k8s.io/v1` Lease per cluster,
//! renewed while the run lasts ([`lease`]). Preflight refuses a stack whose chaos namespace holds
//! live Chaos Mesh objects (anybody's: the run has injected nothing yet).
//!
//! Load (the payment simulators) is not driven through Kubernetes by this build: `set_tps` fails
//! with a clear error (see docs/drivers.md).

pub mod lease;
pub mod manifest;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::Value;
use tokio::sync::OnceCell;
use uuid::Uuid;

pub use lease::{LEASE_DURATION, LeaseTiming, StackLease};
pub use manifest::{ChaosKind, Manifest, RenderContext, ResourceRef};

use super::{FaultContext, FaultDriver, FaultError, FaultHandle, LoadGenerator};
use crate::config::{DriverConfig, Stack};
use crate::scenario::{Check, Comparison, Fault, FaultStep};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "f3-chaos";

/// Namespaces preflight refuses as experiment targets whatever the config says: Kubernetes' own
/// system namespaces (breaking them breaks the cluster, not the platform under test).
pub const PROTECTED_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Errors of the Chaos Mesh driver (converted to [`FaultError`] at the trait boundary).
#[derive(Debug, thiserror::Error)]
pub enum ChaosMeshError {
    /// The stack is not configured for this driver.
    #[error("stack `{0}` does not use the chaos-mesh driver")]
    NotChaosMesh(String),
    /// The fault cannot be rendered safely (our own validation; Chaos Mesh's webhook does not).
    #[error("fault `{step}` is invalid for Chaos Mesh: {reason}")]
    InvalidFault {
        /// Step name.
        step: String,
        /// Why.
        reason: String,
    },
    /// A blast-radius limit would be exceeded.
    #[error("blast radius: {0}")]
    BlastRadius(String),
    /// No client could be built for a cluster (kubeconfig context missing, not in a pod).
    #[error("cluster `{cluster}`: cannot build a Kubernetes client: {reason}")]
    Client {
        /// Cluster name.
        cluster: String,
        /// Why.
        reason: String,
    },
    /// A Chaos Mesh CRD is not installed.
    #[error("cluster `{cluster}`: the {kind} CRD (chaos-mesh.org/v1alpha1) is not installed")]
    CrdMissing {
        /// Cluster name.
        cluster: String,
        /// Kind, e.g. `NetworkChaos`.
        kind: &'static str,
    },
    /// RBAC denies something the driver needs.
    #[error(
        "cluster `{cluster}`: RBAC does not allow `{verb}` on {resource} in `{namespace}`{reason}"
    )]
    Forbidden {
        /// Cluster name.
        cluster: String,
        /// Verb.
        verb: String,
        /// Resource (plural).
        resource: String,
        /// Namespace.
        namespace: String,
        /// The API server's reason, if any (with a leading `: `).
        reason: String,
    },
    /// The resource did not reach `AllInjected=True` in time.
    #[error("{resource}: not AllInjected=True after {timeout:?} (last conditions: {last})")]
    InjectTimeout {
        /// The resource.
        resource: String,
        /// How long we waited.
        timeout: Duration,
        /// The conditions last seen.
        last: String,
    },
    /// The resource did not disappear in time after delete.
    #[error(
        "{resource}: still present {timeout:?} after delete (finalizer chaos-mesh/records pending)"
    )]
    DeleteTimeout {
        /// The resource.
        resource: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done, naming the resource.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A fault handle could not be read.
    #[error("unreadable fault handle: {0}")]
    Handle(String),
    /// The stack's Lease in a cluster is live and held by another run ([`lease`]).
    #[error("cluster `{cluster}`: Lease {lease} is held by {holder}")]
    LeaseHeld {
        /// Cluster name.
        cluster: String,
        /// The Lease, `namespace/name`.
        lease: String,
        /// Its `spec.holderIdentity` (the holder line of the run holding it).
        holder: String,
    },
    /// Preflight found Chaos Mesh objects still acting on the stack (not finished or paused).
    #[error(
        "cluster `{cluster}`: live chaos objects from another run or tool: {}; wait until they \
         finish or delete them",
        objects.join(", ")
    )]
    LiveChaos {
        /// Cluster name.
        cluster: String,
        /// Each object as `Kind namespace/name`, e.g. `NetworkChaos chaos-mesh/foo`.
        objects: Vec<String>,
    },
}

/// Timeouts of the driver's waits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long inject waits for `AllInjected=True`.
    pub inject: Duration,
    /// How long revert waits for the object to disappear.
    pub delete: Duration,
    /// Interval between status polls.
    pub poll: Duration,
}

impl Timeouts {
    /// How many status reads fit in `total` at one read per `poll` (at least 1).
    fn attempts(&self, total: Duration) -> u32 {
        let poll = self.poll.as_millis().max(1);
        u32::try_from(total.as_millis() / poll)
            .unwrap_or(u32::MAX)
            .max(1)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            inject: Duration::from_secs(60),
            delete: Duration::from_secs(120),
            poll: Duration::from_secs(1),
        }
    }
}

/// The Chaos Mesh driver for one stack.
pub struct ChaosMeshDriver {
    stack: Stack,
    namespace: String,
    max_pods: u32,
    clients: BTreeMap<String, OnceCell<kube::Client>>,
    timeouts: Timeouts,
    lease_timing: LeaseTiming,
}

/// Verbs on each Chaos Mesh kind in the chaos namespace that preflight checks with a
/// SelfSubjectAccessReview (besides `list`, checked by listing).
const CHAOS_VERBS: [&str; 4] = ["create", "patch", "delete", "get"];

/// Verbs on `coordination.k8s.io` `leases` in the chaos namespace that the target claim uses
/// ([`lease`]): create, read, replace (take over, renew) and delete (release). Preflight checks
/// each with a SelfSubjectAccessReview.
const LEASE_VERBS: [&str; 4] = ["create", "get", "update", "delete"];

/// `(API group, resource)` the driver lists in every allowed namespace: pods for the blast
/// radius, deployments and statefulsets for the fingerprint.
const TARGET_READS: [(&str, &str); 3] = [
    ("", "pods"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
];

/// Where a [`Permission`] is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PermissionScope {
    /// In the Chaos Mesh namespace (`driver.namespace`).
    ChaosNamespace,
    /// In every namespace a cluster allows experiments in (`clusters[].namespaces`).
    TargetNamespaces,
    /// Cluster-wide.
    Cluster,
}

/// One Kubernetes permission the driver needs in every cluster it drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource (plural, lower case).
    pub resource: &'static str,
    /// Verb.
    pub verb: &'static str,
    /// Where.
    pub scope: PermissionScope,
}

/// Every permission preflight checks (and the one it uses to check: creating
/// SelfSubjectAccessReviews). The ClusterRole in `deploy/base` grants exactly these; a test keeps
/// the two in step.
pub fn required_permissions() -> Vec<Permission> {
    let mut out = Vec::new();
    for kind in ChaosKind::ALL {
        for verb in std::iter::once("list").chain(CHAOS_VERBS) {
            out.push(Permission {
                group: "chaos-mesh.org",
                resource: kind.plural(),
                verb,
                scope: PermissionScope::ChaosNamespace,
            });
        }
    }
    for verb in LEASE_VERBS {
        out.push(Permission {
            group: "coordination.k8s.io",
            resource: "leases",
            verb,
            scope: PermissionScope::ChaosNamespace,
        });
    }
    for (group, resource) in TARGET_READS {
        out.push(Permission {
            group,
            resource,
            verb: "list",
            scope: PermissionScope::TargetNamespaces,
        });
    }
    out.push(Permission {
        group: "authorization.k8s.io",
        resource: "selfsubjectaccessreviews",
        verb: "create",
        scope: PermissionScope::Cluster,
    });
    out
}

impl ChaosMeshDriver {
    /// A driver for `stack` (its driver config must be `chaos-mesh`). No client is created yet.
    ///
    /// Errors: [`ChaosMeshError::NotChaosMesh`].
    pub fn new(stack: &Stack) -> Result<Self, ChaosMeshError> {
        let DriverConfig::ChaosMesh {
            namespace,
            max_pods,
        } = &stack.driver
        else {
            return Err(ChaosMeshError::NotChaosMesh(stack.name.clone()));
        };
        Ok(ChaosMeshDriver {
            stack: stack.clone(),
            namespace: namespace.clone(),
            max_pods: *max_pods,
            clients: stack
                .clusters
                .iter()
                .map(|c| (c.name.clone(), OnceCell::new()))
                .collect(),
            timeouts: Timeouts::default(),
            lease_timing: LeaseTiming::default(),
        })
    }

    /// Uses `client` for `cluster` instead of building one from the kubeconfig (tests, embedders).
    pub fn with_client(self, cluster: &str, client: kube::Client) -> Self {
        let mut this = self;
        this.clients
            .insert(cluster.to_owned(), OnceCell::new_with(Some(client)));
        this
    }

    /// Replaces the wait timeouts.
    pub fn with_timeouts(self, timeouts: Timeouts) -> Self {
        ChaosMeshDriver { timeouts, ..self }
    }

    /// Replaces the target Lease's duration and renewal interval (default [`LeaseTiming`]:
    /// 60 s, renewed every 20 s).
    pub fn with_lease_timing(self, lease_timing: LeaseTiming) -> Self {
        ChaosMeshDriver {
            lease_timing,
            ..self
        }
    }

    /// The manifests `fault` would be applied as, per cluster (`--dry-run`; no API call).
    ///
    /// Errors: [`ChaosMeshError::InvalidFault`].
    pub fn render(
        &self,
        fault: &FaultStep,
        ctx: &RenderContext,
    ) -> Result<Vec<Manifest>, ChaosMeshError> {
        manifest::render(&self.stack, &self.namespace, fault, ctx)
    }

    /// The client of `cluster`, created on first use.
    async fn client(&self, cluster: &str) -> Result<kube::Client, ChaosMeshError> {
        let cell = self
            .clients
            .get(cluster)
            .ok_or_else(|| ChaosMeshError::Client {
                cluster: cluster.to_owned(),
                reason: format!("not a cluster of stack `{}`", self.stack.name),
            })?;
        let context = self
            .stack
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| c.kube_context.clone());
        cell.get_or_try_init(|| async {
            let fail = |reason: String| ChaosMeshError::Client {
                cluster: cluster.to_owned(),
                reason,
            };
            let config = match &context {
                Some(context) => {
                    let options = kube::config::KubeConfigOptions {
                        context: Some(context.clone()),
                        ..Default::default()
                    };
                    kube::Config::from_kubeconfig(&options)
                        .await
                        .map_err(|e| fail(format!("kubeconfig context `{context}`: {e}")))?
                }
                None => kube::Config::incluster()
                    .map_err(|e| fail(format!("in-cluster config: {e}")))?,
            };
            kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
        })
        .await
        .cloned()
    }

    fn api(client: kube::Client, resource: &ResourceRef) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("chaos-mesh.org", "v1alpha1", resource.kind.kind());
        let ar = ApiResource::from_gvk_with_plural(&gvk, resource.kind.plural());
        Api::namespaced_with(client, &resource.namespace, &ar)
    }

    /// Preflight of one cluster, in this order (the first failure is returned):
    ///
    /// 1. namespaces allowed (no API call): the cluster lists at least one namespace, and none
    ///    of them is a Kubernetes system namespace ([`PROTECTED_NAMESPACES`]) or the chaos
    ///    namespace itself ⇒ [`ChaosMeshError::BlastRadius`];
    /// 2. per Chaos Mesh kind: the chaos namespace's objects are listed (404 ⇒
    ///    [`ChaosMeshError::CrdMissing`], 403 ⇒ [`ChaosMeshError::Forbidden`]), then a
    ///    SelfSubjectAccessReview each for `create`, `patch`, `delete`, `get` in the chaos
    ///    namespace;
    /// 3. no listed object is live ([`is_live_chaos`]) ⇒ else [`ChaosMeshError::LiveChaos`]
    ///    naming every live one: the run has injected nothing yet, so they belong to another run
    ///    (of another store or daemon, or a dead one the sweep could not revert) or to a person;
    /// 4. SelfSubjectAccessReviews for `create`, `get`, `update`, `delete` on
    ///    `coordination.k8s.io` `leases` in the chaos namespace (the target claim);
    /// 5. per allowed namespace: SelfSubjectAccessReviews for `list pods` (blast radius),
    ///    `list deployments` and `list statefulsets` (fingerprint). Denied ⇒
    ///    [`ChaosMeshError::Forbidden`] with the API server's reason.
    async fn preflight_cluster(
        &self,
        cluster: &crate::config::Cluster,
    ) -> Result<(), ChaosMeshError> {
        if cluster.namespaces.is_empty() {
            return Err(ChaosMeshError::BlastRadius(format!(
                "cluster `{}` lists no namespaces experiments may touch",
                cluster.name
            )));
        }
        if let Some(namespace) = cluster
            .namespaces
            .iter()
            .find(|n| PROTECTED_NAMESPACES.contains(&n.as_str()) || **n == self.namespace)
        {
            return Err(ChaosMeshError::BlastRadius(format!(
                "cluster `{}` allows namespace `{namespace}`: system namespaces ({}) and the chaos \
                 namespace `{}` are never experiment targets",
                cluster.name,
                PROTECTED_NAMESPACES.join(", "),
                self.namespace
            )));
        }
        let client = self.client(&cluster.name).await?;
        let mut live = Vec::new();
        for kind in ChaosKind::ALL {
            let resource = ResourceRef {
                cluster: cluster.name.clone(),
                kind,
                namespace: self.namespace.clone(),
                name: String::new(),
            };
            match Self::api(client.clone(), &resource)
                .list(&ListParams::default())
                .await
            {
                Ok(list) => live.extend(list.items.iter().filter(|o| is_live_chaos(o)).map(|o| {
                    format!(
                        "{} {}/{}",
                        kind.kind(),
                        o.metadata.namespace.as_deref().unwrap_or(&self.namespace),
                        o.metadata.name.as_deref().unwrap_or("?")
                    )
                })),
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Err(ChaosMeshError::CrdMissing {
                        cluster: cluster.name.clone(),
                        kind: kind.kind(),
                    });
                }
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    return Err(ChaosMeshError::Forbidden {
                        cluster: cluster.name.clone(),
                        verb: "list".into(),
                        resource: kind.plural().into(),
                        namespace: self.namespace.clone(),
                        reason: format!(": {}", status.message),
                    });
                }
                Err(source) => {
                    return Err(ChaosMeshError::Kube {
                        what: format!("listing {} in {}", kind.plural(), cluster.name),
                        source,
                    });
                }
            }
            for verb in CHAOS_VERBS {
                self.access_review(
                    &client,
                    &cluster.name,
                    "chaos-mesh.org",
                    kind.plural(),
                    verb,
                    &self.namespace,
                )
                .await?;
            }
        }
        if !live.is_empty() {
            return Err(ChaosMeshError::LiveChaos {
                cluster: cluster.name.clone(),
                objects: live,
            });
        }
        for verb in LEASE_VERBS {
            self.access_review(
                &client,
                &cluster.name,
                "coordination.k8s.io",
                "leases",
                verb,
                &self.namespace,
            )
            .await?;
        }
        for namespace in &cluster.namespaces {
            for (group, resource) in TARGET_READS {
                self.access_review(&client, &cluster.name, group, resource, "list", namespace)
                    .await?;
            }
        }
        Ok(())
    }

    async fn access_review(
        &self,
        client: &kube::Client,
        cluster: &str,
        group: &str,
        resource: &str,
        verb: &str,
        namespace: &str,
    ) -> Result<(), ChaosMeshError> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(group.to_owned()),
                    resource: Some(resource.to_owned()),
                    verb: Some(verb.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|source| ChaosMeshError::Kube {
                what: format!("SelfSubjectAccessReview in {cluster}"),
                source,
            })?;
        match answer.status {
            Some(status) if status.allowed => Ok(()),
            status => Err(ChaosMeshError::Forbidden {
                cluster: cluster.to_owned(),
                verb: verb.to_owned(),
                resource: resource.to_owned(),
                namespace: namespace.to_owned(),
                reason: status
                    .and_then(|s| s.reason)
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default(),
            }),
        }
    }

    /// Counts the pods a manifest selects and refuses above `maxPods`.
    async fn check_blast_radius(
        &self,
        fault: &Fault,
        manifest: &Manifest,
    ) -> Result<(), ChaosMeshError> {
        if matches!(fault, Fault::CloudLoss { .. }) {
            return Ok(());
        }
        let cluster = self
            .stack
            .clusters
            .iter()
            .find(|c| c.name == manifest.resource.cluster)
            .ok_or_else(|| {
                ChaosMeshError::BlastRadius(format!(
                    "unknown cluster `{}`",
                    manifest.resource.cluster
                ))
            })?;
        let client = self.client(&cluster.name).await?;
        let labels = manifest::label_selector_string(&manifest.object);
        let mut selected = 0usize;
        for namespace in &cluster.namespaces {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let mut params = ListParams::default();
            if !labels.is_empty() {
                params = params.labels(&labels);
            }
            let list =
                pods.list_metadata(&params)
                    .await
                    .map_err(|source| ChaosMeshError::Kube {
                        what: format!("counting pods `{labels}` in {}/{namespace}", cluster.name),
                        source,
                    })?;
            selected += list.items.len();
        }
        let affected = match fault {
            Fault::PodKill {
                max_pods: Some(n), ..
            } => selected.min(*n as usize),
            _ => selected,
        };
        if selected == 0 {
            return Err(ChaosMeshError::BlastRadius(format!(
                "selector `{labels}` matches no pod in {} (namespaces {})",
                cluster.name,
                cluster.namespaces.join(", ")
            )));
        }
        if affected > self.max_pods as usize {
            return Err(ChaosMeshError::BlastRadius(format!(
                "selector `{labels}` would affect {affected} pods in {}, above maxPods {}",
                cluster.name, self.max_pods
            )));
        }
        Ok(())
    }

    /// Applies one manifest with server-side apply.
    async fn apply(&self, manifest: &Manifest) -> Result<(), ChaosMeshError> {
        let client = self.client(&manifest.resource.cluster).await?;
        let api = Self::api(client, &manifest.resource);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api
            .patch(
                &manifest.resource.name,
                &params,
                &Patch::Apply(&manifest.object),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                Err(ChaosMeshError::CrdMissing {
                    cluster: manifest.resource.cluster.clone(),
                    kind: manifest.resource.kind.kind(),
                })
            }
            Err(kube::Error::Api(status)) if status.code == 403 => Err(ChaosMeshError::Forbidden {
                cluster: manifest.resource.cluster.clone(),
                verb: "patch".into(),
                resource: manifest.resource.kind.plural().into(),
                namespace: manifest.resource.namespace.clone(),
                reason: format!(": {}", status.message),
            }),
            Err(source) => Err(ChaosMeshError::Kube {
                what: format!("applying {}", manifest.resource),
                source,
            }),
        }
    }

    /// Polls the resource until its condition `AllInjected` is `True`.
    async fn wait_injected(&self, resource: &ResourceRef) -> Result<(), ChaosMeshError> {
        let client = self.client(&resource.cluster).await?;
        let api = Self::api(client, resource);
        let mut last = String::from("none");
        let attempts = self.timeouts.attempts(self.timeouts.inject);
        for attempt in 1..=attempts {
            let object =
                api.get_opt(&resource.name)
                    .await
                    .map_err(|source| ChaosMeshError::Kube {
                        what: format!("reading {resource}"),
                        source,
                    })?;
            if let Some(object) = object {
                let conditions = object
                    .data
                    .pointer("/status/conditions")
                    .cloned()
                    .unwrap_or(Value::Null);
                if condition_true(&conditions, "AllInjected") {
                    return Ok(());
                }
                last = conditions.to_string();
            }
            if attempt < attempts {
                tokio::time::sleep(self.timeouts.poll).await;
            }
        }
        Err(ChaosMeshError::InjectTimeout {
            resource: resource.to_string(),
            timeout: self.timeouts.inject,
            last,
        })
    }

    /// Deletes one resource and waits until it is gone (404 at any point is success).
    pub async fn delete_and_wait(&self, resource: &ResourceRef) -> Result<(), ChaosMeshError> {
        let client = self.client(&resource.cluster).await?;
        let api = Self::api(client, resource);
        match api.delete(&resource.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(source) => {
                return Err(ChaosMeshError::Kube {
                    what: format!("deleting {resource}"),
                    source,
                });
            }
        }
        let attempts = self.timeouts.attempts(self.timeouts.delete);
        for attempt in 1..=attempts {
            let present =
                api.get_opt(&resource.name)
                    .await
                    .map_err(|source| ChaosMeshError::Kube {
                        what: format!("waiting for {resource} to disappear"),
                        source,
                    })?;
            if present.is_none() {
                return Ok(());
            }
            if attempt < attempts {
                tokio::time::sleep(self.timeouts.poll).await;
            }
        }
        Err(ChaosMeshError::DeleteTimeout {
            resource: resource.to_string(),
            timeout: self.timeouts.delete,
        })
    }

    /// Managed resources in every cluster whose run is not in `alive` (by the run-id label).
    ///
    /// Errors: the first API failure.
    pub async fn orphans_except(&self, alive: &[Uuid]) -> Result<Vec<ResourceRef>, ChaosMeshError> {
        let selector = format!("app.kubernetes.io/managed-by={}", manifest::MANAGED_BY);
        let mut out = Vec::new();
        for cluster in &self.stack.clusters {
            let client = self.client(&cluster.name).await?;
            for kind in ChaosKind::ALL {
                let probe = ResourceRef {
                    cluster: cluster.name.clone(),
                    kind,
                    namespace: self.namespace.clone(),
                    name: String::new(),
                };
                let list = Self::api(client.clone(), &probe)
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|source| ChaosMeshError::Kube {
                        what: format!("listing {} in {}", kind.plural(), cluster.name),
                        source,
                    })?;
                for item in list.items {
                    let run = item
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(manifest::RUN_ID_LABEL))
                        .and_then(|v| v.parse::<Uuid>().ok());
                    if run.is_some_and(|r| alive.contains(&r)) {
                        continue;
                    }
                    if let Some(name) = item.metadata.name {
                        out.push(ResourceRef {
                            name,
                            ..probe.clone()
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// The fingerprint lines: `cluster/namespace/Kind/name generation=N images=a,b`, sorted.
    ///
    /// Errors: the first API failure.
    pub async fn inventory(&self) -> Result<Vec<String>, ChaosMeshError> {
        let mut lines = Vec::new();
        for cluster in &self.stack.clusters {
            let client = self.client(&cluster.name).await?;
            for namespace in &cluster.namespaces {
                let what = |kind: &str| format!("listing {kind} in {}/{namespace}", cluster.name);
                let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
                let list = deployments
                    .list(&ListParams::default())
                    .await
                    .map_err(|source| ChaosMeshError::Kube {
                        what: what("deployments"),
                        source,
                    })?;
                for d in list.items {
                    let images = template_images(&d.spec.template);
                    lines.push(inventory_line(
                        &cluster.name,
                        namespace,
                        "Deployment",
                        &d.metadata,
                        &images,
                    ));
                }
                let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
                let list = sets.list(&ListParams::default()).await.map_err(|source| {
                    ChaosMeshError::Kube {
                        what: what("statefulsets"),
                        source,
                    }
                })?;
                for s in list.items {
                    let images = template_images(&s.spec.template);
                    lines.push(inventory_line(
                        &cluster.name,
                        namespace,
                        "StatefulSet",
                        &s.metadata,
                        &images,
                    ));
                }
            }
        }
        lines.sort();
        Ok(lines)
    }
}

/// The container images of a pod template, in order.
fn template_images(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> Vec<String> {
    template
        .spec
        .as_ref()
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn inventory_line(
    cluster: &str,
    namespace: &str,
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    images: &[String],
) -> String {
    format!(
        "{cluster}/{namespace}/{kind}/{} generation={} images={}",
        meta.name.as_deref().unwrap_or("?"),
        meta.generation.unwrap_or(0),
        images.join(",")
    )
}

/// The fingerprint string: the first 16 hex digits of the SHA-256 of the inventory lines (joined
/// by `\n`), then a newline and the lines themselves, so that [`changed_objects`] can name what
/// changed. Shape: `0123456789abcdef\ncluster/ns/Kind/name generation=N images=a,b\n…`.
pub fn fingerprint_of(lines: &[String]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(lines.join("\n").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{hex}\n{}", lines.join("\n"))
}

/// The objects (`cluster/namespace/Kind/name`) that differ between two fingerprints.
pub fn changed_objects(before: &str, after: &str) -> Vec<String> {
    let parse = |s: &str| -> BTreeMap<String, String> {
        s.lines()
            .skip(1)
            .filter_map(|l| l.split_once(' ').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect()
    };
    let (a, b) = (parse(before), parse(after));
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(k) != b.get(k)).collect()
}

/// Whether a Chaos Mesh object may still be acting on its targets: anything but finished or paused
/// (both: `status.experiment.desiredPhase` is `Stop` and condition `AllRecovered` is `True`). An
/// object without a status yet (just created) or being deleted but not yet recovered is live.
pub fn is_live_chaos(object: &DynamicObject) -> bool {
    let stopped = object
        .data
        .pointer("/status/experiment/desiredPhase")
        .and_then(Value::as_str)
        == Some("Stop");
    let recovered = object
        .data
        .pointer("/status/conditions")
        .is_some_and(|c| condition_true(c, "AllRecovered"));
    !(stopped && recovered)
}

/// Whether `conditions` (a Chaos Mesh status.conditions array) has `type` with status `True`.
fn condition_true(conditions: &Value, kind: &str) -> bool {
    conditions.as_array().is_some_and(|list| {
        list.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

fn to_fault_error(stack: &str, step: &str, e: ChaosMeshError) -> FaultError {
    match e {
        ChaosMeshError::CrdMissing { .. }
        | ChaosMeshError::Forbidden { .. }
        | ChaosMeshError::Client { .. } => FaultError::NotReady {
            stack: stack.to_owned(),
            reason: crate::fault::cause_text(&e),
        },
        other => FaultError::Inject {
            step: step.to_owned(),
            reason: crate::fault::cause_text(&other),
        },
    }
}

fn handle_resources(handle: &FaultHandle) -> Result<Vec<ResourceRef>, ChaosMeshError> {
    serde_json::from_value(handle.data["resources"].clone())
        .map_err(|e| ChaosMeshError::Handle(e.to_string()))
}

impl FaultDriver for ChaosMeshDriver {
    fn name(&self) -> &'static str {
        "chaos-mesh"
    }

    /// The stack's Lease in every cluster ([`lease`]), renewed until the claim is dropped.
    async fn claim(&self, holder: &str) -> Result<super::TargetClaim, FaultError> {
        match self.claim_stack(holder).await {
            Ok(lease) => Ok(super::TargetClaim::holding(lease)),
            Err(ChaosMeshError::LeaseHeld { holder, .. }) => Err(FaultError::TargetBusy {
                stack: self.stack.name.clone(),
                holder,
            }),
            Err(e) => Err(FaultError::NotReady {
                stack: self.stack.name.clone(),
                reason: crate::fault::cause_text(&e),
            }),
        }
    }

    async fn preflight(&self, faults: &[FaultStep]) -> Result<(), FaultError> {
        let ctx = RenderContext {
            run_id: Uuid::nil(),
            step_index: 0,
            ttl: Duration::from_secs(1),
            ledger_id: None,
        };
        for fault in faults {
            self.render(fault, &ctx)
                .map_err(|e| to_fault_error(&self.stack.name, &fault.name, e))?;
        }
        for cluster in &self.stack.clusters {
            self.preflight_cluster(cluster)
                .await
                .map_err(|e| FaultError::NotReady {
                    stack: self.stack.name.clone(),
                    reason: crate::fault::cause_text(&e),
                })?;
        }
        Ok(())
    }

    fn describe(&self, fault: &FaultStep) -> Result<Value, FaultError> {
        let ctx = RenderContext {
            run_id: Uuid::nil(),
            step_index: 0,
            ttl: fault.duration.0,
            ledger_id: None,
        };
        let manifests = self
            .render(fault, &ctx)
            .map_err(|e| to_fault_error(&self.stack.name, &fault.name, e))?;
        Ok(serde_json::json!({
            "driver": "chaos-mesh",
            "manifests": manifests.iter().map(|m| serde_json::json!({ "cluster": m.resource.cluster, "object": m.object })).collect::<Vec<_>>(),
        }))
    }

    async fn inject(
        &self,
        fault: &FaultStep,
        ctx: &FaultContext,
    ) -> Result<FaultHandle, FaultError> {
        let render_ctx = RenderContext {
            run_id: ctx.run_id,
            step_index: ctx.step_index,
            ttl: ctx.ttl,
            ledger_id: Some(ctx.ledger_id),
        };
        let fail = |e| to_fault_error(&self.stack.name, &fault.name, e);
        let manifests = self.render(fault, &render_ctx).map_err(fail)?;
        for manifest in &manifests {
            self.check_blast_radius(&fault.fault, manifest)
                .await
                .map_err(fail)?;
        }
        let mut applied: Vec<ResourceRef> = Vec::new();
        let mut outcome = Ok(());
        for manifest in &manifests {
            // Recorded before the call: an apply whose answer is lost may still have created it.
            applied.push(manifest.resource.clone());
            if let Err(e) = self.apply(manifest).await {
                outcome = Err(e);
                break;
            }
            tracing::info!(run_id = %ctx.run_id, resource = %manifest.resource, "Chaos Mesh resource applied.");
        }
        if outcome.is_ok() {
            for manifest in &manifests {
                if let Err(e) = self.wait_injected(&manifest.resource).await {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = outcome {
            let mut reverts = Vec::new();
            for resource in &applied {
                if let Err(revert) = self.delete_and_wait(resource).await {
                    reverts.push(revert.to_string());
                }
            }
            let mut reason = crate::fault::cause_text(&e);
            if !reverts.is_empty() {
                reason.push_str(&format!(
                    "; reverting also failed (spec.duration still ends it): {}",
                    reverts.join("; ")
                ));
            }
            return Err(match e {
                ChaosMeshError::CrdMissing { .. } | ChaosMeshError::Forbidden { .. } => {
                    FaultError::NotReady {
                        stack: self.stack.name.clone(),
                        reason,
                    }
                }
                _ => FaultError::Inject {
                    step: fault.name.clone(),
                    reason,
                },
            });
        }
        let description = applied
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Ok(FaultHandle {
            driver: self.name().to_owned(),
            description: format!("{} ({})", fault.fault.kind(), description),
            data: serde_json::json!({ "resources": applied }),
        })
    }

    async fn revert(&self, handle: &FaultHandle) -> Result<(), FaultError> {
        let resources = handle_resources(handle).map_err(|e| FaultError::Revert {
            what: handle.description.clone(),
            reason: crate::fault::cause_text(&e),
        })?;
        let mut failed = Vec::new();
        for resource in &resources {
            if let Err(e) = self.delete_and_wait(resource).await {
                tracing::warn!(resource = %resource, error = %e, "Revert of a Chaos Mesh resource failed.");
                failed.push(e.to_string());
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(FaultError::Revert {
                what: handle.description.clone(),
                reason: failed.join("; "),
            })
        }
    }

    /// Every managed resource of the stack, unless a run holds the stack's Lease in any cluster
    /// (then none: whichever store or daemon recorded that run, its faults are its own).
    async fn orphans(&self) -> Result<Vec<FaultHandle>, FaultError> {
        let fail = |e: ChaosMeshError| FaultError::NotReady {
            stack: self.stack.name.clone(),
            reason: crate::fault::cause_text(&e),
        };
        // The sweep calls this only when no run of its own store is alive on the stack; a run of
        // another store (or daemon) may still be, and it holds the Lease.
        if let Some((cluster, holder)) = self.lease_holder().await.map_err(fail)? {
            tracing::info!(stack = %self.stack.name, cluster = %cluster, holder = %holder, "Stack claimed at the target; its chaos objects are not orphans.");
            return Ok(Vec::new());
        }
        let resources = self.orphans_except(&[]).await.map_err(fail)?;
        Ok(resources
            .into_iter()
            .map(|r| FaultHandle {
                driver: "chaos-mesh".into(),
                description: format!("orphaned {r}"),
                data: serde_json::json!({ "resources": [r] }),
            })
            .collect())
    }

    async fn fingerprint(&self) -> Result<String, FaultError> {
        let lines = self.inventory().await.map_err(|e| FaultError::NotReady {
            stack: self.stack.name.clone(),
            reason: format!("fingerprint: {}", crate::fault::cause_text(&e)),
        })?;
        Ok(fingerprint_of(&lines))
    }

    fn changed_objects(&self, before: &str, after: &str) -> Vec<String> {
        changed_objects(before, after)
    }
}

impl LoadGenerator for ChaosMeshDriver {
    async fn set_tps(&self, tps: f64) -> Result<(), FaultError> {
        Err(FaultError::Load(format!(
            "stack `{}`: setting {tps} TPS on Kubernetes stacks is not supported by the chaos-mesh driver yet; \
             start the payment simulators' PaymentProfile for the rehearsal, and drop the `load` Given step \
             or replace it with a steady-state check on the observed rate",
            self.stack.name
        )))
    }

    fn load_check(&self, tps: f64) -> Check {
        Check {
            // Successful payments only: a dead gateway fails every payment at full rate.
            query: "sum(rate(payments_total{outcome=\"success\"}[1m]))".into(),
            op: Comparison::Ge,
            threshold: (tps * 0.9 * 100.0).round() / 100.0,
            unit: Some("tps".into()),
            slo: None,
        }
    }
}
