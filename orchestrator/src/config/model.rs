//! The validated configuration: stacks, teams, the chaos window. Produced by the config loader
//! (which reports file:line:column diagnostics) and consumed by the planner, runner and daemon.
//!
//! This is a contract between modules: add fields and variants freely, rename with care.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveTime, Utc};
use serde::Serialize;

use crate::duration::HumanDuration;
use crate::model::Labels;
use crate::model::{Cloud, Environment};

/// Default `spec.overrunNotifyAfter`: 15 minutes.
pub const DEFAULT_OVERRUN_NOTIFY_AFTER_SECS: u64 = 15 * 60;

/// The whole configuration directory, compiled.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// IANA zone in which windows and cron expressions are evaluated (default Europe/London).
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: chrono_tz::Tz,
    /// The nightly chaos window (default 00:00–07:00 local).
    pub window: ChaosWindow,
    /// Recovery buffer between two experiments on one stack.
    pub cooldown: HumanDuration,
    /// A daemon run overrunning its planned end by more than this notifies its scenario's owner
    /// (`spec.overrunNotifyAfter`, default 15 minutes).
    pub overrun_notify_after: HumanDuration,
    /// Exclusive resources and their capacity (concurrent holders across all stacks).
    pub resources: BTreeMap<String, u32>,
    /// Stacks by name.
    pub stacks: BTreeMap<String, Stack>,
    /// Teams by name.
    pub teams: BTreeMap<String, Team>,
    /// Where the store lives: `sqlite://path` or `postgres://…` (None = default SQLite file).
    pub database_url: Option<String>,
    /// Base URL of the dashboard without a trailing `/`; notifications link to
    /// `{dashboard_url}/runs/{run id}` (None = no link).
    pub dashboard_url: Option<String>,
    /// Where the scenario library and SLO catalogue live (resolved against the config file).
    pub library: LibraryPaths,
    /// Bearer tokens of the daemon's HTTP API (`spec.api.tokens`; secrets stay in the environment).
    pub api_tokens: Vec<ApiToken>,
    /// Weight points per priority class (`spec.planner.priorityWeights`).
    pub priority_weights: PriorityWeights,
    /// Passing nights after which an open finding resolves itself
    /// (`spec.findings.resolveAfterPassingNights`, default
    /// [`DEFAULT_RESOLVE_AFTER_PASSING_NIGHTS`]).
    pub resolve_findings_after: u32,
}

/// Default `spec.findings.resolveAfterPassingNights`: 3 nights.
pub const DEFAULT_RESOLVE_AFTER_PASSING_NIGHTS: u32 = 3;

/// Weight points of each priority class: what the planner maximises is the sum over a night of
/// points × staleness (docs/planner.md, "Objective").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PriorityWeights {
    /// `critical` (default 100: one outweighs nine high ones).
    pub critical: u64,
    /// `high` (default 10).
    pub high: u64,
    /// `medium` (default 3).
    pub medium: u64,
    /// `low` (default 1).
    pub low: u64,
}

impl Default for PriorityWeights {
    fn default() -> Self {
        Self {
            critical: 100,
            high: 10,
            medium: 3,
            low: 1,
        }
    }
}

impl PriorityWeights {
    /// The points of `priority`.
    pub fn points(&self, priority: crate::model::Priority) -> u64 {
        use crate::model::Priority;
        match priority {
            Priority::Critical => self.critical,
            Priority::High => self.high,
            Priority::Medium => self.medium,
            Priority::Low => self.low,
        }
    }
}

impl Default for Config {
    /// An empty configuration with the documented defaults (Europe/London, 00:00–07:00, 5m
    /// cooldown, no stacks, no teams); handy for tests: `Config { stacks, ..Default::default() }`.
    fn default() -> Self {
        Config {
            dir: PathBuf::from("."),
            timezone: chrono_tz::Europe::London,
            window: ChaosWindow::default(),
            cooldown: HumanDuration::from_secs(300),
            overrun_notify_after: HumanDuration::from_secs(DEFAULT_OVERRUN_NOTIFY_AFTER_SECS),
            resources: BTreeMap::new(),
            stacks: BTreeMap::new(),
            teams: BTreeMap::new(),
            database_url: None,
            dashboard_url: None,
            library: LibraryPaths::default(),
            api_tokens: Vec::new(),
            priority_weights: PriorityWeights::default(),
            resolve_findings_after: DEFAULT_RESOLVE_AFTER_PASSING_NIGHTS,
        }
    }
}

