//! Planner tests: property tests over random instances (feasibility, determinism, re-planning
//! never moves started slots) and small hand-made instances for each skip reason.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

use super::rng::SplitMix64;
use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
        .single()
        .expect("valid instant")
}

fn mins(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}

/// A random instance: 1–5 stacks with random busy spans, 0–30 scenarios with random eligibility,
/// durations, weights, exclusions, `after:` edges (including unknown names and cycles) and two
/// resources with capacities 1–2.
fn random_instance(seed: u64, n: usize) -> PlanInput {
    let mut rng = SplitMix64::new(seed);
    let hours = rng.range(1, 8);
    let window = Window {
        start: t0(),
        end: t0() + TimeDelta::hours(hours),
    };
    let nstacks = rng.range(1, 5) as usize;
    let stacks: Vec<StackAvailability> = (0..nstacks)
        .map(|i| StackAvailability {
            name: format!("st{i}"),
            busy: (0..rng.below(3))
                .map(|_| {
                    let a = rng.range(-30, hours * 60);
                    Busy {
                        span: Window {
                            start: t0() + mins(a),
                            end: t0() + mins(a + rng.range(1, 120)),
                        },
                        reason: "reserved".into(),
                    }
                })
                .collect(),
        })
        .collect();
    let scenarios = (0..n)
        .map(|i| {
            let mut options = Vec::new();
            for s in 0..nstacks {
                if rng.chance(60) {
                    options.push(StackOption {
                        stack: format!("st{s}"),
                        duration: TimeDelta::seconds(rng.range(60, 180 * 60)),
                    });
                }
            }
            if rng.chance(5) {
                options.push(StackOption {
                    stack: "gone".into(),
                    duration: mins(5),
                });
            }
            let mut after = Vec::new();
            if i > 0 && rng.chance(25) {
                after.push(format!("c{}", rng.below(i as u64)));
            }
            if rng.chance(3) {
                after.push(format!("c{}", rng.below(n as u64))); // may form a cycle or self-loop
            }
            if rng.chance(2) {
                after.push("unknown".into());
            }
            let resources = ["net", "db"]
                .iter()
                .filter(|_| rng.chance(20))
                .map(|s| (*s).to_owned())
                .collect();
            PlanScenario {
                name: format!("c{i}"),
                options,
                weight: rng.range(1, 300) as u64,
                after,
                resources,
                exclude: rng.chance(5).then(|| SkipReason::NotDue {
                    detail: "test".into(),
                }),
                incapable: Vec::new(),
            }
        })
        .collect();
    PlanInput {
        night: NaiveDate::from_ymd_opt(2026, 11, 23).expect("valid date"),
        window,
        cooldown: TimeDelta::seconds(rng.range(0, 20 * 60)),
        stacks,
        scenarios,
        resources: BTreeMap::from([
            ("net".to_owned(), 1),
            ("db".to_owned(), rng.range(1, 2) as u32),
        ]),
        frozen: Vec::new(),
        not_before: None,
    }
}

fn light() -> SolverOptions {
    SolverOptions {
        effort: 20_000,
        ..SolverOptions::default()
    }
}

