//! The runner's state machine without processes: a scripted fault driver, the in-memory SLO
//! source and a real SQLite store in a temporary directory. Each test drives one path — every
//! outcome, and a cancellation in each phase — and checks the outcome, what was reverted and
//! what the store kept.

use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{RunOptions, Runner};
use crate::assert::FakeSource;
use crate::fault::{FaultContext, FaultDriver, FaultError, FaultHandle, LoadGenerator};
use crate::model::{Phase, RunOutcome, Verdict};
use crate::scenario::{Check, Comparison, FaultStep, Scenario};
use crate::store::{LeaseHolder, LedgerState, Store};

/// A fault driver whose failures are scripted; it records what it injected and reverted.
#[derive(Default)]
struct ScriptedDriver {
    /// Preflight finds the target not ready.
    target_down: bool,
    /// The stack's fingerprint cannot be read.
    fingerprint_fails: bool,
    inject_fails: bool,
    revert_fails: bool,
    /// The fingerprint changes after the first injection (someone deployed mid-run).
    redeploy_during_fault: bool,
    /// How many claims of the target are refused as held by another run before one succeeds.
    claims_refused: std::sync::atomic::AtomicUsize,
    injected: std::sync::Arc<Mutex<Vec<String>>>,
    reverted: Mutex<Vec<String>>,
}

impl ScriptedDriver {
    fn injected(&self) -> Vec<String> {
        self.injected.lock().expect("lock").clone()
    }

    fn reverted(&self) -> Vec<String> {
        self.reverted.lock().expect("lock").clone()
    }
}

impl FaultDriver for ScriptedDriver {
    fn name(&self) -> &'static str {
        "scripted"
    }

    async fn claim(&self, _holder: &str) -> Result<crate::fault::TargetClaim, FaultError> {
        use std::sync::atomic::Ordering;
        let refused = self
            .claims_refused
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if refused.is_ok() {
            return Err(FaultError::TargetBusy {
                stack: "local".into(),
                holder: "run 42 of another store".into(),
            });
        }
        Ok(crate::fault::TargetClaim::default())
    }

    async fn preflight(&self, _faults: &[FaultStep]) -> Result<(), FaultError> {
        if self.target_down {
            return Err(FaultError::NotReady {
                stack: "test".into(),
                reason: "gcp-node-0 is not running".into(),
            });
        }
        Ok(())
    }

    fn describe(&self, fault: &FaultStep) -> Result<serde_json::Value, FaultError> {
        Ok(serde_json::json!({ "step": fault.name }))
    }

    async fn inject(
        &self,
        fault: &FaultStep,
        _ctx: &FaultContext,
    ) -> Result<FaultHandle, FaultError> {
        if self.inject_fails {
            return Err(FaultError::Inject {
                step: fault.name.clone(),
                reason: "the API server said no".into(),
            });
        }
        self.injected.lock().expect("lock").push(fault.name.clone());
        Ok(FaultHandle {
            driver: "scripted".into(),
            description: format!("scripted {}", fault.name),
            data: serde_json::json!({ "step": fault.name }),
        })
    }

    async fn revert(&self, handle: &FaultHandle) -> Result<(), FaultError> {
        if self.revert_fails {
            return Err(FaultError::Revert {
                what: handle.description.clone(),
                reason: "connection reset".into(),
            });
        }
        self.reverted
            .lock()
            .expect("lock")
            .push(handle.data["step"].as_str().unwrap_or_default().to_owned());
        Ok(())
    }

    async fn orphans(&self) -> Result<Vec<FaultHandle>, FaultError> {
        Ok(Vec::new())
    }

    async fn fingerprint(&self) -> Result<String, FaultError> {
        if self.fingerprint_fails {
            return Err(FaultError::NotReady {
                stack: "test".into(),
                reason: "no deployment answers".into(),
            });
        }
        let redeployed = self.redeploy_during_fault && !self.injected().is_empty();
        Ok(if redeployed {
            "sha256:after"
        } else {
            "sha256:before"
        }
        .to_owned())
    }
}

impl LoadGenerator for ScriptedDriver {
    async fn set_tps(&self, _tps: f64) -> Result<(), FaultError> {
        Ok(())
    }

    fn load_check(&self, tps: f64) -> Check {
        Check {
            query: "tps".into(),
            op: Comparison::Ge,
            threshold: tps,
            unit: None,
            slo: None,
        }
    }
}

/// How long the unit scenario's fault lasts: below what a scenario file may declare (1 s), so
/// the suite stays fast; the runner takes the compiled duration as it is.
const UNIT_FAULT: Duration = Duration::from_millis(300);

