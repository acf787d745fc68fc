//! Tests of the Chaos Mesh driver: every manifest against the upstream CRD schemas, our own
//! partition validation, and the exact API requests against a tower-test mock API server.

use std::pin::pin;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::Handle;
use uuid::Uuid;

use super::*;
use crate::config::Stack;
use crate::duration::HumanDuration;
use crate::model::Cloud;
use crate::scenario::{Direction, Fault, FaultStep, Labels};

mod lease;

// ---------------------------------------------------------------- fixtures

fn config_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example-production")
}

/// The `uat-alpha` stack of the example production config.
fn uat_alpha() -> Stack {
    let config = crate::config::load(&config_dir()).expect("example production config loads");
    config
        .stacks
        .get("uat-alpha")
        .expect("uat-alpha exists")
        .clone()
}

/// `uat-alpha` reduced to one namespace per cluster (fewer requests to script).
fn small_stack() -> Stack {
    let mut stack = uat_alpha();
    for cluster in &mut stack.clusters {
        cluster.namespaces = vec!["payments".into()];
    }
    stack
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn step(name: &str, fault: Fault) -> FaultStep {
    FaultStep {
        name: name.into(),
        fault,
        duration: HumanDuration(Duration::from_secs(300)),
    }
}

fn ctx() -> RenderContext {
    RenderContext {
        run_id: Uuid::parse_str("0190f5e2-7c3a-7d4e-8f00-123456789abc").expect("valid uuid"),
        step_index: 0,
        ttl: Duration::from_secs(330),
        ledger_id: Some(Uuid::nil()),
    }
}

fn fault_ctx() -> FaultContext {
    let c = ctx();
    FaultContext {
        run_id: c.run_id,
        ledger_id: Uuid::nil(),
        step_index: 0,
        ttl: c.ttl,
    }
}

// ---------------------------------------------------------------- schema validation

/// The upstream CRDs: `$F3_CHAOS_CRD_DIR`, else the first `shared/chaos-mesh-crds` found walking
/// up from this crate (the repository's `../shared/chaos-mesh-crds`, also from a git worktree).
fn crd_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("F3_CHAOS_CRD_DIR") {
        return dir.into();
    }
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/chaos-mesh-crds"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/chaos-mesh-crds above {}: set F3_CHAOS_CRD_DIR to the upstream CRD YAML directory",
                here.display()
            )
        })
}

/// The CRD's openAPIV3Schema, made strict: every object with `properties` rejects unknown fields
/// (the API server would silently prune them, hiding a typo), except `metadata`.
fn crd_schema(file: &str) -> Value {
    let path = crd_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let crd: Value = serde_yaml::from_str(&text).expect("CRD YAML parses");
    let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    fn strict(v: &mut Value, key: &str) {
        if let Some(map) = v.as_object_mut() {
            if key != "metadata"
                && map.contains_key("properties")
                && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (k, child) in map.iter_mut() {
                if k == "properties" {
                    if let Some(props) = child.as_object_mut() {
                        for (name, prop) in props.iter_mut() {
                            strict(prop, name);
                        }
                    }
                } else {
                    strict(child, k);
                }
            }
        } else if let Some(list) = v.as_array_mut() {
            for item in list {
                strict(item, "");
            }
        }
    }
    strict(&mut schema, "");
    schema
}

/// Every fault kind × option the driver renders.
fn all_faults() -> Vec<FaultStep> {
    let mut out = Vec::new();
    for direction in [Direction::To, Direction::From, Direction::Both] {
        out.push(step(
            "partition same-cloud target",
            Fault::NetworkPartition {
                selector: labels(&[("cloud", "gcp"), ("app", "payments-api")]),
                direction,
                target: labels(&[("cloud", "gcp"), ("app", "ledger")]),
                external_targets: vec![],
                stack_external_targets: false,
            },
        ));
        out.push(step(
            "partition all clusters from a label target",
            Fault::NetworkPartition {
                selector: labels(&[("app", "gateway")]),
                direction,
                target: labels(&[("app", "db")]),
                external_targets: vec![],
                stack_external_targets: false,
            },
        ));
    }
    out.push(step(
        "partition from another cloud and the scheme",
        Fault::NetworkPartition {
            selector: labels(&[("cloud", "aws")]),
            direction: Direction::To,
            target: labels(&[("cloud", "azure")]),
            external_targets: vec![
                "fps-gw.test.scheme.example.net".into(),
                "203.0.113.16/28".into(),
                "2001:db8::1".into(),
            ],
            stack_external_targets: false,
        },
    ));
    for cloud in Cloud::ALL {
        out.push(step("cloud loss", Fault::CloudLoss { cloud }));
    }
    for jitter in [0, 20] {
        out.push(step(
            "delay",
            Fault::NetworkDelay {
                selector: labels(&[("app", "payments-api")]),
                latency: HumanDuration(Duration::from_millis(250)),
                jitter: HumanDuration(Duration::from_millis(jitter)),
            },
        ));
    }
    for max_pods in [None, Some(2)] {
        out.push(step(
            "pod kill",
            Fault::PodKill {
                selector: labels(&[("cloud", "azure"), ("app", "ledger")]),
                max_pods,
            },
        ));
    }
    for (cpu_workers, memory_size) in [
        (2, None),
        (0, Some("256MB".to_owned())),
        (4, Some("1GiB".to_owned())),
    ] {
        out.push(step(
            "stress",
            Fault::Stress {
                selector: labels(&[("app", "payments-api")]),
                cpu_workers,
                cpu_load_percent: 80,
                memory_size,
            },
        ));
    }
    out
}