/// A partially executed night derived from a plan: slots that started before `now` ran (some
/// ended early, some overran), and one stack broke at `now`.
fn progress_of(input: &PlanInput, plan: &Plan, rng: &mut SplitMix64) -> NightProgress {
    let len = input.window.length().num_seconds().max(1);
    let now = input.window.start + TimeDelta::seconds(rng.range(0, len));
    let started = plan
        .slots
        .iter()
        .filter(|s| s.start <= now)
        .map(|s| {
            let actual_end = s.end + TimeDelta::seconds(rng.range(-600, 1800));
            let actual_end = actual_end.max(s.start + TimeDelta::seconds(1));
            StartedRun {
                scenario: s.scenario.clone(),
                stack: s.stack.clone(),
                started_at: s.start,
                state: if actual_end <= now {
                    RunState::Finished {
                        ended_at: actual_end,
                    }
                } else {
                    RunState::Running {
                        expected_end: s.end,
                    }
                },
            }
        })
        .collect();
    let unavailable = if input.stacks.is_empty() || rng.chance(50) {
        Vec::new()
    } else {
        let s = &input.stacks[rng.below(input.stacks.len() as u64) as usize];
        vec![(
            s.name.clone(),
            Busy {
                span: Window {
                    start: now,
                    end: input.window.end,
                },
                reason: "broken".into(),
            },
        )]
    };
    NightProgress {
        now,
        started,
        unavailable,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn plan_is_always_feasible(seed in any::<u64>(), n in 0usize..30) {
        let input = random_instance(seed, n);
        let plan = plan_with(&input, light());
        let v = check::violations(&input, &plan);
        prop_assert!(v.is_empty(), "{v:#?}\n{plan:#?}");
        let greedy = plan_with(&input, SolverOptions { effort: 0, ..light() });
        prop_assert!(plan.objective >= greedy.objective);
    }

    #[test]
    fn plan_is_deterministic(seed in any::<u64>(), n in 0usize..30) {
        let input = random_instance(seed, n);
        let a = render::json(&plan_with(&input, light()));
        let b = render::json(&plan_with(&input, light()));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn plan_generated_nights_are_feasible(seed in any::<u64>(), n in 1usize..120) {
        let input = generate::realistic_night(seed, n);
        let plan = plan_with(&input, light());
        let v = check::violations(&input, &plan);
        prop_assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn replan_never_moves_started_runs(seed in any::<u64>(), n in 0usize..30) {
        let input = random_instance(seed, n);
        let first = plan_with(&input, light());
        let mut rng = SplitMix64::new(seed ^ 0xD00D);
        let progress = progress_of(&input, &first, &mut rng);
        let next_input = replan_input(&input, &progress);
        let second = plan_with(&next_input, light());
        let v = check::violations(&next_input, &second);
        prop_assert!(v.is_empty(), "{v:#?}");
        for run in &progress.started {
            let slot = second.slots.iter().find(|s| s.scenario == run.scenario);
            prop_assert!(slot.is_some_and(|s| s.stack == run.stack && s.start == run.started_at),
                "{} moved: {slot:?}", run.scenario);
        }
        for slot in &second.slots {
            let was_started = progress.started.iter().any(|r| r.scenario == slot.scenario);
            prop_assert!(was_started || slot.start >= progress.now, "{slot:?} starts before now");
            for (stack, busy) in &progress.unavailable {
                prop_assert!(was_started || &slot.stack != stack || slot.end <= busy.span.start);
            }
        }
        prop_assert_eq!(render::json(&replan_with(&input, &progress, light())), render::json(&second));
    }
}

fn scenario(name: &str, stacks: &[(&str, i64)], weight: u64) -> PlanScenario {
    PlanScenario {
        name: name.into(),
        options: stacks
            .iter()
            .map(|(s, m)| StackOption {
                stack: (*s).into(),
                duration: mins(*m),
            })
            .collect(),
        weight,
        after: Vec::new(),
        resources: Vec::new(),
        exclude: None,
        incapable: Vec::new(),
    }
}

fn two_stack_night(scenarios: Vec<PlanScenario>) -> PlanInput {
    PlanInput {
        night: NaiveDate::from_ymd_opt(2026, 11, 23).expect("valid date"),
        window: Window {
            start: t0(),
            end: t0() + TimeDelta::hours(7),
        },
        cooldown: mins(10),
        stacks: vec![
            StackAvailability {
                name: "uat-alpha".into(),
                busy: Vec::new(),
            },
            StackAvailability {
                name: "dev-1".into(),
                busy: vec![Busy {
                    span: Window {
                        start: t0() + TimeDelta::hours(1),
                        end: t0() + TimeDelta::hours(7),
                    },
                    reason: "reserved".into(),
                }],
            },
        ],
        scenarios,
        resources: BTreeMap::from([("gcp-org-network".to_owned(), 1)]),
        frozen: Vec::new(),
        not_before: None,
    }
}

fn reason_of<'a>(plan: &'a Plan, name: &str) -> Option<&'a SkipReason> {
    plan.skipped
        .iter()
        .find(|s| s.scenario == name)
        .map(|s| &s.reason)
}

#[test]
fn plan_gives_every_skip_reason() {
    let mut sc = vec![
        scenario("nowhere", &[], 50),
        scenario("too-long", &[("uat-alpha", 8 * 60), ("dev-1", 120)], 50),
        scenario("loser", &[("uat-alpha", 60)], 1),
        scenario("needs-net", &[("dev-1", 30)], 5),
        scenario("holds-net", &[("uat-alpha", 60)], 10_000),
        scenario("lazy", &[("uat-alpha", 5)], 5),
        scenario("after-too-long", &[("dev-1", 5)], 5),
    ];
    sc[3].resources = vec!["gcp-org-network".into()];
    sc[4].resources = vec!["gcp-org-network".into()];
    sc[5].exclude = Some(SkipReason::NotDue {
        detail: "weekly on Mon".into(),
    });
    sc[6].after = vec!["too-long".into()];
    // Both stacks are free for the first hour only.
    let mut input = two_stack_night(sc);
    let dev_busy = input.stacks[1].busy.clone();
    input.stacks[0].busy = dev_busy;
    let plan = plan(&input);
    assert!(check::violations(&input, &plan).is_empty());
    assert_eq!(
        reason_of(&plan, "nowhere"),
        Some(&SkipReason::NoEligibleStack)
    );
    assert_eq!(reason_of(&plan, "too-long"), Some(&SkipReason::DoesNotFit));
    assert_eq!(
        reason_of(&plan, "loser"),
        Some(&SkipReason::LostToHigherPriority)
    );
    assert_eq!(
        reason_of(&plan, "needs-net"),
        Some(&SkipReason::ResourceBusy {
            resource: "gcp-org-network".into()
        }),
        "{plan:#?}"
    );
    assert!(matches!(
        reason_of(&plan, "lazy"),
        Some(SkipReason::NotDue { .. })
    ));
    assert_eq!(
        reason_of(&plan, "after-too-long"),
        Some(&SkipReason::BlockedByAfter {
            earlier: "too-long".into()
        })
    );
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).expect("valid JSON");
    assert_eq!(json["window"]["start"], "2026-11-23T00:00:00Z");
    assert_eq!(json["night"], "2026-11-23");
    assert!(
        json["skipped"]
            .as_array()
            .expect("array")
            .iter()
            .any(|s| s["code"] == "does-not-fit")
    );
}