/// A scenario on the `local` stack of config/local: steady state `steady`, a GCP loss of
/// [`UNIT_FAULT`], a Then step on `latency` held during the fault, and an abort condition on
/// `breach`.
fn scenario() -> Scenario {
    scenario_with_fault_of(UNIT_FAULT)
}

/// The runner unit scenario with its fault lasting `duration` (set after compilation, which
/// checks the file with a 1 s fault).
fn scenario_with_fault_of(duration: Duration) -> Scenario {
    let text = r#"
apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: scripted
  description: Runner unit test.
  owner: sre-chaos
spec:
  targets:
    selector: { platform: payments }
  schedule: { cadence: manual, priority: low, estimatedDuration: 1m }
  given:
    - kind: steady-state
      name: Steady
      query: steady
      op: ">="
      threshold: 1
  when:
    - kind: cloud-loss
      name: GCP connectivity lost
      cloud: gcp
      duration: FAULT_DURATION
  then:
    - name: Latency below 250 ms
      owner: payments
      query: latency
      op: "<"
      threshold: 0.25
      unit: s
      hold: during-fault
  abort:
    - name: Breach
      query: breach
      op: ">"
      threshold: 0
"#;
    let config = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/local");
    let checked = crate::scenario::check_texts(
        vec![("scripted.yaml".into(), text.replace("FAULT_DURATION", "1s"))],
        Some(&config),
    );
    let library = checked
        .library
        .unwrap_or_else(|| panic!("{}", checked.diagnostics));
    let mut scenario = library.scenarios["scripted"].clone();
    scenario.when[0].duration = crate::duration::HumanDuration(duration);
    scenario
}

/// An SLO source where every query of the scenario has a value from a minute ago on, scraped
/// every 50 ms (the lookback keeps it current for the test): steady state held, latency 0.1 s,
/// no breach.
fn healthy() -> FakeSource {
    with_healthy_values(FakeSource::scraped_every(Duration::from_millis(50)))
}

/// `source` with the values of [`healthy`] pushed a minute ago.
fn with_healthy_values(source: FakeSource) -> FakeSource {
    let since = Utc::now() - chrono::Duration::seconds(60);
    for (query, value) in [("steady", 1.0), ("latency", 0.1), ("breach", 0.0)] {
        source.push(query, &[], since, value);
    }
    source
}

fn options() -> RunOptions {
    let mut opts = RunOptions::new("test", "test");
    opts.abort_poll = Duration::from_millis(50);
    opts.steady_state_within = Duration::from_millis(300);
    opts.recovery_timeout = Duration::from_millis(300);
    opts.ttl_grace = Duration::from_millis(100);
    opts.query_step = Duration::from_millis(100);
    opts
}

struct Setup {
    dir: tempfile::TempDir,
    store: Store,
}

