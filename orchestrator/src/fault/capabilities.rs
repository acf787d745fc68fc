//! What a stack's fault driver can inject, checked before anything depends on it: `validate
//! --config` warns of each scenario × stack pair the driver cannot run, the planner never places
//! one (and names why), and a run refuses one before it touches anything
//! ([`crate::run::launch`]).
//!
//! The check asks each driver's own rules, so it refuses exactly what an injection would:
//! - **local**: the fault kinds it has a mechanism for ([`super::local::unsupported`]):
//!   `network-partition`, `cloud-loss` and `pod-kill`; not `network-delay` or `stress`.
//! - **chaos-mesh**: every When step must render into manifests for the stack
//!   ([`super::chaos_mesh::manifest::render`], pure, no API call): this refuses what Chaos Mesh
//!   cannot express (external targets with a direction other than `to`, a partition without a
//!   peer, a selector naming a cloud the stack has no cluster for, …).
//!
//! Load (a Given step's TPS) is not part of the check yet; see docs/drivers.md.

use std::fmt;

use crate::config::{DriverConfig, Stack};
use crate::fault::chaos_mesh::{RenderContext, manifest};
use crate::input::yaml::YamlFile;
use crate::scenario::Scenario;

/// A When step a stack's driver cannot inject, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incapable {
    /// The driver: `local` or `chaos-mesh`.
    pub driver: &'static str,
    /// The scenario.
    pub scenario: String,
    /// The stack.
    pub stack: String,
    /// The When step's position in `spec.when`, from 0.
    pub index: usize,
    /// The When step's name.
    pub step: String,
    /// The fault's kind (`network-delay`, …).
    pub kind: &'static str,
    /// Why, in the driver's words.
    pub reason: String,
}

impl fmt::Display for Incapable {
    /// `driver local cannot inject network-delay (When step "Payment latency +200ms"): run
    /// latency scenarios on a Chaos Mesh stack`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "driver {} cannot inject {} (When step \"{}\"): {}",
            self.driver, self.kind, self.step, self.reason
        )
    }
}

/// The driver name of `stack`'s config: `local` or `chaos-mesh`.
pub fn driver_name(stack: &Stack) -> &'static str {
    match stack.driver {
        DriverConfig::Local { .. } => "local",
        DriverConfig::ChaosMesh { .. } => "chaos-mesh",
    }
}

/// The When steps of `scenario` that `stack`'s driver cannot inject, in step order; empty when
/// it can run them all.
pub fn incapable(stack: &Stack, scenario: &Scenario) -> Vec<Incapable> {
    let driver = driver_name(stack);
    scenario
        .when
        .iter()
        .enumerate()
        .filter_map(|(index, step)| {
            let reason = match &stack.driver {
                DriverConfig::Local { .. } => {
                    super::local::unsupported(&step.fault).map(|e| match e {
                        super::FaultError::Unsupported { hint, .. } => hint.to_owned(),
                        other => other.to_string(),
                    })
                }
                DriverConfig::ChaosMesh { namespace, .. } => {
                    let ctx = RenderContext {
                        run_id: uuid::Uuid::nil(),
                        step_index: index,
                        ttl: step.duration.0,
                        ledger_id: None,
                    };
                    manifest::render(stack, namespace, step, &ctx)
                        .err()
                        .map(|e| match e {
                            super::chaos_mesh::ChaosMeshError::InvalidFault { reason, .. } => {
                                reason
                            }
                            other => other.to_string(),
                        })
                }
            }?;
            Some(Incapable {
                driver,
                scenario: scenario.name.clone(),
                stack: stack.name.clone(),
                index,
                step: step.name.clone(),
                kind: step.fault.kind(),
                reason,
            })
        })
        .collect()
}

/// Adds to `checked` a warning, at the When step, for each stack a scenario of its library may
/// run on whose driver cannot inject that step (what `validate` shows); when none of its stacks
/// can run it, one warning that it is never planned, naming what each lacks. Warnings, not
/// errors, while the sandbox driver lacks `network-delay` and `stress`: the shipped library
/// targets the sandbox too (docs/drivers.md). The files of the scenarios warned about are read
/// again for positions.
pub fn warn(checked: &mut crate::scenario::Checked) {
    let Some(library) = checked
        .runnable
        .as_ref()
        .map(|r| &r.library)
        .or(checked.library.as_ref())
    else {
        return;
    };
    for scenario in library.scenarios.values() {
        let missing: Vec<Vec<Incapable>> = scenario
            .targets
            .eligible_stacks
            .iter()
            .filter_map(|s| library.config.stacks.get(s))
            .map(|s| incapable(s, scenario))
            .collect();
        if missing.iter().all(Vec::is_empty) {
            continue;
        }
        let file = std::fs::read_to_string(&scenario.source)
            .ok()
            .and_then(|text| YamlFile::parse(&scenario.source, text).ok());
        if let Some(file) = file {
            warn_scenario(&file, &scenario.name, &missing, &mut checked.diagnostics);
        }
    }
    checked.diagnostics.sort();
}