#[test]
fn plan_respects_after_cooldown_and_prefers_earlier_finishes() {
    let mut sc = vec![
        scenario("first", &[("uat-alpha", 30), ("dev-1", 30)], 10),
        scenario("second", &[("uat-alpha", 20), ("dev-1", 20)], 10),
    ];
    sc[1].after = vec!["first".into()];
    let input = two_stack_night(sc);
    let plan = plan(&input);
    assert_eq!(plan.objective, 20);
    let first = &plan.slots[0];
    let second = &plan.slots[1];
    assert_eq!((first.scenario.as_str(), first.start), ("first", t0()));
    // Same stack needs the cooldown; the other stack does not: earliest finish picks the other.
    assert_eq!(second.start, first.end);
    assert_ne!(second.stack, first.stack);
}

#[test]
fn plan_cycles_are_blocked_not_looping() {
    let mut sc = vec![
        scenario("a", &[("uat-alpha", 10)], 5),
        scenario("b", &[("uat-alpha", 10)], 5),
    ];
    sc[0].after = vec!["b".into()];
    sc[1].after = vec!["a".into()];
    let plan = plan(&two_stack_night(sc));
    assert!(plan.slots.is_empty());
    assert!(
        plan.skipped.iter().all(|s| s.code == "blocked-by-after"),
        "{plan:#?}"
    );
}

#[test]
fn plan_generated_nights_render() {
    let input = generate::realistic_night(7, 60);
    let plan = plan(&input);
    let g = render::gantt(&input, &plan, chrono_tz::Europe::London, 84);
    assert!(g.contains("uat-alpha |"), "{g}");
    assert!(g.contains("#"), "reservations are drawn: {g}");
    let t = render::table(&plan, chrono_tz::Europe::London);
    assert!(t.contains("START     END"), "{t}");
}

