//! Unit tests of the store's helpers and a smoke test on SQLite (the full story suite against
//! both backends is `tests/tests/e2e/store.rs`).

use chrono::{TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use super::runs::normalize_id_prefix;
use super::*;
use crate::model::{RunOutcome, RunStatus};

#[test]
fn id_prefixes_are_normalised_to_the_stored_form() {
    assert_eq!(normalize_id_prefix("0193AB").unwrap(), "0193ab");
    assert_eq!(
        normalize_id_prefix("0193ab12cd34").unwrap(),
        "0193ab12-cd34"
    );
    assert_eq!(
        normalize_id_prefix("0193ab12-cd34-7").unwrap(),
        "0193ab12-cd34-7"
    );
    let full = Uuid::now_v7().to_string();
    assert_eq!(normalize_id_prefix(&full.replace('-', "")).unwrap(), full);
    assert!(normalize_id_prefix("").is_err());
    assert!(normalize_id_prefix("xyz").is_err());
    assert!(normalize_id_prefix(&"a".repeat(33)).is_err());
}

#[test]
fn passwords_are_redacted_from_urls() {
    assert_eq!(
        redact_url("postgres://f3chaos:secret@db:5432/f3"),
        "postgres://f3chaos:***@db:5432/f3"
    );
    assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
}

#[test]
fn the_default_url_is_sqlite_unless_overridden() {
    let url = Store::default_url();
    if std::env::var(DATABASE_URL_ENV).is_err() {
        assert!(url.starts_with("sqlite://"), "{url}");
        assert!(url.ends_with("/f3-chaos/f3-chaos.db"), "{url}");
    }
}

#[test]
fn the_file_of_a_sqlite_url_is_known_without_opening_it() {
    assert_eq!(
        Store::sqlite_file("sqlite:///var/lib/f3-chaos/store.db"),
        Some(std::path::PathBuf::from("/var/lib/f3-chaos/store.db"))
    );
    assert_eq!(
        Store::sqlite_file("sqlite:state/f3.db?mode=rwc"),
        Some(std::path::PathBuf::from("state/f3.db"))
    );
    assert_eq!(Store::sqlite_file("sqlite::memory:"), None);
    assert_eq!(Store::sqlite_file("postgres://u@h/db"), None);
}

#[tokio::test]
async fn unknown_schemes_are_refused() {
    let error = Store::open("mysql://localhost/x").await.unwrap_err();
    assert!(
        matches!(error, StoreError::UnsupportedUrl { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn sqlite_file_and_parent_directories_are_created_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/f3-chaos.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    assert!(path.exists());
    store.close().await;
    // Reopening applies no migration twice.
    Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
}

#[tokio::test]
async fn in_memory_sqlite_round_trips_a_run() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let started = Utc.with_ymd_and_hms(2026, 11, 21, 1, 2, 3).unwrap();
    let id = Uuid::now_v7();
    store
        .create_run(&NewRun {
            id,
            scenario: "gcp-failover-validation".into(),
            stack: "sandbox".into(),
            trigger: "cli".into(),
            started_by: "alice".into(),
            started_at: started,
            pid: std::process::id(),
            host: local_hostname(),
            scenario_digest: None,
            night: None,
        })
        .await
        .unwrap();
    let run = store.run(id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.started_at, started);
    assert_eq!(run.liveness(started, &local_hostname()), Liveness::Alive);
    store
        .finish_run(id, RunOutcome::Passed, started, &json!({"pass_rate": 1.0}))
        .await
        .unwrap();
    let run = store.run(id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Finished(RunOutcome::Passed));
    assert_eq!(run.liveness(started, &local_hostname()), Liveness::Finished);
    assert_eq!(run.summary, Some(json!({"pass_rate": 1.0})));
}

/// The liveness rule across hosts: the heartbeat TTL decides for every host; on the owner's host a
/// missing process decides at once; an existing process with a stale heartbeat is dead all the same.
#[test]
fn liveness_is_decided_by_the_heartbeat_ttl_on_every_host() {
    let started = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
    let run = |host: &str, pid: u32| RunRecord {
        id: Uuid::now_v7(),
        scenario: "s".into(),
        stack: "uat-alpha".into(),
        trigger: "daemon".into(),
        started_by: "daemon".into(),
        status: RunStatus::Running,
        started_at: started,
        ended_at: None,
        pid,
        host: host.into(),
        heartbeat_at: started,
        scenario_digest: None,
        night: None,
        summary: None,
    };
    let ttl = chrono::Duration::from_std(HEARTBEAT_TTL).unwrap();
    let just_fresh = started + ttl;
    let stale = started + ttl + chrono::Duration::milliseconds(1);
    // Another host: the heartbeat alone decides, at exactly the TTL.
    let remote = run("other-replica", 1);
    assert_eq!(remote.liveness(just_fresh, "this-host"), Liveness::Alive);
    assert!(matches!(
        remote.liveness(stale, "this-host"),
        Liveness::Dead { since, ref why } if since == started && why.contains("no heartbeat")
    ));
    // This host, process alive (our own pid): a stale heartbeat still means dead (a frozen or
    // reused pid proves nothing).
    let local = run("this-host", std::process::id());
    assert_eq!(local.liveness(just_fresh, "this-host"), Liveness::Alive);
    assert!(matches!(
        local.liveness(stale, "this-host"),
        Liveness::Dead { .. }
    ));
    // This host, process gone: dead at once, fresh heartbeat or not.
    let gone = run("this-host", u32::MAX - 7);
    assert!(matches!(
        gone.liveness(started, "this-host"),
        Liveness::Dead { ref why, .. } if why.contains("is gone")
    ));
    // The same record read from another host is alive while its heartbeat is fresh.
    assert_eq!(gone.liveness(started, "other-host"), Liveness::Alive);
    // Clock skew: a heartbeat from the future counts as fresh.
    assert_eq!(
        remote.liveness(started - chrono::Duration::seconds(30), "this-host"),
        Liveness::Alive
    );
}
