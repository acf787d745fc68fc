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

fn reference_scenario() -> String {
    std::fs::read_to_string(repo().join("scenarios/gcp-failover-validation.yaml"))
        .expect("read the reference scenario")
}

/// The one error of `text` at `field`, or a panic listing what was found.
fn error_at_field(checked: &Checked, field: &str) -> Diagnostic {
    checked
        .diagnostics
        .iter()
        .find(|d| d.is_error() && d.field == field)
        .cloned()
        .unwrap_or_else(|| panic!("no error at `{field}`:\n{}", checked.diagnostics))
}

/// `duration: 18446744073709551615s` (u64::MAX seconds) in any duration field is refused with a
/// diagnostic at the field; it used to panic the compile step ("overflow when adding durations")
/// and with it every `run` and `plan` that loaded the library.
#[test]
fn huge_durations_are_refused_at_their_field_instead_of_panicking() {
    const HUGE: &str = "18446744073709551615s";
    let reference = reference_scenario();
    for (from, field, line, column, max) in [
        ("duration: 30s", "spec.when[0].duration", 39, 17, "24h"),
        (
            "settleWithin: 20s",
            "spec.given[2].settleWithin",
            34,
            21,
            "1h",
        ),
        (
            "recover-within: 30s",
            "spec.then[4].hold.recover-within",
            67,
            25,
            "1h",
        ),
        (
            "estimatedDuration: 2m",
            "spec.schedule.estimatedDuration",
            22,
            24,
            "24h",
        ),
    ] {
        let key = from.split(':').next().expect("key");
        let text = reference.replacen(from, &format!("{key}: {HUGE}"), 1);
        let checked = check_one(text);
        assert!(checked.library.is_none(), "{from}: accepted");
        let d = error_at_field(&checked, field);
        assert_eq!((d.line, d.column), (line, column), "{d}");
        assert!(
            d.message.contains(HUGE) && d.message.contains(&format!("too long: at most {max}")),
            "{d}"
        );
    }
}

/// Durations too large even for `std::time::Duration` (more than u64::MAX seconds) are "too
/// long" as well, not "invalid".
#[test]
fn durations_beyond_u64_seconds_are_too_long() {
    let text =
        reference_scenario().replacen("duration: 30s", "duration: 99999999999999999999999s", 1);
    let d = error_at_field(&check_one(text), "spec.when[0].duration");
    assert!(d.message.contains("too long: at most 24h"), "{d}");
}

/// A manual scenario may declare an estimate longer than the window (a warning), but not an
/// absurd one.
#[test]
fn a_manual_scenario_estimate_is_bounded_too() {
    let text = reference_scenario()
        .replacen("cadence: nightly", "cadence: manual", 1)
        .replacen("estimatedDuration: 2m", "estimatedDuration: 100000h", 1);
    let d = error_at_field(&check_one(text), "spec.schedule.estimatedDuration");
    assert!(d.message.contains("too long: at most 24h"), "{d}");
}

#[test]
fn faults_shorter_than_a_second_are_refused() {
    for short in ["1ns", "999ms", "0s"] {
        let text = reference_scenario().replacen("duration: 30s", &format!("duration: {short}"), 1);
        let checked = check_one(text);
        let d = error_at_field(&checked, "spec.when[0].duration");
        assert_eq!((d.line, d.column), (39, 17), "{d}");
        assert!(d.message.contains("too short: at least 1s"), "{short}: {d}");
    }
    let text = reference_scenario().replacen("duration: 30s", "duration: 1s", 1);
    let checked = check_one(text);
    assert!(checked.library.is_some(), "{}", checked.diagnostics);
}