#[test]
fn every_manifest_validates_against_the_upstream_crd_schema() {
    let stack = uat_alpha();
    let validators: Vec<(ChaosKind, jsonschema::Validator)> = [
        (ChaosKind::NetworkChaos, "chaos-mesh.org_networkchaos.yaml"),
        (ChaosKind::PodChaos, "chaos-mesh.org_podchaos.yaml"),
        (ChaosKind::StressChaos, "chaos-mesh.org_stresschaos.yaml"),
    ]
    .into_iter()
    .map(|(kind, file)| {
        (
            kind,
            jsonschema::validator_for(&crd_schema(file)).expect("CRD schema compiles"),
        )
    })
    .collect();
    let mut count = 0;
    for fault in all_faults() {
        let manifests = manifest::render(&stack, "chaos-mesh", &fault, &ctx())
            .unwrap_or_else(|e| panic!("{}: {e}", fault.name));
        assert!(!manifests.is_empty(), "{}: no manifest", fault.name);
        for m in manifests {
            let (_, validator) = validators
                .iter()
                .find(|(k, _)| *k == m.resource.kind)
                .expect("a validator per kind");
            let errors: Vec<String> = validator
                .iter_errors(&m.object)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{} ({}): {errors:?}\n{}",
                fault.name,
                m.resource,
                serde_json::to_string_pretty(&m.object).unwrap_or_default()
            );
            // Safety properties of every manifest.
            assert_eq!(m.object["spec"]["duration"], "330s");
            assert_eq!(
                m.object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "f3-chaos"
            );
            assert_eq!(
                m.object["metadata"]["labels"][manifest::RUN_ID_LABEL],
                ctx().run_id.to_string()
            );
            assert!(m.resource.name.len() <= 63 && m.resource.name.starts_with("f3-"));
            let selected = m.object["spec"]["selector"]["namespaces"]
                .as_array()
                .expect("namespaces always set")
                .len();
            assert_eq!(selected, 3, "selector bounded by the cluster's namespaces");
            count += 1;
        }
    }
    assert!(count >= 20, "only {count} manifests checked");
}

#[test]
fn a_bad_field_fails_the_schema() {
    let validator = jsonschema::validator_for(&crd_schema("chaos-mesh.org_networkchaos.yaml"))
        .expect("compiles");
    let stack = uat_alpha();
    let mut m = manifest::render(
        &stack,
        "chaos-mesh",
        &step("x", Fault::CloudLoss { cloud: Cloud::Gcp }),
        &ctx(),
    )
    .expect("renders")
    .remove(0);
    assert!(validator.is_valid(&m.object));
    m.object["spec"]["direction"] = json!("sideways");
    assert!(!validator.is_valid(&m.object));
    m.object["spec"]["direction"] = json!("to");
    m.object["spec"]["externalTarget"] = json!(["typo"]);
    assert!(!validator.is_valid(&m.object), "unknown fields are refused");
}

#[test]
fn cloud_loss_renders_one_manifest_per_cluster() {
    let stack = uat_alpha();
    let manifests = manifest::render(
        &stack,
        "chaos-mesh",
        &step("GCP lost", Fault::CloudLoss { cloud: Cloud::Gcp }),
        &ctx(),
    )
    .expect("renders");
    let clusters: Vec<&str> = manifests
        .iter()
        .map(|m| m.resource.cluster.as_str())
        .collect();
    assert_eq!(
        clusters,
        ["gke-uat-alpha", "eks-uat-alpha", "aks-uat-alpha"]
    );
    assert_eq!(
        manifests[0].object["spec"]["externalTargets"],
        json!([
            "10.29.0.0/16",
            "10.30.0.0/16",
            "fps-gw.test.scheme.example.net",
            "203.0.113.16/28"
        ])
    );
    assert_eq!(
        manifests[1].object["spec"]["externalTargets"],
        json!(["10.28.0.0/16"])
    );
    assert_eq!(manifests[0].object["spec"]["action"], "partition");
    assert_eq!(manifests[0].resource.name, "f3-123456789abc-s0-gcp");
}

