//! The compile step: raw catalogue and scenario files → validated [`Slo`]s and [`Scenario`]s,
//! collecting every diagnostic (vector's `config/compiler.rs` shape) instead of stopping at the
//! first. Checks: references (SLO, team, stack, resource, `after:`), PromQL syntax
//! (`promql-parser`), durations (syntax and per-field bounds), a fault longer than the chaos
//! window, `after:` cycles (petgraph), selectors matching no stack, and production targets
//! without opt-in.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::model::*;
use super::raw::*;
use super::yaml::{YamlFile, closest};
use crate::config::Config;
use crate::duration::HumanDuration;
use crate::model::Environment;

/// Default for `load.settleWithin`.
const DEFAULT_SETTLE: Duration = Duration::from_secs(30);
/// Default for `stress.cpuLoadPercent`.
const DEFAULT_CPU_LOAD: u32 = 100;

/// Parses PromQL once per distinct text (shipped scenarios reuse catalogue queries).
#[derive(Default)]
pub(crate) struct PromqlCache {
    seen: HashMap<String, Result<(), String>>,
}

impl PromqlCache {
    /// `Ok` if `query` parses to an instant vector or a scalar; otherwise the reason.
    pub(crate) fn check(&mut self, query: &str) -> Result<(), String> {
        if let Some(r) = self.seen.get(query) {
            return r.clone();
        }
        let result = if query.trim().is_empty() {
            Err("empty PromQL query".to_owned())
        } else {
            match promql_parser::parser::parse(query) {
                Ok(expr) => match expr.value_type() {
                    promql_parser::parser::value::ValueType::Vector
                    | promql_parser::parser::value::ValueType::Scalar => Ok(()),
                    other => Err(format!(
                        "the query yields a {other}, but a check needs an instant vector or a scalar"
                    )),
                },
                Err(e) => Err(format!("invalid PromQL: {}", e.trim())),
            }
        };
        self.seen.insert(query.to_owned(), result.clone());
        result
    }
}

/// Names known to the compile step, with a hint for typos.
fn unknown(what: &str, name: &str, known: &[String]) -> (String, Option<String>) {
    let message = format!("unknown {what} `{name}`");
    let help = match closest(name, known) {
        Some(guess) => Some(format!("did you mean `{guess}`?")),
        None if known.is_empty() => None,
        None if known.len() <= 12 => Some(format!("known {what}s: {}", known.join(", "))),
        None => None,
    };
    (message, help)
}

fn with_help(d: Diagnostic, help: Option<String>) -> Diagnostic {
    match help {
        Some(h) => d.help(h),
        None => d,
    }
}

/// The shortest value a duration field accepts.
#[derive(Debug, Clone, Copy)]
enum Min {
    /// `0s` is allowed.
    Zero,
    /// Anything above zero.
    Positive,
    /// At least this long (inclusive).
    AtLeast(Duration),
}

/// The bounds of one kind of duration field, and what it is called in messages.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// The field as people call it: "fault duration".
    what: &'static str,
    min: Min,
    /// The longest accepted value (inclusive).
    max: Duration,
}

const HOUR: Duration = Duration::from_secs(3600);

/// `spec.when[].duration`: 1 s to 24 h (and never longer than the chaos window, checked
/// separately); shorter faults are gone before the first evaluation point.
const FAULT_DURATION: Bounds = Bounds {
    what: "fault duration",
    min: Min::AtLeast(Duration::from_secs(1)),
    max: Duration::from_secs(24 * 3600),
};
/// `spec.schedule.estimatedDuration`: above zero, at most 24 h (a whole night and more).
const ESTIMATED_DURATION: Bounds = Bounds {
    what: "estimated duration",
    min: Min::Positive,
    max: Duration::from_secs(24 * 3600),
};
/// `spec.given[].settleWithin`: above zero, at most 1 h.
const SETTLE_WITHIN: Bounds = Bounds {
    what: "settle time",
    min: Min::Positive,
    max: HOUR,
};
/// `spec.then[].hold.recover-within`: above zero, at most 1 h.
const RECOVER_WITHIN: Bounds = Bounds {
    what: "recovery bound",
    min: Min::Positive,
    max: HOUR,
};
/// `network-delay` `latency`: above zero, at most 1 min.
const LATENCY: Bounds = Bounds {
    what: "latency",
    min: Min::Positive,
    max: Duration::from_secs(60),
};
/// `network-delay` `jitter`: zero to 1 min.
const JITTER: Bounds = Bounds {
    what: "jitter",
    min: Min::Zero,
    max: Duration::from_secs(60),
};