async fn store() -> Setup {
    // The store's real settings, on a RAM disk where there is one: these tests are about the
    // state machine, and the store's fsyncs (rollback journal, `synchronous = FULL`) would be most
    // of their time on a slow disk.
    let ram = std::path::Path::new("/dev/shm");
    let dir = if ram.is_dir() {
        tempfile::tempdir_in(ram)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let store = Store::open(&format!("sqlite://{}", dir.path().join("f3.db").display()))
        .await
        .expect("store");
    Setup { dir, store }
}

/// Runs the scenario on `driver` and `source` with [`options`].
async fn run(setup: &Setup, driver: &ScriptedDriver, source: &FakeSource) -> super::RunReport {
    run_with(setup, driver, source, options()).await
}

/// Runs the scenario with `opts`.
async fn run_with(
    setup: &Setup,
    driver: &ScriptedDriver,
    source: &FakeSource,
    opts: RunOptions,
) -> super::RunReport {
    let runner = Runner::new(
        &setup.store,
        driver,
        source,
        crate::run::Reporters::none(),
        CancellationToken::new(),
    );
    runner
        .run(&scenario(), "local", &opts)
        .await
        .expect("the run starts")
}

/// Every ledger entry of the run ended reverted (none left injected or pending).
async fn ledger_all_reverted(setup: &Setup, report: &super::RunReport) -> bool {
    setup
        .store
        .ledger_for_run(report.run_id)
        .await
        .expect("ledger")
        .iter()
        .all(|e| e.state == LedgerState::Reverted)
}

#[tokio::test]
async fn a_healthy_run_passes_and_reverts_its_fault() {
    let setup = store().await;
    let driver = ScriptedDriver::default();
    let report = run(&setup, &driver, &healthy()).await;
    assert_eq!(report.outcome, RunOutcome::Passed, "{:?}", report.reason);
    assert_eq!(driver.injected(), ["GCP connectivity lost"]);
    assert_eq!(driver.reverted(), ["GCP connectivity lost"]);
    assert!(ledger_all_reverted(&setup, &report).await);
    let stored = setup
        .store
        .run(report.run_id)
        .await
        .expect("run")
        .expect("stored");
    assert_eq!(stored.outcome(), Some(RunOutcome::Passed));
}

#[tokio::test]
async fn a_then_step_over_its_threshold_fails_the_run() {
    let setup = store().await;
    let source = healthy();
    source.push(
        "latency",
        &[],
        Utc::now() - chrono::Duration::seconds(1),
        0.4,
    );
    let report = run(&setup, &ScriptedDriver::default(), &source).await;
    assert_eq!(report.outcome, RunOutcome::Failed, "{:?}", report.reason);
    let then = report
        .steps
        .iter()
        .find(|s| s.name == "Latency below 250 ms")
        .expect("the Then step");
    assert_eq!(then.verdict, Verdict::Failed);
    assert_eq!(then.owner.as_deref(), Some("payments"));
}

#[tokio::test]
async fn a_planned_run_that_fails_a_then_step_opens_its_finding_and_an_ad_hoc_one_does_not() {
    let setup = store().await;
    let failing = || {
        let source = healthy();
        source.push(
            "latency",
            &[],
            Utc::now() - chrono::Duration::seconds(1),
            0.4,
        );
        source
    };
    let ad_hoc = run(&setup, &ScriptedDriver::default(), &failing()).await;
    assert_eq!(ad_hoc.outcome, RunOutcome::Failed);
    assert!(setup.store.findings(None).await.unwrap().is_empty());

    let mut opts = options();
    opts.night = chrono::NaiveDate::from_ymd_opt(2026, 11, 20);
    let planned = run_with(&setup, &ScriptedDriver::default(), &failing(), opts).await;
    assert_eq!(planned.outcome, RunOutcome::Failed);
    let findings = setup.store.findings(None).await.unwrap();
    let found: Vec<(&str, &str, Option<&str>, crate::store::FindingStatus)> = findings
        .iter()
        .map(|f| {
            (
                f.step.as_str(),
                f.stack.as_str(),
                f.owner.as_deref(),
                f.status,
            )
        })
        .collect();
    assert_eq!(
        found,
        [(
            "Latency below 250 ms",
            "local",
            Some("payments"),
            crate::store::FindingStatus::Open
        )]
    );
    assert_eq!(findings[0].latest_failed_run, planned.run_id);
}

#[tokio::test]
async fn a_then_step_without_data_is_inconclusive_never_passed() {
    let setup = store().await;
    let source = FakeSource::scraped_every(Duration::from_millis(50));
    let since = Utc::now() - chrono::Duration::seconds(60);
    source.push("steady", &[], since, 1.0);
    source.push("breach", &[], since, 0.0);
    let report = run(&setup, &ScriptedDriver::default(), &source).await;
    assert_eq!(
        report.outcome,
        RunOutcome::Inconclusive,
        "{:?}",
        report.reason
    );
}

#[tokio::test]
async fn a_failed_given_skips_when_and_then_and_injects_nothing() {
    let setup = store().await;
    let source = healthy();
    source.push(
        "steady",
        &[],
        Utc::now() - chrono::Duration::seconds(1),
        0.0,
    );
    let driver = ScriptedDriver::default();
    let report = run(&setup, &driver, &source).await;
    assert_eq!(report.outcome, RunOutcome::PreconditionFailed);
    assert!(driver.injected().is_empty());
    let verdicts: Vec<(String, Verdict)> = report
        .steps
        .iter()
        .map(|s| (s.name.clone(), s.verdict))
        .collect();
    assert!(
        verdicts.contains(&("GCP connectivity lost".to_owned(), Verdict::Skipped))
            && verdicts.contains(&("Latency below 250 ms".to_owned(), Verdict::Skipped)),
        "{verdicts:?}"
    );
}

#[tokio::test]
async fn a_dead_fault_target_fails_the_precondition_and_skips_every_step() {
    let setup = store().await;
    let driver = ScriptedDriver {
        target_down: true,
        ..ScriptedDriver::default()
    };
    let report = run(&setup, &driver, &healthy()).await;
    assert_eq!(
        report.outcome,
        RunOutcome::PreconditionFailed,
        "{:?}",
        report.reason
    );
    assert!(driver.injected().is_empty());
    let reason = report.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("gcp-node-0 is not running"), "{reason}");
    let experiment: Vec<_> = report
        .steps
        .iter()
        .filter(|s| matches!(s.phase, Phase::When | Phase::Then))
        .collect();
    assert!(!experiment.is_empty());
    assert!(experiment.iter().all(|s| s.verdict == Verdict::Skipped));
    assert_eq!(report.pass_rate, Some(0.0));
}