#[test]
fn unsafe_partitions_are_refused() {
    let stack = uat_alpha();
    let partition = |selector: Labels, direction, target: Labels, external: &[&str]| {
        step(
            "p",
            Fault::NetworkPartition {
                selector,
                direction,
                target,
                external_targets: external.iter().map(|s| (*s).to_owned()).collect(),
                stack_external_targets: false,
            },
        )
    };
    let cases = [
        (
            partition(Labels::new(), Direction::To, labels(&[("app", "a")]), &[]),
            "non-empty selector",
        ),
        (
            partition(
                labels(&[("app", "a")]),
                Direction::To,
                labels(&[("app", "a")]),
                &[],
            ),
            "equals the selector",
        ),
        (
            partition(labels(&[("app", "a")]), Direction::To, Labels::new(), &[]),
            "a peer",
        ),
        (
            partition(
                labels(&[("app", "a")]),
                Direction::Both,
                Labels::new(),
                &["10.0.0.0/8"],
            ),
            "only with direction `to`",
        ),
        (
            partition(
                labels(&[("app", "a")]),
                Direction::To,
                Labels::new(),
                &["10.0.0.0/33"],
            ),
            "not a CIDR",
        ),
        (
            partition(
                labels(&[("app", "a")]),
                Direction::To,
                Labels::new(),
                &["bad host!"],
            ),
            "neither",
        ),
        (
            partition(
                labels(&[("cloud", "mars")]),
                Direction::To,
                Labels::new(),
                &["1.2.3.4"],
            ),
            "unknown cloud",
        ),
        (
            partition(
                labels(&[("app", "-bad")]),
                Direction::To,
                Labels::new(),
                &["1.2.3.4"],
            ),
            "label value",
        ),
    ];
    for (fault, expected) in cases {
        let err = manifest::render(&stack, "chaos-mesh", &fault, &ctx())
            .expect_err(expected)
            .to_string();
        assert!(err.contains(expected), "{err} should mention {expected}");
    }
}

#[test]
fn fingerprint_names_the_changed_object() {
    let before = fingerprint_of(&[
        "c/ns/Deployment/api generation=3 images=api:1".into(),
        "c/ns/StatefulSet/db generation=1 images=pg:16".into(),
    ]);
    let after = fingerprint_of(&[
        "c/ns/Deployment/api generation=4 images=api:2".into(),
        "c/ns/StatefulSet/db generation=1 images=pg:16".into(),
    ]);
    assert_ne!(before, after);
    assert_eq!(changed_objects(&before, &after), ["c/ns/Deployment/api"]);
}

// ---------------------------------------------------------------- mock API server

type MockHandle = Handle<Request<Body>, Response<Body>>;

/// One expected request and the answer to it.
struct Expect {
    method: Method,
    /// The exact path and query.
    uri: String,
    status: u16,
    body: Value,
    /// `None`: answer with a transport error (API unreachable).
    reachable: bool,
}

fn expect(method: Method, uri: &str, status: u16, body: Value) -> Expect {
    Expect {
        method,
        uri: uri.to_owned(),
        status,
        body,
        reachable: true,
    }
}

fn unreachable(method: Method, uri: &str) -> Expect {
    Expect {
        method,
        uri: uri.to_owned(),
        status: 0,
        body: Value::Null,
        reachable: false,
    }
}

/// Serves `script` in order, asserting method and URI of each request; returns the request bodies.
fn serve(
    handle: MockHandle,
    script: Vec<Expect>,
) -> tokio::task::JoinHandle<Vec<(Method, String, Value)>> {
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        let mut seen = Vec::new();
        for (i, e) in script.into_iter().enumerate() {
            let (request, send) = handle
                .next_request()
                .await
                .unwrap_or_else(|| panic!("request {i} ({} {}) never came", e.method, e.uri));
            let method = request.method().clone();
            let uri = request.uri().to_string();
            assert_eq!(
                (&method, uri.as_str()),
                (&e.method, e.uri.as_str()),
                "request {i}"
            );
            if method == Method::PATCH {
                // Server-side apply, never a merge or JSON patch.
                assert_eq!(
                    request
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .map(|v| v.as_bytes()),
                    Some(&b"application/apply-patch+yaml"[..]),
                    "request {i}: PATCH must be a server-side apply"
                );
            }
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .expect("request body");
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("JSON body")
            };
            seen.push((method, uri, body));
            if e.reachable {
                let response = Response::builder()
                    .status(StatusCode::from_u16(e.status).expect("valid status"))
                    .body(Body::from(serde_json::to_vec(&e.body).expect("serialises")))
                    .expect("valid response");
                send.send_response(response);
            } else {
                send.send_error(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused",
                ));
            }
        }
        seen
    })
}