/// Parses a duration field and checks it against `bounds`; on `None` the diagnostic (at the
/// field's value) is already pushed.
fn duration(
    file: &YamlFile,
    field: &str,
    text: &str,
    bounds: Bounds,
    diags: &mut Diagnostics,
) -> Option<HumanDuration> {
    let Bounds { what, min, max } = bounds;
    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let range = match min {
        Min::Zero => format!("{what} is at most {}", HumanDuration(max)),
        Min::Positive => format!("{what} is above zero and at most {}", HumanDuration(max)),
        Min::AtLeast(m) => format!(
            "{what} is at least {} and at most {}",
            HumanDuration(m),
            HumanDuration(max)
        ),
    };
    let too_long = || {
        file.error_at(
            field,
            format!(
                "{what} `{text}` is too long: at most {}",
                HumanDuration(max)
            ),
        )
        .help(format!("{article} {range}"))
    };
    let d = match text.parse::<HumanDuration>() {
        Ok(d) => d,
        Err(e) if e.too_long => {
            diags.push(too_long());
            return None;
        }
        Err(e) => {
            diags.push(
                file.error_at(field, format!("invalid {what} `{text}`"))
                    .help(format!("{}; write e.g. `90s`, `5m`, `1h30m`", e.reason)),
            );
            return None;
        }
    };
    let problem = match min {
        _ if d.as_std() > max => Some(too_long()),
        Min::Positive if d.as_std().is_zero() => Some(
            file.error_at(field, format!("{what} `{text}` must be greater than zero"))
                .help(format!("{article} {range}")),
        ),
        Min::AtLeast(m) if d.as_std() < m => Some(
            file.error_at(
                field,
                format!(
                    "{what} `{text}` is too short: at least {}",
                    HumanDuration(m)
                ),
            )
            .help(format!("{article} {range}")),
        ),
        _ => None,
    };
    match problem {
        Some(p) => {
            diags.push(p);
            None
        }
        None => Some(d),
    }
}

fn check_name(file: &YamlFile, field: &str, name: &str, what: &str, diags: &mut Diagnostics) {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        diags.push(
            file.error_at(field, format!("invalid {what} name `{name}`"))
                .help("use lower-case letters, digits and `-` (kebab-case), at most 63 characters"),
        );
    }
}

fn check_threshold(file: &YamlFile, field: &str, t: f64, diags: &mut Diagnostics) {
    if !t.is_finite() {
        diags.push(file.error_at(field, "threshold must be a finite number"));
    }
}

/// Compiles every catalogue file. SLO owners are checked against `config`'s teams when given.
pub(crate) fn compile_catalogue(
    files: &[(&YamlFile, RawCatalogueFile)],
    config: Option<&Config>,
    promql: &mut PromqlCache,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Slo> {
    let mut out: BTreeMap<String, Slo> = BTreeMap::new();
    let mut defined_at: HashMap<String, (std::path::PathBuf, usize)> = HashMap::new();
    let teams: Vec<String> = config
        .map(|c| c.teams.keys().cloned().collect())
        .unwrap_or_default();
    for (file, raw) in files {
        for (i, slo) in raw.spec.slos.iter().enumerate() {
            let at = |f: &str| format!("spec.slos[{i}].{f}");
            check_name(file, &at("name"), &slo.name, "SLO", diags);
            if let Some((first_file, line)) = defined_at.get(&slo.name) {
                diags.push(
                    file.error_at(&at("name"), format!("SLO `{}` is defined twice", slo.name))
                        .help(format!("first defined at {}:{line}", first_file.display())),
                );
                continue;
            }
            defined_at.insert(
                slo.name.clone(),
                (file.path.clone(), file.pos(&at("name")).line),
            );
            if config.is_some() && !teams.contains(&slo.owner) {
                let (m, h) = unknown("team", &slo.owner, &teams);
                diags.push(with_help(file.error_at(&at("owner"), m), h));
            }
            if let Err(e) = promql.check(&slo.query) {
                diags.push(file.error_at(&at("query"), e));
            }
            check_threshold(file, &at("threshold"), slo.threshold, diags);
            for (field, text) in [
                ("impact", &slo.impact),
                ("action", &slo.action),
                ("unit", &slo.unit),
            ] {
                if text.trim().is_empty() {
                    diags.push(file.error_at(&at(field), format!("`{field}` must not be empty")));
                }
            }
            out.insert(
                slo.name.clone(),
                Slo {
                    name: slo.name.clone(),
                    owner: slo.owner.clone(),
                    description: slo.description.trim().to_owned(),
                    query: slo.query.trim().to_owned(),
                    op: slo.op.into(),
                    threshold: slo.threshold,
                    unit: slo.unit.clone(),
                    impact: slo.impact.trim().to_owned(),
                    action: slo.action.trim().to_owned(),
                    source: file.path.clone(),
                },
            );
        }
    }
    out
}

/// What the compile step needs besides the files.
pub(crate) struct Context<'a> {
    pub catalogue: &'a BTreeMap<String, Slo>,
    /// None = no config given: team, stack and resource references are not checked.
    pub config: Option<&'a Config>,
}

