//! The read-only morning-review dashboard: server-rendered HTML (minijinja templates compiled
//! into the binary, no CDN, no JS needed for the tables), as one self-contained axum [`Router`]
//! that the daemon mounts and `f3-chaos dashboard` serves standalone.
//!
//! Pages: `/` (latest night), `/night/{YYYY-MM-DD}` (its failed Then steps first, then its
//! scenario × stack matrix and Gantt), `/run/{id}` (also `/runs/{id}`, the form notifications
//! link to), `/scenario/{name}`, `/team/{name}`, `/stack/{name}`, and the lists the header links to: `/nights`,
//! `/scenarios`, `/teams`, `/stacks`. Times are shown in the configured zone. See
//! `docs/dashboard.md`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::NaiveDate;
use minijinja::Environment;

use crate::model::Verdict;
use crate::store::{RunFilter, Store};

mod findings;
mod gantt;
mod lists;
mod pages;
mod review;
mod svg;

/// What the dashboard reads: the store and the display time zone.
#[derive(Clone)]
pub struct DashboardState {
    /// The store (shared pool).
    pub store: Store,
    /// The config's zone, in which times are shown, and its window, which says which runs make
    /// up a night ([`Store::runs_of_night`]; default 00:00–07:00).
    pub calendar: crate::plan::NightCalendar,
    /// Scenario and team names of the library and config: a page for a name that is neither
    /// known nor in the history is a 404.
    known: Arc<KnownNames>,
    env: Arc<Environment<'static>>,
}

/// Names the dashboard has pages for even before they have history, and the config's rules
/// its pages state.
#[derive(Debug, Clone)]
pub struct KnownNames {
    /// Scenario names of the library.
    pub scenarios: std::collections::BTreeSet<String>,
    /// The config's teams: display name by slug (`payments` → `Payments team`).
    pub team_names: std::collections::BTreeMap<String, String>,
    /// The config's stacks (the `/stacks` page shows their environment, driver, clusters and
    /// reservations).
    pub stacks: std::collections::BTreeMap<String, crate::config::Stack>,
    /// Passing nights after which a finding resolves itself
    /// (`spec.findings.resolveAfterPassingNights`).
    pub resolve_findings_after: u32,
}

impl Default for KnownNames {
    /// No names; the configuration's default rules.
    fn default() -> Self {
        Self {
            scenarios: Default::default(),
            team_names: Default::default(),
            stacks: Default::default(),
            resolve_findings_after: crate::config::DEFAULT_RESOLVE_AFTER_PASSING_NIGHTS,
        }
    }
}

impl KnownNames {
    /// The scenarios and teams of `library`.
    pub fn of(library: &crate::scenario::Library) -> Self {
        Self {
            scenarios: library.scenarios.keys().cloned().collect(),
            team_names: library
                .config
                .teams
                .values()
                .map(|t| (t.name.clone(), t.display_name.clone()))
                .collect(),
            stacks: library.config.stacks.clone(),
            resolve_findings_after: library.config.resolve_findings_after,
        }
    }
}

impl DashboardState {
    /// The display name of team `slug`, or the slug when the config does not know it.
    pub fn team_name<'a>(&'a self, slug: &'a str) -> &'a str {
        self.known.team_names.get(slug).map_or(slug, String::as_str)
    }

    /// A state over `store`, showing times in `timezone`.
    ///
    /// # Errors
    /// A template that does not parse (a bug caught by the unit tests).
    pub fn new(store: Store, timezone: chrono_tz::Tz) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            env.add_template(name, text)?;
        }
        Ok(Self {
            store,
            calendar: crate::plan::NightCalendar {
                tz: timezone,
                window: crate::config::ChaosWindow::default(),
            },
            known: Arc::new(KnownNames::default()),
            env: Arc::new(env),
        })
    }

    /// The same state with the config's chaos window (the night page lists the runs of that
    /// window, [`Store::runs_of_night`]).
    pub fn with_window(mut self, window: crate::config::ChaosWindow) -> Self {
        self.calendar.window = window;
        self
    }

    /// The same state, knowing the library's scenarios and the config's teams.
    pub fn with_known(mut self, known: KnownNames) -> Self {
        self.known = Arc::new(known);
        self
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => Html(html).into_response(),
            Err(err) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("template {name}: {err:#}"),
            ),
        }
    }
}

