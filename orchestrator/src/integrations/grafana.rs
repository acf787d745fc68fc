//! Grafana annotations of the fault window (optional per stack), so dashboards
//! show exactly when the fault was on.
//!
//! Wire format: Grafana HTTP API, annotations (`docs/sources/developers/http_api/annotations.md`
//! in grafana/grafana), authenticated with `Authorization: Bearer <service account token>`:
//! - at inject, `POST /api/annotations` with
//!   `{"dashboardUID"?, "time": <ms>, "tags": [..], "text": ".."}` answers `{"id": N, ..}`;
//! - at revert, `PATCH /api/annotations/{id}` with `{"time", "timeEnd", "tags", "text"}` turns it
//!   into a region from inject to revert (when the first call failed, the region is created at
//!   revert with `POST` instead).
//!
//! Tags: `f3-chaos`, `scenario:<name>`, `stack:<name>`, `run:<id>`. Without `dashboardUID` the
//! annotation belongs to the organisation and shows on every dashboard whose annotation query
//! filters on those tags. Failing to annotate never fails a run: the runner logs a warning.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::notify::SecretLookup;

/// How long one Grafana request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Body of `POST /api/annotations` and `PATCH /api/annotations/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    /// Dashboard to annotate (None = an organisation annotation, found by tags).
    #[serde(rename = "dashboardUID", skip_serializing_if = "Option::is_none")]
    pub dashboard_uid: Option<String>,
    /// Start, Unix epoch milliseconds.
    pub time: i64,
    /// End of a region, Unix epoch milliseconds (None = a point annotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_end: Option<i64>,
    /// Tags (see the module docs).
    pub tags: Vec<String>,
    /// Text shown on hover.
    pub text: String,
}

#[derive(Deserialize)]
struct Created {
    id: i64,
}

/// Why an annotation request failed (never contains the token).
#[derive(Debug, thiserror::Error)]
pub enum GrafanaError {
    /// The environment variable named by `tokenEnv` is not set.
    #[error("environment variable {0} (the Grafana token) is not set")]
    MissingToken(String),
    /// Connection refused, DNS, TLS or timeout.
    #[error("Grafana at {url} is unreachable: {source}")]
    Transport {
        /// Base URL.
        url: String,
        /// The transport error (without the URL).
        #[source]
        source: reqwest::Error,
    },
    /// A non-2xx answer or an answer that is not the documented JSON.
    #[error("Grafana at {url} answered {what}")]
    Answer {
        /// Base URL.
        url: String,
        /// What came back (status or decoding error).
        what: String,
    },
}

/// Annotates one stack's fault windows in one Grafana. Cheap to clone. Its `Debug` output never
/// shows the token.
#[derive(Clone)]
pub struct GrafanaAnnotator {
    base: String,
    token: Option<String>,
    token_env: Option<String>,
    dashboard_uid: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for GrafanaAnnotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrafanaAnnotator")
            .field("base", &self.base)
            .field("token_env", &self.token_env)
            .field("dashboard_uid", &self.dashboard_uid)
            .finish_non_exhaustive()
    }
}

impl GrafanaAnnotator {
    /// The annotator of `stack`, or `None` when it has no `grafana` section. The token is read
    /// now, from the environment variable the config names, through `secrets`.
    pub fn for_stack(stack: &crate::config::Stack, secrets: &SecretLookup) -> Option<Self> {
        let config = stack.grafana.as_ref()?;
        let token = config
            .token_env
            .as_deref()
            .and_then(|env| secrets(env))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .ok()?;
        Some(Self {
            base: config.url.trim_end_matches('/').to_owned(),
            token,
            token_env: config.token_env.clone(),
            dashboard_uid: config.dashboard_uid.clone(),
            http,
        })
    }

    /// The annotation of run `run_id` of `scenario` on `stack` from `start` (to `end` when the
    /// faults are reverted).
    pub fn annotation(
        &self,
        scenario: &str,
        stack: &str,
        run_id: uuid::Uuid,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
    ) -> Annotation {
        let text = match end {
            None => format!("f3-chaos: {scenario} injected faults on {stack} (run {run_id})"),
            Some(_) => format!("f3-chaos: {scenario} faults on {stack} (run {run_id}), reverted"),
        };
        Annotation {
            dashboard_uid: self.dashboard_uid.clone(),
            time: start.timestamp_millis(),
            time_end: end.map(|e| e.timestamp_millis()),
            tags: vec![
                "f3-chaos".to_owned(),
                format!("scenario:{scenario}"),
                format!("stack:{stack}"),
                format!("run:{run_id}"),
            ],
            text,
        }
    }

    /// Creates an annotation (`POST /api/annotations`); returns its id.
    ///
    /// # Errors
    /// [`GrafanaError`] (missing token, unreachable, non-2xx).
    pub async fn create(&self, annotation: &Annotation) -> Result<i64, GrafanaError> {
        let request = self.http.post(format!("{}/api/annotations", self.base));
        let response = self.send(request.json(annotation)).await?;
        let created: Created = response.json().await.map_err(|e| GrafanaError::Answer {
            url: self.base.clone(),
            what: format!("an unexpected body: {}", e.without_url()),
        })?;
        Ok(created.id)
    }

    /// Updates annotation `id` (`PATCH /api/annotations/{id}`), e.g. to add `timeEnd`.
    ///
    /// # Errors
    /// [`GrafanaError`] (missing token, unreachable, non-2xx).
    pub async fn update(&self, id: i64, annotation: &Annotation) -> Result<(), GrafanaError> {
        let request = self
            .http
            .patch(format!("{}/api/annotations/{id}", self.base));
        self.send(request.json(annotation)).await.map(drop)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GrafanaError> {
        let request = match (&self.token, &self.token_env) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some(env)) => return Err(GrafanaError::MissingToken(env.clone())),
            (None, None) => request,
        };
        let response = request.send().await.map_err(|e| GrafanaError::Transport {
            url: self.base.clone(),
            source: e.without_url(),
        })?;
        if !response.status().is_success() {
            return Err(GrafanaError::Answer {
                url: self.base.clone(),
                what: format!("HTTP {}", response.status()),
            });
        }
        Ok(response)
    }
}
