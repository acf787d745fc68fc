//! The target claim of a Chaos Mesh stack ([`FaultDriver::claim`](crate::fault::FaultDriver::claim)):
//! one `coordination.k8s.io/v1` Lease per cluster, so that runs recorded in different stores or by
//! different daemons cannot overlap on one Kubernetes stack.
//!
//! Wire format: Kubernetes API, coordination.k8s.io/v1 Lease. In every cluster of the stack, in the
//! driver's (chaos) namespace, a Lease named [`lease_name`] (`f3-chaos-<stack>`) with
//! - `spec.holderIdentity`: the holder line `claim` was given (run id, scenario, who started it,
//!   pid, host) — what a refused run is told;
//! - `spec.leaseDurationSeconds`: [`LeaseTiming::duration`] in whole seconds ([`LEASE_DURATION`],
//!   60 s, by default);
//! - `spec.acquireTime`, `spec.renewTime`: MicroTime (RFC 3339, microseconds, UTC);
//! - `spec.leaseTransitions`: 0 when created, +1 on every takeover;
//! - label `app.kubernetes.io/managed-by: f3-chaos`, label `f3-chaos.io/run-id` when the holder
//!   line starts with `run <uuid>`, annotation `f3-chaos.io/stack`.
//!
//! Claiming a cluster: create the Lease; on 409 AlreadyExists read it. Live (its `renewTime` plus
//! `leaseDurationSeconds` is in the future) and held by another holder ⇒ refused with
//! [`ChaosMeshError::LeaseHeld`] naming that holder, and nothing is written. Expired, released
//! (no holder) or ours ⇒ taken over with a replace (PUT) carrying the `resourceVersion` read, so
//! that of two runs taking over the same expired Lease exactly one wins: the other gets 409
//! Conflict and is refused naming the winner. The clusters are claimed in stack order; when one
//! refuses, the Leases already taken are deleted before the refusal is returned.
//!
//! While held, a background task renews every Lease each [`LeaseTiming::renew_every`] (a replace
//! with the last `resourceVersion`, `renewTime` = now). A renewal that finds the Lease deleted or
//! held by someone else logs an error and stops renewing that Lease; the run goes on (the store's
//! lease is the first gate; a lost target Lease does not stop the run yet — docs/drivers.md).
//! Dropping the [`StackLease`] aborts the renewals and deletes every Lease still held, with a
//! `resourceVersion` precondition so that a Lease somebody else took meanwhile is never deleted.
//! If the process dies, the Leases simply expire after `leaseDurationSeconds`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::{ChaosMeshDriver, ChaosMeshError, manifest};

/// How long a Lease stays valid after its last renewal (`leaseDurationSeconds`) by default: 60 s.
/// Long enough that a renewal (every 20 s) can fail twice without losing the Lease; short enough
/// that a stack whose holder died is free again a minute later.
pub const LEASE_DURATION: Duration = Duration::from_secs(60);

/// Annotation naming the stack the Lease claims (the Lease's name is derived from it).
pub const STACK_ANNOTATION: &str = "f3-chaos.io/stack";

/// The Lease's name for `stack`: `f3-chaos-<stack>`, e.g. `f3-chaos-uat-alpha`. A stack name that
/// is not already lower-case letters, digits and `-` (the config does not require it) has every
/// other character replaced by `-` and the first 8 hex digits of its SHA-256 appended, so the name
/// stays a valid, distinct object name (≤ 63 characters).
pub fn lease_name(stack: &str) -> String {
    let clean = stack
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if clean && !stack.is_empty() && stack.len() <= 54 && !stack.ends_with('-') {
        return format!("f3-chaos-{stack}");
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(stack.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let mut safe: String = stack
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(44)
        .collect();
    safe.push('-');
    format!("f3-chaos-{safe}{hex}")
}

/// How long a Lease lasts and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// `leaseDurationSeconds`: validity after the last renewal (sent in whole seconds, rounded up,
    /// at least 1 s).
    pub duration: Duration,
    /// Interval between renewals (a third of `duration` by default, so two renewals can fail).
    pub renew_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            duration: LEASE_DURATION,
            renew_every: LEASE_DURATION / 3,
        }
    }
}

impl LeaseTiming {
    /// `leaseDurationSeconds`: whole seconds, rounded up, at least 1.
    pub fn duration_seconds(&self) -> i32 {
        let seconds = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        i32::try_from(seconds.max(1)).unwrap_or(i32::MAX)
    }
}

/// One Lease this process holds: where it is and the object as last written (its
/// `resourceVersion` is the precondition of the next write).
#[derive(Clone)]
struct Held {
    cluster: String,
    api: Api<Lease>,
    lease: Lease,
}

