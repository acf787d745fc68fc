//! End-to-end tests: the store. One "story" suite runs against a real SQLite file (temporary
//! directory) and a real PostgreSQL (a fresh database per test, see `f3_chaos_tests::postgres`).
//! Each story is instantiated twice by `stories!`: `store::sqlite::<story>` and
//! `store::postgres::<story>`.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use f3_chaos::model::{NotificationKind, RunOutcome, RunStatus, Verdict};
use f3_chaos::store::OutboxStatus;
use f3_chaos::store::{
    LeaseHolder, LedgerEntry, LedgerState, Liveness, NewNotification, NewRun, RunFilter,
    StepRecord, Store, StoreError, local_hostname,
};
use f3_chaos_tests::postgres::TestDatabase;
use serde_json::json;
use sqlx::{Connection as _, Executor as _};
use uuid::Uuid;

/// A database for one test: its URL and what keeps it alive (temporary directory or database).
struct Db {
    url: String,
    _guard: Guard,
}

enum Guard {
    Sqlite(#[allow(dead_code, reason = "held to keep the database alive")] tempfile::TempDir),
    Postgres(#[allow(dead_code, reason = "held to keep the database alive")] TestDatabase),
}

impl Db {
    /// A new, not yet migrated SQLite file in a directory that does not exist yet.
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!(
            "sqlite://{}",
            dir.path().join("state/f3-chaos.db").display()
        );
        Db {
            url,
            _guard: Guard::Sqlite(dir),
        }
    }

    /// A new, empty PostgreSQL database.
    async fn postgres() -> Db {
        let db = TestDatabase::create().await;
        Db {
            url: db.url.clone(),
            _guard: Guard::Postgres(db),
        }
    }

    /// A new handle (its own connection pool) on the database.
    async fn open(&self) -> Store {
        Store::open(&self.url)
            .await
            .unwrap_or_else(|error| panic!("open {}: {error:?}", self.url))
    }
}

macro_rules! stories {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let db = super::Db::sqlite().await;
                    super::$story(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let db = super::Db::postgres().await;
                    super::$story(&db).await;
                }
            )*
        }
    };
}

stories!(
    run_lifecycle,
    runs_are_filtered_newest_first,
    run_ids_are_found_by_prefix,
    events_keep_their_order,
    steps_are_upserted_by_index,
    a_teams_steps_keep_the_comparison_but_not_the_series,
    a_steps_history_is_its_own_on_its_stack_newest_first,
    the_lists_count_runs_per_night_scenario_stack_and_outcome,
    a_finding_opens_resolves_and_reopens_keeping_its_ticket,
    one_lease_holder_per_stack,
    expired_leases_can_be_taken_over,
    lease_renew_and_release,
    fault_ledger_lifecycle,
    outbox_records_notifications,
    finishing_a_run_queues_its_notifications_in_one_transaction,
    concurrent_opens_migrate_once,
    two_handles_write_concurrently,
    processes_share_one_database,
    one_leader_among_daemons,
    night_plans_are_kept_in_order,
);

/// 2026-11-21 01:00:00 UTC plus `seconds`.
fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 1, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn new_run(scenario: &str, stack: &str, started_at: DateTime<Utc>) -> NewRun {
    NewRun {
        id: Uuid::now_v7(),
        scenario: scenario.to_owned(),
        stack: stack.to_owned(),
        trigger: "cli".to_owned(),
        started_by: "alice".to_owned(),
        started_at,
        pid: std::process::id(),
        host: local_hostname(),
        scenario_digest: Some("sha256:abc".to_owned()),
        night: None,
    }
}

async fn create(store: &Store, scenario: &str, stack: &str, at: DateTime<Utc>) -> Uuid {
    let run = new_run(scenario, stack, at);
    store.create_run(&run).await.unwrap();
    run.id
}

fn holder(run_id: Uuid, scenario: &str, who: &str) -> LeaseHolder {
    LeaseHolder {
        run_id,
        scenario: scenario.to_owned(),
        holder: who.to_owned(),
    }
}

async fn run_lifecycle(db: &Db) {
    let store = db.open().await;
    let mut new = new_run("gcp-failover-validation", "uat-beta", t(0));
    // Sub-millisecond digits are dropped: instants are stored as Unix milliseconds.
    new.started_at = t(0) + chrono::Duration::microseconds(1_500);
    new.night = Some(NaiveDate::from_ymd_opt(2026, 11, 21).unwrap());
    store.create_run(&new).await.unwrap();

    let run = store.run(new.id).await.unwrap().expect("created run");
    assert_eq!(run.status, RunStatus::Running);
    assert!(run.is_running());
    assert_eq!(run.scenario, "gcp-failover-validation");
    assert_eq!(run.stack, "uat-beta");
    assert_eq!(run.trigger, "cli");
    assert_eq!(run.started_by, "alice");
    assert_eq!(run.started_at, t(0) + chrono::Duration::milliseconds(1));
    assert_eq!(run.heartbeat_at, run.started_at);
    assert_eq!(run.pid, std::process::id());
    assert_eq!(run.host, local_hostname());
    assert_eq!(run.scenario_digest.as_deref(), Some("sha256:abc"));
    assert_eq!(run.night, new.night);
    assert_eq!(run.ended_at, None);
    assert_eq!(run.summary, None);
    let host = local_hostname();
    assert_eq!(run.liveness(t(3), &host), Liveness::Alive);
    assert!(
        matches!(run.liveness(t(60), &host), Liveness::Dead { .. }),
        "stale heartbeat"
    );

    store.heartbeat_run(new.id, t(20)).await.unwrap();
    let run = store.run(new.id).await.unwrap().unwrap();
    assert_eq!(run.heartbeat_at, t(20));
    assert_eq!(run.liveness(t(23), &host), Liveness::Alive);

    let running = store.running_runs().await.unwrap();
    assert_eq!(running.iter().map(|r| r.id).collect::<Vec<_>>(), [new.id]);

    let summary = json!({"pass_rate": 0.8, "failed_owners": ["payments"]});
    store
        .finish_run(new.id, RunOutcome::Failed, t(300), &summary)
        .await
        .unwrap();
    let run = store.run(new.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Finished(RunOutcome::Failed));
    assert_eq!(run.ended_at, Some(t(300)));
    assert_eq!(run.summary, Some(summary.clone()));
    assert!(run.duration().unwrap() >= Duration::from_secs(299));
    assert_eq!(run.liveness(t(300), &host), Liveness::Finished);
    assert!(store.running_runs().await.unwrap().is_empty());

    // A finished run cannot be finished again (e.g. marked interrupted by the sweep first).
    let again = store
        .finish_run(new.id, RunOutcome::Passed, t(301), &summary)
        .await;
    assert!(
        matches!(&again, Err(StoreError::RunNotRunning { status, .. }) if *status == RunStatus::Finished(RunOutcome::Failed)),
        "{again:?}"
    );
    let unknown = store
        .finish_run(Uuid::now_v7(), RunOutcome::Passed, t(301), &summary)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );
    let heartbeat = store.heartbeat_run(Uuid::now_v7(), t(1)).await;
    assert!(
        matches!(heartbeat, Err(StoreError::NotFound { .. })),
        "{heartbeat:?}"
    );
    assert!(store.run(Uuid::now_v7()).await.unwrap().is_none());

    // Duplicate ids are refused.
    assert!(store.create_run(&new).await.is_err());
}