#[tokio::test]
async fn a_run_that_ends_before_its_experiment_has_no_pass_rate() {
    // The fingerprint of the stack cannot be read: the run errors before any When or Then step.
    let setup = store().await;
    let driver = ScriptedDriver {
        fingerprint_fails: true,
        ..ScriptedDriver::default()
    };
    let report = run(&setup, &driver, &healthy()).await;
    assert_eq!(report.outcome, RunOutcome::Error, "{:?}", report.reason);
    assert_eq!(report.pass_rate, None);
}

/// Runs a 4 s fault; once it is injected, another process takes the stack lease (after marking
/// the fault reverted in the ledger, as its sweep would, when `swept`).
async fn run_losing_the_lease(
    setup: &Setup,
    driver: &ScriptedDriver,
    swept: bool,
) -> super::RunReport {
    let mut opts = options();
    // Renewed every 300 ms (a third of it), so the loss is found that soon.
    opts.lease_ttl = Duration::from_millis(900);
    let (store, run_id) = (setup.store.clone(), opts.run_id);
    let thief = Uuid::now_v7();
    let injected = driver.injected.clone();
    tokio::spawn(async move {
        while injected.lock().expect("lock").is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if swept {
            for entry in store.ledger_for_run(run_id).await.expect("ledger") {
                store
                    .ledger_update(entry.id, LedgerState::Reverted, None, Utc::now())
                    .await
                    .expect("mark reverted");
            }
        }
        store.release_lease("local", run_id).await.expect("release");
        let holder = LeaseHolder {
            run_id: thief,
            scenario: "thief".into(),
            holder: "other-daemon".into(),
        };
        store
            .acquire_lease("local", &holder, Duration::from_secs(60), Utc::now())
            .await
            .expect("store")
            .expect("the stack is free");
    });
    let source = healthy();
    let runner = Runner::new(
        &setup.store,
        driver,
        &source,
        crate::run::Reporters::none(),
        CancellationToken::new(),
    );
    let report = runner
        .run(
            &scenario_with_fault_of(Duration::from_secs(4)),
            "local",
            &opts,
        )
        .await
        .expect("the run starts");
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "stack lease lost to run {thief} (thief, started by other-daemon)"
        )),
        "{reason}"
    );
    report
}

#[tokio::test]
async fn a_run_that_loses_its_lease_stops_reverts_and_is_interrupted_never_passed() {
    let setup = store().await;
    let driver = ScriptedDriver::default();
    let started = std::time::Instant::now();
    let report = run_losing_the_lease(&setup, &driver, false).await;
    assert_eq!(
        report.outcome,
        RunOutcome::Interrupted,
        "{:?}",
        report.reason
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stopped before the fault's end"
    );
    assert_eq!(
        driver.injected(),
        driver.reverted(),
        "its own fault reverted"
    );
    assert!(
        report
            .steps
            .iter()
            .all(|s| s.phase != Phase::Then || s.verdict != Verdict::Passed),
        "nothing judged passed: {:?}",
        report.steps
    );
}

#[tokio::test]
async fn a_fault_the_sweep_already_reverted_is_not_touched_again() {
    let setup = store().await;
    let driver = ScriptedDriver::default();
    let report = run_losing_the_lease(&setup, &driver, true).await;
    assert_eq!(
        report.outcome,
        RunOutcome::Interrupted,
        "{:?}",
        report.reason
    );
    assert!(
        driver.reverted().is_empty(),
        "the target was left to its new holder"
    );
}

#[tokio::test]
async fn a_failed_revert_ends_cleanup_failed_naming_the_fault() {
    let setup = store().await;
    let driver = ScriptedDriver {
        revert_fails: true,
        ..ScriptedDriver::default()
    };
    let report = run(&setup, &driver, &healthy()).await;
    assert_eq!(report.outcome, RunOutcome::CleanupFailed);
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("scripted GCP connectivity lost"),
        "{reason}"
    );
    let ledger = setup
        .store
        .ledger_for_run(report.run_id)
        .await
        .expect("ledger");
    assert_eq!(ledger[0].state, LedgerState::RevertFailed);
}

#[tokio::test]
async fn a_failed_injection_is_an_error_and_nothing_stays_injected() {
    let setup = store().await;
    let driver = ScriptedDriver {
        inject_fails: true,
        ..ScriptedDriver::default()
    };
    let report = run(&setup, &driver, &healthy()).await;
    assert_eq!(report.outcome, RunOutcome::Error);
    assert!(
        report
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("the API server said no")),
        "the driver's cause is kept"
    );
    assert!(ledger_all_reverted(&setup, &report).await);
}

