//! Tests across the scenario module: the shipped library against the JSON Schema, semantic
//! checks on small in-memory files, and property tests proving that no input makes the
//! compile step panic.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::library::{check_paths, check_texts};
use super::yaml::YamlFile;
use super::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn local_config() -> PathBuf {
    repo().join("config/local")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_shipped_scenario_validates_against_the_json_schema() {
    let schema = schema::scenario_schema();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let files = yaml_files(&repo().join("scenarios"));
    assert!(
        files.len() >= 8,
        "the library has {} scenarios",
        files.len()
    );
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let doc = YamlFile::parse(&path, text).expect("parses").to_json();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn the_schema_rejects_what_validate_rejects_structurally() {
    let schema = schema::scenario_schema();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let path = repo().join("scenarios/gcp-failover-validation.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    for (from, to) in [
        ("  owner: sre-chaos\n", "  ownr: sre-chaos\n"),
        ("cloud: gcp", "cloud: gpc"),
        ("hold: at-end", "hold: at-endd"),
    ] {
        let broken = text.replacen(from, to, 1);
        let doc = YamlFile::parse(&path, broken).expect("parses").to_json();
        assert!(!validator.is_valid(&doc), "schema accepted `{to}`");
    }
}

#[test]
fn docs_schema_file_is_up_to_date() {
    let shipped = std::fs::read_to_string(repo().join("docs/scenario.schema.json"))
        .expect("docs/scenario.schema.json");
    let current = serde_json::to_string_pretty(&schema::scenario_schema()).expect("json") + "\n";
    assert!(
        shipped == current,
        "docs/scenario.schema.json is stale: run `f3-chaos schema > docs/scenario.schema.json`"
    );
}

#[test]
fn shipped_library_compiles_against_both_configs() {
    let checked = check_paths(
        &[
            repo().join("scenarios"),
            repo().join("assertions"),
            repo().join("config"),
        ],
        None,
    );
    assert!(checked.diagnostics.is_empty(), "{}", checked.diagnostics);
    let lib = checked.library.expect("library");
    assert!(lib.scenarios.len() >= 8);
    // The library carries the first config found (config/example-production sorts first).
    assert_eq!(lib.config.stacks.len(), 13);
    let gcp = &lib.scenarios["gcp-failover-validation"];
    // UAT and dev are eligible, production is not (no opt-in).
    assert_eq!(
        gcp.targets.eligible_stacks.len(),
        9,
        "{:?}",
        gcp.targets.eligible_stacks
    );
    assert!(
        gcp.targets
            .eligible_stacks
            .iter()
            .all(|s| !s.starts_with("prod-"))
    );
    let game_day = &lib.scenarios["production-game-day-node-loss"];
    assert_eq!(game_day.targets.eligible_stacks.len(), 13);
    assert_eq!(lib.config.stacks["uat-alpha"].labels["env"], "uat");
}

#[test]
fn gcp_failover_validation_is_the_context_scenario() {
    let lib = load_library(&local_config()).unwrap_or_else(|d| panic!("{d}"));
    let s = &lib.scenarios["gcp-failover-validation"];
    assert!(
        matches!(s.given.as_slice(), [GivenStep::SteadyState { .. }, GivenStep::SteadyState { .. }, GivenStep::Load { tps, .. }] if *tps == 300.0)
    );
    assert!(matches!(
        s.when.as_slice(),
        [FaultStep {
            fault: Fault::CloudLoss {
                cloud: crate::model::Cloud::Gcp
            },
            ..
        }]
    ));
    let owners: Vec<&str> = s.then.iter().map(|t| t.owner.as_str()).collect();
    assert_eq!(&owners[..3], ["sre-chaos", "payments", "infrastructure"]);
    let latency = &s.then[1];
    assert_eq!(
        (latency.check.op, latency.check.threshold),
        (Comparison::Lt, 0.25)
    );
    assert_eq!(
        latency.check.slo.as_ref().map(|r| r.owner.as_str()),
        Some("payments")
    );
    let success = &s.then[2];
    assert_eq!(
        (success.check.op, success.check.threshold),
        (Comparison::Gt, 0.9999)
    );
    // Abort is the breach condition.
    assert_eq!(
        (s.abort[0].check.op, s.abort[0].check.threshold),
        (Comparison::Lt, 0.9)
    );
    // The demo fits in about two minutes of declared time.
    let declared: u64 = s
        .when
        .iter()
        .map(|w| w.duration.as_std().as_secs())
        .sum::<u64>()
        + s.given
            .iter()
            .map(|g| match g {
                GivenStep::Load { settle_within, .. } => settle_within.as_std().as_secs(),
                _ => 0,
            })
            .sum::<u64>()
        + s.then
            .iter()
            .map(|t| match t.hold {
                Hold::RecoverWithin { within } => within.as_std().as_secs(),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
    assert!(declared <= 120, "declared {declared}s");
}

fn scenario(body: &str) -> String {
    format!(
        "apiVersion: f3-chaos/v1\nkind: Scenario\nmetadata:\n  name: t\n  owner: sre-chaos\nspec:\n{body}"
    )
}

const MINIMAL_SPEC: &str = "  targets:\n    selector: {platform: payments}\n  schedule:\n    cadence: nightly\n    estimatedDuration: 2m\n  when:\n    - kind: cloud-loss\n      name: x\n      cloud: gcp\n      duration: 30s\n  then:\n    - name: y\n      owner: payments\n      slo: payments-success-ratio\n";

fn check_one(text: String) -> Checked {
    check_texts(vec![(PathBuf::from("t.yaml"), text)], Some(&local_config()))
}

#[test]
fn minimal_scenario_compiles_with_defaults() {
    let checked = check_one(scenario(MINIMAL_SPEC));
    assert!(checked.diagnostics.is_empty(), "{}", checked.diagnostics);
    let lib = checked.library.expect("library");
    let s = &lib.scenarios["t"];
    assert_eq!(s.schedule.priority, Priority::Medium);
    assert_eq!(s.then[0].hold, Hold::DuringFault);
    assert_eq!(s.targets.eligible_stacks, ["local"]);
}

#[test]
fn slo_reference_can_override_threshold_and_both_forms_conflict() {
    let spec = MINIMAL_SPEC.replace(
        "      slo: payments-success-ratio\n",
        "      slo: payments-success-ratio\n      threshold: 0.99\n",
    );
    let lib = check_one(scenario(&spec)).library.expect("valid");
    assert_eq!(lib.scenarios["t"].then[0].check.threshold, 0.99);

    let spec = MINIMAL_SPEC.replace(
        "      slo: payments-success-ratio\n",
        "      slo: payments-success-ratio\n      query: up\n",
    );
    let checked = check_one(scenario(&spec));
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.message.contains("both `slo` and `query`")),
        "{}",
        checked.diagnostics
    );
}

#[test]
fn range_vector_queries_are_rejected() {
    let spec = MINIMAL_SPEC.replace(
        "      slo: payments-success-ratio\n",
        "      query: payments_total[5m]\n      op: \">\"\n      threshold: 1\n",
    );
    let checked = check_one(scenario(&spec));
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.message.contains("instant vector")),
        "{}",
        checked.diagnostics
    );
}