async fn runs_are_filtered_newest_first(db: &Db) {
    let store = db.open().await;
    let night = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let mut ids = Vec::new();
    for (i, (scenario, stack)) in [
        ("gcp-failover-validation", "uat-alpha"),
        ("gcp-failover-validation", "uat-beta"),
        ("partial-network-partition", "uat-beta"),
        ("gcp-failover-validation", "uat-alpha"),
        ("pod-kill", "dev-1"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut run = new_run(scenario, stack, t(60 * i as i64));
        if i < 3 {
            run.night = Some(night);
        }
        store.create_run(&run).await.unwrap();
        ids.push(run.id);
    }
    store
        .finish_run(ids[0], RunOutcome::Passed, t(30), &json!({}))
        .await
        .unwrap();
    store
        .finish_run(ids[1], RunOutcome::Failed, t(90), &json!({}))
        .await
        .unwrap();

    let all = store.runs(&RunFilter::default()).await.unwrap();
    let newest_first: Vec<Uuid> = ids.iter().rev().copied().collect();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), newest_first);

    let select = |filter: RunFilter| {
        let store = store.clone();
        async move {
            store
                .runs(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let gcp = RunFilter {
        scenario: Some("gcp-failover-validation".into()),
        ..RunFilter::default()
    };
    assert_eq!(select(gcp.clone()).await, [ids[3], ids[1], ids[0]]);
    let gcp_alpha = RunFilter {
        stack: Some("uat-alpha".into()),
        ..gcp.clone()
    };
    assert_eq!(select(gcp_alpha).await, [ids[3], ids[0]]);
    let failed = RunFilter {
        outcome: Some(RunStatus::Finished(RunOutcome::Failed)),
        ..RunFilter::default()
    };
    assert_eq!(select(failed).await, [ids[1]]);
    let running = RunFilter {
        outcome: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    assert_eq!(select(running).await, [ids[4], ids[3], ids[2]]);
    let on_night = RunFilter {
        night: Some(night),
        ..RunFilter::default()
    };
    assert_eq!(select(on_night).await, [ids[2], ids[1], ids[0]]);
    // since is inclusive, until exclusive.
    let window = RunFilter {
        since: Some(t(60)),
        until: Some(t(180)),
        ..RunFilter::default()
    };
    assert_eq!(select(window).await, [ids[2], ids[1]]);
    let page = RunFilter {
        limit: Some(2),
        ..RunFilter::default()
    };
    assert_eq!(select(page).await, [ids[4], ids[3]]);
    let next_page = RunFilter {
        limit: Some(2),
        until: Some(t(180)),
        ..RunFilter::default()
    };
    assert_eq!(select(next_page).await, [ids[2], ids[1]]);

    let history = store.history(t(60)).await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids[1..].to_vec(),
        "history is oldest first from `since`"
    );
}

async fn run_ids_are_found_by_prefix(db: &Db) {
    let store = db.open().await;
    let a = create(&store, "gcp-failover-validation", "uat-beta", t(0)).await;
    let b = create(&store, "pod-kill", "uat-beta", t(1)).await;
    let a_text = a.to_string();

    let exact = store.find_run(&a_text).await.unwrap().unwrap();
    assert_eq!(exact.id, a);
    let no_hyphens = store
        .find_run(&a_text.replace('-', "").to_uppercase())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(no_hyphens.id, a);
    // Unique from the first digit where the two v7 ids differ.
    let b_text = b.to_string();
    let differ = a_text
        .chars()
        .zip(b_text.chars())
        .position(|(x, y)| x != y)
        .expect("distinct ids");
    let unique = &a_text[..=differ];
    assert_eq!(store.find_run(unique).await.unwrap().unwrap().id, a);
    // A shorter common prefix is ambiguous and names both, newest first.
    let common = &a_text[..differ.max(1)];
    match store.find_run(common).await {
        Err(StoreError::AmbiguousRunId { matches, .. }) => assert_eq!(matches, [b, a]),
        other => panic!("expected an ambiguous prefix, got {other:?}"),
    }
    // A prefix matching nothing: ids sort bytewise, so 'f…' is past every v7 id of this era.
    assert!(store.find_run("ffffffff").await.unwrap().is_none());
    assert!(matches!(
        store.find_run("not-hex").await,
        Err(StoreError::Invalid { .. })
    ));
}

async fn events_keep_their_order(db: &Db) {
    let store = db.open().await;
    let run = create(&store, "gcp-failover-validation", "uat-beta", t(0)).await;
    let other = create(&store, "pod-kill", "uat-alpha", t(0)).await;
    for i in 0..20 {
        let seq = store
            .append_event(run, t(i), &format!("kind-{i}"), &json!({ "i": i }))
            .await
            .unwrap();
        assert_eq!(seq, i + 1);
    }
    assert_eq!(
        store
            .append_event(other, t(0), "run-started", &json!(null))
            .await
            .unwrap(),
        1,
        "seq counts per run"
    );
    let events = store.events(run).await.unwrap();
    assert_eq!(events.len(), 20);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.run_id, run);
        assert_eq!(event.seq, i as i64 + 1);
        assert_eq!(event.at, t(i as i64));
        assert_eq!(event.kind, format!("kind-{i}"));
        assert_eq!(event.payload, json!({ "i": i }));
    }
    assert_eq!(store.events(other).await.unwrap().len(), 1);
    assert!(store.events(Uuid::now_v7()).await.unwrap().is_empty());

    // Two handles appending to one run at once still get distinct, gap-free seqs.
    let second = db.open().await;
    let (left, right) = tokio::join!(
        append_many(&store, other, "left", 10),
        append_many(&second, other, "right", 10)
    );
    let seqs: BTreeSet<i64> = left.into_iter().chain(right).collect();
    assert_eq!(seqs, (2..=21).collect());

    // Events of an unknown run are refused (foreign key).
    assert!(
        store
            .append_event(Uuid::now_v7(), t(0), "x", &json!({}))
            .await
            .is_err()
    );
}