impl Held {
    fn describe(&self) -> String {
        describe(&self.cluster, &self.lease)
    }
}

/// `cluster/Lease namespace/name`, as errors and logs name a Lease.
fn describe(cluster: &str, lease: &Lease) -> String {
    format!(
        "{cluster}/Lease {}/{}",
        lease.metadata.namespace.as_deref().unwrap_or("?"),
        lease.metadata.name.as_deref().unwrap_or("?")
    )
}

/// A stack's Leases, held until dropped ([`ChaosMeshDriver::claim_stack`]). Dropping it aborts the
/// renewals and deletes the Leases (best effort, on the current tokio runtime; without one, or if
/// the runtime shuts down first, they expire after `leaseDurationSeconds`).
pub struct StackLease {
    stack: String,
    held: Arc<Mutex<Vec<Held>>>,
    renewal: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for StackLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = lock(&self.held);
        f.debug_struct("StackLease")
            .field("stack", &self.stack)
            .field(
                "leases",
                &held.iter().map(Held::describe).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn lock(held: &Mutex<Vec<Held>>) -> std::sync::MutexGuard<'_, Vec<Held>> {
    // The list is only ever replaced whole or edited in place; a panic mid-edit leaves it usable.
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StackLease {
    /// Stops the renewals and deletes the Leases, waiting for the API server's answers (a Lease
    /// that cannot be deleted is logged and expires after `leaseDurationSeconds`).
    pub async fn release(self) {
        self.renewal.abort();
        let held = std::mem::take(&mut *lock(&self.held));
        release(held).await;
    }
}

impl crate::fault::ClaimGuard for StackLease {
    fn release(self: Box<Self>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(StackLease::release(*self))
    }
}

impl Drop for StackLease {
    fn drop(&mut self) {
        self.renewal.abort();
        let held = std::mem::take(&mut *lock(&self.held));
        if held.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(release(held));
            }
            Err(_) => {
                tracing::warn!(stack = %self.stack, "No runtime to release the target Leases on; they expire on their own.");
            }
        }
    }
}

