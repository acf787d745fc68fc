//! Tests of the target claim (a `coordination.k8s.io/v1` Lease per cluster) and of preflight's
//! refusal of live chaos objects, against tower-test mock API servers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;
use crate::fault::chaos_mesh::lease::{is_live, lease_name};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/chaos-mesh/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/chaos-mesh/leases/f3-chaos-uat-alpha";
const HOLDER: &str = "run 0190f5e2-7c3a-7d4e-8f00-123456789abc (gcp-failover-validation, started by ci, pid 4242 on runner-1)";
const OTHER: &str = "run 0190f5e2-0000-7000-8000-000000000001 (partial-network-partition, started by daemon, pid 7 on f3-chaos-0)";

/// A MicroTime `age` before now, as the API server writes it.
fn micro_time(age: Duration) -> Value {
    let at = Timestamp::now() - SignedDuration::try_from(age).expect("small duration");
    serde_json::to_value(MicroTime(at)).expect("serialises")
}

/// The Lease as the API server returns it: written by f3-chaos for `holder` (a holder line), renewed
/// `age` ago.
fn lease(holder: &str, age: Duration, version: &str, transitions: i32) -> Value {
    let run = holder.split_whitespace().nth(1).unwrap_or_default();
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": "f3-chaos-uat-alpha", "namespace": "chaos-mesh", "resourceVersion": version,
            "uid": "5f0c7a52-8d8e-4a43-9b38-6f3f3e2a1c11",
            "labels": { "app.kubernetes.io/managed-by": "f3-chaos", "f3-chaos.io/run-id": run },
            "annotations": { "f3-chaos.io/stack": "uat-alpha" } },
        "spec": { "holderIdentity": holder, "leaseDurationSeconds": 60, "leaseTransitions": transitions,
            "acquireTime": micro_time(age), "renewTime": micro_time(age) }
    })
}

fn status(code: u16, reason: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "code": code,
        "message": format!("leases.coordination.k8s.io \"f3-chaos-uat-alpha\": {reason}") })
}

fn deleted() -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200 })
}

// The scripted exchanges of a claim, as the API server answers them.

/// `POST` of our Lease, created at `version`.
fn created(version: &str) -> Expect {
    expect(
        Method::POST,
        &format!("{LEASES}?"),
        201,
        lease(HOLDER, Duration::ZERO, version, 0),
    )
}

/// `POST` of our Lease, refused: one exists.
fn already_exists() -> Expect {
    expect(
        Method::POST,
        &format!("{LEASES}?"),
        409,
        status(409, "AlreadyExists"),
    )
}

/// `GET` of the Lease: `holder`'s, renewed `age` ago, at `version`.
fn reads(holder: &str, age: Duration, version: &str, transitions: i32) -> Expect {
    expect(
        Method::GET,
        LEASE,
        200,
        lease(holder, age, version, transitions),
    )
}

/// `PUT` of our Lease (a renewal or a takeover), accepted at `version`.
fn writes(version: &str, transitions: i32) -> Expect {
    expect(
        Method::PUT,
        &format!("{LEASE}?"),
        200,
        lease(HOLDER, Duration::ZERO, version, transitions),
    )
}

/// `DELETE` of the Lease, accepted.
fn deletes() -> Expect {
    expect(Method::DELETE, &format!("{LEASE}?"), 200, deleted())
}

/// The verifier's requests, failing (instead of hanging) when a scripted request never comes —
/// e.g. the `DELETE` a dropped claim spawns.
async fn finished(
    server: tokio::task::JoinHandle<Vec<(Method, String, Value)>>,
) -> Vec<(Method, String, Value)> {
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("every scripted request came within 5 s")
        .expect("verifier")
}

/// A driver whose clusters of `clouds` each talk to their own mock (in that order).
fn mocked_clusters(stack: &Stack, clouds: &[Cloud]) -> (ChaosMeshDriver, Vec<MockHandle>) {
    let mut driver = ChaosMeshDriver::new(stack).expect("chaos-mesh stack");
    let mut handles = Vec::new();
    for cloud in clouds {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let cluster = &stack
            .clusters
            .iter()
            .find(|c| c.cloud == *cloud)
            .expect("cluster of cloud")
            .name;
        driver = driver.with_client(cluster, kube::Client::new(service, "default"));
        handles.push(handle);
    }
    (driver, handles)
}

