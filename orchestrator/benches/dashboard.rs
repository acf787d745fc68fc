//! Render benchmark of the dashboard over one year of history
//! (`cargo bench -p f3-chaos --bench dashboard`, or `scripts/bench-dashboard.sh`).
//!
//! Seeds a SQLite store with 365 nights × 274 runs (≈ 100,000 runs) on 13 stacks from 300
//! scenarios, 10 steps per run (≈ 1,000,000 steps; the 4 Then steps carry owners and a 10-point
//! evidence series), and one stored plan per night (274 slots, skipped scenarios) plus a re-plan
//! every third night; the runs of the last 60 nights then record their findings through the
//! store, as the runner does. Seeding uses plain SQL in one transaction per night and is cached in
//! `target/bench-dashboard/history-v3.db` (delete it to re-seed; `F3_DASHBOARD_BENCH_DB`
//! overrides the path).
//!
//! Then serves the dashboard router in-process on loopback and times `F3_DASHBOARD_BENCH_N`
//! (default 30) sequential requests per page after 3 warm-up requests: the latest night, a
//! scenario, a failed run, a team, a stack, the lists (`/nights`, `/scenarios`, `/teams`,
//! `/stacks`) and `/findings`.
//! Prints p50 / p95 / max in milliseconds, request sent → body read (so the figure includes
//! loopback HTTP, an upper bound on server time). Exits 1 when any page's p95 exceeds the 100 ms
//! budget (issues #9 and #16).

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration as TimeDelta, NaiveDate, TimeZone as _, Utc};
use f3_chaos::dashboard::{DashboardState, router};
use f3_chaos::model::RunOutcome;
use f3_chaos::store::Store;
use serde_json::json;
use sqlx::Connection as _;
use uuid::Uuid;

const NIGHTS: i64 = 365;
/// The last nights whose runs record findings (as the runner does after each run).
const FINDING_NIGHTS: i64 = 60;
const RUNS_PER_NIGHT: usize = 274;
const SCENARIOS: usize = 300;
const STACKS: usize = 13;
const TEAMS: [&str; 6] = [
    "payments",
    "infrastructure",
    "sre-chaos",
    "ledger",
    "fraud",
    "gateway",
];
const BUDGET_MS: f64 = 100.0;

fn scenario_name(i: usize) -> String {
    format!("scenario-{i:03}")
}

fn stack_name(i: usize) -> String {
    match i {
        0..=3 => format!("prod-{i}"),
        4..=6 => format!("uat-{}", i - 4),
        _ => format!("dev-{}", i - 7),
    }
}

/// Deterministic pseudo-random numbers (SplitMix64) so the seeded history is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn window_start(night: NaiveDate) -> DateTime<Utc> {
    chrono_tz::Europe::London
        .from_local_datetime(&night.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

/// A UUID v7 whose timestamp is `at` (ids sort by creation time, as the runner's do).
fn v7(at: DateTime<Utc>, rng: &mut Rng) -> Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&rng.next().to_be_bytes());
    random[8..].copy_from_slice(&rng.next().to_be_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid()
}

