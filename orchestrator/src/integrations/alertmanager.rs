//! Alertmanager silences during experiments: while a fault is active the target
//! stack's alerts are silenced, so on-call is not paged by what the experiment broke on purpose.
//!
//! Wire format: Alertmanager API v2 (`api/v2/openapi.yaml` in prometheus/alertmanager):
//! - `POST /api/v2/silences` with a `postableSilence` body
//!   `{"matchers":[{"name","value","isRegex","isEqual"}],"startsAt","endsAt","createdBy","comment"}`
//!   (instants RFC 3339) answers `200 {"silenceID":"<uuid>"}`;
//! - `DELETE /api/v2/silence/{silenceID}` expires it (`200`).
//!
//! The runner creates the silence after Given held and before the first fault, and expires it
//! right after the last revert (also after an abort or an interruption). `endsAt` is the latest
//! fault end plus a grace period, so a silence whose run died still ends by itself.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `createdBy` of every silence f3-chaos creates.
pub const CREATED_BY: &str = "f3-chaos";

/// How long one Alertmanager request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub use crate::config::SilenceMatcher;

/// Body of `POST /api/v2/silences` (API v2 `postableSilence` without `id`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSilence {
    /// All must match for an alert to be silenced.
    pub matchers: Vec<SilenceMatcher>,
    /// Start (RFC 3339 on the wire); Alertmanager moves a past start to now.
    pub starts_at: DateTime<Utc>,
    /// End (RFC 3339 on the wire): the latest fault end plus the stack's grace.
    pub ends_at: DateTime<Utc>,
    /// Always [`CREATED_BY`].
    pub created_by: String,
    /// Names the scenario and the run id.
    pub comment: String,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// Why an Alertmanager request failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    /// The base URL is not usable.
    #[error("invalid Alertmanager URL `{url}`: {reason}")]
    Url {
        /// The configured URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connection refused, DNS, TLS or timeout.
    #[error("Alertmanager at {url} is unreachable: {source}")]
    Transport {
        /// Base URL.
        url: String,
        /// The transport error (without the URL).
        #[source]
        source: reqwest::Error,
    },
    /// A non-2xx answer.
    #[error("Alertmanager at {url} answered HTTP {status}: {body}")]
    Status {
        /// Base URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The start of the answer body (Alertmanager explains validation errors there).
        body: String,
    },
    /// A 2xx answer that is not the documented JSON.
    #[error("Alertmanager at {url} answered something unexpected: {source}")]
    Decode {
        /// Base URL.
        url: String,
        /// The decoding error.
        #[source]
        source: reqwest::Error,
    },
}

/// A client of one Alertmanager (API v2). Cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertmanagerClient {
    base: String,
    http: reqwest::Client,
}

impl AlertmanagerClient {
    /// A client of the Alertmanager at `base_url` (e.g. `http://alertmanager:9093`, `https://…`);
    /// every request times out after `timeout`.
    ///
    /// # Errors
    /// [`AlertmanagerError::Url`] for a URL that is not http(s) or a client that cannot be built.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, AlertmanagerError> {
        let base = base_url.trim_end_matches('/').to_owned();
        let bad = |reason: String| AlertmanagerError::Url {
            url: base_url.to_owned(),
            reason,
        };
        match url::Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(u) => return Err(bad(format!("scheme `{}` is not http(s)", u.scheme()))),
            Err(e) => return Err(bad(e.to_string())),
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { base, http })
    }

    /// The base URL without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Creates a silence (`POST /api/v2/silences`); returns its id.
    ///
    /// # Errors
    /// [`AlertmanagerError::Transport`], [`AlertmanagerError::Status`] (e.g. 400 for matchers
    /// that match every alert), [`AlertmanagerError::Decode`].
    pub async fn create_silence(&self, silence: &NewSilence) -> Result<String, AlertmanagerError> {
        let response = self
            .http
            .post(format!("{}/api/v2/silences", self.base))
            .json(silence)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let response = self.check(response).await?;
        let created: Created = response
            .json()
            .await
            .map_err(|e| AlertmanagerError::Decode {
                url: self.base.clone(),
                source: e.without_url(),
            })?;
        Ok(created.silence_id)
    }

    /// Expires a silence now (`DELETE /api/v2/silence/{id}`).
    ///
    /// # Errors
    /// [`AlertmanagerError::Transport`], [`AlertmanagerError::Status`].
    pub async fn expire_silence(&self, id: &str) -> Result<(), AlertmanagerError> {
        let response = self
            .http
            .delete(format!("{}/api/v2/silence/{id}", self.base))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.check(response).await.map(drop)
    }

    fn transport(&self, error: reqwest::Error) -> AlertmanagerError {
        AlertmanagerError::Transport {
            url: self.base.clone(),
            source: error.without_url(),
        }
    }

    async fn check(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, AlertmanagerError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(AlertmanagerError::Status {
            url: self.base.clone(),
            status: status.as_u16(),
            body: body.chars().take(300).collect::<String>().trim().to_owned(),
        })
    }
}

/// What the runner needs to silence one stack: its Alertmanager, matchers and grace.
#[derive(Debug, Clone)]
pub struct Silencer {
    /// The stack's Alertmanager.
    pub client: AlertmanagerClient,
    /// Matchers of the stack's alerts (config `silence.matchers`; default `stack="<name>"`).
    pub matchers: Vec<SilenceMatcher>,
    /// Added to the latest fault end to form `endsAt` (config `silence.grace`).
    pub grace: Duration,
}