/// A check as written in a step (shared by steady-state, Then and abort).
struct RawCheck<'a> {
    slo: Option<&'a String>,
    query: Option<&'a String>,
    op: Option<RawOp>,
    threshold: Option<f64>,
    unit: Option<&'a String>,
}

fn compile_check(
    file: &YamlFile,
    at: &str,
    raw: RawCheck<'_>,
    ctx: &Context<'_>,
    promql: &mut PromqlCache,
    diags: &mut Diagnostics,
) -> Option<Check> {
    let f = |x: &str| format!("{at}.{x}");
    if let Some(t) = raw.threshold {
        check_threshold(file, &f("threshold"), t, diags);
    }
    match (raw.slo, raw.query) {
        (Some(_), Some(_)) => {
            diags.push(
                file.error_at_key(&f("query"), "both `slo` and `query` given")
                    .help("refer to a catalogue SLO with `slo:` or write an inline `query`/`op`/`threshold`, not both"),
            );
            None
        }
        (None, None) => {
            diags.push(
                file.error_at(at, "no check: give `slo:` (a catalogue name) or an inline `query`, `op` and `threshold`"),
            );
            None
        }
        (Some(name), None) => match ctx.catalogue.get(name) {
            Some(slo) => {
                let mut check = slo.check();
                if let Some(op) = raw.op {
                    check.op = op.into();
                }
                if let Some(t) = raw.threshold {
                    check.threshold = t;
                }
                if let Some(u) = raw.unit {
                    check.unit = Some(u.clone());
                }
                Some(check)
            }
            None => {
                let known: Vec<String> = ctx.catalogue.keys().cloned().collect();
                let (m, h) = unknown("SLO", name, &known);
                diags.push(with_help(file.error_at(&f("slo"), m), h));
                None
            }
        },
        (None, Some(query)) => {
            let mut ok = true;
            if let Err(e) = promql.check(query) {
                diags.push(file.error_at(&f("query"), e));
                ok = false;
            }
            let (Some(op), Some(threshold)) = (raw.op, raw.threshold) else {
                diags.push(file.error_at(at, "an inline check needs `op` and `threshold`"));
                return None;
            };
            ok.then(|| Check {
                query: query.trim().to_owned(),
                op: op.into(),
                threshold,
                unit: raw.unit.cloned(),
                slo: None,
            })
        }
    }
}

fn check_selector(
    file: &YamlFile,
    field: &str,
    selector: &BTreeMap<String, String>,
    diags: &mut Diagnostics,
) {
    if selector.is_empty() {
        diags.push(
            file.error_at(
                field,
                "empty selector: it would select every workload of the stack",
            )
            .help("narrow the blast radius, e.g. `selector: {cloud: gcp}`"),
        );
    }
}

fn check_team(
    file: &YamlFile,
    field: &str,
    team: &str,
    ctx: &Context<'_>,
    diags: &mut Diagnostics,
) {
    if let Some(config) = ctx.config
        && !config.teams.contains_key(team)
    {
        let known: Vec<String> = config.teams.keys().cloned().collect();
        let (m, h) = unknown("team", team, &known);
        diags.push(with_help(file.error_at(field, m), h));
    }
}

