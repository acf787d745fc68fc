//! End-to-end tests of `f3-chaos validate` and `f3-chaos schema`, driving the real binary.
//!
//! The broken-file fixtures in `tests/fixtures/broken/` describe their own expectations in
//! header comments:
//!
//! ```yaml
//! # config: example-production      (optional; default: local)
//! # expect: 24:14 unknown team `paymnts`
//! ```
//!
//! Every `expect` must match an error at exactly that line:column whose message contains the
//! text, every error reported must be expected, and the exit code must be 8 (invalid input).
//! A directory under `broken/` (e.g. `after-cycle/`) is validated as one set of files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use f3_chaos_tests::{binary, repo_root};
use serde_json::Value;

const INVALID_INPUT: i32 = 8;

fn f3_chaos(args: &[&str]) -> Output {
    Command::new(binary("f3-chaos"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("F3_CHAOS_CONFIG")
        .output()
        .expect("run f3-chaos (build it first: cargo build -p f3-chaos --bins)")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn shipped_scenarios_catalogue_and_config_validate() {
    let out = f3_chaos(&["validate", "scenarios", "assertions", "config"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
    // Nothing at all to say about the shipped files, not even a warning.
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn default_config_dir_validates_its_library() {
    let out = f3_chaos(&["validate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = f3_chaos(&[
        "validate",
        "--config",
        "config/example-production",
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: Value = serde_json::from_str(&stdout(&out)).expect("json report");
    assert_eq!(report["ok"], true);
    assert_eq!(report["stacks"].as_array().map(Vec::len), Some(13));
    let scenarios: Vec<&str> = report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(scenarios.len() >= 8, "{scenarios:?}");
    for name in [
        "gcp-failover-validation",
        "aws-failover-validation",
        "azure-failover-validation",
        "partial-network-partition",
    ] {
        assert!(
            scenarios.contains(&name),
            "{name} missing from {scenarios:?}"
        );
    }
}

/// A scenario the sandbox driver cannot inject is caught before it could fail at run time:
/// `validate` warns at its When step, `plan` does not place it and names what the driver lacks,
/// and `run` refuses it before anything is recorded or touched (exit 8).
#[test]
fn what_the_sandbox_driver_cannot_inject_is_never_planned_or_run() {
    let out = f3_chaos(&["validate", "--config", "config/local"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warnings = stderr(&out);
    for expected in [
        "warning: no stack of this config can run scenario `payment-latency-injection`: it is \
         never planned (local: driver local cannot inject network-delay (When step \"Azure \
         payment nodes 100ms slower\"): run latency scenarios on a Chaos Mesh stack)\n  --> \
         scenarios/payment-latency-injection.yaml:30:7",
        "warning: no stack of this config can run scenario `gateway-cpu-stress`",
        "warning: 2 warnings",
    ] {
        assert!(
            warnings.contains(expected),
            "{expected}\nnot in\n{warnings}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("f3-chaos.db").display());
    let out = f3_chaos(&[
        "plan",
        "--config",
        "config/local",
        "--night",
        "2026-12-09",
        "--no-history",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = stdout(&out);
    let line = plan
        .lines()
        .find(|l| l.starts_with("payment-latency-injection"))
        .unwrap_or_else(|| panic!("not in Not planned:\n{plan}"));
    assert!(
        line.ends_with(
            "no stack's driver can run it: local: driver local cannot inject network-delay \
             (When step \"Azure payment nodes 100ms slower\"): run latency scenarios on a Chaos \
             Mesh stack"
        ),
        "{line}"
    );
    let out = f3_chaos(&[
        "plan",
        "--config",
        "config/local",
        "--night",
        "2026-12-09",
        "--no-history",
        "--output",
        "json",
    ]);
    let plan: Value = serde_json::from_str(&stdout(&out)).expect("plan json");
    let skipped = plan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scenario"] == "payment-latency-injection")
        .expect("skipped");
    assert_eq!(skipped["code"], "no-capable-stack");

    let out = f3_chaos(&[
        "run",
        "--config",
        "config/local",
        "--scenario",
        "payment-latency-injection",
        "--wait-for-assertions",
        "--database-url",
        &db,
    ]);
    assert_eq!(out.status.code(), Some(INVALID_INPUT), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "scenario `payment-latency-injection` cannot run on stack `local`: driver local \
             cannot inject network-delay"
        ),
        "{}",
        stderr(&out)
    );
    let out = f3_chaos(&["results", "--database-url", &db, "--output", "json"]);
    let runs: Value = serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null);
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(0),
        "no run recorded: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// One fixture case: the paths to validate together and the expectations of each file.
struct Case {
    paths: Vec<PathBuf>,
    config: String,
    expects: Vec<(PathBuf, usize, usize, String)>,
}

fn read_case(paths: Vec<PathBuf>) -> Case {
    let mut config = "local".to_owned();
    let mut expects = Vec::new();
    for p in &paths {
        let text = std::fs::read_to_string(p).expect("fixture readable");
        for line in text.lines().take_while(|l| l.starts_with('#')) {
            if let Some(c) = line.strip_prefix("# config: ") {
                config = c.trim().to_owned();
            }
            if let Some(e) = line.strip_prefix("# expect: ") {
                let (pos, message) = e.split_once(' ').expect("`# expect: L:C message`");
                let (l, c) = pos.split_once(':').expect("L:C");
                expects.push((
                    p.clone(),
                    l.parse().expect("line"),
                    c.parse().expect("column"),
                    message.to_owned(),
                ));
            }
        }
    }
    Case {
        paths,
        config,
        expects,
    }
}

fn fixture_cases() -> Vec<Case> {
    let dir = repo_root().join("tests/fixtures/broken");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    let mut cases = Vec::new();
    for e in entries {
        if e.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&e)
                .expect("case dir")
                .map(|x| x.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .collect();
            files.sort();
            if e.file_name().is_some_and(|n| n == "prod-config") {
                // Independent files that share a config: one case each.
                cases.extend(files.into_iter().map(|f| read_case(vec![f])));
            } else {
                cases.push(read_case(files));
            }
        } else if e.extension().is_some_and(|x| x == "yaml") {
            cases.push(read_case(vec![e]));
        }
    }
    cases
}

fn same_file(reported: &str, expected: &Path) -> bool {
    let reported = repo_root().join(reported);
    match (reported.canonicalize(), expected.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[test]
fn every_broken_fixture_yields_its_diagnostics_at_the_right_place() {
    let cases = fixture_cases();
    assert!(
        cases.len() >= 12,
        "expected the fixture set, found {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        assert!(
            !case.expects.is_empty(),
            "fixture without `# expect:` lines: {:?}",
            case.paths
        );
        let config = format!("config/{}", case.config);
        let mut args = vec!["validate", "--output", "json", "--config", config.as_str()];
        let paths: Vec<String> = case.paths.iter().map(|p| p.display().to_string()).collect();
        args.extend(paths.iter().map(String::as_str));
        let out = f3_chaos(&args);
        if out.status.code() != Some(INVALID_INPUT) {
            failures.push(format!(
                "{:?}: exit {:?}, expected {INVALID_INPUT}",
                case.paths,
                out.status.code()
            ));
            continue;
        }
        let report: Value = serde_json::from_str(&stdout(&out)).expect("json report");
        let diags = report["diagnostics"].as_array().expect("diagnostics");
        let errors: Vec<&Value> = diags.iter().filter(|d| d["severity"] == "error").collect();
        for (file, line, column, message) in &case.expects {
            let found = errors.iter().any(|d| {
                d["line"].as_u64() == Some(*line as u64)
                    && d["column"].as_u64() == Some(*column as u64)
                    && d["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(message.as_str()))
                    && d["file"].as_str().is_some_and(|f| same_file(f, file))
            });
            if !found {
                failures.push(format!(
                    "{}: expected `{line}:{column} {message}`, got:\n{}",
                    file.display(),
                    serde_json::to_string_pretty(&errors).unwrap_or_default()
                ));
            }
        }
        for d in &errors {
            let expected = case.expects.iter().any(|(file, line, column, message)| {
                d["line"].as_u64() == Some(*line as u64)
                    && d["column"].as_u64() == Some(*column as u64)
                    && d["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(message.as_str()))
                    && d["file"].as_str().is_some_and(|f| same_file(f, file))
            });
            if !expected {
                failures.push(format!("{:?}: unexpected error {d}", case.paths));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn text_output_is_rustc_style() {
    let out = f3_chaos(&[
        "validate",
        "--config",
        "config/local",
        "tests/fixtures/broken/unknown-owner-team.yaml",
    ]);
    assert_eq!(out.status.code(), Some(INVALID_INPUT));
    let err = stderr(&out);
    let expected = "\
error: unknown team `paymnts`
  --> tests/fixtures/broken/unknown-owner-team.yaml:24:14
   |
24 |       owner: paymnts
   |              ^^^^^^^ field `spec.then[1].owner`
   = help: did you mean `payments`?
";
    assert!(err.starts_with(expected), "got:\n{err}");
    assert!(err.trim_end().ends_with("error: 1 error"), "got:\n{err}");
}

#[test]
fn github_output_annotates_the_line_of_each_diagnostic() {
    let out = f3_chaos(&[
        "validate",
        "--output",
        "github",
        "--config",
        "config/local",
        "tests/fixtures/broken/unknown-owner-team.yaml",
    ]);
    assert_eq!(out.status.code(), Some(INVALID_INPUT));
    let text = stdout(&out);
    assert!(
        text.contains(
            "::error file=tests/fixtures/broken/unknown-owner-team.yaml,line=24,col=14,\
             title=spec.then[1].owner::unknown team `paymnts` (help: did you mean `payments`?)\n"
        ),
        "got:\n{text}"
    );
    assert!(
        text.ends_with("failed: 1 error, 0 warnings in 4 files\n"),
        "got:\n{text}"
    );
}

#[test]
fn missing_path_is_invalid_input() {
    let out = f3_chaos(&["validate", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(INVALID_INPUT), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no such file or directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn schema_is_json_describing_scenarios() {
    let out = f3_chaos(&["schema"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let schema: Value = serde_json::from_str(&stdout(&out)).expect("schema is JSON");
    assert_eq!(schema["title"], "f3-chaos scenario");
    let required = schema["required"].as_array().expect("required");
    for field in ["apiVersion", "kind", "metadata", "spec"] {
        assert!(required.iter().any(|r| r == field), "{field} not required");
    }
}