impl Silencer {
    /// The silencer of `stack`, or `None` when it has no `alertmanagerUrl`.
    ///
    /// # Errors
    /// [`AlertmanagerError::Url`].
    pub fn for_stack(stack: &crate::config::Stack) -> Result<Option<Silencer>, AlertmanagerError> {
        let Some(url) = &stack.alertmanager_url else {
            return Ok(None);
        };
        Ok(Some(Silencer {
            client: AlertmanagerClient::new(url, REQUEST_TIMEOUT)?,
            matchers: stack.silence.matchers.clone(),
            grace: stack.silence.grace.as_std(),
        }))
    }

    /// The silence for run `run_id` of `scenario` starting `now` whose faults last at most
    /// `longest_fault`: `endsAt = now + longest_fault + grace`.
    pub fn silence(
        &self,
        scenario: &str,
        run_id: uuid::Uuid,
        now: DateTime<Utc>,
        longest_fault: Duration,
    ) -> NewSilence {
        let span = chrono::Duration::from_std(longest_fault + self.grace)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        NewSilence {
            matchers: self.matchers.clone(),
            starts_at: now,
            ends_at: now + span,
            created_by: CREATED_BY.to_owned(),
            comment: format!(
                "f3-chaos experiment: scenario {scenario}, run {run_id}. Alerts of this stack are \
                 silenced while its faults are active; the silence is expired at revert."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_in_selector_syntax() {
        assert_eq!(
            SilenceMatcher::parse(r#"stack="uat-beta""#).unwrap(),
            SilenceMatcher::equal("stack", "uat-beta")
        );
        let re = SilenceMatcher::parse(r#"cluster=~"gke-.*""#).unwrap();
        assert!(re.is_regex && re.is_equal);
        let not = SilenceMatcher::parse(r#"severity!="info""#).unwrap();
        assert!(!not.is_regex && !not.is_equal);
        let not_re = SilenceMatcher::parse(r#" team!~"qa|dev" "#).unwrap();
        assert!(not_re.is_regex && !not_re.is_equal);
        assert_eq!(not_re.to_string(), r#"team!~"qa|dev""#);
        assert!(SilenceMatcher::parse(r#"a="1",b="2""#).is_err());
        assert!(SilenceMatcher::parse("stack").is_err());
        assert!(SilenceMatcher::parse(r#"stack="#).is_err());
    }

    #[test]
    fn matchers_that_match_everything_are_recognised() {
        let m = |t: &str| SilenceMatcher::parse(t).unwrap().matches_empty();
        assert!(!m(r#"stack="local""#));
        assert!(m(r#"stack!="local""#));
        assert!(m(r#"stack=~".*""#));
        assert!(!m(r#"stack=~".+""#));
        assert!(!m(r#"stack!~".*""#));
    }

    #[test]
    fn the_silence_body_is_the_api_v2_postable_silence() {
        let silencer = Silencer {
            client: AlertmanagerClient::new("http://127.0.0.1:9093/", REQUEST_TIMEOUT).unwrap(),
            matchers: vec![SilenceMatcher::equal("stack", "uat-beta")],
            grace: Duration::from_secs(300),
        };
        assert_eq!(silencer.client.base_url(), "http://127.0.0.1:9093");
        let now = DateTime::parse_from_rfc3339("2026-11-21T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let run = uuid::Uuid::nil();
        let body = serde_json::to_value(silencer.silence(
            "gcp-failover-validation",
            run,
            now,
            Duration::from_secs(600),
        ))
        .unwrap();
        assert_eq!(
            body["matchers"],
            serde_json::json!([{"name": "stack", "value": "uat-beta", "isRegex": false, "isEqual": true}])
        );
        assert_eq!(body["startsAt"], "2026-11-21T01:00:00Z");
        assert_eq!(body["endsAt"], "2026-11-21T01:15:00Z");
        assert_eq!(body["createdBy"], "f3-chaos");
        let comment = body["comment"].as_str().unwrap();
        assert!(comment.contains("gcp-failover-validation"), "{comment}");
        assert!(comment.contains(&run.to_string()), "{comment}");
    }

    /// reqwest is built with rustls (receivers may be `https://`): a request to an
    /// `https://` URL opens a TLS handshake (first byte 0x16, a TLS handshake record) instead of
    /// failing with "scheme is not http".
    #[tokio::test]
    async fn https_receivers_get_a_tls_handshake() {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let first_byte = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.read_u8().await.unwrap()
        });
        let client =
            AlertmanagerClient::new(&format!("https://{addr}"), Duration::from_secs(2)).unwrap();
        let error = client.expire_silence("x").await.unwrap_err();
        assert!(
            !format!("{error:?}").contains("scheme is not http"),
            "{error:?}"
        );
        let byte = tokio::time::timeout(Duration::from_secs(5), first_byte)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(byte, 0x16, "a TLS ClientHello");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(AlertmanagerClient::new("ftp://am", REQUEST_TIMEOUT).is_err());
        assert!(AlertmanagerClient::new("not a url", REQUEST_TIMEOUT).is_err());
        assert!(AlertmanagerClient::new("https://am.example.com", REQUEST_TIMEOUT).is_ok());
    }
}
