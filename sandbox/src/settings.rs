//! Stack settings (`<state_dir>/<stack>/settings.json`) and the gateway's routing settings with
//! their two documented profiles.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// The three clouds of every stack, in routing order.
pub const CLOUDS: [&str; 3] = ["gcp", "aws", "azure"];

/// Everything `up` was asked for; its hash is part of the stack fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSettings {
    /// Stack name.
    pub stack: String,
    /// First port of the stack's port range (see [`crate::ports`]).
    pub port_base: u16,
    /// Payment-API nodes per cloud (1–10).
    pub nodes_per_cloud: u8,
    /// Payments per second the simulator starts with.
    pub tps: f64,
    /// Processing time of one payment on a node, in milliseconds.
    pub node_latency_ms: u64,
    /// The simulator's load tick in milliseconds: each tick sends the payments due.
    #[serde(default = "default_load_tick_ms")]
    pub load_tick_ms: u64,
    /// When set, the stack stops itself this many seconds after `up` (dead-man switch).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Whether an Alertmanager runs with the stack.
    pub alertmanager: bool,
    /// Gateway routing settings.
    pub gateway: GatewaySettings,
}

impl StackSettings {
    /// Checks ranges; the error names the bad setting.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let bad = |msg: String| Err(SandboxError::InvalidSettings(msg));
        if self.stack.is_empty()
            || !self
                .stack
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(format!(
                "stack name `{}` must be non-empty ASCII letters, digits, `-` or `_`",
                self.stack
            ));
        }
        if self.nodes_per_cloud == 0 || self.nodes_per_cloud > crate::ports::MAX_NODES_PER_CLOUD {
            return bad(format!(
                "--nodes-per-cloud must be 1..=10, not {}",
                self.nodes_per_cloud
            ));
        }
        if u32::from(self.port_base) + u32::from(crate::ports::SPAN) > 65535
            || self.port_base < 1024
        {
            return bad(format!(
                "--port-base must be 1024..=65435, not {}",
                self.port_base
            ));
        }
        if !(1..=1_000).contains(&self.load_tick_ms) {
            return bad(format!(
                "--load-tick must be 1ms..=1s, not {}ms",
                self.load_tick_ms
            ));
        }
        if !(self.tps.is_finite() && self.tps >= 0.0 && self.tps <= 10_000.0) {
            return bad(format!("--tps must be 0..=10000, not {}", self.tps));
        }
        self.gateway.validate()
    }
}

fn default_load_tick_ms() -> u64 {
    50
}

/// A named starting point for the gateway settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayProfile {
    /// Health checks every 200 ms (100 ms timeout), request timeout 100 ms, up to 2 retries on
    /// other clouds, a failing backend is ejected at once: a cloud loss costs a few retries.
    Aggressive,
    /// Health checks every 5 s (2 s timeout, 2 failures to eject), request timeout 2 s, no retry:
    /// a cloud loss fails or stalls the payments routed to it for several seconds.
    Slow,
}

impl std::fmt::Display for GatewayProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Aggressive => "aggressive",
            Self::Slow => "slow",
        })
    }
}

/// How the gateway checks backends, times out, retries and fails over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Profile these settings started from (individual fields may have been overridden).
    pub profile: GatewayProfile,
    /// Interval between active health checks of each backend, in milliseconds.
    pub health_interval_ms: u64,
    /// Timeout of one health check, in milliseconds.
    pub health_timeout_ms: u64,
    /// Consecutive failed checks before a backend is marked unhealthy.
    pub unhealthy_threshold: u32,
    /// Consecutive good checks before an unhealthy backend is used again.
    pub healthy_threshold: u32,
    /// Timeout of one upstream payment request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Extra attempts after a failed upstream request (0 = no retry).
    pub retries: u32,
    /// Whether a retry must go to another cloud than the attempts before it (failover).
    pub retry_other_cloud: bool,
    /// Whether a failed payment request marks its backend unhealthy at once (passive check).
    pub eject_on_failure: bool,
}

impl GatewaySettings {
    /// The settings of a profile.
    pub fn profile(profile: GatewayProfile) -> Self {
        match profile {
            GatewayProfile::Aggressive => Self {
                profile,
                health_interval_ms: 200,
                health_timeout_ms: 100,
                unhealthy_threshold: 1,
                healthy_threshold: 2,
                request_timeout_ms: 100,
                retries: 2,
                retry_other_cloud: true,
                eject_on_failure: true,
            },
            GatewayProfile::Slow => Self {
                profile,
                health_interval_ms: 5_000,
                health_timeout_ms: 2_000,
                unhealthy_threshold: 2,
                healthy_threshold: 1,
                request_timeout_ms: 2_000,
                retries: 0,
                retry_other_cloud: false,
                eject_on_failure: false,
            },
        }
    }

    fn validate(&self) -> Result<(), SandboxError> {
        let bad = |msg: &str| Err(SandboxError::InvalidSettings(msg.to_string()));
        if self.health_interval_ms < 10 {
            return bad("--health-interval must be at least 10ms");
        }
        if self.health_timeout_ms < 1 || self.request_timeout_ms < 1 {
            return bad("timeouts must be at least 1ms");
        }
        if self.unhealthy_threshold == 0 || self.healthy_threshold == 0 {
            return bad("health thresholds must be at least 1");
        }
        if self.retries > 5 {
            return bad("--retries must be 0..=5");
        }
        Ok(())
    }