async fn append_many(store: &Store, run: Uuid, kind: &str, n: i64) -> Vec<i64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        seqs.push(
            store
                .append_event(run, t(i), kind, &json!({ "i": i }))
                .await
                .unwrap(),
        );
    }
    seqs
}

fn step(index: i64, phase: &str, name: &str) -> StepRecord {
    StepRecord {
        index,
        phase: phase.parse().expect("a step phase"),
        name: name.to_owned(),
        owner: None,
        verdict: None,
        started_at: t(index),
        ended_at: None,
        observed: None,
        threshold: None,
        evidence: None,
        message: None,
    }
}

async fn steps_are_upserted_by_index(db: &Db) {
    let store = db.open().await;
    let run = create(&store, "gcp-failover-validation", "uat-beta", t(0)).await;
    let given = step(0, "given", "Payments are flowing");
    let when = step(1, "when", "GCP connectivity lost");
    let mut then = step(2, "then", "Assertion: Product SLO latency < 250ms");
    then.owner = Some("payments".into());
    // Inserted out of order; read back by index.
    for s in [&then, &given, &when] {
        store.upsert_step(run, s).await.unwrap();
    }
    let evidence = json!({
        "query": "histogram_quantile(0.99, …)",
        "series": [[1763686800.0, 0.21], [1763686815.0, 0.31]],
        "worst": 0.31
    });
    let judged = StepRecord {
        verdict: Some(Verdict::Failed),
        ended_at: Some(t(330)),
        observed: Some(0.31),
        threshold: Some(0.25),
        evidence: Some(evidence),
        message: Some("observed 0.31 s, threshold 0.25 s".into()),
        ..then.clone()
    };
    store.upsert_step(run, &judged).await.unwrap();
    let steps = store.steps(run).await.unwrap();
    assert_eq!(steps, vec![given.clone(), when.clone(), judged.clone()]);

    // An upsert replaces every field, including clearing optional ones.
    store.upsert_step(run, &then).await.unwrap();
    assert_eq!(store.steps(run).await.unwrap()[2], then);
    assert!(store.steps(Uuid::now_v7()).await.unwrap().is_empty());
}

/// The team page's list reads a step's `op` and `unit` (to show "observed 310 ms, needs < 250
/// ms") without loading its series.
async fn a_teams_steps_keep_the_comparison_but_not_the_series(db: &Db) {
    let store = db.open().await;
    let run = create(&store, "gcp-failover-validation", "uat-beta", t(0)).await;
    let mut failed = step(2, "then", "Assertion: Product SLO latency < 250ms");
    failed.owner = Some("payments".into());
    failed.verdict = Some(Verdict::Failed);
    failed.observed = Some(0.31);
    failed.threshold = Some(0.25);
    failed.evidence = Some(json!({
        "query": "histogram_quantile(0.99, …)", "op": "<", "unit": "s",
        "series": [{"labels": {}, "points": [{"at": "2026-11-21T01:00:00Z", "value": 0.31}]}]
    }));
    store.upsert_step(run, &failed).await.unwrap();
    let steps = store
        .team_steps("payments", &[Verdict::Failed], t(-60), 10)
        .await
        .unwrap();
    assert_eq!(steps.len(), 1);
    let (id, listed) = &steps[0];
    assert_eq!(*id, run);
    assert_eq!(listed.evidence, Some(json!({"op": "<", "unit": "s"})));
    assert_eq!(
        listed.comparison().as_deref(),
        Some("observed 310 ms, needs < 250 ms")
    );
}

async fn a_steps_history_is_its_own_on_its_stack_newest_first(db: &Db) {
    // What the morning review reads to place a failure: the step's earlier judgements on the
    // same scenario and stack, before the failing run; other steps, stacks and unjudged
    // verdicts are left out.
    let store = db.open().await;
    let latency = "Assertion: Product SLO latency < 250ms";
    let mut runs = Vec::new();
    for (night, verdict) in [
        (18, Verdict::Failed),
        (19, Verdict::Passed),
        (20, Verdict::Inconclusive),
    ] {
        let mut new = new_run(
            "gcp-failover-validation",
            "uat-beta",
            t((i64::from(night) - 21) * 86_400),
        );
        new.night = NaiveDate::from_ymd_opt(2026, 11, night);
        store.create_run(&new).await.unwrap();
        let mut then = step(3, "then", latency);
        then.started_at = new.started_at;
        then.verdict = Some(verdict);
        store.upsert_step(new.id, &then).await.unwrap();
        let mut other = step(4, "then", "Service SLO: success rate > 99.99 %");
        other.started_at = new.started_at;
        other.verdict = Some(Verdict::Failed);
        store.upsert_step(new.id, &other).await.unwrap();
        runs.push(new.id);
    }
    let elsewhere = create(&store, "gcp-failover-validation", "uat-alpha", t(-3_600)).await;
    let mut then = step(3, "then", latency);
    then.verdict = Some(Verdict::Failed);
    store.upsert_step(elsewhere, &then).await.unwrap();
    let tonight = create(&store, "gcp-failover-validation", "uat-beta", t(0)).await;
    let mut failing = step(3, "then", latency);
    failing.verdict = Some(Verdict::Failed);
    failing.owner = Some("payments".into());
    failing.evidence =
        Some(json!({"op": "<", "unit": "s", "series": [{"labels": {}, "points": []}]}));
    store.upsert_step(tonight, &failing).await.unwrap();

    let history = store
        .step_history("gcp-failover-validation", "uat-beta", latency, t(0), 10)
        .await
        .unwrap();
    let seen: Vec<(Option<NaiveDate>, Verdict)> =
        history.iter().map(|j| (j.night, j.verdict)).collect();
    assert_eq!(
        seen,
        [
            (NaiveDate::from_ymd_opt(2026, 11, 19), Verdict::Passed),
            (NaiveDate::from_ymd_opt(2026, 11, 18), Verdict::Failed),
        ]
    );
    assert_eq!(
        store
            .step_history("gcp-failover-validation", "uat-beta", latency, t(0), 1)
            .await
            .unwrap()
            .len(),
        1,
        "at most the limit"
    );
    // Tonight's failed Then steps, with the comparison but not the series.
    let failed = store
        .then_steps_of_runs(&[tonight, runs[0]], &[Verdict::Failed])
        .await
        .unwrap();
    let names: Vec<(Uuid, &str)> = failed
        .iter()
        .map(|(id, s)| (*id, s.name.as_str()))
        .collect();
    let mut expected = vec![
        (runs[0], latency),
        (runs[0], "Service SLO: success rate > 99.99 %"),
        (tonight, latency),
    ];
    expected.sort();
    assert_eq!(names, expected);
    let listed = &failed.iter().find(|(id, _)| *id == tonight).unwrap().1;
    assert_eq!(listed.evidence, Some(json!({"op": "<", "unit": "s"})));
    // Every run since an instant, newest first, in brief.
    let briefs = store.run_briefs(t(-2 * 86_400)).await.unwrap();
    let ids: Vec<Uuid> = briefs.iter().map(|b| b.id).collect();
    assert_eq!(ids, [tonight, elsewhere, runs[2], runs[1]]);
    assert_eq!(briefs[2].night, NaiveDate::from_ymd_opt(2026, 11, 20));
    assert_eq!(briefs[0].status, f3_chaos::model::RunStatus::Running);
}

