//! Compiles a configuration directory (`kind: Config` plus optional `kind: Stacks` and
//! `kind: Teams` files) into a [`Config`], collecting every diagnostic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, NaiveTime, Utc};

use super::model::*;
use super::raw::*;
use crate::duration::HumanDuration;
use crate::input::diagnostic::Diagnostics;
use crate::input::yaml::YamlFile;
use crate::model::Environment;

/// Default `spec.cooldown`.
const DEFAULT_COOLDOWN_SECS: u64 = 300;
/// Default `driver.maxPods` for Chaos Mesh.
const DEFAULT_MAX_PODS: u32 = 50;

/// The `env` label value of an environment (`production`, `uat`, `dev`, `local`).
pub fn environment_label(e: Environment) -> &'static str {
    match e {
        Environment::Production => "production",
        Environment::Uat => "uat",
        Environment::Dev => "dev",
        Environment::Local => "local",
    }
}

/// Loads and compiles the configuration alone from a directory (its `*.yaml`/`*.yml` files of
/// kinds `Config`, `Stacks` and `Teams`; other kinds are ignored).
pub fn load(dir: &Path) -> Result<Config, Diagnostics> {
    let mut diags = Diagnostics::new();
    let files = crate::input::files::read_dir_files(dir, false, &mut diags);
    let group: Vec<&YamlFile> = files
        .iter()
        .filter(|f| matches!(f.str_at("kind"), Some("Config" | "Stacks" | "Teams")))
        .collect();
    let config = compile(dir, &group, &mut diags);
    diags.sort();
    match config {
        Some(c) if !diags.has_errors() => Ok(c),
        _ => Err(diags),
    }
}

/// `rel` against `base`, with `..` folded lexically (`config/local/../../scenarios` →
/// `scenarios`) so paths in diagnostics and `Scenario::source` read naturally.
fn resolve(base: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    let joined = if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir
                if matches!(
                    out.components().next_back(),
                    Some(std::path::Component::Normal(_))
                ) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

fn check_url(file: &YamlFile, field: &str, text: &str, diags: &mut Diagnostics) {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        Ok(u) => diags.push(file.error_at(
            field,
            format!(
                "unsupported URL scheme `{}`: expected http or https",
                u.scheme()
            ),
        )),
        Err(e) => diags.push(file.error_at(field, format!("invalid URL `{text}`: {e}"))),
    }
}

fn check_env_var(file: &YamlFile, field: &str, name: &str, diags: &mut Diagnostics) {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !ok {
        let d = file.error_at(
            field,
            format!("`{name}` is not an environment variable name"),
        );
        diags.push(if name.contains("://") || name.len() > 40 {
            d.help("this looks like a secret: never write secrets in config; name the environment variable that holds it, e.g. `SLACK_WEBHOOK_PAYMENTS`")
        } else {
            d.help("use upper-case letters, digits and `_`, e.g. `SLACK_WEBHOOK_PAYMENTS`")
        });
    }
}

fn parse_time(
    file: &YamlFile,
    field: &str,
    text: &str,
    diags: &mut Diagnostics,
) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .map_err(|_| {
            diags.push(file.error_at(
                field,
                format!("invalid time `{text}`: expected `HH:MM`, e.g. \"00:00\""),
            ))
        })
        .ok()
}

fn parse_instant(
    file: &YamlFile,
    field: &str,
    text: &str,
    diags: &mut Diagnostics,
) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            diags.push(
                file.error_at(field, format!("invalid time `{text}`: {e}"))
                    .help("write RFC 3339, e.g. `2026-11-21T00:00:00Z`"),
            )
        })
        .ok()
}

