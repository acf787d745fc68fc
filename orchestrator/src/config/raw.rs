//! The raw file model of the configuration, exactly as written in YAML (camelCase,
//! `deny_unknown_fields`). A config directory holds one `kind: Config` file and optionally
//! `kind: Stacks` and `kind: Teams` files that add stacks and teams (see docs/configuration.md).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::duration::HumanDuration;

/// `kind: Config`: the settings, and optionally stacks and teams.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfigFile {
    /// Always `f3-chaos/v1`.
    pub api_version: String,
    /// Always `Config`.
    pub kind: String,
    /// Name of this configuration (e.g. `local`).
    #[serde(default)]
    pub metadata: Option<RawConfigMetadata>,
    /// The settings.
    pub spec: RawConfigSpec,
}

/// `metadata` of config files.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfigMetadata {
    /// Name, e.g. `local`, `example-production`.
    pub name: String,
    /// What this configuration is for.
    #[serde(default)]
    pub description: String,
}

/// `spec` of `kind: Config`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfigSpec {
    /// Where the scenario library and SLO catalogue live (paths relative to this file).
    #[serde(default)]
    pub library: Option<RawLibrary>,
    /// IANA time zone for the window and cron expressions (default `Europe/London`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// The nightly chaos window in local time (default `00:00`–`07:00`).
    #[serde(default)]
    pub window: Option<RawWindow>,
    /// Buffer between two experiments on one stack (default `5m`).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub cooldown: Option<String>,
    /// A daemon run that overruns its planned end by more than this notifies its scenario's
    /// owner (default `15m`; every overrun is journalled and counted whatever its length).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub overrun_notify_after: Option<String>,
    /// How the planner weighs scenarios (docs/planner.md).
    #[serde(default)]
    pub planner: Option<RawPlanner>,
    /// How the morning review's findings open and resolve (docs/dashboard.md, "Findings").
    #[serde(default)]
    pub findings: Option<RawFindings>,
    /// Store URL: `sqlite://PATH` or `postgres://…` (default: a SQLite file).
    #[serde(default)]
    pub database_url: Option<String>,
    /// Base URL of the dashboard; notifications link to `{dashboardUrl}/runs/{id}` (optional).
    #[serde(default)]
    pub dashboard_url: Option<String>,
    /// Exclusive resources and how many runs may hold each at once.
    #[serde(default)]
    pub resources: Vec<RawResource>,
    /// Stacks (more may come from `kind: Stacks` files).
    #[serde(default)]
    pub stacks: Vec<RawStack>,
    /// Teams (more may come from `kind: Teams` files).
    #[serde(default)]
    pub teams: Vec<RawTeam>,
    /// The daemon's HTTP API (bearer tokens); see docs/api.md.
    #[serde(default)]
    pub api: Option<RawApi>,
}

/// `spec.findings`: how findings resolve.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFindings {
    /// An open finding resolves itself after its step passed on this many nights (whole number
    /// ≥ 1, default 3) with no failure between.
    #[serde(default)]
    pub resolve_after_passing_nights: Option<u32>,
}

/// `spec.planner`: how the planner weighs scenarios.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPlanner {
    /// Weight points of each priority class (default critical 100, high 10, medium 3, low 1).
    /// A scenario's weight is its points × its staleness (1.0 when tested on schedule, up to 3.0
    /// when overdue); the planner maximises the total weight of a night.
    #[serde(default)]
    pub priority_weights: Option<RawPriorityWeights>,
}

/// `spec.planner.priorityWeights`: points per priority class (whole numbers ≥ 1; any class left
/// out keeps its default).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPriorityWeights {
    /// Points of a `critical` scenario (default 100).
    #[serde(default)]
    pub critical: Option<u64>,
    /// Points of a `high` scenario (default 10).
    #[serde(default)]
    pub high: Option<u64>,
    /// Points of a `medium` scenario (default 3).
    #[serde(default)]
    pub medium: Option<u64>,
    /// Points of a `low` scenario (default 1).
    #[serde(default)]
    pub low: Option<u64>,
}