#[tokio::test]
async fn a_stack_that_changed_during_the_run_voids_it() {
    let setup = store().await;
    let driver = ScriptedDriver {
        redeploy_during_fault: true,
        ..ScriptedDriver::default()
    };
    let report = run(&setup, &driver, &healthy()).await;
    assert_eq!(report.outcome, RunOutcome::Void, "{:?}", report.reason);
    assert_eq!(driver.reverted(), ["GCP connectivity lost"]);
}

#[tokio::test]
async fn a_breached_abort_condition_reverts_and_records_its_latency() {
    let setup = store().await;
    let source = healthy();
    // The breach shows from a moment after the start: the abort poll sees it during the fault.
    source.push(
        "breach",
        &[],
        Utc::now() + chrono::Duration::milliseconds(200),
        1.0,
    );
    let driver = ScriptedDriver::default();
    let report = run(&setup, &driver, &source).await;
    assert_eq!(report.outcome, RunOutcome::Aborted, "{:?}", report.reason);
    assert!(report.abort_latency_ms.is_some_and(|ms| ms >= 0));
    assert_eq!(driver.reverted(), ["GCP connectivity lost"]);
    assert!(ledger_all_reverted(&setup, &report).await);
}

#[tokio::test]
async fn a_cancel_in_any_phase_interrupts_and_reverts_everything() {
    // (phase, when to cancel, a fault was injected): in Given 150 ms in, while the steady state
    // is awaited (it never holds; the bound is 5 s); in the fault as soon as the driver injected
    // it; and in Then 1 s in, while the judge waits for the sample that closes the window (a
    // Prometheus that scrapes nothing after the pushed values never brings it: the wait lasts
    // its cap, a query step of 2 s after the fault's end at 0.3 s).
    for (phase, after_ms, injected) in [
        ("given", Some(150), false),
        ("fault", None, true),
        ("then", Some(1000), true),
    ] {
        let setup = store().await;
        let source = match phase {
            "then" => {
                // Scraped for the next 10 s as far as Given and recovery are concerned; the
                // latency series keeps only its old sample, so its closing sample never lands.
                let source = with_healthy_values(FakeSource::new());
                let now = Utc::now();
                for i in 0..200 {
                    let at = now + chrono::Duration::milliseconds(50 * i - 1000);
                    source.push("steady", &[], at, 1.0);
                }
                source
            }
            _ => healthy(),
        };
        let mut opts = options();
        match phase {
            "given" => {
                source.push(
                    "steady",
                    &[],
                    Utc::now() - chrono::Duration::seconds(1),
                    0.0,
                );
                opts.steady_state_within = Duration::from_secs(5);
            }
            "then" => opts.query_step = Duration::from_secs(2),
            _ => {}
        }
        let driver = ScriptedDriver::default();
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        let seen = driver.injected.clone();
        tokio::spawn(async move {
            match after_ms {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => {
                    while seen.lock().expect("lock").is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            canceller.cancel();
        });
        let runner = Runner::new(
            &setup.store,
            &driver,
            &source,
            crate::run::Reporters::none(),
            cancel,
        );
        let report = runner
            .run(&scenario(), "local", &opts)
            .await
            .expect("the run starts");
        assert_eq!(
            report.outcome,
            RunOutcome::Interrupted,
            "{phase}: {:?}",
            report.reason
        );
        assert_eq!(!driver.injected().is_empty(), injected, "{phase}");
        assert_eq!(
            driver.injected(),
            driver.reverted(),
            "{phase}: all reverted"
        );
        assert!(ledger_all_reverted(&setup, &report).await, "{phase}");
        let stored = setup
            .store
            .run(report.run_id)
            .await
            .expect("run")
            .expect("stored");
        assert_eq!(stored.outcome(), Some(RunOutcome::Interrupted), "{phase}");
    }
}

/// Runs the scenario with [`options`] on a runner `build` finishes (reporters, hooks).
async fn run_built<'a>(
    setup: &'a Setup,
    driver: &'a ScriptedDriver,
    source: &'a FakeSource,
    build: impl FnOnce(Runner<'a, ScriptedDriver, FakeSource>) -> Runner<'a, ScriptedDriver, FakeSource>,
) -> super::RunReport {
    let runner = Runner::new(
        &setup.store,
        driver,
        source,
        crate::run::Reporters::none(),
        CancellationToken::new(),
    );
    build(runner)
        .run(&scenario(), "local", &options())
        .await
        .expect("the run starts")
}

#[tokio::test]
async fn every_reporter_hears_every_stored_event_in_the_stored_order() {
    let setup = store().await;
    let driver = ScriptedDriver::default();
    let source = healthy();
    let (first_tx, mut first) = tokio::sync::mpsc::unbounded_channel();
    let (second_tx, mut second) = tokio::sync::mpsc::unbounded_channel();
    let reporters = crate::run::Reporters::none()
        .with(crate::run::ChannelReporter(first_tx))
        .with(crate::run::ChannelReporter(second_tx));
    let runner = Runner::new(
        &setup.store,
        &driver,
        &source,
        reporters,
        CancellationToken::new(),
    );
    let report = runner
        .run(&scenario(), "local", &options())
        .await
        .expect("the run starts");
    drop(runner);
    let drain = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<super::RunEvent>| {
        let mut kinds = Vec::new();
        while let Ok(event) = rx.try_recv() {
            kinds.push(event.kind().to_owned());
        }
        kinds
    };
    let stored: Vec<String> = setup
        .store
        .events(report.run_id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let heard = drain(&mut first);
    assert_eq!(heard, stored, "the first reporter heard what was stored");
    assert_eq!(drain(&mut second), stored, "and so did the second");
    assert_eq!(heard.first().map(String::as_str), Some("run-started"));
    assert_eq!(heard.last().map(String::as_str), Some("run-finished"));
    assert!(heard.iter().any(|k| k == "fault-injected"), "{heard:?}");
}

/// A fault-window hook that records when it is called; it may refuse the injection.
struct RecordingHook {
    refuse: bool,
    calls: std::sync::Arc<Mutex<Vec<&'static str>>>,
}

impl RecordingHook {
    /// A hook (refusing the injection when `refuse`) and the log of its calls.
    fn new(refuse: bool) -> (Self, std::sync::Arc<Mutex<Vec<&'static str>>>) {
        let calls = std::sync::Arc::new(Mutex::new(Vec::new()));
        let hook = RecordingHook {
            refuse,
            calls: calls.clone(),
        };
        (hook, calls)
    }

    fn call(&self, name: &'static str) {
        self.calls.lock().expect("lock").push(name);
    }
}

impl super::FaultWindowHook for RecordingHook {
    fn given_step(&self) -> Option<&'static str> {
        Some("Hook ready")
    }

    fn before_inject<'a>(
        &'a self,
        _window: super::FaultWindow<'a>,
        _now: chrono::DateTime<Utc>,
    ) -> futures_util::future::BoxFuture<'a, super::HookReport> {
        self.call("before-inject");
        let refuse = self.refuse;
        Box::pin(async move {
            super::HookReport {
                step: Some(super::HookStep {
                    verdict: if refuse {
                        Verdict::Error
                    } else {
                        Verdict::Passed
                    },
                    message: "hook says so".into(),
                    evidence: None,
                }),
                refused: refuse.then(|| "the hook refused".to_owned()),
                events: Vec::new(),
            }
        })
    }

    fn after_inject(&self, _window: super::FaultWindow<'_>, _injected_at: chrono::DateTime<Utc>) {
        self.call("after-inject");
    }

    fn after_revert<'a>(
        &'a self,
        _window: super::FaultWindow<'a>,
        reverted_at: Option<chrono::DateTime<Utc>>,
    ) -> futures_util::future::BoxFuture<'a, super::HookReport> {
        self.call(if reverted_at.is_some() {
            "after-revert"
        } else {
            "after-revert (nothing injected)"
        });
        Box::pin(async { super::HookReport::default() })
    }
}