/// Compiles one configuration group (the files of one directory). Returns `None` when there is
/// no usable `kind: Config` file; other problems are pushed to `diags` and the rest is kept.
pub(crate) fn compile(dir: &Path, files: &[&YamlFile], diags: &mut Diagnostics) -> Option<Config> {
    let mut settings: Option<(&YamlFile, RawConfigSpec)> = None;
    // (file, field prefix, raw) of every stack and team, in file order.
    let mut stacks: Vec<(&YamlFile, String, RawStack)> = Vec::new();
    let mut teams: Vec<(&YamlFile, String, RawTeam)> = Vec::new();
    let mut any_config_file = false;
    for file in files {
        match file.str_at("kind") {
            Some("Config") => {
                any_config_file = true;
                let Ok(raw) = file
                    .deserialize::<RawConfigFile>()
                    .map_err(|d| diags.extend(d))
                else {
                    continue;
                };
                if let Some((first, _)) = &settings {
                    diags.push(
                        file.error_at("kind", "a second `kind: Config` file in the same directory")
                            .help(format!("the first is {}; put stacks and teams in `kind: Stacks`/`kind: Teams` files", first.path.display())),
                    );
                    continue;
                }
                let spec = raw.spec;
                for (i, s) in spec.stacks.iter().enumerate() {
                    stacks.push((file, format!("spec.stacks[{i}]"), s.clone()));
                }
                for (i, t) in spec.teams.iter().enumerate() {
                    teams.push((file, format!("spec.teams[{i}]"), t.clone()));
                }
                settings = Some((file, spec));
            }
            Some("Stacks") => {
                if let Ok(raw) = file
                    .deserialize::<RawStacksFile>()
                    .map_err(|d| diags.extend(d))
                {
                    for (i, s) in raw.spec.stacks.into_iter().enumerate() {
                        stacks.push((file, format!("spec.stacks[{i}]"), s));
                    }
                }
            }
            Some("Teams") => {
                if let Ok(raw) = file
                    .deserialize::<RawTeamsFile>()
                    .map_err(|d| diags.extend(d))
                {
                    for (i, t) in raw.spec.teams.into_iter().enumerate() {
                        teams.push((file, format!("spec.teams[{i}]"), t));
                    }
                }
            }
            _ => {}
        }
    }
    let Some((cfile, spec)) = settings else {
        if !any_config_file && let Some(first) = files.first() {
            diags.push(
                first
                    .error_at("kind", format!("no `kind: Config` file in {}", dir.display()))
                    .help("`kind: Stacks` and `kind: Teams` files extend a `kind: Config` file in the same directory"),
            );
        }
        return None;
    };
    let base = cfile.path.parent().map(Path::to_owned).unwrap_or_default();
    let mut config = Config {
        dir: dir.to_owned(),
        ..Config::default()
    };

    if let Some(lib) = &spec.library {
        let scenarios = resolve(&base, &lib.scenarios);
        let assertions = resolve(&base, &lib.assertions);
        for (field, p) in [
            ("spec.library.scenarios", &scenarios),
            ("spec.library.assertions", &assertions),
        ] {
            if !p.is_dir() {
                diags.push(
                    cfile
                        .error_at(field, format!("directory `{}` not found", p.display()))
                        .help("paths are relative to the config file"),
                );
            }
        }
        config.library = LibraryPaths {
            scenarios: Some(scenarios),
            assertions: Some(assertions),
        };
    }
    if let Some(tz) = &spec.timezone {
        match chrono_tz::Tz::from_str(tz) {
            Ok(t) => config.timezone = t,
            Err(_) => diags.push(
                cfile
                    .error_at("spec.timezone", format!("unknown time zone `{tz}`"))
                    .help("use an IANA name such as `Europe/London`"),
            ),
        }
    }
    if let Some(w) = &spec.window {
        let start = parse_time(cfile, "spec.window.start", &w.start, diags);
        let end = parse_time(cfile, "spec.window.end", &w.end, diags);
        if let (Some(start), Some(end)) = (start, end) {
            config.window = ChaosWindow { start, end };
        }
    }
    config.cooldown = match &spec.cooldown {
        Some(text) => match text.parse::<HumanDuration>() {
            Ok(d) => d,
            Err(e) => {
                diags.push(
                    cfile
                        .error_at("spec.cooldown", format!("invalid duration `{text}`"))
                        .help(format!("{}; write e.g. `5m`", e.reason)),
                );
                HumanDuration::from_secs(DEFAULT_COOLDOWN_SECS)
            }
        },
        None => HumanDuration::from_secs(DEFAULT_COOLDOWN_SECS),
    };
    if let Some(text) = &spec.overrun_notify_after {
        match text.parse::<HumanDuration>() {
            Ok(d) => config.overrun_notify_after = d,
            Err(e) => diags.push(
                cfile
                    .error_at(
                        "spec.overrunNotifyAfter",
                        format!("invalid duration `{text}`"),
                    )
                    .help(format!("{}; write e.g. `15m`", e.reason)),
            ),
        }
    }
    if let Some(weights) = spec
        .planner
        .as_ref()
        .and_then(|p| p.priority_weights.as_ref())
    {
        for (name, given, slot) in [
            (
                "critical",
                weights.critical,
                &mut config.priority_weights.critical,
            ),
            ("high", weights.high, &mut config.priority_weights.high),
            (
                "medium",
                weights.medium,
                &mut config.priority_weights.medium,
            ),
            ("low", weights.low, &mut config.priority_weights.low),
        ] {
            match given {
                Some(0) => diags.push(
                    cfile
                        .error_at(
                            &format!("spec.planner.priorityWeights.{name}"),
                            format!("the weight of `{name}` must be at least 1"),
                        )
                        .help("a scenario worth 0 points would never be planned; use `cadence: manual` for that"),
                ),
                Some(points) => *slot = points,
                None => {}
            }
        }
    }
    match spec
        .findings
        .as_ref()
        .and_then(|f| f.resolve_after_passing_nights)
    {
        Some(0) => diags.push(
            cfile
                .error_at(
                    "spec.findings.resolveAfterPassingNights",
                    "a finding must pass on at least 1 night to resolve",
                )
                .help("write e.g. `3`"),
        ),
        Some(nights) => config.resolve_findings_after = nights,
        None => {}
    }
    if let Some(db) = &spec.database_url {
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            diags.push(cfile.error_at("spec.databaseUrl", format!("unsupported database URL `{db}`")).help("use `sqlite://PATH` or `postgres://USER@HOST/DB` (password via PGPASSWORD)"));
        }
        config.database_url = Some(db.clone());
    }
    if let Some(url) = &spec.dashboard_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            diags.push(
                cfile
                    .error_at(
                        "spec.dashboardUrl",
                        format!("dashboard URL `{url}` is not http(s)"),
                    )
                    .help("e.g. `https://chaos.example.com`"),
            );
        }
        config.dashboard_url = Some(url.trim_end_matches('/').to_owned());
    }
    for (i, t) in spec.api.iter().flat_map(|a| a.tokens.iter()).enumerate() {
        let at = |x: &str| format!("spec.api.tokens[{i}].{x}");
        if t.name.trim().is_empty() {
            diags.push(cfile.error_at(&at("name"), "token name must not be empty"));
        } else if config.api_tokens.iter().any(|o| o.name == t.name) {
            diags.push(cfile.error_at(
                &at("name"),
                format!("API token `{}` is defined twice", t.name),
            ));
        }
        let env_ok = !t.token_env.is_empty()
            && t.token_env
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !env_ok {
            diags.push(
                cfile
                    .error_at(
                        &at("tokenEnv"),
                        format!("`{}` is not an environment variable name", t.token_env),
                    )
                    .help("name the variable holding the secret, e.g. `F3_CHAOS_TOKEN_CI`; never the secret itself"),
            );
        }
        config.api_tokens.push(crate::config::ApiToken {
            name: t.name.clone(),
            role: match t.role {
                crate::config::raw::RawApiRole::Viewer => crate::config::ApiRole::Viewer,
                crate::config::raw::RawApiRole::Operator => crate::config::ApiRole::Operator,
                crate::config::raw::RawApiRole::Admin => crate::config::ApiRole::Admin,
            },
            token_env: t.token_env.clone(),
        });
    }
    for (i, r) in spec.resources.iter().enumerate() {
        if r.capacity == 0 {
            diags.push(cfile.error_at(
                &format!("spec.resources[{i}].capacity"),
                "capacity must be at least 1",
            ));
        }
        if config
            .resources
            .insert(r.name.clone(), r.capacity)
            .is_some()
        {
            diags.push(cfile.error_at(
                &format!("spec.resources[{i}].name"),
                format!("resource `{}` is defined twice", r.name),
            ));
        }
    }

    let mut first_stack: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    for (file, at, raw) in &stacks {
        let f = |x: &str| format!("{at}.{x}");
        if let Some((p, line)) = first_stack.get(&raw.name) {
            diags.push(
                file.error_at(&f("name"), format!("stack `{}` is defined twice", raw.name))
                    .help(format!("first defined at {}:{line}", p.display())),
            );
            continue;
        }
        first_stack.insert(
            raw.name.clone(),
            (file.path.clone(), file.pos(&f("name")).line),
        );
        if let Some(stack) = compile_stack(file, at, raw, diags) {
            config.stacks.insert(stack.name.clone(), stack);
        }
    }
    let mut first_team: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    for (file, at, raw) in &teams {
        let f = |x: &str| format!("{at}.{x}");
        if let Some((p, line)) = first_team.get(&raw.name) {
            diags.push(
                file.error_at(&f("name"), format!("team `{}` is defined twice", raw.name))
                    .help(format!("first defined at {}:{line}", p.display())),
            );
            continue;
        }
        first_team.insert(
            raw.name.clone(),
            (file.path.clone(), file.pos(&f("name")).line),
        );
        let mut routes = Vec::new();
        for (j, r) in raw.routes.iter().enumerate() {
            let rf = |x: &str| format!("{at}.routes[{j}].{x}");
            routes.push(match r {
                RawRoute::Slack { webhook_url_env } => {
                    check_env_var(file, &rf("webhookUrlEnv"), webhook_url_env, diags);
                    Route::Slack {
                        webhook_url_env: webhook_url_env.clone(),
                    }
                }
                RawRoute::Pagerduty {
                    routing_key_env,
                    events_url,
                } => {
                    check_env_var(file, &rf("routingKeyEnv"), routing_key_env, diags);
                    if let Some(u) = events_url {
                        check_url(file, &rf("eventsUrl"), u, diags);
                    }
                    Route::Pagerduty {
                        routing_key_env: routing_key_env.clone(),
                        events_url: events_url.clone(),
                    }
                }
                RawRoute::Webhook { url, secret_env } => {
                    check_url(file, &rf("url"), url, diags);
                    if let Some(s) = secret_env {
                        check_env_var(file, &rf("secretEnv"), s, diags);
                    }
                    Route::Webhook {
                        url: url.clone(),
                        secret_env: secret_env.clone(),
                    }
                }
            });
        }
        // On a laptop sandbox nobody expects a message; with a real stack, a team without routes
        // means its failures reach nobody (their rows end `no-route`).
        let real_stack = config
            .stacks
            .values()
            .any(|s| !matches!(s.driver, crate::config::DriverConfig::Local { .. }));
        if routes.is_empty() && real_stack {
            diags.push(
                file.warning_at(
                    &f("routes"),
                    format!(
                        "team `{}` has no notification routes: failures of the steps it owns reach nobody",
                        raw.name
                    ),
                )
                .help("add a route, e.g. `{kind: slack, webhookUrlEnv: SLACK_WEBHOOK_PAYMENTS}`"),
            );
        }
        config.teams.insert(
            raw.name.clone(),
            Team {
                name: raw.name.clone(),
                display_name: raw.display_name.clone(),
                routes,
            },
        );
    }
    if config.stacks.is_empty() && stacks.is_empty() {
        diags.push(cfile.warning_at("spec", "the configuration has no stacks"));
    }
    Some(config)
}