#[test]
fn network_delay_latency_and_jitter_are_bounded() {
    let fault = "    - kind: network-delay\n      name: slow\n      selector: {cloud: gcp}\n      latency: LAT\n      jitter: JIT\n      duration: 30s\n";
    let spec = |lat: &str, jit: &str| {
        let steps = fault.replace("LAT", lat).replace("JIT", jit);
        let start = MINIMAL_SPEC.find("    - kind: cloud-loss").expect("fault");
        let end = MINIMAL_SPEC.find("  then:").expect("then");
        format!("{}{steps}{}", &MINIMAL_SPEC[..start], &MINIMAL_SPEC[end..])
    };
    let checked = check_one(scenario(&spec("100ms", "20ms")));
    assert!(checked.library.is_some(), "{}", checked.diagnostics);
    let checked = check_one(scenario(&spec("2h", "20ms")));
    let d = error_at_field(&checked, "spec.when[0].latency");
    assert!(d.message.contains("too long: at most 1m"), "{d}");
    let checked = check_one(scenario(&spec("100ms", "18446744073709551615s")));
    let d = error_at_field(&checked, "spec.when[0].jitter");
    assert!(d.message.contains("too long: at most 1m"), "{d}");
}

/// `spec:` followed by `n` nested flow sequences.
fn nested_flow(n: usize) -> String {
    format!(
        "apiVersion: f3-chaos/v1\nkind: Scenario\nspec: {}{}\n",
        "[".repeat(n),
        "]".repeat(n)
    )
}

/// Deep nesting is refused at the collection that opens level 65, before serde_yaml's parser
/// (quadratic in the depth of flow collections) sees the file: 200 KB of `[` used to take more
/// than a minute.
#[test]
fn nesting_deeper_than_64_levels_is_refused_where_it_happens() {
    let started = std::time::Instant::now();
    let checked = check_one(nested_flow(100_000));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.message.contains("nesting too deep"))
        .unwrap_or_else(|| panic!("{}", checked.diagnostics));
    // The document is level 1, `spec`'s first `[` (column 7) level 2: the 64th `[` is level 65.
    assert_eq!(
        (d.file.as_path(), d.line, d.column),
        (Path::new("t.yaml"), 3, 70),
        "{d}"
    );
    assert!(d.message.contains("64"), "{d}");

    // Block style: level k starts on line k.
    let mut text = String::new();
    for level in 0..100 {
        text.push_str(&format!("{}a:\n", "  ".repeat(level)));
    }
    let err = YamlFile::parse(Path::new("t.yaml"), text).expect_err("too deep");
    assert_eq!((err.line, err.column), (65, 129), "{err}");

    // 64 levels are fine.
    YamlFile::parse(Path::new("t.yaml"), nested_flow(63)).expect("64 levels parse");
    let err = YamlFile::parse(Path::new("t.yaml"), nested_flow(64)).expect_err("65 levels");
    assert!(err.message.contains("nesting too deep"), "{err}");
}

/// Anchors and aliases cannot blow a small file up ("billion laughs").
#[test]
fn alias_bombs_are_refused_quickly() {
    let mut text = String::from(
        "apiVersion: f3-chaos/v1\nkind: Scenario\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let started = std::time::Instant::now();
    let checked = check_one(text);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(checked.diagnostics.has_errors());
    assert!(
        checked
            .diagnostics
            .iter()
            .all(|d| d.line >= 1 && d.column >= 1),
        "{}",
        checked.diagnostics
    );
}

#[test]
fn files_larger_than_4_mib_are_refused_at_the_limit() {
    // 5 MiB of comment lines of 64 bytes after a valid scenario.
    let head = scenario(MINIMAL_SPEC);
    let comment = format!("#{}\n", "x".repeat(62));
    let text = head.clone() + &comment.repeat(5 * 1024 * 1024 / comment.len());
    let limit = super::yaml::MAX_FILE_BYTES;
    let line = 1 + text[..limit].matches('\n').count();
    let column = 1 + limit - text[..limit].rfind('\n').map_or(0, |i| i + 1);
    let checked = check_one(text.clone());
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.message.contains("file too large"))
        .unwrap_or_else(|| panic!("{}", checked.diagnostics));
    assert_eq!((d.line, d.column), (line, column), "{d}");
    assert!(d.message.contains("4 MiB"), "{d}");

    // From disk the same, without reading the whole file.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, &text).expect("write");
    let checked = check_paths(std::slice::from_ref(&path), Some(&local_config()));
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.message.contains("file too large"))
        .unwrap_or_else(|| panic!("{}", checked.diagnostics));
    assert_eq!((d.line, d.column), (line, column), "{d}");
    assert!(d.message.contains(&text.len().to_string()), "{d}");
}

