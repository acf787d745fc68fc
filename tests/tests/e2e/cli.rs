//! The conventions a terminal user expects of `f3-chaos`: shell completions and a man page,
//! "did you mean" for a mistyped scenario, a hint when the config is not where it is looked
//! for, and no colour codes in a log that is not a terminal.

use std::process::{Command, Output, Stdio};

use f3_chaos_tests::{binary, repo_root};

fn f3(args: &[&str]) -> Output {
    Command::new(binary("f3-chaos"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("NO_COLOR")
        .env_remove("F3_CHAOS_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("f3-chaos")
}

#[test]
fn completions_for_every_shell_and_a_man_page() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = f3(&["completions", shell]);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("f3-chaos")
                && script.contains("gate")
                && script.contains("wait-for-assertions"),
            "{shell} completes commands and flags"
        );
    }
    // The bash script is valid bash.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("f3-chaos.bash");
    std::fs::write(&path, f3(&["completions", "bash"]).stdout).expect("write");
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let man = f3(&["man"]);
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH f3-chaos 1"),
        "{page}"
    );
    assert!(page.contains(".TH f3-chaos 1"), "a section-1 page");
    assert!(page.contains("gate"), "lists the subcommands");
}

#[test]
fn a_mistyped_scenario_gets_a_did_you_mean() {
    for command in [
        &["run", "--scenario", "gcp-failover-validaton"][..],
        &[
            "trigger",
            "--scenario",
            "gcp-failover-validaton",
            "--stack",
            "local",
        ],
    ] {
        let out = f3(command);
        assert_eq!(out.status.code(), Some(8), "{command:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("did you mean `gcp-failover-validation`?"),
            "{command:?}: {stderr}"
        );
    }
}

#[test]
fn a_mistyped_stack_gets_a_did_you_mean() {
    for command in ["run", "trigger"] {
        let out = f3(&[
            command,
            "--scenario",
            "gcp-failover-validation",
            "--stack",
            "locl",
        ]);
        assert_eq!(out.status.code(), Some(8), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("did you mean `local`?"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn results_filtered_by_a_mistyped_scenario_or_stack_get_a_did_you_mean() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("f3.db").display());
    let out = f3(&[
        "results",
        "--scenario",
        "gcp-failover-validaton",
        "--stack",
        "locl",
        "--database-url",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "No runs match.\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "hint: `gcp-failover-validaton` is not a scenario of the library: did you mean `gcp-failover-validation`?"
        ) && stderr.contains("hint: `locl` is not a stack of the config: did you mean `local`?"),
        "{stderr}"
    );
    // Known names that simply have no runs yet get no hint.
    let out = f3(&[
        "results",
        "--scenario",
        "gcp-failover-validation",
        "--database-url",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn outside_the_repository_the_missing_config_names_both_ways_to_point_at_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(binary("f3-chaos"))
        .args(["run", "--scenario", "gcp-failover-validation"])
        .current_dir(dir.path())
        .env_remove("F3_CHAOS_CONFIG")
        .output()
        .expect("f3-chaos");
    assert_eq!(out.status.code(), Some(8));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config directory not found")
            && stderr.contains("--config")
            && stderr.contains("F3_CHAOS_CONFIG"),
        "{stderr}"
    );
}

#[test]
fn a_log_that_is_not_a_terminal_has_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("none/f3.db").display());
    let out = Command::new(binary("f3-chaos"))
        .args(["plan", "--night", "2026-11-23", "--database-url", &store])
        .current_dir(repo_root())
        .env_remove("NO_COLOR")
        .env("F3_CHAOS_LOG", "info")
        .output()
        .expect("f3-chaos plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No store yet"),
        "an info log line: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escape codes: {stderr:?}"
    );

    // `--color always` colours even a file.
    let out = Command::new(binary("f3-chaos"))
        .args(["--color", "always", "plan", "--night", "2026-11-23"])
        .args(["--database-url", &store])
        .current_dir(repo_root())
        .env("F3_CHAOS_LOG", "info")
        .output()
        .expect("f3-chaos plan");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains('\u{1b}'),
        "--color always: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn results_show_a_run_whose_owner_is_gone_as_interrupted_and_refuse_a_malformed_id() {
    use f3_chaos::store::{NewRun, Store};

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("f3.db").display());
    let store = Store::open(&url).await.expect("store");
    // A run whose process was kill -9'd: still `running` in the store, its PID gone.
    let mut gone = Command::new("true").spawn().expect("spawn");
    let pid = gone.id();
    gone.wait().expect("wait");
    let id = uuid::Uuid::now_v7();
    store
        .create_run(&NewRun {
            id,
            scenario: "gcp-failover-validation".into(),
            stack: "local".into(),
            trigger: "cli".into(),
            started_by: "test".into(),
            started_at: chrono::Utc::now(),
            pid,
            host: f3_chaos::store::local_hostname(),
            scenario_digest: None,
            night: None,
        })
        .await
        .expect("create run");
    store.close().await;

    let out = f3(&["results", "--database-url", &url, &id.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "outcome:    interrupted (process {pid} on {} is gone)",
            f3_chaos::store::local_hostname()
        )),
        "{stdout}"
    );
    let out = f3(&["results", "--database-url", &url]);
    let listing = String::from_utf8_lossy(&out.stdout);
    let line = listing
        .lines()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("the run is listed: {listing}"));
    assert!(line.contains("interrupted (owner gone)"), "{line}");
    assert!(!line.contains("running"), "{line}");

    let out = f3(&["results", "--database-url", &url, "not-a-run-id"]);
    assert_eq!(out.status.code(), Some(8), "a malformed id is bad input");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"not-a-run-id\" is not hexadecimal"),
        "{stderr}"
    );
}

#[test]
fn a_negative_wait_is_refused_as_a_negative_duration_not_an_unknown_flag() {
    let out = f3(&[
        "run",
        "--scenario",
        "gcp-failover-validation",
        "--wait-for-stack",
        "-5s",
    ]);
    assert_eq!(out.status.code(), Some(8));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid duration `-5s`: a duration cannot be negative"),
        "{stderr}"
    );
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}

#[test]
fn an_unwritable_junit_path_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("f3.db").display());
    let junit = dir.path().join("missing-dir/report.xml");
    let out = f3(&[
        "run",
        "--scenario",
        "gcp-failover-validation",
        "--wait-for-assertions",
        "--database-url",
        &store,
        "--junit",
        junit.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(8));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write the JUnit report to") && stderr.contains("nothing was run"),
        "{stderr}"
    );
    // Refused before the store was even opened: no run was recorded.
    assert!(!dir.path().join("f3.db").exists(), "no store was created");
}

#[test]
fn a_store_url_in_a_missing_directory_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("typo/f3.db");
    let url = format!("sqlite://{}", missing.display());
    let out = f3(&["results", "--database-url", &url]);
    assert_eq!(
        out.status.code(),
        Some(8),
        "a store URL that cannot be right is bad input"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "No directory {} for the SQLite store",
            dir.path().join("typo").display()
        )),
        "{stderr}"
    );
    assert!(
        !dir.path().join("typo").exists(),
        "the directory was not created"
    );

    let out = f3(&["results", "--database-url", "mysql://db/f3"]);
    assert_eq!(
        out.status.code(),
        Some(8),
        "an unsupported scheme is bad input"
    );
}