impl Config {
    /// Every environment variable this configuration reads a secret from — API tokens
    /// (`spec.api.tokens[].tokenEnv`), team routes (`webhookUrlEnv`, `routingKeyEnv`,
    /// `secretEnv`) and Grafana tokens (`stacks[].grafana.tokenEnv`) — sorted, each once. A
    /// deployment must provide each of them (deploy/ does, from the `f3-chaos-secrets` Secret).
    pub fn secret_envs(&self) -> std::collections::BTreeSet<&str> {
        let tokens = self.api_tokens.iter().map(|t| t.token_env.as_str());
        let routes = self
            .teams
            .values()
            .flat_map(|team| &team.routes)
            .filter_map(|route| match route {
                Route::Slack { webhook_url_env } => Some(webhook_url_env.as_str()),
                Route::Pagerduty {
                    routing_key_env, ..
                } => Some(routing_key_env.as_str()),
                Route::Webhook { secret_env, .. } => secret_env.as_deref(),
            });
        let grafana = self
            .stacks
            .values()
            .filter_map(|stack| stack.grafana.as_ref()?.token_env.as_deref());
        tokens.chain(routes).chain(grafana).collect()
    }
}

/// Directories of the scenario library and the SLO catalogue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LibraryPaths {
    /// Directory of `kind: Scenario` files (None = not configured).
    pub scenarios: Option<PathBuf>,
    /// Directory of `kind: SloCatalogue` files (None = not configured).
    pub assertions: Option<PathBuf>,
}

fn serialize_tz<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// Window in local wall-clock time; `end` ≤ `start` means it crosses midnight.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ChaosWindow {
    /// Local start time (e.g. 00:00).
    pub start: NaiveTime,
    /// Local end time (e.g. 07:00).
    pub end: NaiveTime,
}