/// A file that is not UTF-8 is reported at the line and column of its first invalid byte.
#[test]
fn non_utf8_files_are_located_at_the_first_invalid_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latin1.yaml");
    // `name: é` in Latin-1 (0xE9) on line 14, after `      name: ` (column 13); a valid
    // multi-byte character before it on the same line counts as one column.
    let text = scenario(MINIMAL_SPEC).replacen("      name: x\n", "      name: ü\u{1}\n", 1);
    let mut bytes = text.into_bytes();
    let at = bytes.iter().position(|&b| b == 1).expect("marker");
    bytes[at] = 0xE9;
    std::fs::write(&path, &bytes).expect("write");
    let checked = check_paths(std::slice::from_ref(&path), Some(&local_config()));
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.message.contains("not UTF-8"))
        .unwrap_or_else(|| panic!("{}", checked.diagnostics));
    assert_eq!((d.line, d.column), (14, 14), "{d}");
    assert!(d.message.contains("0xE9"), "{d}");
    let shown = d.to_string();
    assert!(shown.contains("14 |       name: ü\u{FFFD}"), "{shown}");
}

#[test]
fn validating_a_directory_without_yaml_files_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("README.md"), "not a scenario").expect("write");
    let checked = check_paths(&[dir.path().to_owned()], Some(&local_config()));
    assert!(checked.library.is_none(), "{}", checked.diagnostics);
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.is_error())
        .unwrap_or_else(|| panic!("no error: {}", checked.diagnostics));
    assert_eq!(d.file, dir.path());
    assert!(d.message.contains("no YAML files"), "{d}");
}

/// An arbitrary YAML tree for the property tests below: any structure, depth and size, keys
/// from the scenario vocabulary or not, rendered in block or flow style.
#[derive(Debug, Clone)]
struct Document {
    kind: &'static str,
    /// Collections wrapped around the content, outermost first: `true` a one-key mapping,
    /// `false` a one-item sequence. Longer than the depth limit now and then.
    spine: Vec<bool>,
    /// The innermost content, repeated `copies` times in a sequence when `copies > 1`.
    content: Node,
    copies: usize,
    flow: bool,
}

fn render_flow(node: &Node, out: &mut String) {
    match node {
        Node::Scalar(s) => out.push_str(s),
        Node::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                render_flow(v, out);
            }
            out.push('}');
        }
        Node::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_flow(item, out);
            }
            out.push(']');
        }
    }
}

impl Document {
    fn text(&self) -> String {
        let mut node = if self.copies > 1 {
            Node::Seq(vec![self.content.clone(); self.copies])
        } else {
            self.content.clone()
        };
        for &map in self.spine.iter().rev() {
            node = if map {
                Node::Map(vec![("spec".to_owned(), node)])
            } else {
                Node::Seq(vec![node])
            };
        }
        let mut text = format!("apiVersion: f3-chaos/v1\nkind: {}\nspec:", self.kind);
        if self.flow {
            text.push(' ');
            render_flow(&node, &mut text);
            text.push('\n');
        } else {
            render(&node, 2, &mut text);
        }
        text
    }
}

fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![4 => vocabulary(), 1 => "[a-zA-Z0-9_.\\-]{1,10}", 1 => "\\PC{1,6}"]
}

