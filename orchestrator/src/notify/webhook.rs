//! Generic JSON webhook: `POST {url}` with the [`WebhookDocument`] JSON document
//! (`schemaVersion` 1, published as `docs/schemas/webhook.schema.json`, documented in
//! `docs/notifications.md`) and, when the route names a secret, the header
//! `X-F3-Chaos-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>` (the GitHub webhook
//! convention). `X-F3-Chaos-Delivery` carries the outbox id so receivers can drop duplicates of a
//! retried delivery. Any 2xx is success; 5xx, 408 and 429 (with `Retry-After`) are retried.
//!
//! The body embeds the run as the [`RunDocument`] every other tool gets (`results ID --output
//! json`, `GET /api/v1/runs/{id}`), read from the store at delivery time.

use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::message::DigestBody;
use crate::document::{RunDocument, SCHEMA_VERSION};
use crate::model::{NotificationKind, Verdict};

use super::{
    BoxFuture, DeliveryError, Message, MessageStep, Notifier, SecretLookup, classify, secret,
    transport_error,
};

/// Header carrying the HMAC-SHA256 signature of the raw body.
pub const SIGNATURE_HEADER: &str = "X-F3-Chaos-Signature";
/// Header carrying the outbox id (stable across retries).
pub const DELIVERY_HEADER: &str = "X-F3-Chaos-Delivery";

/// The webhook's body: one notification for one team, with the run it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `failures` (the team's steps did not pass), `resolved` (they pass again), `overrun` (the
    /// run is still going past its planned end) or `digest` (the morning summary).
    pub kind: NotificationKind,
    /// Outbox id; equal across retries of one delivery (also the `X-F3-Chaos-Delivery` header).
    pub delivery_id: i64,
    /// The team notified.
    pub team: WebhookTeam,
    /// `{dashboardUrl}/runs/{run id}`; null without a configured `dashboardUrl`.
    pub run_url: Option<String>,
    /// The team's steps: those that did not pass (`failures`) or pass again (`resolved`); empty
    /// otherwise.
    pub steps: Vec<WebhookStep>,
    /// Seconds past the planned end (`overrun` only).
    pub overrun_seconds: Option<u64>,
    /// Headline and lines (`digest` only).
    pub digest: Option<DigestBody>,
    /// Plain-text rendering, as Slack shows it.
    pub text: String,
    /// The run as stored when this delivery was made: the same document as `f3-chaos results ID
    /// --output json` (its `notifications` show this delivery still pending). Null for a digest
    /// and when the run is no longer in the store.
    pub run: Option<RunDocument>,
}

/// The team a webhook notifies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTeam {
    /// Short name (`payments`), as Then steps' `owner`.
    pub name: String,
    /// Display name (`Payments team`).
    pub display_name: String,
}

/// One of the team's steps, with what the SLO catalogue says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStep {
    /// Step name as written in the scenario (also the `name` of the run document's step).
    pub name: String,
    /// `failed`, `inconclusive` or `error`; `passed` in a `resolved` notification.
    pub verdict: Verdict,
    /// Worst observed value, in `unit`.
    pub observed: Option<f64>,
    /// Threshold, in `unit`.
    pub threshold: Option<f64>,
    /// The comparison that had to hold (`<`, `>=`, …).
    pub op: Option<String>,
    /// Unit of `observed` and `threshold` (`s`, `ratio` 0–1, `tps`, …).
    pub unit: Option<String>,
    /// Why the step was inconclusive or an error.
    pub message: Option<String>,
    /// Catalogue name of the SLO checked, if the step uses one.
    pub slo: Option<String>,
    /// Business impact in plain English (SLO catalogue).
    pub impact: Option<String>,
    /// What to do (SLO catalogue).
    pub action: Option<String>,
    /// Consecutive nights, this one included, on which this step did not pass on this stack.
    pub nights_failing: u32,
}

impl From<&MessageStep> for WebhookStep {
    fn from(step: &MessageStep) -> Self {
        WebhookStep {
            name: step.name.clone(),
            verdict: step.verdict,
            observed: step.observed,
            threshold: step.threshold,
            op: step.op.clone(),
            unit: step.unit.clone(),
            message: step.message.clone(),
            slo: step.slo.clone(),
            impact: step.impact.clone(),
            action: step.action.clone(),
            nights_failing: step.nights_failing,
        }
    }
}

impl WebhookDocument {
    /// The document for `message` (its `run` as the worker loaded it).
    pub fn of(message: &Message) -> Self {
        WebhookDocument {
            schema_version: SCHEMA_VERSION,
            kind: message.kind,
            delivery_id: message.outbox_id,
            team: WebhookTeam {
                name: message.team.clone(),
                display_name: message.team_display.clone(),
            },
            run_url: message.run_url.clone(),
            steps: message.steps.iter().map(WebhookStep::from).collect(),
            overrun_seconds: message.overrun_seconds,
            digest: message.digest.clone(),
            text: message.text.clone(),
            run: message.run.clone(),
        }
    }
}

/// The JSON Schema (draft 2020-12) of [`WebhookDocument`].
pub fn webhook_schema() -> serde_json::Value {
    schemars::schema_for!(WebhookDocument).to_value()
}

/// `sha256=<lower-case hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length (RFC 2104 hashes long keys), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC-SHA256 accepts keys of every length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// A generic JSON webhook route.
#[derive(Clone)]
pub struct WebhookNotifier {
    client: reqwest::Client,
    secrets: SecretLookup,
    url: String,
    secret_env: Option<String>,
}

impl WebhookNotifier {
    /// A notifier posting to `url`, signing with the secret held by `secret_env` if given.
    pub fn new(
        client: reqwest::Client,
        secrets: SecretLookup,
        url: &str,
        secret_env: Option<&str>,
    ) -> Self {
        WebhookNotifier {
            client,
            secrets,
            url: url.to_owned(),
            secret_env: secret_env.map(str::to_owned),
        }
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn wants_run_document(&self) -> bool {
        true
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&WebhookDocument::of(message))
                .map_err(|e| DeliveryError::Permanent(format!("webhook body: {e}")))?;
            let mut request = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(DELIVERY_HEADER, message.outbox_id.to_string());
            if let Some(env) = &self.secret_env {
                let key = secret(&self.secrets, env)?;
                request = request.header(SIGNATURE_HEADER, signature(key.as_bytes(), &body));
            }
            let response = request
                .body(body)
                .send()
                .await
                .map_err(|e| transport_error("webhook", e))?;
            classify("webhook", &response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