impl Default for ChaosWindow {
    /// 00:00–07:00.
    fn default() -> Self {
        ChaosWindow {
            start: NaiveTime::MIN,
            end: NaiveTime::from_hms_opt(7, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl ChaosWindow {
    /// Length of the window (crossing midnight when `end` ≤ `start`; equal times = 24 h).
    pub fn length(&self) -> std::time::Duration {
        let secs = (self.end - self.start).num_seconds();
        let secs = if secs <= 0 { secs + 86_400 } else { secs };
        std::time::Duration::from_secs(secs.unsigned_abs())
    }
}

/// One stack: three clusters, one per cloud.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    /// Unique name, e.g. `uat-alpha`, `local`.
    pub name: String,
    /// Environment kind.
    pub environment: Environment,
    /// Labels scenarios select on (always includes `env: <environment>`).
    pub labels: Labels,
    /// One cluster per cloud.
    pub clusters: Vec<Cluster>,
    /// How faults are injected on this stack.
    pub driver: DriverConfig,
    /// Prometheus base URL for SLO queries, e.g. `http://127.0.0.1:9090`.
    pub prometheus_url: String,
    /// How often that Prometheus scrapes the stack (seconds resolution, 1 s–5 min): the step of
    /// range queries and of the freshness rule ([`crate::run::RunOptions::query_step`]).
    pub scrape_interval: std::time::Duration,
    /// Alertmanager base URL for silences during experiments (optional; without it nothing is
    /// silenced).
    pub alertmanager_url: Option<String>,
    /// Which alerts are silenced while faults are active, and the silence's grace (used when
    /// `alertmanager_url` is set).
    pub silence: SilenceConfig,
    /// Grafana annotations of each fault window (None = no annotations).
    pub grafana: Option<GrafanaConfig>,
    /// External hosts/CIDRs a cloud loss also cuts (e.g. the payment scheme's endpoints).
    pub external_targets: Vec<String>,
    /// Times the stack is held by someone else.
    pub reservations: Vec<Reservation>,
}

/// The silence of a stack's alerts while faults are active (Alertmanager API v2).
#[derive(Debug, Clone, Serialize)]
pub struct SilenceConfig {
    /// All must match for an alert to be silenced (default `stack="<stack name>"`).
    pub matchers: Vec<crate::config::SilenceMatcher>,
    /// `endsAt` = latest fault end + grace (default 5 minutes); the run expires it at revert.
    pub grace: HumanDuration,
}

impl SilenceConfig {
    /// The default silence of stack `name`: `stack="<name>"`, 5 minutes' grace.
    pub fn for_stack(name: &str) -> SilenceConfig {
        SilenceConfig {
            matchers: vec![crate::config::SilenceMatcher::equal("stack", name)],
            grace: HumanDuration::from_secs(300),
        }
    }
}

/// Grafana annotations of a stack's fault windows (Grafana HTTP API `/api/annotations`).
#[derive(Debug, Clone, Serialize)]
pub struct GrafanaConfig {
    /// Base URL without a trailing `/`.
    pub url: String,
    /// Environment variable holding the service account token (None = no authentication).
    pub token_env: Option<String>,
    /// Dashboard to annotate (None = organisation annotations, found by tags).
    pub dashboard_uid: Option<String>,
    /// UID of the stack's Prometheus data source in that Grafana (None = no Explore links).
    pub datasource_uid: Option<String>,
}

/// A cluster of a stack.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    /// Which cloud.
    pub cloud: Cloud,
    /// Cluster name.
    pub name: String,
    /// kubeconfig context (None = in-cluster config or not Kubernetes).
    pub kube_context: Option<String>,
    /// Namespaces experiments may touch (blast radius).
    pub namespaces: Vec<String>,
    /// Pod CIDRs of this cluster (used for cloud-loss partitions).
    pub pod_cidrs: Vec<String>,
}

/// Which fault driver a stack uses.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DriverConfig {
    /// The bundled sandbox: processes on this machine.
    Local {
        /// Sandbox stack name (`f3-sandbox up --stack NAME`).
        sandbox_stack: String,
        /// Sandbox state directory (None = the sandbox default).
        state_dir: Option<PathBuf>,
    },
    /// Chaos Mesh on Kubernetes.
    ChaosMesh {
        /// Namespace the chaos resources are created in.
        namespace: String,
        /// Blast radius: at most this many pods selected by one fault.
        max_pods: u32,
    },
}

/// A reservation of a stack (a team or a release holds it).
#[derive(Debug, Clone, Serialize)]
pub struct Reservation {
    /// Who holds it.
    pub holder: String,
    /// Start (UTC).
    pub start: DateTime<Utc>,
    /// End (UTC).
    pub end: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// A team and its notification routes.
#[derive(Debug, Clone, Serialize)]
pub struct Team {
    /// Short name used as `owner:` in scenarios, e.g. `payments`.
    pub name: String,
    /// Display name, e.g. `Payments team`.
    pub display_name: String,
    /// Where its notifications go.
    pub routes: Vec<Route>,
}

/// A notification route. Secrets are named by environment variable, never stored.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Route {
    /// Slack incoming webhook; the URL is read from the named environment variable.
    Slack {
        /// Environment variable holding the webhook URL.
        webhook_url_env: String,
    },
    /// PagerDuty Events API v2; the routing key is read from the named environment variable.
    Pagerduty {
        /// Environment variable holding the routing key.
        routing_key_env: String,
        /// Events API base URL (default `https://events.pagerduty.com`).
        events_url: Option<String>,
    },
    /// Generic JSON webhook signed with HMAC-SHA256.
    Webhook {
        /// Target URL.
        url: String,
        /// Environment variable holding the HMAC secret (optional).
        secret_env: Option<String>,
    },
}

/// What an API token may do. Ordered: `Viewer < Operator < Admin`; each role includes the ones
/// before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiRole {
    /// Read scenarios, plans, runs, steps, evidence and event streams.
    Viewer,
    /// Also start runs and triggers on non-production stacks.
    Operator,
    /// Also start runs on production stacks, for scenarios with `allowProduction: true`.
    Admin,
}

impl ApiRole {
    /// Lower-case name as written in config and error messages (`viewer`, `operator`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            ApiRole::Viewer => "viewer",
            ApiRole::Operator => "operator",
            ApiRole::Admin => "admin",
        }
    }
}

/// One bearer token of the API, as configured. The secret is not here: it is read from the
/// environment variable `token_env` when the API starts (see `crate::api::Tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Who holds the token; recorded as `started_by` of the runs it starts.
    pub name: String,
    /// What it may do.
    pub role: ApiRole,
    /// Environment variable holding the secret.
    pub token_env: String,
}