/// `spec.api`: who may call the daemon's HTTP API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawApi {
    /// Bearer tokens. Secrets are only named by environment variable, never written here.
    #[serde(default)]
    pub tokens: Vec<RawApiToken>,
}

/// One bearer token of the API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawApiToken {
    /// Who holds it (recorded as `started_by` of the runs it starts), e.g. `ci-release`.
    pub name: String,
    /// `viewer` (read), `operator` (runs on non-production stacks) or `admin` (production too).
    pub role: RawApiRole,
    /// Environment variable holding the secret token (at least 16 characters).
    pub token_env: String,
}

/// Role of an API token.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawApiRole {
    /// Read only.
    Viewer,
    /// Read; start runs and triggers on non-production stacks.
    Operator,
    /// Everything an operator may, plus production stacks for scenarios that opt in.
    Admin,
}

/// `spec.library`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLibrary {
    /// Directory of scenario files, relative to the config file.
    pub scenarios: String,
    /// Directory of SLO catalogue files, relative to the config file.
    pub assertions: String,
}

/// `spec.window`: local wall-clock times `HH:MM`; `end` ≤ `start` crosses midnight.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWindow {
    /// Start, e.g. `"00:00"` (quote it).
    pub start: String,
    /// End, e.g. `"07:00"`.
    pub end: String,
}

/// An exclusive resource, e.g. `gcp-org-network` with capacity 1.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawResource {
    /// Name scenarios use in `schedule.resources`.
    pub name: String,
    /// Concurrent holders across all stacks (≥ 1).
    pub capacity: u32,
    /// Why it is exclusive.
    #[serde(default)]
    pub description: String,
}

/// `kind: Stacks`: more stacks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStacksFile {
    /// Always `f3-chaos/v1`.
    pub api_version: String,
    /// Always `Stacks`.
    pub kind: String,
    /// Optional name.
    #[serde(default)]
    pub metadata: Option<RawConfigMetadata>,
    /// The stacks.
    pub spec: RawStacksSpec,
}

/// `spec` of `kind: Stacks`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStacksSpec {
    /// The stacks.
    pub stacks: Vec<RawStack>,
}

/// `kind: Teams`: more teams.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTeamsFile {
    /// Always `f3-chaos/v1`.
    pub api_version: String,
    /// Always `Teams`.
    pub kind: String,
    /// Optional name.
    #[serde(default)]
    pub metadata: Option<RawConfigMetadata>,
    /// The teams.
    pub spec: RawTeamsSpec,
}

/// `spec` of `kind: Teams`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTeamsSpec {
    /// The teams.
    pub teams: Vec<RawTeam>,
}

/// One stack.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStack {
    /// Unique name, e.g. `uat-alpha`.
    pub name: String,
    /// `production`, `uat`, `dev` or `local`.
    pub environment: RawEnvironment,
    /// Labels scenarios select on (`env: <environment>` is added).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// One cluster per cloud.
    #[serde(default)]
    pub clusters: Vec<RawCluster>,
    /// How faults are injected.
    pub driver: RawDriver,
    /// Prometheus base URL.
    pub prometheus_url: String,
    /// How often that Prometheus scrapes the stack's SLIs (its `scrape_interval`): the step of
    /// SLO range queries and of the freshness rule (default `1s` with the `local` driver — the
    /// sandbox's — else `15s`).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub scrape_interval: Option<String>,
    /// Alertmanager base URL: while faults are active the stack's alerts are silenced there.
    #[serde(default)]
    pub alertmanager_url: Option<String>,
    /// Which alerts are silenced and for how long (needs `alertmanagerUrl`).
    #[serde(default)]
    pub silence: Option<RawSilence>,
    /// Grafana annotations of each fault window (optional).
    #[serde(default)]
    pub grafana: Option<RawGrafana>,
    /// External hosts/CIDRs a cloud loss also cuts.
    #[serde(default)]
    pub external_targets: Vec<String>,
    /// Times someone else holds the stack.
    #[serde(default)]
    pub reservations: Vec<RawReservation>,
}