fn any_tree() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        3 => scalar(),
        1 => prop::sample::select(vec![
            "18446744073709551615s",
            "99999999999999999999999h",
            "1ns",
            "0.5ns",
            "25h",
            "1e400",
            "-0",
            "\"\\u00e9\"",
            "? complex",
        ])
        .prop_map(str::to_owned),
    ]
    .prop_map(Node::Scalar);
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec((any_key(), inner.clone()), 0..8).prop_map(Node::Map),
            prop::collection::vec(inner, 0..6).prop_map(Node::Seq),
        ]
    })
}

fn document() -> impl Strategy<Value = Document> {
    (
        prop::sample::select(vec!["Scenario", "SloCatalogue"]),
        prop_oneof![
            3 => prop::collection::vec(any::<bool>(), 0..4),
            1 => prop::collection::vec(any::<bool>(), 50..80),
        ],
        any_tree(),
        prop_oneof![3 => Just(1usize), 1 => 2usize..400],
        any::<bool>(),
    )
        .prop_map(|(kind, spine, content, copies, flow)| Document {
            kind,
            spine,
            content,
            copies,
            flow,
        })
}

/// One edit of a file's text.
#[derive(Debug, Clone)]
enum Mutation {
    /// Remove `len` characters at `at` (modulo the length).
    Delete { at: usize, len: usize },
    /// Insert `text` at character `at`.
    Insert { at: usize, text: String },
    /// Repeat a line.
    DuplicateLine { line: usize },
    /// Exchange two lines.
    SwapLines { a: usize, b: usize },
    /// Replace what follows the `:` of a `key: value` line.
    ReplaceValue { line: usize, value: String },
    /// Indent a line by two more spaces, or two fewer.
    Indent { line: usize, deeper: bool },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![
        scalar(),
        prop::sample::select(vec![
            "18446744073709551615s",
            "99999999999999999999999s",
            "1ns",
            "100000h",
            "[[[[[[",
            "{a: [b",
            "&x [*x]",
            "\"\\xff\"",
        ])
        .prop_map(str::to_owned),
    ];
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), "\\PC{0,12}").prop_map(|(at, text)| Mutation::Insert { at, text }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        (any::<usize>(), value).prop_map(|(line, value)| Mutation::ReplaceValue { line, value }),
        (any::<usize>(), any::<bool>())
            .prop_map(|(line, deeper)| Mutation::Indent { line, deeper }),
    ]
}