/// Compiles one scenario file (reference checks against `ctx`; `after:` targets and cycles are
/// checked by [`check_after`] once all scenarios are known).
pub(crate) fn compile_scenario(
    file: &YamlFile,
    raw: &RawScenarioFile,
    ctx: &Context<'_>,
    promql: &mut PromqlCache,
    diags: &mut Diagnostics,
) -> Option<Scenario> {
    let before = diags.error_count();
    let meta = &raw.metadata;
    let spec = &raw.spec;
    check_name(file, "metadata.name", &meta.name, "scenario", diags);
    check_team(file, "metadata.owner", &meta.owner, ctx, diags);

    let window = ctx
        .config
        .map(|c| c.window.length())
        .unwrap_or(Duration::from_secs(7 * 3600));

    // Targets.
    let targets = compile_targets(file, &spec.targets, ctx, diags);

    // Schedule.
    let s = &spec.schedule;
    let cadence = match s.cadence {
        RawCadence::Nightly => Cadence::Nightly,
        RawCadence::Manual => Cadence::Manual,
        RawCadence::Weekly(day) => Cadence::Weekly {
            weekday: day.into(),
        },
        RawCadence::EveryNights(0) => {
            diags.push(file.error_at("spec.schedule.cadence", "`everyNights` must be at least 1"));
            Cadence::Nightly
        }
        RawCadence::EveryNights(n) => Cadence::EveryNNights { nights: n },
    };
    let priority = match s.priority {
        RawPriority::Low => Priority::Low,
        RawPriority::Medium => Priority::Medium,
        RawPriority::High => Priority::High,
        RawPriority::Critical => Priority::Critical,
    };
    let estimated = duration(
        file,
        "spec.schedule.estimatedDuration",
        &s.estimated_duration,
        ESTIMATED_DURATION,
        diags,
    );
    if let Some(est) = estimated
        && est.as_std() > window
    {
        let d = file.error_at(
            "spec.schedule.estimatedDuration",
            format!(
                "estimated duration {est} is longer than the chaos window ({})",
                HumanDuration(window)
            ),
        );
        diags.push(if cadence == Cadence::Manual {
            Diagnostic {
                severity: super::Severity::Warning,
                ..d
            }
        } else {
            d.help("it could never be planned; split the scenario or shorten its faults")
        });
    }
    if let Some(config) = ctx.config {
        for (i, r) in s.resources.iter().enumerate() {
            if !config.resources.contains_key(r) {
                let known: Vec<String> = config.resources.keys().cloned().collect();
                let (m, h) = unknown("resource", r, &known);
                diags.push(with_help(
                    file.error_at(&format!("spec.schedule.resources[{i}]"), m),
                    h,
                ));
            }
        }
    }

    // Given.
    let mut given = Vec::new();
    for (i, step) in spec.given.iter().enumerate() {
        let at = format!("spec.given[{i}]");
        match step {
            RawGivenStep::SteadyState {
                name,
                slo,
                query,
                op,
                threshold,
                unit,
            } => {
                let raw = RawCheck {
                    slo: slo.as_ref(),
                    query: query.as_ref(),
                    op: *op,
                    threshold: *threshold,
                    unit: unit.as_ref(),
                };
                if let Some(check) = compile_check(file, &at, raw, ctx, promql, diags) {
                    given.push(GivenStep::SteadyState {
                        name: name.clone(),
                        check,
                    });
                }
            }
            RawGivenStep::Load {
                name,
                tps,
                settle_within,
            } => {
                if !(tps.is_finite() && *tps > 0.0) {
                    diags.push(file.error_at(
                        &format!("{at}.tps"),
                        "`tps` must be a positive number of payments per second",
                    ));
                }
                let settle = match settle_within {
                    Some(t) => {
                        duration(file, &format!("{at}.settleWithin"), t, SETTLE_WITHIN, diags)
                    }
                    None => Some(HumanDuration(DEFAULT_SETTLE)),
                };
                if let Some(settle_within) = settle {
                    given.push(GivenStep::Load {
                        name: name.clone(),
                        tps: *tps,
                        settle_within,
                    });
                }
            }
        }
    }

    // When.
    // (`has` looks at the file: a partial value may have lost its items to structural errors.)
    if spec.when.is_empty() && !file.has("spec.when[0]") {
        diags.push(file.error_at("spec.when", "a scenario needs at least one fault in `when`"));
    }
    let mut when = Vec::new();
    for (i, step) in spec.when.iter().enumerate() {
        let at = format!("spec.when[{i}]");
        let f = |x: &str| format!("{at}.{x}");
        let (name, dur_text) = fault_name_and_duration(step);
        let dur = duration(file, &f("duration"), dur_text, FAULT_DURATION, diags);
        if let Some(d) = dur
            && d.as_std() > window
        {
            diags.push(
                file.error_at(
                    &f("duration"),
                    format!(
                        "fault duration {d} is longer than the chaos window ({})",
                        HumanDuration(window)
                    ),
                )
                .help("a fault must fit in the nightly window; shorten it"),
            );
        }
        let fault = match step {
            RawFaultStep::NetworkPartition {
                selector,
                direction,
                target,
                external_targets,
                stack_external_targets,
                ..
            } => {
                check_selector(file, &f("selector"), selector, diags);
                for (j, t) in external_targets.iter().enumerate() {
                    if t.trim().is_empty() || t.contains(char::is_whitespace) {
                        diags.push(file.error_at(&format!("{at}.externalTargets[{j}]"), format!("invalid external target `{t}`: expected a host name, IP address or CIDR")));
                    }
                }
                Some(Fault::NetworkPartition {
                    selector: selector.clone(),
                    direction: match direction.unwrap_or(RawDirection::Both) {
                        RawDirection::To => Direction::To,
                        RawDirection::From => Direction::From,
                        RawDirection::Both => Direction::Both,
                    },
                    target: target.clone(),
                    external_targets: external_targets.clone(),
                    stack_external_targets: *stack_external_targets,
                })
            }
            RawFaultStep::CloudLoss { cloud, .. } => Some(Fault::CloudLoss {
                cloud: (*cloud).into(),
            }),
            RawFaultStep::PodKill {
                selector, max_pods, ..
            } => {
                check_selector(file, &f("selector"), selector, diags);
                if *max_pods == Some(0) {
                    diags.push(file.error_at(&f("maxPods"), "`maxPods` must be at least 1"));
                }
                Some(Fault::PodKill {
                    selector: selector.clone(),
                    max_pods: *max_pods,
                })
            }
            RawFaultStep::NetworkDelay {
                selector,
                latency,
                jitter,
                ..
            } => {
                check_selector(file, &f("selector"), selector, diags);
                let latency = duration(file, &f("latency"), latency, LATENCY, diags);
                let jitter = match jitter {
                    Some(j) => duration(file, &f("jitter"), j, JITTER, diags),
                    None => Some(HumanDuration::default()),
                };
                match (latency, jitter) {
                    (Some(latency), Some(jitter)) => Some(Fault::NetworkDelay {
                        selector: selector.clone(),
                        latency,
                        jitter,
                    }),
                    _ => None,
                }
            }
            RawFaultStep::Stress {
                selector,
                cpu_workers,
                cpu_load_percent,
                memory_size,
                ..
            } => {
                check_selector(file, &f("selector"), selector, diags);
                let load = cpu_load_percent.unwrap_or(DEFAULT_CPU_LOAD);
                if load > 100 {
                    diags.push(file.error_at(
                        &f("cpuLoadPercent"),
                        "`cpuLoadPercent` is a percentage: 0–100",
                    ));
                }
                if *cpu_workers == 0 && memory_size.is_none() {
                    diags.push(file.error_at(
                        at.as_str(),
                        "stress with neither `cpuWorkers` nor `memorySize` does nothing",
                    ));
                }
                Some(Fault::Stress {
                    selector: selector.clone(),
                    cpu_workers: *cpu_workers,
                    cpu_load_percent: load.min(100),
                    memory_size: memory_size.clone(),
                })
            }
        };
        if let (Some(fault), Some(duration)) = (fault, dur) {
            when.push(FaultStep {
                name: name.to_owned(),
                fault,
                duration,
            });
        }
    }

    // Then.
    if spec.then.is_empty() && !file.has("spec.then[0]") {
        diags.push(file.error_at(
            "spec.then",
            "a scenario needs at least one assertion in `then`",
        ));
    }
    let mut then = Vec::new();
    for (i, step) in spec.then.iter().enumerate() {
        let at = format!("spec.then[{i}]");
        check_team(file, &format!("{at}.owner"), &step.owner, ctx, diags);
        let hold = match &step.hold {
            None | Some(RawHold::DuringFault) => Some(Hold::DuringFault),
            Some(RawHold::AtEnd) => Some(Hold::AtEnd),
            Some(RawHold::AfterRecovery) => Some(Hold::AfterRecovery),
            Some(RawHold::RecoverWithin(text)) => duration(
                file,
                &format!("{at}.hold.recover-within"),
                text,
                RECOVER_WITHIN,
                diags,
            )
            .map(|within| Hold::RecoverWithin { within }),
        };
        let raw = RawCheck {
            slo: step.slo.as_ref(),
            query: step.query.as_ref(),
            op: step.op,
            threshold: step.threshold,
            unit: step.unit.as_ref(),
        };
        let check = compile_check(file, &at, raw, ctx, promql, diags);
        if let (Some(check), Some(hold)) = (check, hold) {
            then.push(ThenStep {
                name: step.name.clone(),
                owner: step.owner.clone(),
                check,
                hold,
                impact: step.impact.clone(),
                action: step.action.clone(),
            });
        }
    }

    // Abort.
    let mut abort = Vec::new();
    for (i, a) in spec.abort.iter().enumerate() {
        let at = format!("spec.abort[{i}]");
        let raw = RawCheck {
            slo: a.slo.as_ref(),
            query: a.query.as_ref(),
            op: Some(a.op),
            threshold: Some(a.threshold),
            unit: a.unit.as_ref(),
        };
        if let Some(check) = compile_check(file, &at, raw, ctx, promql, diags) {
            abort.push(AbortCondition {
                name: a.name.clone(),
                check,
            });
        }
    }

    // The estimate feeds the planner; it must cover what the file itself declares. Every term
    // is bounded above, and the sums saturate all the same (`Duration`'s `+` and `sum` panic on
    // overflow).
    let settle: Duration = given
        .iter()
        .map(|g| match g {
            GivenStep::Load { settle_within, .. } => settle_within.as_std(),
            GivenStep::SteadyState { .. } => Duration::ZERO,
        })
        .fold(Duration::ZERO, Duration::saturating_add);
    let longest_fault = when
        .iter()
        .map(|w| w.duration.as_std())
        .max()
        .unwrap_or_default();
    let recovery = then
        .iter()
        .map(|t| match t.hold {
            Hold::RecoverWithin { within } => within.as_std(),
            _ => Duration::ZERO,
        })
        .max()
        .unwrap_or_default();
    let declared = settle
        .saturating_add(longest_fault)
        .saturating_add(recovery);
    if let Some(est) = estimated
        && est.as_std() < declared
    {
        diags.push(
            file.warning_at(
                "spec.schedule.estimatedDuration",
                format!(
                    "estimated duration {est} is shorter than the declared steps ({}: load settling + longest fault + recovery bound)",
                    HumanDuration(declared)
                ),
            )
            .help("the planner reserves the estimate; raise it so the slot is not overrun"),
        );
    }

    if diags.error_count() > before {
        return None;
    }
    Some(Scenario {
        name: meta.name.clone(),
        description: meta.description.trim().to_owned(),
        owner: meta.owner.clone(),
        tags: meta.tags.clone(),
        source: file.path.clone(),
        targets,
        schedule: Schedule {
            cadence,
            priority,
            estimated_duration: estimated.unwrap_or_default(),
            after: s.after.clone(),
            resources: s.resources.clone(),
        },
        given,
        when,
        then,
        abort,
    })
}