/// A stack's scrape interval with the `local` driver: the sandbox's Prometheus scrapes every
/// second (`f3_sandbox::prometheus::SCRAPE_INTERVAL`).
const DEFAULT_LOCAL_SCRAPE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// A stack's scrape interval otherwise (a common setting; the stack config states its own).
const DEFAULT_SCRAPE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);
/// Bounds of `scrapeInterval`.
const MIN_SCRAPE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_SCRAPE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

fn compile_stack(
    file: &YamlFile,
    at: &str,
    raw: &RawStack,
    diags: &mut Diagnostics,
) -> Option<Stack> {
    let f = |x: &str| format!("{at}.{x}");
    let before = diags.error_count();
    let environment = match raw.environment {
        RawEnvironment::Production => Environment::Production,
        RawEnvironment::Uat => Environment::Uat,
        RawEnvironment::Dev => Environment::Dev,
        RawEnvironment::Local => Environment::Local,
    };
    let mut labels = raw.labels.clone();
    let env = environment_label(environment);
    match labels.get("env") {
        Some(v) if v != env => diags.push(
            file.error_at(
                &format!("{at}.labels.env"),
                format!("label `env: {v}` contradicts `environment: {env}`"),
            )
            .help("the `env` label is set from `environment`; remove it"),
        ),
        _ => {
            labels.insert("env".into(), env.into());
        }
    }
    let mut clusters = Vec::new();
    let mut seen = Vec::new();
    for (i, c) in raw.clusters.iter().enumerate() {
        let cloud: crate::model::Cloud = c.cloud.into();
        if seen.contains(&cloud) {
            diags.push(file.error_at(
                &format!("{at}.clusters[{i}].cloud"),
                format!(
                    "a second `{}` cluster: a stack has one cluster per cloud",
                    cloud.as_str()
                ),
            ));
        }
        seen.push(cloud);
        clusters.push(Cluster {
            cloud,
            name: c.name.clone(),
            kube_context: c.kube_context.clone(),
            namespaces: c.namespaces.clone(),
            pod_cidrs: c.pod_cidrs.clone(),
        });
    }
    if raw.clusters.len() != 3 {
        diags.push(file.warning_at(
            &f("clusters"),
            format!(
                "stack `{}` has {} clusters; a stack normally spans gcp, aws and azure",
                raw.name,
                raw.clusters.len()
            ),
        ));
    }
    let base = file.path.parent().map(Path::to_owned).unwrap_or_default();
    let driver = match &raw.driver {
        RawDriver::Local {
            sandbox_stack,
            state_dir,
        } => DriverConfig::Local {
            sandbox_stack: sandbox_stack.clone(),
            state_dir: state_dir.as_deref().map(|d| resolve(&base, d)),
        },
        RawDriver::ChaosMesh {
            namespace,
            max_pods,
        } => {
            if *max_pods == Some(0) {
                diags.push(file.error_at(&f("driver.maxPods"), "`maxPods` must be at least 1"));
            }
            if matches!(environment, Environment::Local) {
                diags.push(file.warning_at(
                    &f("driver"),
                    "a `local` stack normally uses the `local` driver",
                ));
            }
            DriverConfig::ChaosMesh {
                namespace: namespace.clone(),
                max_pods: max_pods.unwrap_or(DEFAULT_MAX_PODS),
            }
        }
    };
    check_url(file, &f("prometheusUrl"), &raw.prometheus_url, diags);
    if let Some(u) = &raw.alertmanager_url {
        check_url(file, &f("alertmanagerUrl"), u, diags);
    }
    let silence = compile_silence(file, at, raw, diags);
    let grafana = raw.grafana.as_ref().map(|g| {
        check_url(file, &f("grafana.url"), &g.url, diags);
        if let Some(env) = &g.token_env {
            check_env_var(file, &f("grafana.tokenEnv"), env, diags);
        }
        GrafanaConfig {
            url: g.url.trim_end_matches('/').to_owned(),
            token_env: g.token_env.clone(),
            dashboard_uid: g.dashboard_uid.clone(),
            datasource_uid: g.datasource_uid.clone(),
        }
    });
    let mut reservations = Vec::new();
    for (i, r) in raw.reservations.iter().enumerate() {
        let rf = |x: &str| format!("{at}.reservations[{i}].{x}");
        let start = parse_instant(file, &rf("start"), &r.start, diags);
        let end = parse_instant(file, &rf("end"), &r.end, diags);
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                diags.push(file.error_at(&rf("end"), "a reservation must end after it starts"));
            }
            reservations.push(Reservation {
                holder: r.holder.clone(),
                start,
                end,
                reason: r.reason.clone(),
            });
        }
    }
    let default_scrape = match driver {
        DriverConfig::Local { .. } => DEFAULT_LOCAL_SCRAPE_INTERVAL,
        DriverConfig::ChaosMesh { .. } => DEFAULT_SCRAPE_INTERVAL,
    };
    let scrape_interval = match &raw.scrape_interval {
        None => default_scrape,
        Some(text) => match text.parse::<HumanDuration>() {
            Ok(d) if (MIN_SCRAPE_INTERVAL..=MAX_SCRAPE_INTERVAL).contains(&d.as_std()) => {
                d.as_std()
            }
            Ok(_) => {
                diags.push(
                    file.error_at(
                        &f("scrapeInterval"),
                        format!("scrape interval `{text}` is out of range"),
                    )
                    .help("Prometheus' `scrape_interval` for the stack, between 1s and 5m"),
                );
                default_scrape
            }
            Err(e) => {
                diags.push(
                    file.error_at(&f("scrapeInterval"), format!("invalid duration `{text}`"))
                        .help(format!("{}; write e.g. `15s`", e.reason)),
                );
                default_scrape
            }
        },
    };
    (diags.error_count() == before).then(|| Stack {
        name: raw.name.clone(),
        environment,
        labels,
        clusters,
        driver,
        prometheus_url: raw.prometheus_url.trim_end_matches('/').to_owned(),
        scrape_interval,
        alertmanager_url: raw
            .alertmanager_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_owned()),
        silence,
        grafana,
        external_targets: raw.external_targets.clone(),
        reservations,
    })
}

