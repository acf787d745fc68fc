//! Scenario files shared by several end-to-end test modules (each module keeps the scenarios
//! only it uses next to its tests).

/// `quick-gcp-loss`: Given a steady 300 TPS, a 10 s GCP loss, the p99 latency SLO judged during
/// the fault; no steady-state Given, so no recovery wait. Manual cadence, no production opt-in.
pub const QUICK_GCP_LOSS: &str = r#"
apiVersion: f3-chaos/v1
kind: Scenario
metadata:
  name: quick-gcp-loss
  description: Test scenario - a 10 second GCP loss.
  owner: sre-chaos
spec:
  targets:
    selector: { platform: payments }
  schedule: { cadence: manual, priority: low, estimatedDuration: 1m }
  given:
    - kind: load
      name: Steady 300 TPS
      tps: 300
      settleWithin: 20s
  when:
    - kind: cloud-loss
      name: GCP connectivity lost
      cloud: gcp
      duration: 10s
  then:
    - name: Product SLO latency < 250ms
      owner: payments
      slo: payments-e2e-latency-p99
      hold: during-fault
"#;

/// The `teams:` entries (4-space indented list items) every test config needs: the owners the
/// shipped SLO catalogue (`assertions/`) and the test scenarios name.
pub const TEAMS_YAML: &str = "    - { name: sre-chaos, displayName: SRE chaos lead }
    - { name: payments, displayName: Payments team }
    - { name: infrastructure, displayName: Infrastructure team }
    - { name: payment-gateway, displayName: Payment gateway team }
    - { name: scheme-connectivity, displayName: Scheme connectivity team }
";