#[test]
fn weekly_and_every_n_nights_cadences() {
    for (text, expected) in [
        (
            "cadence: {weekly: monday}",
            Cadence::Weekly {
                weekday: chrono::Weekday::Mon,
            },
        ),
        (
            "cadence: {everyNights: 3}",
            Cadence::EveryNNights { nights: 3 },
        ),
        ("cadence: manual", Cadence::Manual),
    ] {
        let spec = MINIMAL_SPEC.replace("cadence: nightly", text);
        let lib = check_one(scenario(&spec))
            .library
            .unwrap_or_else(|| panic!("{text} invalid"));
        assert_eq!(lib.scenarios["t"].schedule.cadence, expected);
    }
    let spec = MINIMAL_SPEC.replace("cadence: nightly", "cadence: {everyNights: 0}");
    assert!(check_one(scenario(&spec)).diagnostics.has_errors());
}

#[test]
fn load_paths_without_config_warns_and_skips_reference_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.yaml");
    std::fs::write(
        &path,
        scenario(&MINIMAL_SPEC.replace(
            "slo: payments-success-ratio",
            "query: up\n      op: \"==\"\n      threshold: 1",
        )),
    )
    .expect("write");
    let lib = load_paths(std::slice::from_ref(&path)).unwrap_or_else(|d| panic!("{d}"));
    assert!(lib.scenarios["t"].targets.eligible_stacks.is_empty());
    let checked = check_paths(&[path], None);
    assert_eq!(
        checked.diagnostics.warning_count(),
        1,
        "{}",
        checked.diagnostics
    );
}