#[tokio::test]
async fn hooks_hear_the_fault_window_once_each_in_order() {
    let setup = store().await;
    let driver = ScriptedDriver::default();
    let (hook, calls) = RecordingHook::new(false);
    let report = run_built(&setup, &driver, &healthy(), |r| r.with_hook(hook)).await;
    assert_eq!(report.outcome, RunOutcome::Passed, "{:?}", report.reason);
    assert_eq!(
        *calls.lock().expect("lock"),
        ["before-inject", "after-inject", "after-revert"]
    );
    // The hook's Given step sits after the steady state and before the fault.
    let names: Vec<(&str, Phase)> = report
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.phase))
        .collect();
    assert_eq!(names[1], ("Hook ready", Phase::Given), "{names:?}");
    assert_eq!(
        names[2],
        ("GCP connectivity lost", Phase::When),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_hook_that_refuses_stops_the_run_before_any_fault() {
    let setup = store().await;
    let driver = ScriptedDriver::default();
    let (hook, calls) = RecordingHook::new(true);
    let report = run_built(&setup, &driver, &healthy(), |r| r.with_hook(hook)).await;
    assert_eq!(report.outcome, RunOutcome::PreconditionFailed);
    assert_eq!(report.reason.as_deref(), Some("the hook refused"));
    assert!(driver.injected().is_empty());
    assert_eq!(
        *calls.lock().expect("lock"),
        ["before-inject", "after-revert (nothing injected)"]
    );
    let hook_step = report
        .steps
        .iter()
        .find(|s| s.name == "Hook ready")
        .expect("the hook's step is recorded");
    assert_eq!(hook_step.verdict, Verdict::Error);
    let stored = setup.store.steps(report.run_id).await.expect("steps");
    assert!(
        stored
            .iter()
            .any(|s| s.name == "Hook ready" && s.verdict == Some(Verdict::Error)),
        "the hook's step is stored too"
    );
}

#[tokio::test]
async fn hooks_hear_the_revert_once_when_an_injection_fails() {
    let setup = store().await;
    let driver = ScriptedDriver {
        inject_fails: true,
        ..ScriptedDriver::default()
    };
    let (hook, calls) = RecordingHook::new(false);
    let report = run_built(&setup, &driver, &healthy(), |r| r.with_hook(hook)).await;
    assert_eq!(report.outcome, RunOutcome::Error);
    assert_eq!(
        *calls.lock().expect("lock"),
        ["before-inject", "after-revert (nothing injected)"]
    );
}

#[test]
fn the_launcher_queries_at_the_stacks_scrape_interval() {
    let config = crate::config::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/local"),
    )
    .expect("config/local loads");
    let mut stack = config.stacks["local"].clone();
    stack.scrape_interval = Duration::from_secs(15);
    let caller = options();
    let (run_id, grace) = (caller.run_id, caller.ttl_grace);
    let opts = super::launch::options_for(&stack, caller);
    assert_eq!(opts.query_step, Duration::from_secs(15));
    assert_eq!(
        (opts.run_id, opts.ttl_grace),
        (run_id, grace),
        "the rest is the caller's"
    );
}