/// The fields every Lease we write carries.
fn assert_ours(body: &Value) {
    assert_eq!(body["apiVersion"], "coordination.k8s.io/v1");
    assert_eq!(body["kind"], "Lease");
    assert_eq!(body["metadata"]["name"], "f3-chaos-uat-alpha");
    assert_eq!(body["metadata"]["namespace"], "chaos-mesh");
    assert_eq!(
        body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "f3-chaos"
    );
    assert_eq!(
        body["metadata"]["labels"]["f3-chaos.io/run-id"],
        "0190f5e2-7c3a-7d4e-8f00-123456789abc"
    );
    assert_eq!(
        body["metadata"]["annotations"]["f3-chaos.io/stack"],
        "uat-alpha"
    );
    assert_eq!(body["spec"]["holderIdentity"], HOLDER);
    assert_eq!(body["spec"]["leaseDurationSeconds"], 60);
    for field in ["acquireTime", "renewTime"] {
        let text = body["spec"][field].as_str().unwrap_or_default();
        // MicroTime: RFC 3339 in UTC with exactly six fractional digits.
        assert!(
            text.len() == 27 && text.ends_with('Z') && text.as_bytes()[19] == b'.',
            "{field}: {text}"
        );
    }
}

#[tokio::test]
async fn claim_creates_the_lease_and_dropping_it_deletes_it() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(handle, vec![created("101"), deletes()]);
    let claim = driver.claim(HOLDER).await.expect("claimed");
    drop(claim);
    let seen = finished(server).await;
    let created = &seen[0].2;
    assert_ours(created);
    assert_eq!(created["spec"]["leaseTransitions"], 0);
    assert_eq!(created["spec"]["acquireTime"], created["spec"]["renewTime"]);
    assert!(
        created["metadata"].get("resourceVersion").is_none(),
        "a create has no version"
    );
    assert_eq!(
        seen[1].2["preconditions"]["resourceVersion"], "101",
        "only the version we wrote is deleted"
    );
}

#[tokio::test(start_paused = true)]
async fn the_lease_is_renewed_every_third_of_its_duration() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(
        handle,
        vec![
            created("101"),
            writes("102", 0),
            writes("103", 0),
            deletes(),
        ],
    );
    let claim = driver.claim(HOLDER).await.expect("claimed");
    // Paused time: the renewals at 20 s and 40 s run before this sleep ends at 41 s.
    tokio::time::sleep(Duration::from_secs(41)).await;
    drop(claim);
    let seen = finished(server).await;
    for (i, version) in [(1, "101"), (2, "102")] {
        let renewal = &seen[i].2;
        assert_ours(renewal);
        assert_eq!(
            renewal["metadata"]["resourceVersion"], version,
            "renewal {i} is conditional on the version last written"
        );
        let (acquired, renewed) = (
            renewal["spec"]["acquireTime"].as_str().unwrap_or_default(),
            renewal["spec"]["renewTime"].as_str().unwrap_or_default(),
        );
        assert!(renewed >= acquired, "{renewed} before {acquired}");
    }
    assert_eq!(seen[3].2["preconditions"]["resourceVersion"], "103");
}

#[tokio::test]
async fn a_live_lease_held_by_another_run_refuses_naming_it_and_writes_nothing() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(
        handle,
        vec![
            already_exists(),
            reads(OTHER, Duration::from_secs(10), "41", 0),
        ],
    );
    let err = driver.claim(HOLDER).await.err().expect("busy");
    match &err {
        FaultError::TargetBusy { stack, holder } => {
            assert_eq!(stack, "uat-alpha");
            assert_eq!(holder, OTHER);
        }
        other => panic!("expected TargetBusy, got {other}"),
    }
    drop(driver);
    let seen = finished(server).await;
    assert_eq!(seen.len(), 2, "no takeover, no delete: {seen:?}");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_on_its_resource_version() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(
        handle,
        vec![
            already_exists(),
            // Renewed 61 s ago with a 60 s duration: expired a second ago.
            reads(OTHER, Duration::from_secs(61), "41", 2),
            writes("42", 3),
            deletes(),
        ],
    );
    let claim = driver
        .claim(HOLDER)
        .await
        .expect("the expired Lease is ours");
    drop(claim);
    let seen = finished(server).await;
    let takeover = &seen[2].2;
    assert_ours(takeover);
    assert_eq!(takeover["metadata"]["resourceVersion"], "41");
    assert_eq!(
        takeover["metadata"]["uid"],
        "5f0c7a52-8d8e-4a43-9b38-6f3f3e2a1c11"
    );
    assert_eq!(takeover["spec"]["leaseTransitions"], 3, "one more holder");
    assert_eq!(seen[3].2["preconditions"]["resourceVersion"], "42");
}