impl ChaosMeshDriver {
    /// Claims `self`'s stack for `holder` (one line: run id, scenario, who, pid, host): the Lease
    /// [`lease_name`] in the chaos namespace of every cluster, in stack order (module docs).
    ///
    /// # Errors
    /// [`ChaosMeshError::LeaseHeld`] when a cluster's Lease is live and held by another holder, or
    /// another run won the takeover of an expired one (the Leases already taken are deleted
    /// first); [`ChaosMeshError::Forbidden`] on 403; [`ChaosMeshError::Client`] /
    /// [`ChaosMeshError::Kube`] when a cluster cannot be reached or answers otherwise.
    pub async fn claim_stack(&self, holder: &str) -> Result<StackLease, ChaosMeshError> {
        let mut taken: Vec<Held> = Vec::new();
        for cluster in &self.stack.clusters {
            let outcome = match self.client(&cluster.name).await {
                Ok(client) => {
                    let api: Api<Lease> = Api::namespaced(client, &self.namespace);
                    self.claim_one(&cluster.name, api, holder).await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(held) => taken.push(held),
                Err(e) => {
                    release(taken).await;
                    return Err(e);
                }
            }
        }
        for held in &taken {
            tracing::info!(lease = %held.describe(), holder, "Target Lease claimed.");
        }
        let held = Arc::new(Mutex::new(taken));
        let renewal = tokio::spawn(renew_loop(
            held.clone(),
            holder.to_owned(),
            self.lease_timing.renew_every,
        ));
        Ok(StackLease {
            stack: self.stack.name.clone(),
            held,
            renewal,
        })
    }

    /// The first cluster (in stack order) whose Lease of this stack is live and held, with its
    /// holder: `(cluster, holderIdentity)`; `None` when no cluster's is (missing, released or
    /// expired).
    ///
    /// # Errors
    /// [`ChaosMeshError::Forbidden`], [`ChaosMeshError::Client`] or [`ChaosMeshError::Kube`]
    /// when a cluster cannot say.
    pub async fn lease_holder(&self) -> Result<Option<(String, String)>, ChaosMeshError> {
        let name = lease_name(&self.stack.name);
        for cluster in &self.stack.clusters {
            let api: Api<Lease> =
                Api::namespaced(self.client(&cluster.name).await?, &self.namespace);
            let lease = api.get_opt(&name).await.map_err(|e| {
                self.lease_error(
                    &cluster.name,
                    "get",
                    format!("reading {}/Lease {}/{name}", cluster.name, self.namespace),
                    e,
                )
            })?;
            let holder = lease
                .filter(|l| is_live(l, Timestamp::now()))
                .and_then(|l| l.spec.and_then(|s| s.holder_identity))
                .filter(|h| !h.is_empty());
            if let Some(holder) = holder {
                return Ok(Some((cluster.name.clone(), holder)));
            }
        }
        Ok(None)
    }

    /// Claims one cluster's Lease (create, or take over an expired one).
    async fn claim_one(
        &self,
        cluster: &str,
        api: Api<Lease>,
        holder: &str,
    ) -> Result<Held, ChaosMeshError> {
        let name = lease_name(&self.stack.name);
        let what = |verb: &str| format!("{verb} {cluster}/Lease {}/{name}", self.namespace);
        let fresh = self.new_lease(holder, None);
        match api.create(&PostParams::default(), &fresh).await {
            Ok(lease) => {
                return Ok(Held {
                    cluster: cluster.to_owned(),
                    api,
                    lease,
                });
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(self.lease_error(cluster, "create", what("creating"), e)),
        }
        let Some(existing) = api
            .get_opt(&name)
            .await
            .map_err(|e| self.lease_error(cluster, "get", what("reading"), e))?
        else {
            // Released between our create and our read: create it once more.
            return match api.create(&PostParams::default(), &fresh).await {
                Ok(lease) => Ok(Held {
                    cluster: cluster.to_owned(),
                    api,
                    lease,
                }),
                Err(kube::Error::Api(status)) if status.code == 409 => Err(self.held_elsewhere(
                    cluster,
                    "another run (it created the Lease while this run was claiming it)",
                )),
                Err(e) => Err(self.lease_error(cluster, "create", what("creating"), e)),
            };
        };
        let theirs = existing
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .filter(|h| !h.is_empty());
        if let Some(theirs) = &theirs
            && theirs != holder
            && is_live(&existing, Timestamp::now())
        {
            return Err(self.held_elsewhere(cluster, theirs));
        }
        // Expired, released or ours: take it over, on the condition that nobody wrote it since.
        let transitions = existing
            .spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0);
        let mut takeover = self.new_lease(
            holder,
            Some(if theirs.as_deref() == Some(holder) {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
        );
        takeover.metadata.resource_version = existing.metadata.resource_version.clone();
        takeover.metadata.uid = existing.metadata.uid.clone();
        match api.replace(&name, &PostParams::default(), &takeover).await {
            Ok(lease) => {
                if let Some(previous) = theirs.as_ref().filter(|p| *p != holder) {
                    tracing::warn!(lease = %describe(cluster, &lease), previous = %previous, "Took over an expired target Lease.");
                }
                Ok(Held {
                    cluster: cluster.to_owned(),
                    api,
                    lease,
                })
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Someone else wrote it first: name them if we can.
                let winner = api
                    .get_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|l| l.spec.and_then(|s| s.holder_identity))
                    .unwrap_or_else(|| "another run (it took over the expired Lease first)".into());
                Err(self.held_elsewhere(cluster, &winner))
            }
            Err(e) => Err(self.lease_error(cluster, "update", what("taking over"), e)),
        }
    }

    /// The Lease this driver writes for `holder`, acquired and renewed now.
    fn new_lease(&self, holder: &str, transitions: Option<i32>) -> Lease {
        let now = MicroTime(Timestamp::now());
        let mut labels = std::collections::BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            manifest::MANAGED_BY.to_owned(),
        )]);
        if let Some(run) = holder
            .strip_prefix("run ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|id| id.parse::<uuid::Uuid>().ok())
        {
            labels.insert(manifest::RUN_ID_LABEL.to_owned(), run.to_string());
        }
        Lease {
            metadata: ObjectMeta {
                name: Some(lease_name(&self.stack.name)),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                annotations: Some(std::collections::BTreeMap::from([(
                    STACK_ANNOTATION.to_owned(),
                    self.stack.name.clone(),
                )])),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(self.lease_timing.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(transitions.unwrap_or(0)),
                ..Default::default()
            }),
        }
    }

    fn held_elsewhere(&self, cluster: &str, holder: &str) -> ChaosMeshError {
        ChaosMeshError::LeaseHeld {
            cluster: cluster.to_owned(),
            lease: format!("{}/{}", self.namespace, lease_name(&self.stack.name)),
            holder: holder.to_owned(),
        }
    }

    fn lease_error(
        &self,
        cluster: &str,
        verb: &str,
        what: String,
        error: kube::Error,
    ) -> ChaosMeshError {
        match error {
            kube::Error::Api(status) if status.code == 403 => ChaosMeshError::Forbidden {
                cluster: cluster.to_owned(),
                verb: verb.to_owned(),
                resource: "leases".into(),
                namespace: self.namespace.clone(),
                reason: format!(": {}", status.message),
            },
            source => ChaosMeshError::Kube { what, source },
        }
    }
}