fn fault_name_and_duration(step: &RawFaultStep) -> (&str, &str) {
    match step {
        RawFaultStep::NetworkPartition { name, duration, .. }
        | RawFaultStep::CloudLoss { name, duration, .. }
        | RawFaultStep::PodKill { name, duration, .. }
        | RawFaultStep::NetworkDelay { name, duration, .. }
        | RawFaultStep::Stress { name, duration, .. } => (name, duration),
    }
}

fn compile_targets(
    file: &YamlFile,
    raw: &RawTargets,
    ctx: &Context<'_>,
    diags: &mut Diagnostics,
) -> Targets {
    let mut targets = Targets {
        selector: raw.selector.clone(),
        stacks: raw.stacks.clone(),
        allow_production: raw.allow_production,
        eligible_stacks: Vec::new(),
    };
    let Some(config) = ctx.config else {
        return targets;
    };
    let opt_in_help =
        "production chaos needs an explicit opt-in: set `spec.targets.allowProduction: true`";
    let known: Vec<String> = config.stacks.keys().cloned().collect();
    for (i, name) in raw.stacks.iter().enumerate() {
        let field = format!("spec.targets.stacks[{i}]");
        match config.stacks.get(name) {
            None => {
                let (m, h) = unknown("stack", name, &known);
                diags.push(with_help(file.error_at(&field, m), h));
            }
            Some(stack)
                if stack.environment == Environment::Production && !raw.allow_production =>
            {
                diags.push(
                    file.error_at(
                        &field,
                        format!("production stack `{name}` targeted without opt-in"),
                    )
                    .help(opt_in_help),
                );
            }
            Some(_) => {}
        }
    }
    let matching: Vec<&crate::config::Stack> = config
        .stacks
        .values()
        .filter(|st| {
            raw.selector
                .iter()
                .all(|(k, v)| st.labels.get(k) == Some(v))
        })
        .filter(|st| raw.stacks.is_empty() || raw.stacks.contains(&st.name))
        .collect();
    targets.eligible_stacks = matching
        .iter()
        .filter(|st| raw.allow_production || st.environment != Environment::Production)
        .map(|st| st.name.clone())
        .collect();
    let field = if raw.selector.is_empty() {
        "spec.targets"
    } else {
        "spec.targets.selector"
    };
    if matching.is_empty() {
        let d = file.error_at(field, "the targets match no stack of the configuration");
        let labels: std::collections::BTreeSet<String> = config
            .stacks
            .values()
            .flat_map(|s| s.labels.iter().map(|(k, v)| format!("{k}: {v}")))
            .collect();
        let help = format!(
            "stacks in {}: {}; labels: {}",
            config.dir.display(),
            known.join(", "),
            labels.into_iter().collect::<Vec<_>>().join(", ")
        );
        diags.push(d.help(help));
    } else if targets.eligible_stacks.is_empty() && raw.stacks.is_empty() {
        let names: Vec<&str> = matching.iter().map(|s| s.name.as_str()).collect();
        diags.push(
            file.error_at(field, format!("the selector matches only production stacks ({}) and production is not opted in", names.join(", ")))
                .help(opt_in_help),
        );
    }
    targets
}