#[tokio::test]
async fn losing_the_takeover_race_refuses_naming_the_winner() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let winner =
        "run 0190f5e2-0000-7000-8000-000000000002 (cpu-stress, started by ci, pid 9 on runner-2)";
    let server = serve(
        handle,
        vec![
            already_exists(),
            reads(OTHER, Duration::from_secs(300), "41", 0),
            expect(
                Method::PUT,
                &format!("{LEASE}?"),
                409,
                status(409, "Conflict"),
            ),
            reads(winner, Duration::ZERO, "42", 1),
        ],
    );
    let err = driver.claim(HOLDER).await.err().expect("busy");
    assert!(
        matches!(&err, FaultError::TargetBusy { holder, .. } if holder == winner),
        "{err}"
    );
    drop(driver);
    let seen = finished(server).await;
    assert_eq!(seen[2].2["metadata"]["resourceVersion"], "41");
    assert_eq!(seen.len(), 4, "nothing deleted: {seen:?}");
}

#[tokio::test]
async fn when_the_second_cluster_is_busy_the_first_lease_is_deleted() {
    let mut stack = small_stack();
    stack.clusters.retain(|c| c.cloud != Cloud::Azure);
    let (driver, mut handles) = mocked_clusters(&stack, &[Cloud::Gcp, Cloud::Aws]);
    let aws = serve(
        handles.pop().expect("aws mock"),
        vec![
            already_exists(),
            reads(OTHER, Duration::from_secs(5), "9", 0),
        ],
    );
    let gcp = serve(
        handles.pop().expect("gcp mock"),
        vec![created("7"), deletes()],
    );
    let err = driver.claim(HOLDER).await.err().expect("busy");
    let text = err.to_string();
    assert!(
        matches!(&err, FaultError::TargetBusy { holder, .. } if holder == OTHER),
        "{text}"
    );
    let gcp = finished(gcp).await;
    assert_ours(&gcp[0].2);
    assert_eq!(gcp[1].2["preconditions"]["resourceVersion"], "7");
    drop(driver);
    assert_eq!(finished(aws).await.len(), 2);
}

#[tokio::test]
async fn a_forbidden_create_names_the_lease_verb() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(
        handle,
        vec![expect(
            Method::POST,
            &format!("{LEASES}?"),
            403,
            status(403, "Forbidden"),
        )],
    );
    let err = driver.claim(HOLDER).await.err().expect("forbidden");
    assert!(matches!(err, FaultError::NotReady { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("RBAC does not allow `create` on leases in `chaos-mesh`"),
        "{err}"
    );
    finished(server).await;
}

#[test]
fn a_lease_is_live_until_renew_time_plus_its_duration() {
    let parse = |v: Value| -> k8s_openapi::api::coordination::v1::Lease {
        serde_json::from_value(v).expect("a Lease")
    };
    let now = Timestamp::now();
    assert!(is_live(
        &parse(lease(OTHER, Duration::from_secs(59), "1", 0)),
        now
    ));
    assert!(!is_live(
        &parse(lease(OTHER, Duration::from_secs(61), "1", 0)),
        now
    ));
    let mut released = lease(OTHER, Duration::ZERO, "1", 0);
    released["spec"] = json!({ "holderIdentity": OTHER });
    assert!(!is_live(&parse(released), now), "no times: expired");
    assert_eq!(
        LeaseTiming {
            duration: Duration::from_millis(1500),
            renew_every: Duration::ZERO
        }
        .duration_seconds(),
        2,
        "whole seconds, rounded up"
    );
}

// ---------------------------------------------------------------- preflight: live chaos objects

fn chaos_object(kind: &str, name: &str, phase: &str, recovered: bool) -> Value {
    json!({
        "apiVersion": "chaos-mesh.org/v1alpha1", "kind": kind,
        "metadata": { "name": name, "namespace": "chaos-mesh" },
        "spec": {},
        "status": { "experiment": { "desiredPhase": phase },
            "conditions": [{ "type": "AllRecovered", "status": if recovered { "True" } else { "False" } }] }
    })
}

#[tokio::test]
async fn preflight_refuses_live_chaos_objects_naming_them() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let mut script = vec![expect(
        Method::GET,
        &format!("{NC}?"),
        200,
        chaos_list(
            "NetworkChaosList",
            vec![
                chaos_object("NetworkChaos", "foo", "Run", false),
                // Finished: stopped and recovered — no longer acting on anything.
                chaos_object("NetworkChaos", "finished", "Stop", true),
            ],
        ),
    )];
    script.extend((0..4).map(|_| expect(Method::POST, SSAR, 201, review(true))));
    script.push(expect(
        Method::GET,
        &format!("{PC}?"),
        200,
        chaos_list(
            "PodChaosList",
            // Stopping but not yet recovered: still acting.
            vec![chaos_object("PodChaos", "recovering", "Stop", false)],
        ),
    ));
    script.extend((0..4).map(|_| expect(Method::POST, SSAR, 201, review(true))));
    script.push(expect(
        Method::GET,
        &format!("{SC}?"),
        200,
        chaos_list("StressChaosList", vec![]),
    ));
    script.extend((0..4).map(|_| expect(Method::POST, SSAR, 201, review(true))));
    let server = serve(handle, script);
    let err = driver.preflight(&[pod_kill()]).await.expect_err("refused");
    assert!(err.is_target_state(), "the stack must change: {err}");
    let text = err.to_string();
    assert!(
        text.contains(
            "live chaos objects from another run or tool: NetworkChaos chaos-mesh/foo, PodChaos chaos-mesh/recovering"
        ),
        "{text}"
    );
    assert!(!text.contains("finished"), "{text}");
    drop(driver);
    finished(server).await;
}