const TEMPLATES: [(&str, &str); 12] = [
    ("base.html", include_str!("templates/base.html")),
    ("night.html", include_str!("templates/night.html")),
    ("run.html", include_str!("templates/run.html")),
    ("scenario.html", include_str!("templates/scenario.html")),
    ("team.html", include_str!("templates/team.html")),
    ("error.html", include_str!("templates/error.html")),
    ("nights.html", include_str!("templates/nights.html")),
    ("scenarios.html", include_str!("templates/scenarios.html")),
    ("teams.html", include_str!("templates/teams.html")),
    ("stacks.html", include_str!("templates/stacks.html")),
    ("stack.html", include_str!("templates/stack.html")),
    ("findings.html", include_str!("templates/findings.html")),
];

const CSS: &str = include_str!("templates/dashboard.css");

/// The dashboard's routes (mount at `/` or nest under a prefix-free path).
pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(latest_night))
        .route("/night/{night}", get(night))
        .route("/run/{id}", get(run))
        // Notifications link to `{dashboardUrl}/runs/{id}` (docs/notifications.md).
        .route("/runs/{id}", get(run))
        .route("/scenario/{name}", get(scenario))
        .route("/team/{name}", get(team))
        .route("/stack/{name}", get(stack))
        .route("/nights", get(list_nights))
        .route("/scenarios", get(list_scenarios))
        .route("/teams", get(list_teams))
        .route("/stacks", get(list_stacks))
        .route("/findings", get(list_findings))
        .route("/assets/dashboard.css", get(css))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>f3-chaos</title><h1>{}</h1><p>{}</p>",
        status,
        minijinja::HtmlEscape(message)
    );
    (status, Html(body)).into_response()
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

async fn latest_night(State(state): State<DashboardState>) -> Response {
    let filter = RunFilter {
        limit: Some(200),
        ..RunFilter::default()
    };
    match state.store.runs(&filter).await {
        Ok(runs) => match runs.iter().find_map(|r| r.night) {
            Some(night) => Redirect::to(&format!("/night/{night}")).into_response(),
            None => error(StatusCode::NOT_FOUND, "No planned night recorded yet."),
        },
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
    }
}

async fn night(State(state): State<DashboardState>, Path(night): Path<String>) -> Response {
    let Ok(night) = night.parse::<NaiveDate>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "The night is a date: /night/YYYY-MM-DD.",
        );
    };
    match pages::night(&state, night).await {
        Ok(ctx) => state.render("night.html", ctx),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}")),
    }
}

async fn run(State(state): State<DashboardState>, Path(id): Path<String>) -> Response {
    use crate::store::StoreError;
    match pages::run(&state, &id).await {
        Ok(Some(ctx)) => state.render("run.html", ctx),
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("No run matches {id}.")),
        Err(err) => match err.downcast_ref::<StoreError>() {
            Some(StoreError::Invalid { message, .. }) => error(
                StatusCode::NOT_FOUND,
                &format!("No run matches {id}: a run id {message}."),
            ),
            Some(ambiguous @ StoreError::AmbiguousRunId { .. }) => {
                error(StatusCode::BAD_REQUEST, &ambiguous.to_string())
            }
            _ => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}")),
        },
    }
}

/// The 404 text for a scenario or team name neither known nor in the history: "No scenario
/// gcp-failover-validaton in the library or in the history. Did you mean
/// gcp-failover-validation?" (the guess of [`crate::input::yaml::closest`]).
fn not_known<'a>(
    what: &str,
    source: &str,
    name: &str,
    known: impl Iterator<Item = &'a String>,
) -> String {
    let known: Vec<String> = known.cloned().collect();
    let guess = crate::input::yaml::closest(name, &known)
        .map(|g| format!(" Did you mean {g}?"))
        .unwrap_or_default();
    format!("No {what} {name} in the {source} or in the history.{guess}")
}