/// `silence` of a stack: the Alertmanager silence created while faults are active.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSilence {
    /// Label matchers in Prometheus selector syntax, all of which an alert must match, e.g.
    /// `['stack="uat-beta"', 'severity=~"page|critical"']` (default `['stack="<stack name>"']`).
    #[serde(default)]
    pub matchers: Option<Vec<String>>,
    /// Added to the latest fault end to form the silence's `endsAt`, so the silence of a run
    /// that died still ends (default `5m`). A normal run expires it at revert.
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub grace: Option<String>,
}

/// `grafana` of a stack: annotate each fault window.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGrafana {
    /// Grafana base URL, e.g. `https://grafana.example.com`.
    pub url: String,
    /// Environment variable holding a service account token (sent as a bearer token).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Dashboard to annotate (default: organisation annotations, found by tags).
    #[serde(default)]
    pub dashboard_uid: Option<String>,
    /// UID of this stack's Prometheus data source in that Grafana: with it the dashboard links
    /// each step's query and window in Grafana Explore too.
    #[serde(default)]
    pub datasource_uid: Option<String>,
}

/// Environment kind.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(
    missing_docs,
    reason = "variants are the YAML spellings; the enum doc explains them"
)]
pub enum RawEnvironment {
    Production,
    Uat,
    Dev,
    Local,
}

/// One cluster.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCluster {
    /// `gcp`, `aws` or `azure`.
    pub cloud: RawCloud,
    /// Cluster name.
    pub name: String,
    /// kubeconfig context.
    #[serde(default)]
    pub kube_context: Option<String>,
    /// Namespaces experiments may touch.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Pod CIDRs.
    #[serde(default)]
    pub pod_cidrs: Vec<String>,
}

/// Fault driver of a stack.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawDriver {
    /// The bundled sandbox.
    #[serde(rename_all = "camelCase")]
    Local {
        /// `f3-sandbox up --stack NAME`.
        sandbox_stack: String,
        /// Sandbox state directory, relative to the config file (default: the sandbox's).
        #[serde(default)]
        state_dir: Option<String>,
    },
    /// Chaos Mesh on Kubernetes.
    #[serde(rename_all = "camelCase")]
    ChaosMesh {
        /// Namespace the chaos resources are created in.
        namespace: String,
        /// At most this many pods per fault (default 50).
        #[serde(default)]
        max_pods: Option<u32>,
    },
}

/// A reservation; times are RFC 3339 (`2026-11-21T00:00:00Z`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawReservation {
    /// Who holds it.
    pub holder: String,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// A team.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTeam {
    /// Short name used as `owner:`.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Notification routes.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

/// A notification route; secrets only as environment variable names.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawRoute {
    /// Slack incoming webhook.
    #[serde(rename_all = "camelCase")]
    Slack {
        /// Environment variable holding the webhook URL.
        webhook_url_env: String,
    },
    /// PagerDuty Events API v2.
    #[serde(rename_all = "camelCase")]
    Pagerduty {
        /// Environment variable holding the routing key.
        routing_key_env: String,
        /// Events API base URL.
        #[serde(default)]
        events_url: Option<String>,
    },
    /// Generic signed JSON webhook.
    #[serde(rename_all = "camelCase")]
    Webhook {
        /// Target URL.
        url: String,
        /// Environment variable holding the HMAC secret.
        #[serde(default)]
        secret_env: Option<String>,
    },
}

/// A cloud name.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(
    missing_docs,
    reason = "variants are the YAML spellings; the enum doc explains them"
)]
pub enum RawCloud {
    Gcp,
    Aws,
    Azure,
}

impl From<RawCloud> for crate::model::Cloud {
    fn from(c: RawCloud) -> Self {
        match c {
            RawCloud::Gcp => Self::Gcp,
            RawCloud::Aws => Self::Aws,
            RawCloud::Azure => Self::Azure,
        }
    }
}