#[tokio::test]
async fn the_launcher_refuses_a_production_stack_unless_the_scenario_opts_in() {
    let setup = store().await;
    let config = crate::config::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/local"),
    )
    .expect("config/local loads");
    let mut stack = config.stacks["local"].clone();
    stack.environment = crate::model::Environment::Production;
    let scenario = scenario();
    assert!(!scenario.targets.allow_production);
    let refused = super::launch::launch(super::launch::Launch {
        store: &setup.store,
        stack: &stack,
        scenario: &scenario,
        opts: options(),
        reporters: crate::run::Reporters::none(),
        metrics: None,
        cancel: CancellationToken::new(),
    })
    .await;
    match refused {
        Err(e @ super::RunError::ProductionNotAllowed { .. }) => {
            assert!(e.to_string().contains("allowProduction"), "{e}");
        }
        other => panic!("expected the production rule to refuse, got {other:?}"),
    }
    assert!(
        setup
            .store
            .leases(Utc::now())
            .await
            .expect("leases")
            .is_empty(),
        "nothing was leased"
    );
    let mut opted_in = scenario.clone();
    opted_in.targets.allow_production = true;
    assert!(super::launch::production_rule(&opted_in, &stack).is_ok());
}

#[tokio::test]
async fn a_target_claimed_elsewhere_is_waited_for_like_a_lease() {
    let setup = store().await;
    let driver = ScriptedDriver {
        claims_refused: 2.into(),
        ..ScriptedDriver::default()
    };
    let source = healthy();
    let mut opts = options();
    opts.wait_for_stack = Some(Duration::from_secs(10));
    opts.stack_poll = Duration::from_millis(50);
    let report = run_with(&setup, &driver, &source, opts).await;
    assert_eq!(report.outcome, RunOutcome::Passed, "{:?}", report.reason);
    assert!(
        driver
            .claims_refused
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0,
        "the claim was retried until it succeeded"
    );
}

#[tokio::test]
async fn a_target_claimed_elsewhere_is_busy_at_once_without_a_wait() {
    let setup = store().await;
    let driver = ScriptedDriver {
        claims_refused: 1.into(),
        ..ScriptedDriver::default()
    };
    let source = healthy();
    let runner = Runner::new(
        &setup.store,
        &driver,
        &source,
        crate::run::Reporters::none(),
        CancellationToken::new(),
    );
    let refused = runner.run(&scenario(), "local", &options()).await;
    match refused {
        Err(e @ super::RunError::TargetBusy { .. }) => {
            assert!(e.is_stack_busy());
            assert!(e.to_string().contains("run 42 of another store"), "{e}");
        }
        other => panic!("expected TargetBusy, got {other:?}"),
    }
    assert!(driver.injected().is_empty());
    assert!(
        setup
            .store
            .leases(Utc::now())
            .await
            .expect("leases")
            .is_empty(),
        "the lease was given back"
    );
}

