//! Synthetic but realistic nights for the benchmark and the property tests: 13 stacks (4
//! production — eligible only for the few scenarios that opt in —, 3 UAT, 6 dev), a 7 h window with
//! two reservations, durations of 5–90 min that vary a little per stack, mixed eligibility,
//! priorities and staleness, `after:` chains, and one scarce resource (`gcp-org-network`,
//! capacity 1). Deterministic for a seed.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};

use super::model::{Busy, PlanInput, PlanScenario, StackAvailability, StackOption, Window};
use super::rng::SplitMix64;

/// Stack names of the generated estate, production first.
pub const STACKS: [&str; 13] = [
    "prod-1",
    "prod-2",
    "prod-3",
    "prod-4",
    "uat-alpha",
    "uat-beta",
    "uat-gamma",
    "dev-1",
    "dev-2",
    "dev-3",
    "dev-4",
    "dev-5",
    "dev-6",
];

/// The scarce resource of generated nights.
pub const SCARCE: &str = "gcp-org-network";

/// A generated night with `n` scenarios (seeded; the same seed gives the same night).
pub fn realistic_night(seed: u64, n: usize) -> PlanInput {
    let mut rng = SplitMix64::new(seed ^ 0xA11C_E5ED);
    let start = Utc
        .with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let window = Window {
        start,
        end: start + TimeDelta::hours(7),
    };
    let at = |h: i64, m: i64| start + TimeDelta::minutes(h * 60 + m);
    let mut stacks: Vec<StackAvailability> = STACKS
        .iter()
        .map(|s| StackAvailability {
            name: (*s).to_owned(),
            busy: Vec::new(),
        })
        .collect();
    stacks[6].busy.push(Busy {
        span: Window {
            start: at(5, 0),
            end: at(7, 0),
        },
        reason: "reserved by release: 4.2 rehearsal".into(),
    });
    stacks[10].busy.push(Busy {
        span: Window {
            start: at(0, 0),
            end: at(1, 30),
        },
        reason: "reserved by payments: soak test".into(),
    });
    // One more random reservation per night.
    let s = 4 + rng.below(9) as usize;
    let from = rng.range(0, 300);
    stacks[s].busy.push(Busy {
        span: Window {
            start: at(0, from),
            end: at(0, from + rng.range(20, 90)),
        },
        reason: "reserved by a team".into(),
    });

    let uat = 4..7;
    let dev = 7..13;
    let factor: Vec<f64> = (0..13)
        .map(|i| {
            if uat.contains(&i) {
                1.0 + rng.below(21) as f64 / 100.0
            } else {
                0.9 + rng.below(21) as f64 / 100.0
            }
        })
        .collect();
    let mut scenarios = Vec::with_capacity(n);
    for i in 0..n {
        let roll = rng.below(100);
        let eligible: Vec<usize> = if roll < 30 {
            uat.clone().collect()
        } else if roll < 60 {
            dev.clone().collect()
        } else if roll < 80 {
            (4..13).collect()
        } else if roll < 90 {
            vec![4 + rng.below(9) as usize]
        } else if roll < 98 {
            let k = 2 + rng.below(3) as usize;
            let mut v: Vec<usize> = Vec::new();
            while v.len() < k {
                let c = 4 + rng.below(9) as usize;
                if !v.contains(&c) {
                    v.push(c);
                }
            }
            v.sort_unstable();
            v
        } else {
            (0..7).collect() // opted in to production
        };
        let base_min = if rng.chance(60) {
            rng.range(5, 30)
        } else {
            rng.range(30, 90)
        } as f64;
        let options = eligible
            .iter()
            .map(|&s| StackOption {
                stack: STACKS[s].to_owned(),
                duration: TimeDelta::minutes((base_min * factor[s]).round().max(5.0) as i64),
            })
            .collect();
        let points = match rng.below(100) {
            0..10 => 100,
            10..35 => 10,
            35..80 => 3,
            _ => 1,
        };
        let staleness = match rng.below(100) {
            0..70 => 10,
            70..90 => rng.range(11, 20) as u64,
            _ => rng.range(21, 30) as u64,
        };
        let after = if i > 0 && rng.chance(15) {
            vec![format!("s{:04}", i - 1)]
        } else {
            Vec::new()
        };
        let resources = if rng.chance(10) {
            vec![SCARCE.to_owned()]
        } else {
            Vec::new()
        };
        scenarios.push(PlanScenario {
            name: format!("s{i:04}"),
            options,
            weight: points * staleness,
            after,
            resources,
            exclude: None,
            incapable: Vec::new(),
        });
    }
    PlanInput {
        night: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap_or_default(),
        window,
        cooldown: TimeDelta::minutes(5),
        stacks,
        scenarios,
        resources: BTreeMap::from([(SCARCE.to_owned(), 1)]),
        frozen: Vec::new(),
        not_before: None,
    }
}