async fn the_lists_count_runs_per_night_scenario_stack_and_outcome(db: &Db) {
    // What /nights, /scenarios and /stacks read: counts per group from the store, the latest
    // start of each group, and the run behind an instant.
    let store = db.open().await;
    let night = |d| NaiveDate::from_ymd_opt(2026, 11, d);
    let mut ids = Vec::new();
    for (scenario, stack, day, at, outcome) in [
        (
            "gcp-failover-validation",
            "uat-beta",
            19,
            -2 * 86_400,
            Some(RunOutcome::Passed),
        ),
        (
            "gcp-failover-validation",
            "uat-beta",
            20,
            -86_400,
            Some(RunOutcome::Failed),
        ),
        (
            "gcp-failover-validation",
            "uat-beta",
            21,
            0,
            Some(RunOutcome::Passed),
        ),
        ("gcp-failover-validation", "uat-alpha", 21, 60, None),
        ("pod-kill", "uat-beta", 21, 120, Some(RunOutcome::Passed)),
        // Too old for the counts.
        (
            "pod-kill",
            "uat-beta",
            1,
            -20 * 86_400,
            Some(RunOutcome::Failed),
        ),
    ] {
        let mut new = new_run(scenario, stack, t(at));
        new.night = night(day);
        store.create_run(&new).await.unwrap();
        if let Some(outcome) = outcome {
            store
                .finish_run(new.id, outcome, t(at + 300), &json!({}))
                .await
                .unwrap();
        }
        ids.push(new.id);
    }
    let ad_hoc = create(&store, "pod-kill", "local", t(180)).await;

    let groups = store.run_groups(t(-3 * 86_400), t(-3_600)).await.unwrap();
    // scenario, stack, status, runs, recent runs, latest start
    type Seen<'a> = (&'a str, &'a str, RunStatus, u64, u64, DateTime<Utc>);
    let seen: Vec<Seen> = groups
        .iter()
        .map(|g| {
            (
                g.scenario.as_str(),
                g.stack.as_str(),
                g.status,
                g.runs,
                g.recent,
                g.last_started_at,
            )
        })
        .collect();
    let (passed, failed, running) = (
        RunStatus::Finished(RunOutcome::Passed),
        RunStatus::Finished(RunOutcome::Failed),
        RunStatus::Running,
    );
    assert_eq!(
        seen,
        [
            ("gcp-failover-validation", "uat-alpha", running, 1, 1, t(60)),
            (
                "gcp-failover-validation",
                "uat-beta",
                failed,
                1,
                0,
                t(-86_400)
            ),
            ("gcp-failover-validation", "uat-beta", passed, 2, 1, t(0)),
            ("pod-kill", "local", running, 1, 1, t(180)),
            ("pod-kill", "uat-beta", passed, 1, 1, t(120)),
        ]
    );
    let nights = store.night_groups(t(-3 * 86_400)).await.unwrap();
    let seen: Vec<(Option<NaiveDate>, &str, RunStatus, u64)> = nights
        .iter()
        .map(|g| (Some(g.night), g.stack.as_str(), g.status, g.runs))
        .collect();
    assert_eq!(
        seen,
        [
            (night(21), "uat-alpha", running, 1),
            (night(21), "uat-beta", passed, 2),
            (night(20), "uat-beta", failed, 1),
            (night(19), "uat-beta", passed, 1),
        ],
        "planned runs only, newest night first"
    );
    let ad_hoc_briefs = store.ad_hoc_run_briefs(t(-3 * 86_400)).await.unwrap();
    assert_eq!(
        ad_hoc_briefs.iter().map(|b| b.id).collect::<Vec<_>>(),
        [ad_hoc]
    );
    let behind = store.run_briefs_started_at(&[t(0), t(180)]).await.unwrap();
    assert_eq!(
        behind.iter().map(|b| b.id).collect::<Vec<_>>(),
        [ad_hoc, ids[2]]
    );
    assert!(store.run_briefs_started_at(&[]).await.unwrap().is_empty());
    // One stack's runs since an instant (the stack page), newest first: not the other stacks'
    // nor the older one.
    let beta = store
        .stack_run_briefs("uat-beta", t(-3 * 86_400))
        .await
        .unwrap();
    assert_eq!(
        beta.iter().map(|b| b.id).collect::<Vec<_>>(),
        [ids[4], ids[2], ids[1], ids[0]]
    );
}