async fn seed(path: &std::path::Path, last_night: NaiveDate) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", path.display());
    Store::open(&url).await?.close().await; // schema
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&mut conn)
        .await?;
    sqlx::query("PRAGMA synchronous = OFF")
        .execute(&mut conn)
        .await?;
    let mut rng = Rng(9);
    let started = Instant::now();
    for back in (0..NIGHTS).rev() {
        let night = last_night - TimeDelta::days(back);
        let w0 = window_start(night);
        let mut tx = conn.begin().await?;
        // Each stack runs its scenarios back to back from 00:00; 274 of 300 scenarios per night.
        let offset = usize::try_from(back).unwrap_or(0) * 7;
        let mut next_free = [w0; STACKS];
        let mut slots = Vec::with_capacity(RUNS_PER_NIGHT);
        for k in 0..RUNS_PER_NIGHT {
            let s = (k + offset) % SCENARIOS;
            let stack = s % STACKS;
            let planned = TimeDelta::minutes(15 + (s % 4) as i64 * 5);
            let start = next_free[stack];
            next_free[stack] = start + planned + TimeDelta::minutes(2);
            slots.push((s, stack, start, planned));
        }
        let plan_slots: Vec<_> = slots
            .iter()
            .map(|(s, stack, start, planned)| json!({"scenario": scenario_name(*s), "stack": stack_name(*stack), "start": start, "end": *start + *planned}))
            .collect();
        let skipped: Vec<_> = (0..SCENARIOS - RUNS_PER_NIGHT)
            .map(|k| json!({"scenario": scenario_name((RUNS_PER_NIGHT + k + offset) % SCENARIOS), "reason": "not due tonight: every 2 nights", "code": "not-due"}))
            .collect();
        let plan = json!({"night": night, "window": {"start": w0, "end": w0 + TimeDelta::hours(7)},
                          "slots": plan_slots, "skipped": skipped, "objective": 1000});
        let plans = if back % 3 == 0 { 2 } else { 1 };
        for p in 0..plans {
            sqlx::query(
                "INSERT INTO night_plans (night, created_at, reason, plan) VALUES ($1, $2, $3, $4)",
            )
            .bind(night.to_string())
            .bind((w0 - TimeDelta::hours(1) + TimeDelta::minutes(90 * p)).timestamp_millis())
            .bind(if p == 0 { "initial" } else { "overrun" })
            .bind(plan.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for (s, stack, start, planned) in slots {
            let actual =
                planned + TimeDelta::seconds(i64::try_from(rng.below(600)).unwrap_or(0) - 240);
            let failed = rng.below(100) < 8;
            let status = if failed {
                "failed"
            } else if rng.below(100) < 2 {
                "aborted"
            } else {
                "passed"
            };
            let id = v7(start, &mut rng).to_string();
            let end = start + actual;
            sqlx::query(
                "INSERT INTO runs (id, scenario, stack, triggered_via, started_by, status, started_at, \
                 ended_at, heartbeat_at, pid, host, night, summary) \
                 VALUES ($1, $2, $3, 'daemon', 'daemon', $4, $5, $6, $6, 1, 'chaos-0', $7, $8)",
            )
            .bind(&id)
            .bind(scenario_name(s))
            .bind(stack_name(stack))
            .bind(status)
            .bind(start.timestamp_millis())
            .bind(end.timestamp_millis())
            .bind(night.to_string())
            .bind(json!({"pass_rate": if failed { 0.75 } else { 1.0 }}).to_string())
            .execute(&mut *tx)
            .await?;
            for i in 0..10_i64 {
                let (phase, name, owner) = match i {
                    0 | 1 => ("given", format!("Given {i}"), None),
                    2 => ("when", "Fault injected".to_owned(), None),
                    3..=6 => (
                        "then",
                        format!("Then SLO check {}", i - 3),
                        Some(owner_of(s, i)),
                    ),
                    // Only the phases a run stores (`Phase`): a page that reads a run's
                    // steps fails on any other.
                    7 => ("recovery", "Recovery: steady 300 TPS".to_owned(), None),
                    8 => ("recovery", "Recovery: error rate < 1 %".to_owned(), None),
                    _ => ("recovery", "Recovery: stack unchanged".to_owned(), None),
                };
                let at = start + TimeDelta::seconds(i * 60);
                let verdict = if failed && i == 4 { "failed" } else { "passed" };
                let evidence = (phase == "then").then(|| {
                    let points: Vec<_> = (0..10)
                        .map(|p| json!({"at": at + TimeDelta::seconds(p * 30), "value": 0.1 + (p as f64) * 0.01}))
                        .collect();
                    json!({"series": [{"labels": {}, "points": points}]}).to_string()
                });
                sqlx::query(
                    "INSERT INTO steps (run_id, step_index, phase, name, owner, verdict, started_at, \
                     ended_at, observed, threshold, evidence, message) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)",
                )
                .bind(&id)
                .bind(i)
                .bind(phase)
                .bind(name)
                .bind(owner)
                .bind(verdict)
                .bind(at.timestamp_millis())
                .bind((at + TimeDelta::seconds(55)).timestamp_millis())
                .bind((phase == "then").then_some(0.2))
                .bind((phase == "then").then_some(0.25))
                .bind(evidence)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        if back % 30 == 0 {
            eprintln!("seeded night {night} ({:.0?})", started.elapsed());
        }
    }
    sqlx::query("ANALYZE").execute(&mut conn).await?;
    conn.close().await?;
    // Findings as the runner records them, run by run in start order, over the last
    // FINDING_NIGHTS nights: failed steps open them, passing nights resolve them.
    let store = Store::open(&url).await?;
    for back in (0..FINDING_NIGHTS).rev() {
        let night = last_night - TimeDelta::days(back);
        let mut runs = store
            .runs(&f3_chaos::store::RunFilter {
                night: Some(night),
                ..Default::default()
            })
            .await?;
        runs.reverse();
        for run in runs {
            let at = run.ended_at.unwrap_or(run.started_at);
            store.record_findings(run.id, 3, at).await?;
        }
    }
    let open = store
        .findings(Some(f3_chaos::store::FindingStatus::Open))
        .await?;
    eprintln!(
        "recorded findings of the last {FINDING_NIGHTS} nights: {} open ({:.0?})",
        open.len(),
        started.elapsed()
    );
    store.close().await;
    Ok(())
}

/// The owner team of Then step `i` of scenario `s`.
fn owner_of(s: usize, i: i64) -> &'static str {
    TEAMS[(s + usize::try_from(i).unwrap_or(0)) % TEAMS.len()]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let path = std::env::var_os("F3_DASHBOARD_BENCH_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/bench-dashboard/history-v3.db")
        });
    let n: usize = std::env::var("F3_DASHBOARD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::London)
        .date_naive();
    let last_night = today.pred_opt().unwrap_or(today);
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let partial = path.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        eprintln!("Seeding one year of history into {} …", partial.display());
        seed(&partial, last_night).await?;
        for ext in ["partial-wal", "partial-shm"] {
            let _ = std::fs::remove_file(path.with_extension(ext));
        }
        std::fs::rename(&partial, &path)?;
    }
    let store = Store::open(&format!("sqlite://{}", path.display())).await?;
    let (runs, steps): (i64, i64) = {
        let url = format!("sqlite://{}", path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await?;
        let runs = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
            .fetch_one(&mut conn)
            .await?;
        let steps = sqlx::query_scalar("SELECT COUNT(*) FROM steps")
            .fetch_one(&mut conn)
            .await?;
        (runs, steps)
    };
    // The newest night in the file (a cached file may be a few days old).
    let latest = store
        .runs(&f3_chaos::store::RunFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .first()
        .and_then(|r| r.night)
        .unwrap_or(last_night);
    let failed = store
        .runs(&f3_chaos::store::RunFilter {
            night: Some(latest),
            outcome: Some(RunOutcome::Failed.into()),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    let failed_id = failed.first().map(|r| r.id.to_string()).unwrap_or_default();
    let scenario = failed
        .first()
        .map_or_else(|| scenario_name(0), |r| r.scenario.clone());
    println!("history: {runs} runs, {steps} steps, nights up to {latest}; {n} requests per page");

    let known = f3_chaos::dashboard::KnownNames {
        scenarios: (0..SCENARIOS).map(scenario_name).collect(),
        team_names: TEAMS
            .iter()
            .map(|t| ((*t).to_owned(), format!("{t} team")))
            .collect(),
        ..Default::default()
    };
    let state = DashboardState::new(store, chrono_tz::Europe::London)?.with_known(known);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let client = reqwest::Client::new();
    let pages = [
        ("night", format!("/night/{latest}")),
        ("scenario", format!("/scenario/{scenario}")),
        ("run", format!("/run/{failed_id}")),
        ("team", "/team/payments".to_owned()),
        ("nights", "/nights".to_owned()),
        ("scenarios", "/scenarios".to_owned()),
        ("teams", "/teams".to_owned()),
        ("stacks", "/stacks".to_owned()),
        ("stack", format!("/stack/{}", stack_name(0))),
        ("findings", "/findings".to_owned()),
    ];
    let mut over = Vec::new();
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>9}",
        "page", "p50 ms", "p95 ms", "max ms", "KiB"
    );
    for (name, path) in &pages {
        let url = format!("{base}{path}");
        let mut times = Vec::with_capacity(n);
        let mut size = 0;
        for i in 0..n + 3 {
            let t = Instant::now();
            let response = client.get(&url).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            anyhow::ensure!(
                status.is_success(),
                "{url}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
            size = body.len();
            if i >= 3 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        let (p50, p95) = (percentile(&times, 0.5), percentile(&times, 0.95));
        println!(
            "{name:<10} {p50:>9.1} {p95:>9.1} {:>9.1} {:>9.0}",
            times.last().copied().unwrap_or_default(),
            size as f64 / 1024.0
        );
        if p95 > BUDGET_MS {
            over.push(format!("{name} p95 {p95:.1} ms"));
        }
    }
    if over.is_empty() {
        println!("every page within the {BUDGET_MS} ms budget (p95)");
        Ok(())
    } else {
        eprintln!("over the {BUDGET_MS} ms budget: {}", over.join(", "));
        std::process::exit(1);
    }
}