#[test]
fn lease_names_are_valid_object_names() {
    assert_eq!(lease_name("uat-alpha"), "f3-chaos-uat-alpha");
    let odd = lease_name("UAT_Beta.eu");
    assert!(odd.starts_with("f3-chaos-uat-beta-eu-"), "{odd}");
    assert_ne!(odd, lease_name("uat-beta-eu"));
    let long = lease_name(&"x".repeat(200));
    assert!(long.len() <= 63, "{long}");
    for name in [odd, long] {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------- orphans: claimed stacks

#[tokio::test]
async fn a_stack_claimed_at_the_target_has_no_orphans() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(handle, vec![reads(OTHER, Duration::from_secs(5), "41", 0)]);
    let orphans = driver.orphans().await.expect("answered");
    assert!(orphans.is_empty(), "{orphans:?}");
    drop(driver);
    assert_eq!(finished(server).await.len(), 1, "no chaos object listed");
}

#[tokio::test]
async fn an_unclaimed_stack_reports_its_managed_objects_as_orphans() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let mut script = vec![
        // Expired: whoever held it is gone.
        reads(OTHER, Duration::from_secs(120), "41", 0),
    ];
    script.extend(managed_object_lists(vec![chaos(
        "NetworkChaos",
        NAME,
        json!([]),
    )]));
    let server = serve(handle, script);
    let orphans = driver.orphans().await.expect("answered");
    assert_eq!(orphans.len(), 1);
    assert!(
        orphans[0].description.contains(NAME),
        "{}",
        orphans[0].description
    );
    finished(server).await;
}

#[tokio::test]
async fn a_lease_released_between_create_and_read_is_created_again() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(
        handle,
        vec![
            already_exists(),
            expect(Method::GET, LEASE, 404, status(404, "NotFound")),
            created("5"),
            deletes(),
        ],
    );
    drop(
        driver
            .claim(HOLDER)
            .await
            .expect("claimed on the second create"),
    );
    let seen = finished(server).await;
    assert_ours(&seen[2].2);
    assert_eq!(seen[3].2["preconditions"]["resourceVersion"], "5");
}

/// `f3-chaos run` ends its runtime right after the run: the Lease must be deleted before the
/// claim's release returns, not by a task that the runtime's shutdown cancels (the next run would
/// find the stack busy for up to `leaseDurationSeconds`).
#[test]
fn releasing_the_claim_waits_for_the_delete_so_a_runtime_ending_right_after_leaves_no_lease() {
    let server_runtime = tokio::runtime::Runtime::new().expect("server runtime");
    let run_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("run runtime");
    let stack = gcp_only();
    let (driver, handle) = run_runtime.block_on(async { mocked(&stack, Cloud::Gcp) });
    let server = {
        // The mock API server lives on its own runtime, which outlives the run's.
        let _server_context = server_runtime.enter();
        serve(handle, vec![created("101"), deletes()])
    };
    run_runtime.block_on(async {
        let claim = driver.claim(HOLDER).await.expect("claimed");
        claim.release().await;
    });
    drop(run_runtime);
    let seen = server_runtime.block_on(finished(server));
    assert_eq!(seen[1].0, Method::DELETE, "the Lease was deleted");
    assert_eq!(seen[1].2["preconditions"]["resourceVersion"], "101");
}