fn mutate(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::Delete { at, len } => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            return chars[..at].iter().chain(&chars[end..]).collect();
        }
        Mutation::Insert { at, text: inserted } => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            return chars[..at]
                .iter()
                .copied()
                .chain(inserted.chars())
                .chain(chars[at..].iter().copied())
                .collect();
        }
        Mutation::DuplicateLine { line } if !lines.is_empty() => {
            let l = lines[line % n].clone();
            lines.insert(line % n, l);
        }
        Mutation::SwapLines { a, b } if !lines.is_empty() => lines.swap(a % n, b % n),
        Mutation::ReplaceValue { line, value } if !lines.is_empty() => {
            let l = &mut lines[line % n];
            if let Some(i) = l.find(": ") {
                l.truncate(i + 2);
                l.push_str(value);
            }
        }
        Mutation::Indent { line, deeper } if !lines.is_empty() => {
            let l = &mut lines[line % n];
            if *deeper {
                l.insert_str(0, "  ");
            } else if l.starts_with("  ") {
                l.drain(..2);
            }
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

/// Every diagnostic about `checked`'s input names a line and a column inside `text` (line
/// `lines + 1` is the end of a file without a final line break).
fn assert_located(checked: &Checked, text: &str) -> Result<(), TestCaseError> {
    let lines = text.lines().count().max(1);
    for d in checked.diagnostics.iter() {
        prop_assert!(
            d.line >= 1 && d.column >= 1,
            "diagnostic without line:column: {d}"
        );
        if d.file == Path::new("t.yaml") {
            prop_assert!(d.line <= lines + 1, "line {} of {lines}: {d}", d.line);
        }
    }
    let _ = checked.diagnostics.to_string();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary YAML trees — any shape, up to 80 levels deep and hundreds of repeated
    /// subtrees, in block or flow style — never panic the checker, and every diagnostic has a
    /// file:line:column.
    #[test]
    fn arbitrary_yaml_trees_are_checked_with_located_diagnostics(doc in document()) {
        let text = doc.text();
        let checked = check_one(text.clone());
        assert_located(&checked, &text)?;
        // Too deep is refused (as such, or for a syntax error met first).
        if doc.spine.len() >= super::yaml::MAX_DEPTH {
            prop_assert!(
                checked.diagnostics.iter().any(|d| d.message.contains("nesting too deep")
                    || d.message.starts_with("invalid YAML")),
                "{}", checked.diagnostics
            );
        }
    }

    /// Random edits of the shipped reference scenario (cuts, insertions, duplicated, swapped
    /// and re-indented lines, absurd values) never panic the checker, and every diagnostic has
    /// a file:line:column inside the file.
    #[test]
    fn mutated_shipped_scenario_gets_located_diagnostics(
        mutations in prop::collection::vec(mutation(), 1..6)
    ) {
        let text = mutations.iter().fold(reference_scenario(), |t, m| mutate(&t, m));
        let checked = check_one(text.clone());
        assert_located(&checked, &text)?;
    }
}

/// A copy of config/local whose library is the shipped scenarios plus `extra` files
/// (`(file name, text)`); returns the temp dir (config in `config/`).
fn local_config_with_scenarios(extra: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let (config, scenarios) = (dir.path().join("config"), dir.path().join("scenarios"));
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::create_dir_all(&scenarios).expect("mkdir");
    let text = std::fs::read_to_string(local_config().join("f3-chaos.yaml")).expect("read");
    let text = text
        .replace("../../scenarios", &scenarios.display().to_string())
        .replace(
            "../../assertions",
            &repo().join("assertions").display().to_string(),
        );
    std::fs::write(config.join("f3-chaos.yaml"), text).expect("write");
    for file in yaml_files(&repo().join("scenarios")) {
        std::fs::copy(&file, scenarios.join(file.file_name().expect("name"))).expect("copy");
    }
    for (name, text) in extra {
        std::fs::write(scenarios.join(name), text).expect("write");
    }
    dir
}

/// The reference scenario renamed `name`, with `edit` applied to its text.
fn reference_renamed(name: &str, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(repo().join("scenarios/gcp-failover-validation.yaml"))
        .expect("read");
    edit(text.replace("name: gcp-failover-validation", &format!("name: {name}")))
}

#[test]
fn a_broken_scenario_file_is_left_out_of_what_runs_and_the_rest_still_runs() {
    let broken = reference_renamed("broken-duration", |t| {
        t.replace("duration: 30s", "duration: 18446744073709551615s")
    });
    let follower = reference_renamed("follows-the-broken", |t| {
        t.replace(
            "    estimatedDuration: 2m\n",
            "    estimatedDuration: 2m\n    after: [broken-duration]\n",
        )
    });
    let dir = local_config_with_scenarios(&[("broken.yaml", broken), ("follower.yaml", follower)]);
    let config = dir.path().join("config");
    // validate (and so CI) still fails on it.
    assert!(load_library(&config).is_err());
    let runnable = load_runnable(&config).unwrap_or_else(|d| panic!("{d}"));
    let shipped = yaml_files(&repo().join("scenarios")).len();
    assert_eq!(runnable.library.scenarios.len(), shipped);
    assert!(
        runnable
            .library
            .scenarios
            .contains_key("gcp-failover-validation")
    );
    let scenarios = dir.path().join("scenarios");
    assert_eq!(
        runnable.left_out,
        [
            scenarios.join("broken.yaml"),
            scenarios.join("follower.yaml")
        ]
    );
    let lines = runnable.summary_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{}:39:", scenarios.join("broken.yaml").display())),
        "{lines:?}"
    );
    assert!(lines[0].contains("duration"), "{lines:?}");
    assert!(
        lines[1].ends_with(
            "scenario `follows-the-broken` runs after `broken-duration`, which is left out"
        ),
        "{lines:?}"
    );
}