/// A driver whose `cloud` cluster talks to a mock; fast timeouts.
fn mocked(stack: &Stack, cloud: Cloud) -> (ChaosMeshDriver, MockHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let cluster = stack
        .clusters
        .iter()
        .find(|c| c.cloud == cloud)
        .expect("cluster of cloud")
        .name
        .clone();
    let driver = ChaosMeshDriver::new(stack)
        .expect("chaos-mesh stack")
        .with_client(&cluster, kube::Client::new(service, "default"))
        .with_timeouts(Timeouts {
            inject: Duration::from_millis(300),
            delete: Duration::from_millis(300),
            poll: Duration::from_millis(100),
        });
    (driver, handle)
}

const NC: &str = "/apis/chaos-mesh.org/v1alpha1/namespaces/chaos-mesh/networkchaos";
const PC: &str = "/apis/chaos-mesh.org/v1alpha1/namespaces/chaos-mesh/podchaos";
const SC: &str = "/apis/chaos-mesh.org/v1alpha1/namespaces/chaos-mesh/stresschaos";

fn chaos(kind: &str, name: &str, conditions: Value) -> Value {
    json!({
        "apiVersion": "chaos-mesh.org/v1alpha1", "kind": kind,
        "metadata": { "name": name, "namespace": "chaos-mesh", "finalizers": ["chaos-mesh/records"] },
        "spec": {}, "status": { "conditions": conditions }
    })
}

fn not_found(name: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("\"{name}\" not found") })
}

fn pods(n: usize) -> Value {
    let items: Vec<Value> = (0..n).map(|i| json!({ "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": { "name": format!("ledger-{i}") } })).collect();
    json!({ "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": items })
}

fn pod_kill() -> FaultStep {
    step(
        "Ledger pods killed",
        Fault::PodKill {
            selector: labels(&[("app", "ledger"), ("cloud", "gcp")]),
            max_pods: Some(2),
        },
    )
}

const NAME: &str = "f3-123456789abc-s0-gcp";