/// Checks `after:` references and cycles across all compiled scenarios. `files` maps a scenario
/// name to its file and raw model (for positions).
pub(crate) fn check_after(
    scenarios: &BTreeMap<String, (&YamlFile, &RawScenarioFile)>,
    diags: &mut Diagnostics,
) {
    let names: Vec<String> = scenarios.keys().cloned().collect();
    let mut graph: DiGraphMap<&str, ()> = DiGraphMap::new();
    for (name, (file, raw)) in scenarios {
        graph.add_node(name.as_str());
        for (i, dep) in raw.spec.schedule.after.iter().enumerate() {
            let field = format!("spec.schedule.after[{i}]");
            if dep == name {
                diags.push(
                    file.error_at(&field, format!("scenario `{name}` cannot run after itself")),
                );
            } else if !scenarios.contains_key(dep) {
                let (m, h) = unknown("scenario", dep, &names);
                diags.push(with_help(file.error_at(&field, m), h));
            } else {
                // Edge dep → name: dep must finish first.
                graph.add_edge(dep.as_str(), name.as_str(), ());
            }
        }
    }
    for component in tarjan_scc(&graph) {
        if component.len() < 2 {
            continue;
        }
        let mut members: Vec<&str> = component.clone();
        members.sort_unstable();
        // Describe the cycle in `after` order starting from the smallest name.
        let mut cycle = vec![members[0]];
        let mut cur = members[0];
        for _ in 0..members.len() {
            let next = scenarios[cur]
                .1
                .spec
                .schedule
                .after
                .iter()
                .map(String::as_str)
                .find(|d| members.contains(d));
            match next {
                Some(n) if n == members[0] => {
                    cycle.push(n);
                    break;
                }
                Some(n) if !cycle.contains(&n) => {
                    cycle.push(n);
                    cur = n;
                }
                _ => break,
            }
        }
        let shown = cycle.join(" → after → ");
        for name in &members {
            let (file, raw) = scenarios[*name];
            if let Some(i) = raw
                .spec
                .schedule
                .after
                .iter()
                .position(|d| members.contains(&d.as_str()))
            {
                diags.push(
                    file.error_at(&format!("spec.schedule.after[{i}]"), format!("`after:` cycle: {shown}"))
                        .help("scenarios in a cycle can never be planned; remove one of the `after:` entries"),
                );
            }
        }
    }
}