#[test]
fn a_broken_config_leaves_nothing_to_run() {
    let dir = local_config_with_scenarios(&[]);
    let config = dir.path().join("config");
    let path = config.join("f3-chaos.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace("timezone: Europe/London", "timezone: Mars/Olympus"),
    )
    .expect("write");
    let errors = load_runnable(&config).expect_err("a config error stops everything");
    assert!(
        errors.iter().any(|d| d.file == path && d.is_error()),
        "{errors}"
    );
}

#[test]
fn a_config_directory_file_that_is_not_yaml_leaves_nothing_to_run() {
    let dir = local_config_with_scenarios(&[]);
    let config = dir.path().join("config");
    let teams = config.join("teams.yaml");
    std::fs::write(&teams, "kind: Teams\nspec: [unclosed\n").expect("write");
    let errors = load_runnable(&config).expect_err("a broken config file stops everything");
    assert!(
        errors.iter().any(|d| d.file == teams && d.is_error()),
        "{errors}"
    );
}

/// With real (Chaos Mesh) stacks, a team without routes is a warning naming the team at its
/// `routes` field; the sandbox config, whose teams have none on purpose, stays quiet.
#[test]
fn a_team_without_routes_is_a_warning_when_the_config_has_real_stacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = repo().join("config/example-production");
    for name in ["stacks.yaml", "f3-chaos.yaml", "teams.yaml"] {
        let mut text = std::fs::read_to_string(source.join(name)).expect("read");
        if name == "f3-chaos.yaml" {
            text = text
                .replace(
                    "../../scenarios",
                    &repo().join("scenarios").display().to_string(),
                )
                .replace(
                    "../../assertions",
                    &repo().join("assertions").display().to_string(),
                );
        }
        if name == "teams.yaml" {
            let routed = "      routes:\n        - kind: slack\n          webhookUrlEnv: SLACK_WEBHOOK_SRE_CHAOS\n";
            assert!(text.contains(routed), "{text}");
            text = text.replace(routed, "      routes: []\n");
        }
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let checked = library::check_library(dir.path());
    assert!(checked.library.is_some(), "{}", checked.diagnostics);
    let warnings: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| format!("{}:{} {} {}", d.file.display(), d.line, d.field, d.message))
        .collect();
    let teams = dir.path().join("teams.yaml").display().to_string();
    assert_eq!(
        warnings,
        [format!(
            "{teams}:11 spec.teams[0].routes team `sre-chaos` has no notification routes: failures of the steps it owns reach nobody"
        )]
    );
    let sandbox = library::check_library(&repo().join("config/local"));
    assert!(
        !sandbox
            .diagnostics
            .iter()
            .any(|d| d.message.contains("no notification routes")),
        "{}",
        sandbox.diagnostics
    );
}

/// A Then step's own `impact` and `action` are read (for its owner's notification); without
/// them the step has none of its own.
#[test]
fn a_then_step_may_state_its_impact_and_action() {
    let spec = MINIMAL_SPEC.replace(
        "      slo: payments-success-ratio\n",
        "      query: up\n      op: \"==\"\n      threshold: 1\n      impact: Payments stall.\n      action: Page the gateway team.\n",
    );
    let checked = check_one(scenario(&spec));
    assert!(checked.diagnostics.is_empty(), "{}", checked.diagnostics);
    let lib = checked.library.expect("library");
    let then = &lib.scenarios["t"].then[0];
    assert_eq!(
        (then.impact.as_deref(), then.action.as_deref()),
        (Some("Payments stall."), Some("Page the gateway team."))
    );
    let lib = check_one(scenario(MINIMAL_SPEC)).library.expect("library");
    assert_eq!(lib.scenarios["t"].then[0].impact, None);
}