async fn a_finding_opens_resolves_and_reopens_keeping_its_ticket(db: &Db) {
    use f3_chaos::store::{FindingNote, FindingStatus};
    let store = db.open().await;
    let latency = "Assertion: Product SLO latency < 250ms";
    // Nights 18 (failed), 19 and 20 (passed: resolved after 2), 22 (failed: re-opened); an
    // aborted run counts, a void one does not.
    let mut last = None;
    for (day, outcome, verdict) in [
        (18, RunOutcome::Aborted, Verdict::Failed),
        (19, RunOutcome::Passed, Verdict::Passed),
        (20, RunOutcome::Void, Verdict::Failed),
        (20, RunOutcome::Passed, Verdict::Passed),
        (22, RunOutcome::Failed, Verdict::Failed),
    ] {
        let mut new = new_run(
            "gcp-failover-validation",
            "uat-beta",
            t(i64::from(day) * 86_400),
        );
        new.night = NaiveDate::from_ymd_opt(2026, 11, day);
        store.create_run(&new).await.unwrap();
        let mut then = step(3, "then", latency);
        then.verdict = Some(verdict);
        then.owner = Some("payments".into());
        store.upsert_step(new.id, &then).await.unwrap();
        let ended = new.started_at + chrono::Duration::minutes(30);
        store
            .finish_run(new.id, outcome, ended, &json!({}))
            .await
            .unwrap();
        store.record_findings(new.id, 2, ended).await.unwrap();
        if day == 18 {
            let open = store.findings(Some(FindingStatus::Open)).await.unwrap();
            assert_eq!(open.len(), 1);
            let noted = store
                .annotate_finding(
                    open[0].id,
                    &FindingNote {
                        ticket_url: Some("https://jira.example.com/browse/PAY-1".into()),
                        note: Some("TLS".into()),
                    },
                    "alice",
                    ended,
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(noted.annotated_by.as_deref(), Some("alice"));
        }
        if day == 20 && outcome == RunOutcome::Passed {
            let all = store.findings(None).await.unwrap();
            assert_eq!(all[0].status, FindingStatus::Resolved, "{all:?}");
            assert_eq!(all[0].resolved_at, Some(ended));
        }
        last = Some(new.id);
    }
    let all = store.findings(None).await.unwrap();
    assert_eq!(all.len(), 1);
    let finding = &all[0];
    assert_eq!(finding.status, FindingStatus::Open);
    assert_eq!(finding.reopened, 1);
    assert_eq!(
        finding.first_failed_night,
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    );
    assert_eq!(finding.latest_failed_run, last.unwrap());
    assert_eq!(
        finding.ticket_url.as_deref(),
        Some("https://jira.example.com/browse/PAY-1")
    );
    assert_eq!(
        store.finding(finding.id).await.unwrap().as_ref(),
        Some(finding)
    );
    assert!(
        store
            .annotate_finding(Uuid::now_v7(), &FindingNote::default(), "alice", t(0))
            .await
            .unwrap()
            .is_none()
    );
}

async fn one_lease_holder_per_stack(db: &Db) {
    let first = db.open().await;
    let second = db.open().await;
    let ttl = Duration::from_secs(60);
    // Many rounds, each on a fresh stack: two acquirers race, exactly one wins.
    for round in 0..20 {
        let stack = format!("stack-{round}");
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (ha, hb) = (
            holder(a, "gcp-failover-validation", "alice"),
            holder(b, "pod-kill", "daemon-1"),
        );
        let (ra, rb) = tokio::join!(
            first.acquire_lease(&stack, &ha, ttl, t(0)),
            second.acquire_lease(&stack, &hb, ttl, t(0)),
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let (won, lost) = match (ra, rb) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            other => panic!("round {round}: expected exactly one winner, got {other:?}"),
        };
        // The loser is told who holds the stack.
        assert_eq!(lost, won, "round {round}");
        assert!(won.run_id == a || won.run_id == b);
        let expected_scenario = if won.run_id == a {
            "gcp-failover-validation"
        } else {
            "pod-kill"
        };
        assert_eq!(won.scenario, expected_scenario);
        assert_eq!(won.stack, stack);
        assert_eq!(won.acquired_at, t(0));
        assert_eq!(won.expires_at, t(60));
        assert_eq!(first.lease(&stack, t(1)).await.unwrap(), Some(won.clone()));
    }
    let leases = second.leases(t(1)).await.unwrap();
    assert_eq!(leases.len(), 20);

    // Re-acquiring by the holding run renews it and keeps acquired_at.
    let run = Uuid::now_v7();
    let mine = holder(run, "gcp-failover-validation", "alice");
    first
        .acquire_lease("solo", &mine, ttl, t(0))
        .await
        .unwrap()
        .unwrap();
    let again = first
        .acquire_lease("solo", &mine, ttl, t(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.acquired_at, t(0));
    assert_eq!(again.renewed_at, t(30));
    assert_eq!(again.expires_at, t(90));
    let zero = first
        .acquire_lease("solo", &mine, Duration::ZERO, t(0))
        .await;
    assert!(matches!(zero, Err(StoreError::Invalid { .. })), "{zero:?}");
}

async fn expired_leases_can_be_taken_over(db: &Db) {
    let store = db.open().await;
    let other = db.open().await;
    let (dead, alive) = (Uuid::now_v7(), Uuid::now_v7());
    let ttl = Duration::from_secs(10);
    store
        .acquire_lease(
            "uat-beta",
            &holder(dead, "gcp-failover-validation", "alice"),
            ttl,
            t(0),
        )
        .await
        .unwrap()
        .expect("free stack");
    // Before expiry: refused, with the holder.
    let refused = other
        .acquire_lease("uat-beta", &holder(alive, "pod-kill", "bob"), ttl, t(9))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.run_id, dead);
    assert_eq!(refused.holder, "alice");
    // At expiry the lease is free: lease() shows nothing and a new run takes it.
    assert_eq!(store.lease("uat-beta", t(10)).await.unwrap(), None);
    let taken = other
        .acquire_lease("uat-beta", &holder(alive, "pod-kill", "bob"), ttl, t(10))
        .await
        .unwrap()
        .expect("expired lease is taken over");
    assert_eq!(taken.run_id, alive);
    assert_eq!(taken.acquired_at, t(10));
    assert_eq!(taken.expires_at, t(20));
    // The old holder finds out when it renews, and its release does not free the new lease.
    assert!(
        !store
            .renew_lease("uat-beta", dead, ttl, t(11))
            .await
            .unwrap()
    );
    store.release_lease("uat-beta", dead).await.unwrap();
    assert_eq!(
        store
            .lease("uat-beta", t(11))
            .await
            .unwrap()
            .map(|l| l.run_id),
        Some(alive)
    );
}

async fn lease_renew_and_release(db: &Db) {
    let store = db.open().await;
    let run = Uuid::now_v7();
    let ttl = Duration::from_secs(10);
    store
        .acquire_lease("dev-1", &holder(run, "pod-kill", "daemon-1"), ttl, t(0))
        .await
        .unwrap()
        .unwrap();
    // Heartbeat-style renewals keep it past the first TTL.
    for i in 1..=5 {
        assert!(
            store
                .renew_lease("dev-1", run, ttl, t(8 * i))
                .await
                .unwrap()
        );
    }
    let lease = store.lease("dev-1", t(45)).await.unwrap().expect("renewed");
    assert_eq!(lease.renewed_at, t(40));
    assert_eq!(lease.expires_at, t(50));
    assert_eq!(lease.acquired_at, t(0));
    // Someone else's release or renewal does nothing.
    let stranger = Uuid::now_v7();
    assert!(
        !store
            .renew_lease("dev-1", stranger, ttl, t(45))
            .await
            .unwrap()
    );
    store.release_lease("dev-1", stranger).await.unwrap();
    assert!(store.lease("dev-1", t(45)).await.unwrap().is_some());
    // Released: free at once for the next run; renewing a released lease fails.
    store.release_lease("dev-1", run).await.unwrap();
    assert_eq!(store.lease("dev-1", t(45)).await.unwrap(), None);
    assert!(!store.renew_lease("dev-1", run, ttl, t(46)).await.unwrap());
    let next = Uuid::now_v7();
    let taken = store
        .acquire_lease("dev-1", &holder(next, "pod-kill", "bob"), ttl, t(46))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.run_id, next);
    // Releasing twice is harmless.
    store.release_lease("dev-1", next).await.unwrap();
    store.release_lease("dev-1", next).await.unwrap();
}