#[test]
fn config_load_alone() {
    let config = crate::config::load(&repo().join("config/example-production"))
        .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(config.stacks.len(), 13);
    let envs = |e: crate::model::Environment| {
        config
            .stacks
            .values()
            .filter(|s| s.environment == e)
            .count()
    };
    assert_eq!(envs(crate::model::Environment::Production), 4);
    assert_eq!(envs(crate::model::Environment::Uat), 3);
    assert_eq!(envs(crate::model::Environment::Dev), 6);
    assert!(config.stacks.values().all(|s| s.clusters.len() == 3));
    assert_eq!(config.resources["gcp-org-network"], 1);
    assert_eq!(config.timezone, chrono_tz::Europe::London);
    assert_eq!(config.window.length().as_secs(), 7 * 3600);
    assert_eq!(config.teams["payments"].display_name, "Payments team");
}

/// A small YAML-ish tree rendered in block style, with keys drawn from the scenario vocabulary
/// so that generated documents get deep into the compile step.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
}

fn render(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        Node::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Node::Map(entries) => {
            out.push('\n');
            for (k, v) in entries {
                out.push_str(&format!("{pad}{k}:"));
                render(v, indent + 2, out);
            }
        }
        Node::Seq(items) => {
            out.push('\n');
            for item in items {
                out.push_str(&format!("{pad}-"));
                render(item, indent + 2, out);
            }
        }
    }
}

fn vocabulary() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "apiVersion",
        "kind",
        "metadata",
        "spec",
        "name",
        "owner",
        "targets",
        "selector",
        "stacks",
        "allowProduction",
        "schedule",
        "cadence",
        "weekly",
        "everyNights",
        "priority",
        "estimatedDuration",
        "after",
        "resources",
        "given",
        "when",
        "then",
        "abort",
        "slo",
        "query",
        "op",
        "threshold",
        "unit",
        "hold",
        "recover-within",
        "tps",
        "settleWithin",
        "duration",
        "cloud",
        "maxPods",
        "latency",
        "jitter",
        "direction",
        "externalTargets",
        "cpuWorkers",
        "memorySize",
        "slos",
        "impact",
        "action",
        "stranger",
    ])
    .prop_map(str::to_owned)
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "f3-chaos/v1",
            "Scenario",
            "SloCatalogue",
            "Config",
            "Teams",
            "Stacks",
            "nightly",
            "manual",
            "cloud-loss",
            "pod-kill",
            "network-delay",
            "stress",
            "network-partition",
            "steady-state",
            "load",
            "gcp",
            "aws",
            "during-fault",
            "at-end",
            "\">\"",
            "\"<\"",
            "30s",
            "8h",
            "0s",
            "-1",
            "1e400",
            ".nan",
            "payments",
            "sre-chaos",
            "payments-success-ratio",
            "up",
            "sum(rate(x[1m]))",
            "rate(",
            "~",
            "true",
            "\"\"",
            "'[unclosed'",
            "&a x",
            "*a",
            "!tag x",
            "|",
            ">-",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9 .:{}\\[\\],\\-\"']{0,12}",
    ]
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = scalar().prop_map(Node::Scalar);
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec((vocabulary(), inner.clone()), 0..6).prop_map(Node::Map),
            prop::collection::vec(inner, 0..4).prop_map(Node::Seq),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes-as-text never panic the parser or the compile step.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let checked = check_one(text);
        // Every diagnostic renders.
        let _ = checked.diagnostics.to_string();
    }

    /// Generated YAML-ish documents using the scenario vocabulary never panic.
    #[test]
    fn yamlish_documents_never_panic(tree in node()) {
        let mut text = String::from("apiVersion: f3-chaos/v1\nkind: Scenario\n");
        if let Node::Map(entries) = &tree {
            for (k, v) in entries {
                text.push_str(&format!("{k}:"));
                render(v, 2, &mut text);
            }
        }
        let checked = check_one(text);
        let _ = checked.diagnostics.to_string();
        for d in checked.diagnostics.iter() {
            prop_assert!(d.line >= 1, "diagnostic without a line: {d}");
        }
    }

    /// Cutting, duplicating or splicing the shipped reference scenario never panics, and every
    /// error points inside the file.
    #[test]
    fn mutated_reference_scenario_never_panics(cut in 0usize..3000, len in 0usize..40, insert in "\\PC{0,8}") {
        let text = std::fs::read_to_string(repo().join("scenarios/gcp-failover-validation.yaml")).expect("read");
        let chars: Vec<char> = text.chars().collect();
        let at = cut.min(chars.len());
        let end = (at + len).min(chars.len());
        let mutated: String = chars[..at].iter().chain(insert.chars().collect::<Vec<_>>().iter()).chain(chars[end..].iter()).collect();
        let lines = mutated.lines().count().max(1);
        let checked = check_one(mutated);
        for d in checked.diagnostics.iter().filter(|d| d.file == Path::new("t.yaml")) {
            prop_assert!(d.line >= 1 && d.line <= lines + 1, "line {} of {lines}: {d}", d.line);
        }
    }
}