#[test]
fn the_table_shows_slots_to_the_second() {
    // A slot of 5 m 16 s starting 00:01:16 UTC (00:01:16 in London in November): minute
    // resolution would print 00:01–00:07 and `6m`, hiding a 16 s shift.
    let start = t0() + TimeDelta::seconds(76);
    let plan = Plan {
        night: NaiveDate::from_ymd_opt(2026, 11, 23).expect("valid date"),
        window: model::Window {
            start: t0(),
            end: t0() + TimeDelta::hours(7),
        },
        slots: vec![model::Slot {
            scenario: "gcp-failover-validation".into(),
            stack: "uat-alpha".into(),
            start,
            end: start + TimeDelta::seconds(316),
        }],
        skipped: Vec::new(),
        objective: 100,
    };
    let t = render::table(&plan, chrono_tz::Europe::London);
    assert!(
        t.contains("00:01:16  00:06:32  uat-alpha  5m16s     gcp-failover-validation"),
        "{t}"
    );
}

mod adapter_tests {
    use super::*;
    use crate::config::{Config, DriverConfig, Reservation, Stack};
    use crate::duration::HumanDuration;
    use crate::model::Environment;
    use crate::model::RunOutcome;
    use crate::scenario::{Cadence, Priority, Scenario, Schedule, Targets};

    fn stack(
        name: &str,
        environment: Environment,
        reservations: Vec<Reservation>,
    ) -> (String, Stack) {
        (
            name.to_owned(),
            Stack {
                name: name.to_owned(),
                environment,
                labels: Default::default(),
                clusters: Vec::new(),
                driver: DriverConfig::ChaosMesh {
                    namespace: "chaos-mesh".into(),
                    max_pods: 5,
                },
                prometheus_url: "http://127.0.0.1:9090".into(),
                scrape_interval: std::time::Duration::from_secs(15),
                alertmanager_url: None,
                silence: crate::config::SilenceConfig::for_stack(name),
                grafana: None,
                external_targets: Vec::new(),
                reservations,
            },
        )
    }

    fn scenario(name: &str, cadence: Cadence, priority: Priority, eligible: &[&str]) -> Scenario {
        Scenario {
            name: name.to_owned(),
            description: String::new(),
            owner: "sre-chaos".into(),
            tags: Vec::new(),
            source: "scenarios/x.yaml".into(),
            targets: Targets {
                eligible_stacks: eligible.iter().map(|s| (*s).to_owned()).collect(),
                ..Targets::default()
            },
            schedule: Schedule {
                cadence,
                priority,
                estimated_duration: HumanDuration::from_secs(30 * 60),
                after: Vec::new(),
                resources: Vec::new(),
            },
            given: Vec::new(),
            when: Vec::new(),
            then: Vec::new(),
            abort: Vec::new(),
        }
    }