/// [`warn`] for one scenario, whose file is `file`: `missing` holds, per stack it may run on,
/// what that stack's driver cannot inject (at least one is not empty).
fn warn_scenario(
    file: &YamlFile,
    scenario: &str,
    missing: &[Vec<Incapable>],
    diags: &mut crate::scenario::Diagnostics,
) {
    let step_field = |m: &Incapable| format!("spec.when[{}]", m.index);
    if missing.iter().all(|m| !m.is_empty()) {
        let first = &missing[0][0];
        // Stacks that lack the same thing are named together: `dev-alpha, dev-beta: driver …`.
        let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
        for m in missing {
            let reason = m[0].to_string();
            match by_reason.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, stacks)) => stacks.push(&m[0].stack),
                None => by_reason.push((reason, vec![&m[0].stack])),
            }
        }
        let each: Vec<String> = by_reason
            .iter()
            .map(|(reason, stacks)| format!("{}: {reason}", stacks.join(", ")))
            .collect();
        diags.push(
            file.warning_at(
                &step_field(first),
                format!(
                    "no stack of this config can run scenario `{}`: it is never planned ({})",
                    scenario,
                    each.join("; ")
                ),
            )
            .help("target a stack whose driver can inject it (e.g. a Chaos Mesh stack), or change the step"),
        );
        return;
    }
    for m in missing.iter().flatten() {
        diags.push(
            file.warning_at(
                &step_field(m),
                format!("stack `{}` cannot run this scenario: {m}", m.stack),
            )
            .help(format!(
                "the planner leaves `{scenario}` on `{}` out; the other stacks still run it",
                m.stack
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::incapable;
    use crate::scenario::{Direction, Fault, Library, load_library};

    fn library(config: &str) -> Library {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../config")
            .join(config);
        load_library(&dir).unwrap_or_else(|d| panic!("{d}"))
    }

    /// The sandbox driver refuses the kinds it has no mechanism for, and nothing else of the
    /// shipped library; its sentence names the driver, the kind and the step.
    #[test]
    fn the_local_driver_cannot_inject_delay_or_stress() {
        let library = library("local");
        let stack = &library.config.stacks["local"];
        let mut refused: Vec<(&str, String)> = Vec::new();
        for scenario in library.scenarios.values() {
            for m in incapable(stack, scenario) {
                refused.push((m.kind, scenario.name.clone()));
            }
        }
        refused.sort();
        assert_eq!(
            refused,
            [
                ("network-delay", "payment-latency-injection".to_owned()),
                ("stress", "gateway-cpu-stress".to_owned()),
            ]
        );
        let latency = &library.scenarios["payment-latency-injection"];
        assert_eq!(
            incapable(stack, latency)[0].to_string(),
            "driver local cannot inject network-delay (When step \"Azure payment nodes 100ms \
             slower\"): run latency scenarios on a Chaos Mesh stack"
        );
    }

    /// On a Chaos Mesh stack every shipped scenario renders; a partition cut by another cloud's
    /// pod CIDRs in both directions does not (Chaos Mesh applies external targets to egress
    /// only), and the check says why, as the injection would.
    #[test]
    fn a_chaos_mesh_stack_refuses_what_chaos_mesh_cannot_express() {
        let library = library("example-production");
        let stack = &library.config.stacks["uat-alpha"];
        for scenario in library.scenarios.values() {
            assert_eq!(incapable(stack, scenario), [], "{}", scenario.name);
        }
        let mut both = library.scenarios["partial-network-partition"].clone();
        let Fault::NetworkPartition { direction, .. } = &mut both.when[0].fault else {
            panic!("the partial partition is a network partition");
        };
        *direction = Direction::Both;
        let refused = incapable(stack, &both);
        assert_eq!(refused.len(), 1);
        assert_eq!(
            (
                refused[0].driver,
                refused[0].kind,
                refused[0].stack.as_str()
            ),
            ("chaos-mesh", "network-partition", "uat-alpha")
        );
        assert!(
            refused[0]
                .reason
                .contains("direction `both` with external targets"),
            "{}",
            refused[0]
        );
    }

    /// A scheme partition cuts the stack's own scheme endpoints from its config, never
    /// another environment's; a stack that lists none cannot run it, and says why.
    #[test]
    fn a_scheme_partition_cuts_each_stacks_own_endpoints() {
        let library = library("example-production");
        let scheme = &library.scenarios["scheme-connectivity-loss"];
        let uat = &library.config.stacks["uat-beta"];
        let ctx = super::RenderContext {
            run_id: uuid::Uuid::nil(),
            step_index: 0,
            ttl: scheme.when[0].duration.0,
            ledger_id: None,
        };
        let manifests = super::manifest::render(uat, "chaos-mesh", &scheme.when[0], &ctx).unwrap();
        assert!(!manifests.is_empty());
        for m in &manifests {
            assert_eq!(
                m.object["spec"]["externalTargets"],
                serde_json::json!(["fps-gw.test.scheme.example.net", "203.0.113.16/28"]),
                "{}",
                m.object
            );
        }
        let mut bare = uat.clone();
        bare.external_targets.clear();
        let refused = incapable(&bare, scheme);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].reason.contains("lists none"), "{}", refused[0]);
    }
}