#[tokio::test]
async fn inject_applies_with_field_manager_waits_all_injected_and_revert_waits_gone() {
    let stack = small_stack();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let pending = json!([{ "type": "AllInjected", "status": "False" }]);
    let injected = json!([{ "type": "Selected", "status": "True" }, { "type": "AllInjected", "status": "True" }]);
    let server = serve(
        handle,
        vec![
            expect(
                Method::GET,
                "/api/v1/namespaces/payments/pods?&labelSelector=app%3Dledger%2Ccloud%3Dgcp",
                200,
                pods(3),
            ),
            expect(
                Method::PATCH,
                &format!("{PC}/{NAME}?&force=true&fieldManager=f3-chaos"),
                200,
                chaos("PodChaos", NAME, json!([])),
            ),
            expect(
                Method::GET,
                &format!("{PC}/{NAME}"),
                200,
                chaos("PodChaos", NAME, pending),
            ),
            expect(
                Method::GET,
                &format!("{PC}/{NAME}"),
                200,
                chaos("PodChaos", NAME, injected),
            ),
            expect(
                Method::DELETE,
                &format!("{PC}/{NAME}?"),
                200,
                chaos("PodChaos", NAME, json!([])),
            ),
            expect(
                Method::GET,
                &format!("{PC}/{NAME}"),
                200,
                chaos("PodChaos", NAME, json!([])),
            ),
            expect(Method::GET, &format!("{PC}/{NAME}"), 404, not_found(NAME)),
        ],
    );
    let handle = driver
        .inject(&pod_kill(), &fault_ctx())
        .await
        .expect("injected");
    assert_eq!(handle.driver, "chaos-mesh");
    assert!(handle.description.contains(NAME), "{}", handle.description);
    driver.revert(&handle).await.expect("reverted");
    let seen = server.await.expect("verifier");
    let applied = &seen[1].2;
    assert_eq!(applied["kind"], "PodChaos");
    assert_eq!(applied["spec"]["duration"], "330s");
    assert_eq!(applied["spec"]["mode"], "fixed");
    assert_eq!(applied["spec"]["value"], "2");
    assert_eq!(
        applied["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "f3-chaos"
    );
    // Delete never asks to bypass the chaos-mesh/records finalizer.
    assert!(
        seen.iter()
            .all(|(_, _, body)| !body.to_string().contains("cleanFinalizer"))
    );
}

#[tokio::test]
async fn injection_timeout_reverts_and_fails() {
    let stack = small_stack();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let pending = json!([{ "type": "AllInjected", "status": "False" }]);
    let mut script = vec![
        expect(
            Method::GET,
            "/api/v1/namespaces/payments/pods?&labelSelector=app%3Dledger%2Ccloud%3Dgcp",
            200,
            pods(1),
        ),
        expect(
            Method::PATCH,
            &format!("{PC}/{NAME}?&force=true&fieldManager=f3-chaos"),
            200,
            chaos("PodChaos", NAME, json!([])),
        ),
    ];
    for _ in 0..3 {
        script.push(expect(
            Method::GET,
            &format!("{PC}/{NAME}"),
            200,
            chaos("PodChaos", NAME, pending.clone()),
        ));
    }
    script.push(expect(
        Method::DELETE,
        &format!("{PC}/{NAME}?"),
        200,
        chaos("PodChaos", NAME, json!([])),
    ));
    script.push(expect(
        Method::GET,
        &format!("{PC}/{NAME}"),
        404,
        not_found(NAME),
    ));
    let server = serve(handle, script);
    let err = driver
        .inject(&pod_kill(), &fault_ctx())
        .await
        .expect_err("times out")
        .to_string();
    assert!(err.contains("not AllInjected=True"), "{err}");
    let seen = server
        .await
        .expect("verifier: the revert (DELETE) was issued");
    assert_eq!(seen[5].0, Method::DELETE);
}

#[tokio::test]
async fn blast_radius_is_enforced_before_applying() {
    let mut stack = small_stack();
    stack.driver = crate::config::DriverConfig::ChaosMesh {
        namespace: "chaos-mesh".into(),
        max_pods: 1,
    };
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(
        handle,
        vec![expect(
            Method::GET,
            "/api/v1/namespaces/payments/pods?&labelSelector=app%3Dledger%2Ccloud%3Dgcp",
            200,
            pods(5),
        )],
    );
    let err = driver
        .inject(&pod_kill(), &fault_ctx())
        .await
        .expect_err("too many pods")
        .to_string();
    assert!(err.contains("above maxPods 1"), "{err}");
    assert_eq!(server.await.expect("verifier").len(), 1, "nothing applied");
}

#[tokio::test]
async fn forbidden_apply_is_reported_and_reverted() {
    let stack = small_stack();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let forbidden = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "podchaos.chaos-mesh.org is forbidden: User \"system:serviceaccount:f3:f3-chaos\" cannot patch resource" });
    let server = serve(
        handle,
        vec![
            expect(
                Method::GET,
                "/api/v1/namespaces/payments/pods?&labelSelector=app%3Dledger%2Ccloud%3Dgcp",
                200,
                pods(1),
            ),
            expect(
                Method::PATCH,
                &format!("{PC}/{NAME}?&force=true&fieldManager=f3-chaos"),
                403,
                forbidden,
            ),
            expect(
                Method::DELETE,
                &format!("{PC}/{NAME}?"),
                404,
                not_found(NAME),
            ),
        ],
    );
    let err = driver
        .inject(&pod_kill(), &fault_ctx())
        .await
        .expect_err("forbidden");
    assert!(matches!(err, FaultError::NotReady { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("RBAC does not allow `patch` on podchaos"),
        "{err}"
    );
    server.await.expect("verifier");
}

#[tokio::test]
async fn preflight_reports_a_missing_crd() {
    let stack = small_stack();
    let mut stack = stack;
    stack.clusters.retain(|c| c.cloud == Cloud::Gcp);
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(
        handle,
        vec![expect(
            Method::GET,
            &format!("{NC}?"),
            404,
            not_found("networkchaos"),
        )],
    );
    let err = driver
        .preflight(&[pod_kill()])
        .await
        .expect_err("CRD missing")
        .to_string();
    assert!(
        err.contains("NetworkChaos CRD (chaos-mesh.org/v1alpha1) is not installed"),
        "{err}"
    );
    server.await.expect("verifier");
}

#[tokio::test]
async fn preflight_reports_rbac_denied_by_self_subject_access_review() {
    let mut stack = small_stack();
    stack.clusters.retain(|c| c.cloud == Cloud::Gcp);
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let list = json!({ "apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaosList", "metadata": {}, "items": [] });
    let denied = json!({ "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {},
        "status": { "allowed": false, "reason": "no RBAC policy matched" } });
    let server = serve(
        handle,
        vec![
            expect(Method::GET, &format!("{NC}?"), 200, list),
            expect(
                Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews?",
                201,
                denied,
            ),
        ],
    );
    let err = driver
        .preflight(&[pod_kill()])
        .await
        .expect_err("denied")
        .to_string();
    assert!(
        err.contains(
            "RBAC does not allow `create` on networkchaos in `chaos-mesh`: no RBAC policy matched"
        ),
        "{err}"
    );
    let seen = server.await.expect("verifier");
    assert_eq!(seen[1].2["spec"]["resourceAttributes"]["verb"], "create");
    assert_eq!(
        seen[1].2["spec"]["resourceAttributes"]["group"],
        "chaos-mesh.org"
    );
}

/// A chaos-mesh.org list of `kind` (e.g. `NetworkChaosList`) holding `items`.
fn chaos_list(kind: &str, items: Vec<Value>) -> Value {
    json!({ "apiVersion": "chaos-mesh.org/v1alpha1", "kind": kind, "metadata": {}, "items": items })
}

/// The orphan sweep's three lists by the managed-by label: `network_chaos` in the NetworkChaos
/// list, the PodChaos and StressChaos lists empty.
fn managed_object_lists(network_chaos: Vec<Value>) -> Vec<Expect> {
    let selector = "?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Df3-chaos";
    vec![
        expect(
            Method::GET,
            &format!("{NC}{selector}"),
            200,
            chaos_list("NetworkChaosList", network_chaos),
        ),
        expect(
            Method::GET,
            &format!("{PC}{selector}"),
            200,
            chaos_list("PodChaosList", vec![]),
        ),
        expect(
            Method::GET,
            &format!("{SC}{selector}"),
            200,
            chaos_list("StressChaosList", vec![]),
        ),
    ]
}

#[tokio::test]
async fn orphans_are_listed_by_the_managed_by_label() {
    let mut stack = small_stack();
    stack.clusters.retain(|c| c.cloud == Cloud::Gcp);
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let live = Uuid::now_v7();
    let dead = Uuid::now_v7();
    let item = |name: &str, run: Uuid| {
        json!({ "apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
        "metadata": { "name": name, "namespace": "chaos-mesh", "labels": { "app.kubernetes.io/managed-by": "f3-chaos", "f3-chaos.io/run-id": run.to_string() } } })
    };
    let server = serve(
        handle,
        managed_object_lists(vec![item("f3-live", live), item("f3-dead", dead)]),
    );
    let orphans = driver.orphans_except(&[live]).await.expect("listed");
    assert_eq!(
        orphans.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["f3-dead"]
    );
    server.await.expect("verifier");
}

#[tokio::test]
async fn api_unreachable_mid_fault_fails_the_revert_naming_the_resource() {
    let stack = small_stack();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let injected = json!([{ "type": "AllInjected", "status": "True" }]);
    let server = serve(
        handle,
        vec![
            expect(
                Method::GET,
                "/api/v1/namespaces/payments/pods?&labelSelector=app%3Dledger%2Ccloud%3Dgcp",
                200,
                pods(1),
            ),
            expect(
                Method::PATCH,
                &format!("{PC}/{NAME}?&force=true&fieldManager=f3-chaos"),
                200,
                chaos("PodChaos", NAME, json!([])),
            ),
            expect(
                Method::GET,
                &format!("{PC}/{NAME}"),
                200,
                chaos("PodChaos", NAME, injected),
            ),
            unreachable(Method::DELETE, &format!("{PC}/{NAME}?")),
        ],
    );
    let handle = driver
        .inject(&pod_kill(), &fault_ctx())
        .await
        .expect("injected");
    let err = driver.revert(&handle).await.expect_err("API unreachable");
    assert!(matches!(err, FaultError::Revert { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(NAME) && text.contains("the fault's TTL still ends it"),
        "{text}"
    );
    let seen = server.await.expect("verifier");
    assert_eq!(
        seen[1].2["spec"]["duration"], "330s",
        "the resource ends itself"
    );
}

#[tokio::test]
async fn a_missing_kube_context_is_a_clear_error() {
    let mut stack = small_stack();
    for c in &mut stack.clusters {
        c.kube_context = Some("no-such-context-f3".into());
    }
    let driver = ChaosMeshDriver::new(&stack).expect("chaos-mesh stack");
    let err = driver
        .fingerprint()
        .await
        .expect_err("no kubeconfig here")
        .to_string();
    assert!(err.contains("cannot build a Kubernetes client"), "{err}");
}

// ---------------------------------------------------------------- preflight, fingerprint, run

const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews?";

fn review(allowed: bool) -> Value {
    json!({ "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {},
        "status": { "allowed": allowed } })
}

fn empty_list(api_version: &str, kind: &str) -> Value {
    json!({ "apiVersion": api_version, "kind": kind, "metadata": {}, "items": [] })
}

/// Every request a passing preflight of the GCP cluster of [`small_stack`] makes, in order.
fn preflight_script() -> Vec<Expect> {
    let mut script = Vec::new();
    for (path, kind) in [
        (NC, "NetworkChaosList"),
        (PC, "PodChaosList"),
        (SC, "StressChaosList"),
    ] {
        script.push(expect(
            Method::GET,
            &format!("{path}?"),
            200,
            empty_list("chaos-mesh.org/v1alpha1", kind),
        ));
        for _ in 0..4 {
            script.push(expect(Method::POST, SSAR, 201, review(true)));
        }
    }
    // Leases (the target claim), then the reads in the allowed namespace.
    for _ in 0..4 {
        script.push(expect(Method::POST, SSAR, 201, review(true)));
    }
    for _ in 0..3 {
        script.push(expect(Method::POST, SSAR, 201, review(true)));
    }
    script
}

fn gcp_only() -> Stack {
    let mut stack = small_stack();
    stack.clusters.retain(|c| c.cloud == Cloud::Gcp);
    stack
}

#[tokio::test]
async fn preflight_checks_every_crd_and_every_permission_the_driver_uses() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let server = serve(handle, preflight_script());
    driver
        .preflight(&[pod_kill()])
        .await
        .expect("preflight passes");
    let seen = server.await.expect("verifier");
    let reviews: Vec<String> = seen
        .iter()
        .filter(|(method, _, _)| *method == Method::POST)
        .map(|(_, _, body)| {
            let a = &body["spec"]["resourceAttributes"];
            format!(
                "{} {}/{} in {}",
                a["verb"].as_str().unwrap_or_default(),
                a["group"].as_str().unwrap_or_default(),
                a["resource"].as_str().unwrap_or_default(),
                a["namespace"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let mut expected = Vec::new();
    for kind in ["networkchaos", "podchaos", "stresschaos"] {
        for verb in ["create", "patch", "delete", "get"] {
            expected.push(format!("{verb} chaos-mesh.org/{kind} in chaos-mesh"));
        }
    }
    for verb in ["create", "get", "update", "delete"] {
        expected.push(format!("{verb} coordination.k8s.io/leases in chaos-mesh"));
    }
    expected.push("list /pods in payments".to_owned());
    expected.push("list apps/deployments in payments".to_owned());
    expected.push("list apps/statefulsets in payments".to_owned());
    assert_eq!(reviews, expected);
    // What preflight asks for is what `required_permissions()` (and so deploy/base) grants: the
    // reviews, plus `list` on the chaos kinds (checked by listing) and the review itself.
    let mut reviewed: Vec<(String, String, String)> = seen
        .iter()
        .filter(|(method, _, _)| *method == Method::POST)
        .map(|(_, _, body)| {
            let a = &body["spec"]["resourceAttributes"];
            let field = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (field("group"), field("resource"), field("verb"))
        })
        .collect();
    for kind in ChaosKind::ALL {
        reviewed.push(("chaos-mesh.org".into(), kind.plural().into(), "list".into()));
    }
    reviewed.push((
        "authorization.k8s.io".into(),
        "selfsubjectaccessreviews".into(),
        "create".into(),
    ));
    reviewed.sort();
    let mut required: Vec<(String, String, String)> = required_permissions()
        .into_iter()
        .map(|p| (p.group.into(), p.resource.into(), p.verb.into()))
        .collect();
    required.sort();
    assert_eq!(reviewed, required);
}

#[tokio::test]
async fn preflight_refuses_system_namespaces_before_any_api_call() {
    for namespace in ["kube-system", "chaos-mesh"] {
        let mut stack = gcp_only();
        stack.clusters[0].namespaces.push(namespace.into());
        let (driver, handle) = mocked(&stack, Cloud::Gcp);
        let server = serve(handle, vec![]);
        let err = driver
            .preflight(&[pod_kill()])
            .await
            .expect_err("system namespace refused")
            .to_string();
        assert!(
            err.contains(&format!("allows namespace `{namespace}`")),
            "{err}"
        );
        assert!(server.await.expect("verifier").is_empty());
    }
}

fn deployment(name: &str, generation: i64, image: &str) -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": "payments", "generation": generation },
        "spec": { "selector": {}, "template": { "spec": { "containers": [{ "name": "main", "image": image }] } } } })
}

fn statefulset(name: &str, generation: i64, image: &str) -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": name, "namespace": "payments", "generation": generation },
        "spec": { "selector": {}, "serviceName": name, "template": { "spec": { "containers": [{ "name": "main", "image": image }] } } } })
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/payments/deployments?";
const STATEFULSETS: &str = "/apis/apps/v1/namespaces/payments/statefulsets?";

#[tokio::test]
async fn fingerprint_covers_images_and_generations_and_names_a_changed_object() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let list = |kind: &str, items: Vec<Value>| json!({ "apiVersion": "apps/v1", "kind": kind, "metadata": {}, "items": items });
    let server = serve(
        handle,
        vec![
            expect(
                Method::GET,
                DEPLOYMENTS,
                200,
                list(
                    "DeploymentList",
                    vec![deployment("payments-api", 7, "registry/payments-api:1.4.2")],
                ),
            ),
            expect(
                Method::GET,
                STATEFULSETS,
                200,
                list(
                    "StatefulSetList",
                    vec![statefulset("ledger", 3, "registry/ledger:9")],
                ),
            ),
            // A branch override lands mid-run: new image, new generation.
            expect(
                Method::GET,
                DEPLOYMENTS,
                200,
                list(
                    "DeploymentList",
                    vec![deployment(
                        "payments-api",
                        8,
                        "registry/payments-api:pr-1234",
                    )],
                ),
            ),
            expect(
                Method::GET,
                STATEFULSETS,
                200,
                list(
                    "StatefulSetList",
                    vec![statefulset("ledger", 3, "registry/ledger:9")],
                ),
            ),
        ],
    );
    let before = driver.fingerprint().await.expect("fingerprint");
    let after = driver.fingerprint().await.expect("fingerprint");
    server.await.expect("verifier");
    assert!(
        before.contains(
            "gke-uat-alpha/payments/Deployment/payments-api generation=7 images=registry/payments-api:1.4.2"
        ),
        "{before}"
    );
    assert!(
        before.contains(
            "gke-uat-alpha/payments/StatefulSet/ledger generation=3 images=registry/ledger:9"
        ),
        "{before}"
    );
    assert_ne!(before, after);
    assert_eq!(
        FaultDriver::changed_objects(&driver, &before, &after),
        ["gke-uat-alpha/payments/Deployment/payments-api"]
    );
}