/// The stack's `silence` section with its defaults; checks the matchers parse and that they do
/// not silence every alert (Alertmanager would refuse such a silence at run time).
fn compile_silence(
    file: &YamlFile,
    at: &str,
    raw: &RawStack,
    diags: &mut Diagnostics,
) -> SilenceConfig {
    use crate::config::SilenceMatcher;
    let mut config = SilenceConfig::for_stack(&raw.name);
    let Some(silence) = &raw.silence else {
        return config;
    };
    if raw.alertmanager_url.is_none() {
        diags.push(
            file.error_at(
                &format!("{at}.silence"),
                "`silence` needs `alertmanagerUrl`",
            )
            .help("add the stack's Alertmanager, e.g. `alertmanagerUrl: http://alertmanager:9093`"),
        );
    }
    if let Some(texts) = &silence.matchers {
        let mut matchers = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            match SilenceMatcher::parse(text) {
                Ok(m) => matchers.push(m),
                Err(e) => diags.push(
                    file.error_at(
                        &format!("{at}.silence.matchers[{i}]"),
                        format!("invalid matcher `{text}`: {e}"),
                    )
                    .help("write one matcher per item, e.g. `'stack=\"uat-beta\"'`"),
                ),
            }
        }
        if matchers.len() == texts.len() && matchers.iter().all(SilenceMatcher::matches_empty) {
            diags.push(
                file.error_at(
                    &format!("{at}.silence.matchers"),
                    "these matchers would silence every alert",
                )
                .help("at least one matcher must need a label value, e.g. `stack=\"uat-beta\"`"),
            );
        }
        config.matchers = matchers;
    }
    if let Some(text) = &silence.grace {
        match text.parse::<HumanDuration>() {
            Ok(d) => config.grace = d,
            Err(e) => diags.push(
                file.error_at(
                    &format!("{at}.silence.grace"),
                    format!("invalid duration `{text}`"),
                )
                .help(format!("{}; write e.g. `5m`", e.reason)),
            ),
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_spec(spec_lines: &str) -> Result<Config, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "apiVersion: f3-chaos/v1\nkind: Config\nspec:\n{spec_lines}  stacks:\n    - name: uat-beta\n      \
             environment: uat\n      driver: {{kind: chaos-mesh, namespace: chaos-mesh}}\n      \
             prometheusUrl: http://prometheus:9090\n"
        );
        std::fs::write(dir.path().join("f3-chaos.yaml"), yaml).unwrap();
        load(dir.path())
    }

    #[test]
    fn findings_resolve_after_a_configurable_number_of_passing_nights() {
        assert_eq!(load_spec("").unwrap().resolve_findings_after, 3);
        let config = load_spec("  findings:\n    resolveAfterPassingNights: 5\n").unwrap();
        assert_eq!(config.resolve_findings_after, 5);
        let err = load_spec("  findings:\n    resolveAfterPassingNights: 0\n").unwrap_err();
        let text = format!("{err:?}");
        assert!(
            text.contains("spec.findings.resolveAfterPassingNights") && text.contains("at least 1"),
            "{text}"
        );
    }

    #[test]
    fn priority_weights_are_configurable_and_default_per_class() {
        let config =
            load_spec("  planner:\n    priorityWeights: {medium: 40, critical: 200}\n").unwrap();
        assert_eq!(
            config.priority_weights,
            crate::config::PriorityWeights {
                critical: 200,
                high: 10,
                medium: 40,
                low: 1
            }
        );
        let err = load_spec("  planner:\n    priorityWeights: {low: 0}\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("spec.planner.priorityWeights.low") && text.contains("at least 1"),
            "{text}"
        );
    }

    /// Loads a one-stack config whose stack ends with the YAML lines `extra`.
    fn load_with(extra: &str) -> Result<Config, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "apiVersion: f3-chaos/v1\nkind: Config\nspec:\n  stacks:\n    - name: uat-beta\n      \
             environment: uat\n      driver: {{kind: chaos-mesh, namespace: chaos-mesh}}\n      \
             prometheusUrl: http://prometheus:9090\n{extra}"
        );
        std::fs::write(dir.path().join("f3-chaos.yaml"), yaml).unwrap();
        load(dir.path())
    }

    #[test]
    fn the_scrape_interval_is_the_stacks_own_with_a_default_per_driver() {
        let config = load_with("").unwrap();
        assert_eq!(config.stacks["uat-beta"].scrape_interval.as_secs(), 15);
        let config = load_with("      scrapeInterval: 30s\n").unwrap();
        assert_eq!(config.stacks["uat-beta"].scrape_interval.as_secs(), 30);
        let local = crate::config::load(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/local"),
        )
        .unwrap();
        assert_eq!(
            local.stacks["local"].scrape_interval,
            std::time::Duration::from_secs(1),
            "the sandbox's Prometheus scrapes every second"
        );
        let text = load_with("      scrapeInterval: 0s\n")
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("scrape interval `0s` is out of range")
                && text.contains("spec.stacks[0].scrapeInterval")
                && text.contains("between 1s and 5m"),
            "{text}"
        );
        let text = load_with("      scrapeInterval: often\n")
            .unwrap_err()
            .to_string();
        assert!(text.contains("invalid duration `often`"), "{text}");
    }

    #[test]
    fn the_silence_defaults_to_the_stack_label_and_five_minutes_grace() {
        let config = load_with("      alertmanagerUrl: http://am:9093/\n").unwrap();
        let stack = &config.stacks["uat-beta"];
        assert_eq!(stack.alertmanager_url.as_deref(), Some("http://am:9093"));
        assert_eq!(
            stack.silence.matchers,
            [crate::config::SilenceMatcher::equal("stack", "uat-beta")]
        );
        assert_eq!(stack.silence.grace.as_std().as_secs(), 300);
        assert!(stack.grafana.is_none());
    }

    #[test]
    fn silence_matchers_grace_and_grafana_are_read() {
        let config = load_with(
            "      alertmanagerUrl: http://am:9093\n      silence:\n        matchers: \
             ['cluster=~\"gke-.*\"', 'severity!=\"info\"']\n        grace: 2m\n      \
             grafana: {url: 'https://grafana.example.com/', tokenEnv: GRAFANA_TOKEN}\n",
        )
        .unwrap();
        let stack = &config.stacks["uat-beta"];
        let shown: Vec<String> = stack
            .silence
            .matchers
            .iter()
            .map(|m| m.to_string())
            .collect();
        assert_eq!(shown, [r#"cluster=~"gke-.*""#, r#"severity!="info""#]);
        assert_eq!(stack.silence.grace.as_std().as_secs(), 120);
        let grafana = stack.grafana.as_ref().unwrap();
        assert_eq!(grafana.url, "https://grafana.example.com");
        assert_eq!(grafana.token_env.as_deref(), Some("GRAFANA_TOKEN"));
    }

    #[test]
    fn bad_silences_are_diagnosed() {
        let text = |extra: &str| load_with(extra).unwrap_err().to_string();
        assert!(text("      silence: {grace: 1m}\n").contains("`silence` needs `alertmanagerUrl`"));
        let every = text(
            "      alertmanagerUrl: http://am:9093\n      silence: {matchers: ['stack=~\".*\"']}\n",
        );
        assert!(every.contains("would silence every alert"), "{every}");
        let broken =
            text("      alertmanagerUrl: http://am:9093\n      silence: {matchers: ['stack']}\n");
        assert!(broken.contains("invalid matcher `stack`"), "{broken}");
        let token = text(
            "      grafana: {url: 'http://g:3000', tokenEnv: 'glsa_abcdefghijklmnopqrstuvwxyz0123456789'}\n",
        );
        assert!(
            token.contains("is not an environment variable name"),
            "{token}"
        );
    }
}