    /// Health-check interval.
    pub fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health_interval_ms)
    }
    /// Health-check timeout.
    pub fn health_timeout(&self) -> Duration {
        Duration::from_millis(self.health_timeout_ms)
    }
    /// Upstream request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The full, explicit command-line form (every setting spelled out), as passed to the gateway
    /// process; so the gateway's command line — and with it the fingerprint — shows its settings.
    pub fn to_args(&self) -> Vec<String> {
        let ms = |v: u64| humantime::format_duration(Duration::from_millis(v)).to_string();
        vec![
            "--gateway-profile".into(),
            self.profile.to_string(),
            "--health-interval".into(),
            ms(self.health_interval_ms),
            "--health-timeout".into(),
            ms(self.health_timeout_ms),
            "--unhealthy-threshold".into(),
            self.unhealthy_threshold.to_string(),
            "--healthy-threshold".into(),
            self.healthy_threshold.to_string(),
            "--request-timeout".into(),
            ms(self.request_timeout_ms),
            "--retries".into(),
            self.retries.to_string(),
            "--retry-other-cloud".into(),
            self.retry_other_cloud.to_string(),
            "--eject-on-failure".into(),
            self.eject_on_failure.to_string(),
        ]
    }
}

/// Gateway settings on the command line: a profile plus individual overrides.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GatewayArgs {
    /// Gateway profile to start from: `aggressive` (default for `up`) or `slow`.
    #[arg(long, value_enum)]
    pub gateway_profile: Option<GatewayProfile>,
    /// Interval between health checks of each backend, e.g. `200ms`, `5s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub health_interval: Option<Duration>,
    /// Timeout of one health check.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub health_timeout: Option<Duration>,
    /// Consecutive failed checks before a backend is marked unhealthy.
    #[arg(long)]
    pub unhealthy_threshold: Option<u32>,
    /// Consecutive good checks before a backend is used again.
    #[arg(long)]
    pub healthy_threshold: Option<u32>,
    /// Timeout of one upstream payment request.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Extra attempts after a failed upstream request (0 = none).
    #[arg(long)]
    pub retries: Option<u32>,
    /// Whether retries must go to another cloud (failover).
    #[arg(long)]
    pub retry_other_cloud: Option<bool>,
    /// Whether a failed request marks its backend unhealthy at once.
    #[arg(long)]
    pub eject_on_failure: Option<bool>,
}

impl GatewayArgs {
    /// Whether any gateway setting was given.
    pub fn is_empty(&self) -> bool {
        self.gateway_profile.is_none()
            && self.health_interval.is_none()
            && self.health_timeout.is_none()
            && self.unhealthy_threshold.is_none()
            && self.healthy_threshold.is_none()
            && self.request_timeout.is_none()
            && self.retries.is_none()
            && self.retry_other_cloud.is_none()
            && self.eject_on_failure.is_none()
    }

    /// Applies these arguments to `current`: a profile resets every field to that profile's values,
    /// then individual flags override.
    pub fn apply(&self, current: &GatewaySettings) -> GatewaySettings {
        let mut s = match self.gateway_profile {
            Some(p) => GatewaySettings::profile(p),
            None => current.clone(),
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if let Some(d) = self.health_interval {
            s.health_interval_ms = ms(d);
        }
        if let Some(d) = self.health_timeout {
            s.health_timeout_ms = ms(d);
        }
        if let Some(v) = self.unhealthy_threshold {
            s.unhealthy_threshold = v;
        }
        if let Some(v) = self.healthy_threshold {
            s.healthy_threshold = v;
        }
        if let Some(d) = self.request_timeout {
            s.request_timeout_ms = ms(d);
        }
        if let Some(v) = self.retries {
            s.retries = v;
        }
        if let Some(v) = self.retry_other_cloud {
            s.retry_other_cloud = v;
        }
        if let Some(v) = self.eject_on_failure {
            s.eject_on_failure = v;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_then_overrides() {
        let args = GatewayArgs {
            gateway_profile: Some(GatewayProfile::Slow),
            retries: Some(1),
            ..GatewayArgs::default()
        };
        let s = args.apply(&GatewaySettings::profile(GatewayProfile::Aggressive));
        assert_eq!(s.health_interval_ms, 5_000);
        assert_eq!(s.retries, 1);
        assert_eq!(s.profile, GatewayProfile::Slow);
    }

    #[test]
    fn to_args_round_trips_through_apply() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            g: GatewayArgs,
        }
        let mut s = GatewaySettings::profile(GatewayProfile::Aggressive);
        s.health_interval_ms = 1_500;
        s.eject_on_failure = false;
        let mut argv = vec!["p".to_string()];
        argv.extend(s.to_args());
        let parsed = P::parse_from(argv);
        assert_eq!(
            parsed
                .g
                .apply(&GatewaySettings::profile(GatewayProfile::Slow)),
            s
        );
    }
}