/// The whole runner on a Chaos Mesh stack whose API server goes away while the fault is active:
/// the applied resource carries `spec.duration`, the revert fails naming it, and the run ends
/// `cleanup-failed`.
#[tokio::test]
async fn api_unreachable_mid_fault_ends_the_run_cleanup_failed_naming_the_resource() {
    let stack = gcp_only();
    let (driver, handle) = mocked(&stack, Cloud::Gcp);
    let library = crate::scenario::load_library(&config_dir()).expect("example library loads");
    let mut scenario = library
        .scenarios
        .get("gcp-failover-validation")
        .expect("reference scenario")
        .clone();
    // Only the fault: no Prometheus is needed to see what happens to it.
    scenario.given.clear();
    scenario.then.clear();
    scenario.abort.clear();
    let mut fault = pod_kill();
    fault.duration = HumanDuration(Duration::from_secs(1));
    scenario.when = vec![fault];

    let injected = json!([{ "type": "AllInjected", "status": "True" }]);
    let leases = "/apis/coordination.k8s.io/v1/namespaces/chaos-mesh/leases";
    let mut script = vec![
        // The target claim first: the stack's Lease.
        expect(
            Method::POST,
            &format!("{leases}?"),
            201,
            json!({ "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": { "name": "f3-chaos-uat-alpha", "namespace": "chaos-mesh", "resourceVersion": "1" },
                "spec": { "holderIdentity": "run", "leaseDurationSeconds": 60 } }),
        ),
        expect(
            Method::GET,
            DEPLOYMENTS,
            200,
            empty_list("apps/v1", "DeploymentList"),
        ),
        expect(
            Method::GET,
            STATEFULSETS,
            200,
            empty_list("apps/v1", "StatefulSetList"),
        ),
    ];
    script.extend(preflight_script());
    script.extend([
        expect(
            Method::GET,
            "/api/v1/namespaces/payments/pods?&labelSelector=app%3Dledger%2Ccloud%3Dgcp",
            200,
            pods(2),
        ),
        expect(
            Method::PATCH,
            &format!("{PC}/{NAME}?&force=true&fieldManager=f3-chaos"),
            200,
            chaos("PodChaos", NAME, json!([])),
        ),
        expect(
            Method::GET,
            &format!("{PC}/{NAME}"),
            200,
            chaos("PodChaos", NAME, injected),
        ),
    ]);
    // The API server is gone from here on: the first revert and its three retries.
    for _ in 0..4 {
        script.push(unreachable(Method::DELETE, &format!("{PC}/{NAME}?")));
    }
    script.push(unreachable(Method::GET, DEPLOYMENTS));
    // The claim is released when the run ends (the API is still gone: the Lease expires).
    script.push(unreachable(
        Method::DELETE,
        &format!("{leases}/f3-chaos-uat-alpha?"),
    ));
    let server = serve(handle, script);

    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        crate::store::Store::open(&format!("sqlite://{}", dir.path().join("f3.db").display()))
            .await
            .expect("store");
    // A real Prometheus client; no step queries it.
    let prometheus =
        crate::assert::PrometheusClient::new("http://127.0.0.1:9", Duration::from_secs(1))
            .expect("client");
    let mut opts = crate::run::RunOptions::new("test", "cli");
    opts.run_id = ctx().run_id;
    let runner = crate::run::Runner::new(
        &store,
        &driver,
        &prometheus,
        crate::run::Reporters::none(),
        tokio_util::sync::CancellationToken::new(),
    );
    let report = runner
        .run(&scenario, &stack.name, &opts)
        .await
        .expect("the run starts");
    // Bounded: the last request (the claim's release) is made by a task the claim's drop spawns.
    let seen = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("every scripted request came within 10 s")
        .expect("verifier: every scripted request was made");

    assert_eq!(report.outcome, crate::model::RunOutcome::CleanupFailed);
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("gke-uat-alpha/PodChaos chaos-mesh/{NAME}")),
        "the reason names the resource: {reason}"
    );
    let applied = seen
        .iter()
        .find(|(method, _, _)| *method == Method::PATCH)
        .expect("applied");
    assert_eq!(
        applied.2["spec"]["duration"], "2s",
        "the resource ends itself: fault duration 1 s + 1 s grace"
    );
}