/// The 404 of a `what` page for `name` when it is not `known` and no run matches `history`
/// (its names guessed from `names`, [`not_known`]), a 500 when the store fails; `None` when
/// the page may be shown.
async fn unknown_name<'a>(
    state: &DashboardState,
    known: bool,
    history: RunFilter,
    (what, source): (&str, &str),
    name: &str,
    names: impl Iterator<Item = &'a String>,
) -> Option<Response> {
    if known {
        return None;
    }
    let filter = RunFilter {
        limit: Some(1),
        ..history
    };
    match state.store.runs(&filter).await {
        Ok(runs) if runs.is_empty() => Some(error(
            StatusCode::NOT_FOUND,
            &not_known(what, source, name, names),
        )),
        Ok(_) => None,
        Err(err) => Some(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{err:#}"),
        )),
    }
}

async fn scenario(State(state): State<DashboardState>, Path(name): Path<String>) -> Response {
    let history = RunFilter {
        scenario: Some(name.clone()),
        ..RunFilter::default()
    };
    let known = state.known.scenarios.contains(&name);
    let names = state.known.scenarios.iter();
    if let Some(response) = unknown_name(
        &state,
        known,
        history,
        ("scenario", "library"),
        &name,
        names,
    )
    .await
    {
        return response;
    }
    match pages::scenario(&state, &name).await {
        Ok(ctx) => state.render("scenario.html", ctx),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}")),
    }
}

async fn team(State(state): State<DashboardState>, Path(name): Path<String>) -> Response {
    if !state.known.team_names.contains_key(&name) {
        let since = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let verdicts = [
            Verdict::Passed,
            Verdict::Failed,
            Verdict::Error,
            Verdict::Inconclusive,
            Verdict::Skipped,
        ];
        match state.store.team_steps(&name, &verdicts, since, 1).await {
            Ok(steps) if steps.is_empty() => {
                return error(
                    StatusCode::NOT_FOUND,
                    &not_known("team", "config", &name, state.known.team_names.keys()),
                );
            }
            Ok(_) => {}
            Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}")),
        }
    }
    match pages::team(&state, &name).await {
        Ok(ctx) => state.render("team.html", ctx),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}")),
    }
}

async fn stack(State(state): State<DashboardState>, Path(name): Path<String>) -> Response {
    let history = RunFilter {
        stack: Some(name.clone()),
        ..RunFilter::default()
    };
    let known = state.known.stacks.contains_key(&name);
    let names = state.known.stacks.keys();
    if let Some(response) =
        unknown_name(&state, known, history, ("stack", "config"), &name, names).await
    {
        return response;
    }
    match pages::stack(&state, &name).await {
        Ok(ctx) => state.render("stack.html", ctx),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}")),
    }
}

async fn list_nights(State(state): State<DashboardState>) -> Response {
    list(&state, "nights.html", lists::nights(&state).await)
}

async fn list_scenarios(State(state): State<DashboardState>) -> Response {
    list(&state, "scenarios.html", lists::scenarios(&state).await)
}

async fn list_teams(State(state): State<DashboardState>) -> Response {
    list(&state, "teams.html", lists::teams(&state).await)
}

async fn list_stacks(State(state): State<DashboardState>) -> Response {
    list(&state, "stacks.html", lists::stacks(&state).await)
}

async fn list_findings(State(state): State<DashboardState>) -> Response {
    list(&state, "findings.html", findings::findings(&state).await)
}

fn list(state: &DashboardState, template: &str, ctx: anyhow::Result<minijinja::Value>) -> Response {
    match ctx {
        Ok(ctx) => state.render(template, ctx),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}")),
    }
}
