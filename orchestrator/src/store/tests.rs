//! Unit tests of the store's helpers and a smoke test on SQLite (the full story suite against
//! both backends is `tests/tests/e2e/store.rs`).

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use chrono::{TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use super::runs::normalize_id_prefix;
use super::*;

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
    assert_eq!(run.status, RUNNING);
    assert_eq!(run.started_at, started);
    assert!(run.is_alive_locally(started, std::time::Duration::from_secs(1)));
    store
        .finish_run(id, "passed", started, &json!({"pass_rate": 1.0}))
        .await
        .unwrap();
    let run = store.run(id).await.unwrap().unwrap();
    assert_eq!(run.status, "passed");
    assert!(!run.is_alive_locally(started, std::time::Duration::from_secs(1)));
    assert_eq!(run.summary, Some(json!({"pass_rate": 1.0})));
}