/// Makes the store behind `setup` refuse some writes, as a full disk would: `trigger` is the
/// body of a SQLite trigger (`BEFORE … ON table WHEN …`) that aborts the statement.
async fn refuse_writes(setup: &Setup, trigger: &str) {
    use sqlx::ConnectOptions as _;
    let path = setup.dir.path().join("f3.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .expect("second connection");
    sqlx::query(&format!(
        "CREATE TRIGGER refuse {trigger} BEGIN SELECT RAISE(ABORT, 'database or disk is full (test)'); END"
    ))
    .execute(&mut conn)
    .await
    .expect("create trigger");
}

#[tokio::test]
async fn a_step_the_store_refuses_makes_the_run_an_error_never_passed() {
    let setup = store().await;
    refuse_writes(&setup, "BEFORE INSERT ON steps WHEN NEW.phase = 'then'").await;
    let driver = ScriptedDriver::default();
    let report = run(&setup, &driver, &healthy()).await;
    assert_eq!(report.outcome, RunOutcome::Error, "{:?}", report.reason);
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("the store refused a write (a step result: ")
            && reason.contains("database or disk is full (test)")
            && reason.ends_with("the run's record is incomplete"),
        "{reason}"
    );
    assert_eq!(driver.injected(), driver.reverted());
    let stored = setup
        .store
        .run(report.run_id)
        .await
        .expect("run")
        .expect("stored");
    assert_eq!(stored.outcome(), Some(RunOutcome::Error));
}

#[tokio::test]
async fn an_outcome_the_store_cannot_write_is_reported_as_an_error_after_reverting() {
    let setup = store().await;
    refuse_writes(
        &setup,
        "BEFORE UPDATE OF status ON runs WHEN NEW.status <> 'running'",
    )
    .await;
    let driver = ScriptedDriver::default();
    let report = run(&setup, &driver, &healthy()).await;
    assert_eq!(report.outcome, RunOutcome::Error, "{:?}", report.reason);
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("the outcome and notifications could not be written to the store (")
            && reason.contains("nothing is recorded or notified"),
        "{reason}"
    );
    assert_eq!(driver.injected(), ["GCP connectivity lost"]);
    assert_eq!(driver.reverted(), ["GCP connectivity lost"]);
    assert!(report.notified.is_empty());
}

#[tokio::test]
async fn a_store_file_removed_mid_run_makes_the_run_an_error_naming_it() {
    let setup = store().await;
    let path = setup.dir.path().join("f3.db");
    let driver = ScriptedDriver::default();
    let injected = driver.injected.clone();
    let removed = path.clone();
    tokio::spawn(async move {
        while injected.lock().expect("lock").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", removed.display()));
        }
    });
    let report = run(&setup, &driver, &healthy()).await;
    assert_eq!(report.outcome, RunOutcome::Error, "{:?}", report.reason);
    let reason = report.reason.clone().unwrap_or_default();
    // SQLite itself then refuses the outcome (a moved database is read-only to it): both said.
    assert!(
        reason.contains(&format!(
            "The SQLite store {} was removed or replaced while it was open",
            path.display()
        )),
        "{reason}"
    );
    assert_eq!(driver.injected(), driver.reverted());
}

#[test]
fn a_live_listener_that_hears_the_run_finish_finds_it_counted() {
    // The API's live stream is one of the caller's reporters; the launcher adds the metrics. A
    // client that sees `run-finished` and then scrapes `/metrics` must find the run counted.
    let metrics = crate::metrics::Metrics::new();
    let seen_by_listener = std::sync::Arc::new(Mutex::new(None::<bool>));
    let listener = {
        let (metrics, seen) = (metrics.clone(), seen_by_listener.clone());
        crate::run::FnReporter(move |_run_id, event: &super::RunEvent| {
            if matches!(event, super::RunEvent::RunFinished { .. }) {
                let counted = metrics
                    .encode(crate::metrics::ExpositionFormat::Classic)
                    .contains(
                        "f3_chaos_runs_total{scenario=\"s\",stack=\"local\",outcome=\"passed\"} 1",
                    );
                *seen.lock().expect("lock") = Some(counted);
            }
        })
    };
    let reporters =
        super::launch::counted_first(crate::run::Reporters::none().with(listener), &metrics);
    let run_id = Uuid::now_v7();
    reporters.report(
        run_id,
        &super::RunEvent::RunStarted {
            run_id,
            scenario: "s".into(),
            stack: "local".into(),
            started_by: "test".into(),
        },
    );
    reporters.report(
        run_id,
        &super::RunEvent::RunFinished {
            outcome: RunOutcome::Passed,
            pass_rate: Some(1.0),
            reason: None,
        },
    );
    assert_eq!(*seen_by_listener.lock().expect("lock"), Some(true));
}