fn ledger_entry(run_id: Uuid, step: &str, at: DateTime<Utc>) -> LedgerEntry {
    LedgerEntry {
        id: Uuid::now_v7(),
        run_id,
        stack: "uat-beta".into(),
        driver: "local".into(),
        step_name: step.into(),
        spec: json!({"action": "partition", "selector": {"cloud": "gcp"}, "duration": "5m"}),
        handle: None,
        state: LedgerState::Pending,
        created_at: at,
        expires_at: at + chrono::Duration::minutes(5),
        updated_at: at,
    }
}

async fn fault_ledger_lifecycle(db: &Db) {
    let store = db.open().await;
    let run = create(&store, "gcp-failover-validation", "uat-beta", t(0)).await;
    let other = create(&store, "pod-kill", "uat-alpha", t(0)).await;

    let cut = ledger_entry(run, "GCP connectivity lost", t(10));
    let kill = ledger_entry(other, "Kill a gateway pod", t(20));
    store.ledger_insert(&cut).await.unwrap();
    store.ledger_insert(&kill).await.unwrap();
    assert_eq!(
        store.ledger_open().await.unwrap(),
        vec![cut.clone(), kill.clone()]
    );

    let handle = json!({"pids": [4242, 4243], "watchdog_pid": 4250});
    store
        .ledger_update(cut.id, LedgerState::Injected, Some(&handle), t(11))
        .await
        .unwrap();
    let injected = store.ledger_for_run(run).await.unwrap();
    assert_eq!(injected.len(), 1);
    assert_eq!(injected[0].state, LedgerState::Injected);
    assert_eq!(injected[0].handle, Some(handle.clone()));
    assert_eq!(injected[0].updated_at, t(11));
    assert_eq!(injected[0].created_at, t(10));
    assert_eq!(injected[0].expires_at, t(310));

    // Reverting keeps the handle when none is given; reverted entries are closed.
    store
        .ledger_update(cut.id, LedgerState::Reverted, None, t(40))
        .await
        .unwrap();
    let reverted = &store.ledger_for_run(run).await.unwrap()[0];
    assert_eq!(reverted.state, LedgerState::Reverted);
    assert_eq!(reverted.handle, Some(handle));
    assert_eq!(
        store
            .ledger_open()
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        [kill.id]
    );

    // A failed revert stays open for the sweep.
    store
        .ledger_update(kill.id, LedgerState::RevertFailed, None, t(50))
        .await
        .unwrap();
    let open = store.ledger_open().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].state, LedgerState::RevertFailed);
    assert!(open[0].state.is_open());

    let unknown = store
        .ledger_update(Uuid::now_v7(), LedgerState::Reverted, None, t(60))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );
    // Duplicate ids and unknown runs are refused.
    assert!(store.ledger_insert(&cut).await.is_err());
    assert!(
        store
            .ledger_insert(&ledger_entry(Uuid::now_v7(), "x", t(0)))
            .await
            .is_err()
    );
    assert!(
        store
            .ledger_for_run(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn outbox_records_notifications(db: &Db) {
    let store = db.open().await;
    let run = create(&store, "gcp-failover-validation", "uat-beta", t(0)).await;
    let payload = json!({
        "step": "Assertion: Product SLO latency < 250ms",
        "observed": 0.31,
        "threshold": 0.25
    });
    let first = store
        .outbox_insert(
            run,
            "payments",
            NotificationKind::Failures,
            &payload,
            t(400),
        )
        .await
        .unwrap();
    let second = store
        .outbox_insert(
            run,
            "infrastructure",
            NotificationKind::Failures,
            &json!({}),
            t(401),
        )
        .await
        .unwrap();
    assert!(second > first);
    let queued = store.outbox_for_run(run).await.unwrap();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0].id, first);
    assert_eq!(queued[0].run_id, run);
    assert_eq!(queued[0].team, "payments");
    assert_eq!(queued[0].kind, NotificationKind::Failures);
    assert_eq!(queued[0].payload, payload);
    assert_eq!(queued[0].status, OutboxStatus::Pending);
    assert_eq!(queued[0].attempts, 0);
    assert_eq!(queued[0].next_attempt_at, t(400));
    assert_eq!(queued[0].created_at, t(400));
    assert_eq!(queued[0].last_error, None);
    assert_eq!(queued[0].delivered_at, None);
    assert_eq!(queued[1].team, "infrastructure");
    assert!(
        store
            .outbox_insert(
                Uuid::now_v7(),
                "payments",
                NotificationKind::Failures,
                &json!({}),
                t(0)
            )
            .await
            .is_err(),
        "unknown run"
    );

    // The delivery worker's view: due rows, earliest first; attempts recorded.
    assert!(store.outbox_due(t(399), 10).await.unwrap().is_empty());
    let due = store.outbox_due(t(401), 10).await.unwrap();
    assert_eq!(
        due.iter().map(|o| o.id).collect::<Vec<_>>(),
        [first, second]
    );
    assert_eq!(store.outbox_due(t(401), 1).await.unwrap().len(), 1);
    store
        .outbox_failed(first, "HTTP 503 from Slack", Some(t(460)))
        .await
        .unwrap();
    store.outbox_delivered(second, t(402)).await.unwrap();
    assert!(store.outbox_due(t(459), 10).await.unwrap().is_empty());
    let retried = store.outbox_due(t(460), 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(
        retried[0].last_error.as_deref(),
        Some("HTTP 503 from Slack")
    );
    assert_eq!(retried[0].next_attempt_at, t(460));
    store.outbox_failed(first, "HTTP 400", None).await.unwrap();
    assert!(store.outbox_due(t(10_000), 10).await.unwrap().is_empty());
    let done = store.outbox_for_run(run).await.unwrap();
    assert_eq!(done[0].status, OutboxStatus::Dead);
    assert_eq!(done[0].attempts, 2);
    assert_eq!(done[1].status, OutboxStatus::Delivered);
    assert_eq!(done[1].attempts, 1);
    assert_eq!(done[1].delivered_at, Some(t(402)));
    assert!(matches!(
        store.outbox_delivered(-1, t(0)).await,
        Err(StoreError::NotFound { .. })
    ));
}

fn notification(team: &str) -> NewNotification {
    NewNotification {
        team: team.to_owned(),
        kind: NotificationKind::Failures,
        payload: json!({ "steps": [{ "name": "Product SLO latency < 250ms" }] }),
    }
}

/// Makes every outbox insert for team `boom` fail inside the database (a trigger), so a
/// transaction can be made to fail half-way.
async fn refuse_team_boom(db: &Db) {
    match &db._guard {
        Guard::Sqlite(_) => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            conn.execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON outbox WHEN NEW.team = 'boom' \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END",
            )
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
        Guard::Postgres(_) => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            conn.execute(
                "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN \
                 IF NEW.team = 'boom' THEN RAISE EXCEPTION 'refused by the test trigger'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
            )
            .await
            .unwrap();
            conn.execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON outbox FOR EACH ROW \
                 EXECUTE FUNCTION refuse_boom()",
            )
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
    }
}