    #[test]
    fn plan_input_from_config_scenarios_and_history() {
        let night = NaiveDate::from_ymd_opt(2026, 3, 29).expect("valid date"); // clocks go forward
        let config = Config {
            stacks: BTreeMap::from([
                stack("prod-alpha", Environment::Production, Vec::new()),
                stack(
                    "uat-alpha",
                    Environment::Uat,
                    vec![Reservation {
                        holder: "payments".into(),
                        start: Utc
                            .with_ymd_and_hms(2026, 3, 29, 4, 0, 0)
                            .single()
                            .expect("valid"),
                        end: Utc
                            .with_ymd_and_hms(2026, 3, 29, 9, 0, 0)
                            .single()
                            .expect("valid"),
                        reason: "release".into(),
                    }],
                ),
                stack("dev-alpha", Environment::Dev, Vec::new()),
            ]),
            ..Config::default()
        };
        let scenarios = vec![
            scenario(
                "nightly",
                Cadence::Nightly,
                Priority::Critical,
                &["prod-alpha", "uat-alpha", "dev-alpha"],
            ),
            scenario("manual", Cadence::Manual, Priority::High, &["uat-alpha"]),
            scenario(
                "weekly-mon",
                Cadence::Weekly {
                    weekday: chrono::Weekday::Mon,
                },
                Priority::Low,
                &["dev-alpha"],
            ),
        ];
        let run = |days: i64, minutes: i64| PastRun {
            scenario: "nightly".into(),
            stack: "dev-alpha".into(),
            started_at: Utc
                .with_ymd_and_hms(2026, 3, 29, 0, 0, 0)
                .single()
                .expect("valid")
                - TimeDelta::days(days),
            ended_at: Utc
                .with_ymd_and_hms(2026, 3, 29, 0, 0, 0)
                .single()
                .expect("valid")
                - TimeDelta::days(days)
                + mins(minutes),
            outcome: RunOutcome::Passed,
        };
        let history = vec![run(3, 40), run(4, 50), run(5, 45)];
        let input = plan_input(night, &config, &scenarios, &history);
        assert_eq!(input.window.length(), TimeDelta::hours(6), "DST night");
        let nightly = &input.scenarios[0];
        let stacks: Vec<&str> = nightly.options.iter().map(|o| o.stack.as_str()).collect();
        assert_eq!(
            stacks,
            ["uat-alpha", "dev-alpha"],
            "production needs allowProduction"
        );
        assert_eq!(nightly.options[0].duration, mins(30), "declared estimate");
        assert_eq!(
            nightly.options[1].duration,
            mins(50),
            "learned p90 on dev-alpha"
        );
        assert_eq!(
            nightly.weight,
            100 * 30,
            "critical, 3 nights stale (capped at 3x)"
        );
        // The team's own weights (spec.planner.priorityWeights) replace the defaults.
        let weighted = Config {
            priority_weights: crate::config::PriorityWeights {
                critical: 7,
                ..Default::default()
            },
            ..config.clone()
        };
        let input_weighted = plan_input(night, &weighted, &scenarios, &history);
        assert_eq!(input_weighted.scenarios[0].weight, 7 * 30);
        assert!(matches!(
            input.scenarios[1].exclude,
            Some(SkipReason::NotDue { .. })
        ));
        assert!(
            input.scenarios[2].exclude.is_some(),
            "2026-03-29 is a Sunday"
        );
        let uat = input
            .stacks
            .iter()
            .find(|s| s.name == "uat-alpha")
            .expect("uat-alpha");
        assert_eq!(uat.busy.len(), 1);
        let plan = plan(&input);
        assert!(check::violations(&input, &plan).is_empty());
        assert_eq!(plan.slots.len(), 1);
        assert_eq!(plan.skipped.len(), 2);
    }
}

/// The shipped library with `config/NAME`.
fn shipped(config: &str) -> crate::scenario::Library {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(config);
    crate::scenario::load_library(&dir).unwrap_or_else(|d| panic!("{d}"))
}

/// The planner never places a pair the driver cannot run: a scenario only sandbox stacks
/// could take is skipped naming what the driver lacks; one with a capable stack left keeps
/// only that one.
#[test]
fn the_planner_leaves_out_what_a_driver_cannot_run() {
    let night = chrono::NaiveDate::from_ymd_opt(2026, 12, 8).unwrap();
    let local = shipped("local");
    let scenarios: Vec<_> = local.scenarios.values().cloned().collect();
    let input = crate::plan::plan_input(night, &local.config, &scenarios, &[]);
    let latency = input
        .scenarios
        .iter()
        .find(|s| s.name == "payment-latency-injection")
        .unwrap();
    assert!(latency.options.is_empty());
    let Some(crate::plan::SkipReason::NoCapableStack { detail }) = &latency.exclude else {
        panic!("{:?}", latency.exclude);
    };
    assert!(
        detail.starts_with("local: driver local cannot inject network-delay"),
        "{detail}"
    );

    // uat-alpha driven by the sandbox driver: the latency scenario keeps its other stacks.
    let mut production = shipped("example-production");
    let sandbox = local.config.stacks["local"].driver.clone();
    production
        .config
        .stacks
        .get_mut("uat-alpha")
        .unwrap()
        .driver = sandbox;
    let scenarios: Vec<_> = production.scenarios.values().cloned().collect();
    let input = crate::plan::plan_input(night, &production.config, &scenarios, &[]);
    let latency = input
        .scenarios
        .iter()
        .find(|s| s.name == "payment-latency-injection")
        .unwrap();
    let stacks: Vec<&str> = latency.options.iter().map(|o| o.stack.as_str()).collect();
    assert!(
        !stacks.is_empty() && !stacks.contains(&"uat-alpha"),
        "{stacks:?}"
    );
    assert!(latency.exclude.is_none());
}