#[test]
fn a_single_minimal_config_file_is_enough() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "apiVersion: f3-chaos/v1
kind: Config
spec:
  library:
    scenarios: {scenarios}
    assertions: {assertions}
  resources:
    - {{name: gcp-org-network, capacity: 1}}
  stacks:
    - name: local
      environment: local
      labels: {{platform: payments}}
      clusters:
        - {{cloud: gcp, name: local-gcp}}
        - {{cloud: aws, name: local-aws}}
        - {{cloud: azure, name: local-azure}}
      driver: {{kind: local, sandboxStack: local}}
      prometheusUrl: http://127.0.0.1:19090
  teams:
    - {{name: sre-chaos, displayName: SRE chaos lead}}
    - {{name: payments, displayName: Payments team}}
    - {{name: infrastructure, displayName: Infrastructure team}}
    - {{name: payment-gateway, displayName: Payment gateway team}}
    - {{name: scheme-connectivity, displayName: Scheme connectivity team}}
",
        scenarios = repo().join("scenarios").display(),
        assertions = repo().join("assertions").display(),
    );
    std::fs::write(dir.path().join("f3-chaos.yaml"), text).expect("write");
    let lib = load_library(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(lib.config.window.length().as_secs(), 7 * 3600);
    assert_eq!(lib.config.cooldown.as_std().as_secs(), 300);
    assert!(lib.scenarios.contains_key("gcp-failover-validation"));
}

#[test]
fn an_estimate_shorter_than_the_declared_steps_is_a_warning() {
    let spec = MINIMAL_SPEC.replace("estimatedDuration: 2m", "estimatedDuration: 10s");
    let checked = check_one(scenario(&spec));
    assert!(
        checked.library.is_some(),
        "a warning does not fail: {}",
        checked.diagnostics
    );
    let d = checked.diagnostics.iter().next().expect("one warning");
    assert_eq!(
        (d.severity, d.field.as_str(), d.line),
        (Severity::Warning, "spec.schedule.estimatedDuration", 11)
    );
}

#[test]
fn after_cycles_and_unknown_after_targets_are_errors() {
    let a = scenario(&MINIMAL_SPEC.replace(
        "    estimatedDuration: 2m\n",
        "    estimatedDuration: 2m\n    after: [b]\n",
    ));
    let b = a
        .replace("name: t", "name: b")
        .replace("after: [b]", "after: [t, nope]");
    let checked = check_texts(
        vec![(PathBuf::from("a.yaml"), a), (PathBuf::from("b.yaml"), b)],
        Some(&local_config()),
    );
    let messages: Vec<String> = checked
        .diagnostics
        .iter()
        .map(|d| format!("{}:{} {}", d.file.display(), d.line, d.message))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("a.yaml:12 `after:` cycle: b → after → t → after → b")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("b.yaml:12 `after:` cycle")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("unknown scenario `nope`")),
        "{messages:#?}"
    );
}

#[test]
fn shipped_catalogue_and_config_files_validate_against_their_schemas() {
    let cases = [
        (
            schema::catalogue_schema(),
            yaml_files(&repo().join("assertions")),
        ),
        (
            schema::config_schema(),
            vec![
                repo().join("config/local/f3-chaos.yaml"),
                repo().join("config/example-production/f3-chaos.yaml"),
            ],
        ),
    ];
    for (schema, files) in cases {
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        assert!(!files.is_empty());
        for path in files {
            let text = std::fs::read_to_string(&path).expect("read");
            let doc = YamlFile::parse(&path, text).expect("parses").to_json();
            let errors: Vec<String> = validator
                .iter_errors(&doc)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        }
    }
}