/// Whether `lease` is still valid at `now`: `renewTime` (else `acquireTime`) plus
/// `leaseDurationSeconds` lies after `now`. A Lease missing either is expired.
pub fn is_live(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    let (Some(last), Some(seconds)) = (
        spec.renew_time.as_ref().or(spec.acquire_time.as_ref()),
        spec.lease_duration_seconds,
    ) else {
        return false;
    };
    last.0
        .checked_add(SignedDuration::from_secs(i64::from(seconds)))
        .is_ok_and(|until| until > now)
}

/// Renews every held Lease each `every` until aborted (by [`StackLease`]'s drop).
async fn renew_loop(held: Arc<Mutex<Vec<Held>>>, holder: String, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let current = lock(&held).clone();
        for lease in current {
            let outcome = renew(&lease, &holder).await;
            let mut list = lock(&held);
            let Some(index) = list.iter().position(|h| h.cluster == lease.cluster) else {
                continue;
            };
            match outcome {
                Renewal::Renewed(renewed) => list[index].lease = *renewed,
                Renewal::Lost(reason) => {
                    tracing::error!(lease = %lease.describe(), reason = %reason, "Lost the target Lease; the run goes on under the store's lease only.");
                    list.remove(index);
                }
                Renewal::Failed(error) => {
                    tracing::warn!(lease = %lease.describe(), error = %error, "Could not renew the target Lease; trying again at the next renewal.");
                }
            }
        }
    }
}

/// What one renewal came to.
enum Renewal {
    /// Written; the Lease as the API server now has it.
    Renewed(Box<Lease>),
    /// Deleted, or held by someone else: not ours any more.
    Lost(String),
    /// Not written (API unreachable, …); still ours until it expires.
    Failed(String),
}

/// One renewal: replace with the last `resourceVersion` and `renewTime` = now. A 409 whose fresh
/// read still shows us as holder (our previous write's answer was lost) is retried once on that
/// read.
async fn renew(held: &Held, holder: &str) -> Renewal {
    let name = held.lease.metadata.name.clone().unwrap_or_default();
    let mut base = held.lease.clone();
    for attempt in 0..2 {
        let mut next = base.clone();
        if let Some(spec) = next.spec.as_mut() {
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match held.api.replace(&name, &PostParams::default(), &next).await {
            Ok(lease) => return Renewal::Renewed(Box::new(lease)),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Renewal::Lost("it was deleted".into());
            }
            Err(kube::Error::Api(status)) if status.code == 409 && attempt == 0 => {
                match held.api.get_opt(&name).await {
                    Ok(Some(fresh)) => {
                        let theirs = fresh.spec.as_ref().and_then(|s| s.holder_identity.clone());
                        if theirs.as_deref() != Some(holder) {
                            return Renewal::Lost(format!(
                                "it is held by {}",
                                theirs.unwrap_or_else(|| "nobody".into())
                            ));
                        }
                        base = fresh;
                    }
                    Ok(None) => return Renewal::Lost("it was deleted".into()),
                    Err(e) => return Renewal::Failed(crate::fault::cause_text(&e)),
                }
            }
            Err(e) => return Renewal::Failed(crate::fault::cause_text(&e)),
        }
    }
    Renewal::Failed("the Lease kept changing under the renewal".into())
}

/// Deletes every Lease in `held`, each on the condition that it is still the version we wrote
/// (best effort: a failure is logged and the Lease expires on its own).
async fn release(held: Vec<Held>) {
    for lease in held {
        delete(&lease).await;
    }
}

/// Deletes one Lease with a `resourceVersion` precondition; on 409 re-reads it and deletes it only
/// if we still hold it.
async fn delete(held: &Held) {
    let name = held.lease.metadata.name.clone().unwrap_or_default();
    let mut version = held.lease.metadata.resource_version.clone();
    for attempt in 0..2 {
        let params = DeleteParams::default().preconditions(Preconditions {
            resource_version: version.clone(),
            uid: None,
        });
        match held.api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(lease = %held.describe(), "Target Lease released.");
                return;
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return,
            Err(kube::Error::Api(status)) if status.code == 409 && attempt == 0 => {
                let ours = held
                    .lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone());
                match held.api.get_opt(&name).await {
                    Ok(Some(fresh))
                        if fresh.spec.as_ref().and_then(|s| s.holder_identity.clone()) == ours =>
                    {
                        version = fresh.metadata.resource_version;
                    }
                    // Somebody else's now (or gone): not ours to delete.
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(lease = %held.describe(), error = %crate::fault::cause_text(&e), "Could not release the target Lease; it expires on its own.");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(lease = %held.describe(), error = %crate::fault::cause_text(&e), "Could not release the target Lease; it expires on its own.");
                return;
            }
        }
    }
}