async fn finishing_a_run_queues_its_notifications_in_one_transaction(db: &Db) {
    let store = db.open().await; // migrates
    refuse_team_boom(db).await;

    // Both notifications and the outcome, or nothing: the second insert fails, so the outcome
    // and the first notification are rolled back and the run is still running.
    let run = create(&store, "gcp-failover-validation", "uat-beta", t(0)).await;
    let failed = store
        .finish_run_with_outbox(
            run,
            RunOutcome::Failed,
            t(600),
            &json!({ "pass_rate": 0.5 }),
            &[notification("payments"), notification("boom")],
        )
        .await;
    assert!(
        matches!(failed, Err(StoreError::Query { .. })),
        "{failed:?}"
    );
    assert_eq!(
        store.run(run).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    assert!(store.outbox_for_run(run).await.unwrap().is_empty());

    let ids = store
        .finish_run_with_outbox(
            run,
            RunOutcome::Failed,
            t(600),
            &json!({ "pass_rate": 0.5 }),
            &[notification("payments"), notification("infrastructure")],
        )
        .await
        .unwrap();
    let finished = store.run(run).await.unwrap().unwrap();
    assert_eq!(finished.status, RunStatus::Finished(RunOutcome::Failed));
    let queued = store.outbox_for_run(run).await.unwrap();
    assert_eq!(queued.iter().map(|o| o.id).collect::<Vec<_>>(), ids);
    assert_eq!(
        queued.iter().map(|o| o.team.as_str()).collect::<Vec<_>>(),
        ["payments", "infrastructure"]
    );
    assert!(queued.iter().all(|o| o.status == OutboxStatus::Pending
        && o.kind == NotificationKind::Failures
        && o.next_attempt_at == t(600)
        && o.payload == notification("payments").payload));

    // A run that already has an outcome (the sweep marked it) queues nothing more.
    let again = store
        .finish_run_with_outbox(
            run,
            RunOutcome::Passed,
            t(700),
            &json!({}),
            &[notification("payments")],
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::RunNotRunning { .. })),
        "{again:?}"
    );
    assert_eq!(store.outbox_for_run(run).await.unwrap().len(), 2);
}

async fn concurrent_opens_migrate_once(db: &Db) {
    // A terminal run and the daemon starting at once on a fresh database.
    let (a, b, c) = tokio::join!(
        Store::open(&db.url),
        Store::open(&db.url),
        Store::open(&db.url)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let run = create(&a, "pod-kill", "dev-1", t(0)).await;
    assert!(b.run(run).await.unwrap().is_some());
    assert!(c.run(run).await.unwrap().is_some());
}

async fn two_handles_write_concurrently(db: &Db) {
    let first = db.open().await;
    let second = db.open().await;
    let writer = |store: Store, stack: &'static str| async move {
        let run = create(&store, "gcp-failover-validation", stack, t(0)).await;
        for i in 0..50 {
            store
                .append_event(run, t(i), "tick", &json!({ "i": i }))
                .await
                .unwrap();
            store
                .upsert_step(run, &step(i % 5, "then", "Assertion"))
                .await
                .unwrap();
            store.heartbeat_run(run, t(i)).await.unwrap();
            assert!(
                store
                    .acquire_lease(stack, &holder(run, "s", "h"), Duration::from_secs(60), t(i))
                    .await
                    .unwrap()
                    .is_ok()
            );
        }
        store
            .finish_run(run, RunOutcome::Passed, t(60), &json!({}))
            .await
            .unwrap();
        run
    };
    let (a, b) = tokio::join!(
        tokio::spawn(writer(first.clone(), "uat-alpha")),
        tokio::spawn(writer(second.clone(), "uat-beta"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    for (run, store) in [(a, &second), (b, &first)] {
        assert_eq!(store.events(run).await.unwrap().len(), 50);
        assert_eq!(store.steps(run).await.unwrap().len(), 5);
        assert_eq!(
            store.run(run).await.unwrap().unwrap().status,
            RunStatus::Finished(RunOutcome::Passed)
        );
    }
}

/// Environment of a child process spawned by [`processes_share_one_database`].
const CHILD_URL: &str = "F3_CHAOS_STORE_CHILD_URL";
const CHILD_NAME: &str = "F3_CHAOS_STORE_CHILD_NAME";
const CHILD_START_MS: &str = "F3_CHAOS_STORE_CHILD_START_MS";
const CHILD_ROUNDS: &str = "F3_CHAOS_STORE_CHILD_ROUNDS";

/// The child half of [`processes_share_one_database`]: this test binary re-executed with
/// `--exact store::process_child`. Without the child environment (a normal test run) it returns
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_child() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let name = std::env::var(CHILD_NAME).unwrap();
    let start_ms: i64 = std::env::var(CHILD_START_MS).unwrap().parse().unwrap();
    let rounds: i64 = std::env::var(CHILD_ROUNDS).unwrap().parse().unwrap();
    // Opening races the other processes (a fresh database: migrations race too).
    let store = Store::open(&url).await.unwrap();
    let run = create(&store, "cross-process", &name, t(0)).await;
    println!("CHILD {name} run {run}");
    let wait = start_ms - Utc::now().timestamp_millis();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    for round in 0..rounds {
        let me = holder(Uuid::now_v7(), "cross-process", &name);
        let stack = format!("proc-{round}");
        let result = store
            .acquire_lease(&stack, &me, Duration::from_secs(60), t(0))
            .await
            .unwrap();
        let (verdict, lease) = match result {
            Ok(lease) => ("won", lease),
            Err(lease) => ("lost", lease),
        };
        println!("CHILD {name} round {round} {verdict} {}", lease.run_id);
        store
            .append_event(run, t(round), "tick", &json!({ "round": round }))
            .await
            .unwrap();
    }
}

async fn processes_share_one_database(db: &Db) {
    // Three real processes (this test binary re-executed) open one fresh database at once, then
    // race for the same 30 stack leases and write events, starting on the same wall-clock instant.
    const CHILDREN: usize = 3;
    const ROUNDS: i64 = 30;
    let exe = std::env::current_exe().unwrap();
    let start_ms = Utc::now().timestamp_millis() + 3_000;
    let children: Vec<_> = (0..CHILDREN)
        .map(|i| {
            tokio::process::Command::new(&exe)
                .args([
                    "--exact",
                    "store::process_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_URL, &db.url)
                .env(CHILD_NAME, format!("child-{i}"))
                .env(CHILD_START_MS, start_ms.to_string())
                .env(CHILD_ROUNDS, ROUNDS.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn the test binary")
        })
        .collect();
    let outputs = tokio::time::timeout(Duration::from_secs(120), async {
        let mut outputs = Vec::new();
        // Already running side by side; this only collects their output.
        for child in children {
            outputs.push(child.wait_with_output().await);
        }
        outputs
    })
    .await
    .expect("children finish within 120 s");

    let mut runs = Vec::new();
    let mut rounds: Vec<Vec<(bool, String)>> = vec![Vec::new(); ROUNDS as usize];
    for output in outputs {
        let output = output.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        for line in stdout
            .lines()
            .filter_map(|l| l.split_once("CHILD ").map(|(_, rest)| rest))
        {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [_, "run", id] => runs.push(Uuid::parse_str(id).unwrap()),
                [_, "round", round, verdict, holder] => {
                    let round: usize = round.parse().unwrap();
                    rounds[round].push((*verdict == "won", (*holder).to_owned()));
                }
                other => panic!("unexpected child line {other:?}"),
            }
        }
    }
    assert_eq!(runs.len(), CHILDREN, "every child reported its run");

    let store = db.open().await;
    for (round, reports) in rounds.iter().enumerate() {
        assert_eq!(reports.len(), CHILDREN, "round {round}: {reports:?}");
        let winners: Vec<&String> = reports
            .iter()
            .filter(|(won, _)| *won)
            .map(|(_, h)| h)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one winner, got {reports:?}"
        );
        assert!(
            reports.iter().all(|(_, h)| h == winners[0]),
            "round {round}: losers are told the winner: {reports:?}"
        );
        let lease = store
            .lease(&format!("proc-{round}"), t(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&lease.run_id.to_string(), winners[0]);
    }
    for run in runs {
        let seqs: Vec<i64> = store
            .events(run)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=ROUNDS).collect::<Vec<_>>());
    }
}

/// Two daemons (two pools, as two processes would have): one leads, the other stands by; when
/// the leader resigns — or on PostgreSQL simply drops its connection, as a killed process does —
/// the other takes over. The leader lease never shows among stack leases.
async fn one_leader_among_daemons(db: &Db) {
    let first = db.open().await;
    let second = db.open().await;
    let mut leader = first
        .try_lead("host-a pid 1")
        .await
        .expect("try lead")
        .expect("the first daemon leads");
    assert!(
        second
            .try_lead("host-b pid 2")
            .await
            .expect("try lead")
            .is_none(),
        "only one leader"
    );
    assert!(leader.confirm().await, "the leader still leads");
    assert!(
        first.leases(Utc::now()).await.expect("leases").is_empty(),
        "the leader lease is not a stack lease"
    );
    if first.backend_name() == "postgres" {
        // A dead leader: its connection goes away without resigning.
        drop(leader);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if second
                .try_lead("host-b pid 2")
                .await
                .expect("try lead")
                .is_some()
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "lock not released");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    } else {
        leader.resign().await;
        let mut next = second
            .try_lead("host-b pid 2")
            .await
            .expect("try lead")
            .expect("the standby leads after the resignation");
        assert!(next.confirm().await);
        assert!(
            first
                .try_lead("host-a pid 1")
                .await
                .expect("try lead")
                .is_none()
        );
    }
}

async fn night_plans_are_kept_in_order(db: &Db) {
    let store = db.open().await;
    let night = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).expect("date");
    assert!(store.latest_plan(night).await.expect("plans").is_none());
    store
        .save_plan(night, t(0), "initial", &json!({ "slots": [1] }))
        .await
        .expect("save");
    store
        .save_plan(night, t(60), "overrun", &json!({ "slots": [2] }))
        .await
        .expect("save");
    let plans = store.plans(night).await.expect("plans");
    let reasons: Vec<&str> = plans.iter().map(|p| p.reason.as_str()).collect();
    assert_eq!(reasons, ["initial", "overrun"]);
    let latest = store.latest_plan(night).await.expect("plans").expect("one");
    assert_eq!(latest.plan, json!({ "slots": [2] }));
    assert_eq!(latest.created_at, t(60));
    assert!(
        store
            .plans(night.succ_opt().expect("next"))
            .await
            .expect("plans")
            .is_empty()
    );
}

/// A PostgreSQL URL carries its password; no command may print it when the store cannot be
/// opened (the server here refuses: nothing listens on port 1).
#[test]
fn no_command_prints_the_database_password() {
    const URL: &str = "postgres://f3chaos:hunter2-secret@127.0.0.1:1/f3chaos";
    let commands: [&[&str]; 6] = [
        &["run", "--scenario", "gcp-failover-validation"],
        &["results", "01900000-0000-7000-8000-000000000000"],
        &["results", "--night", "2026-12-01"],
        &["gate", "--scenarios", "gcp-failover-validation"],
        &["notify"],
        &["dashboard", "--listen", "127.0.0.1:0"],
    ];
    // All at once: each waits out the pool's connect timeout.
    let running: Vec<_> = commands
        .iter()
        .map(|args| {
            let child = std::process::Command::new(f3_chaos_tests::binary("f3-chaos"))
                .args(*args)
                .args(["--database-url", URL])
                .current_dir(f3_chaos_tests::repo_root())
                .env("NO_COLOR", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("f3-chaos");
            (args, child)
        })
        .collect();
    for (args, child) in running {
        let out = child.wait_with_output().expect("f3-chaos");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2")
                && !String::from_utf8_lossy(&out.stdout).contains("hunter2"),
            "{args:?} printed the password: {stderr}"
        );
        assert!(
            stderr.contains("postgres://f3chaos:***@127.0.0.1:1/f3chaos"),
            "{args:?} names the store it could not open: {stderr}"
        );
    }
}

/// Many processes opening one fresh SQLite file at once (a night's runs and the daemon starting
/// together): the switch to WAL and the migration race for the same lock, and every open must
/// win it in the end. Fifty fresh files, six opens each, so a lost race shows up in every run
/// of this test rather than once in a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_many_concurrent_opens_of_fresh_files_all_succeed() {
    for round in 0..50 {
        let db = Db::sqlite().await;
        let mut opens = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let url = db.url.clone();
            opens.spawn(async move { Store::open(&url).await });
        }
        while let Some(result) = opens.join_next().await {
            if let Err(error) = result.expect("open task") {
                panic!("round {round}, an open of {}: {error:?}", db.url);
            }
        }
    }
}
