//! Generic JSON webhook: `POST {url}` with the [`WebhookBody`] JSON document (schema version 1,
//! documented in `docs/notifications.md`) and, when the route names a secret, the header
//! `X-F3-Chaos-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>` (the GitHub webhook
//! convention). `X-F3-Chaos-Delivery` carries the outbox id so receivers can drop duplicates of a
//! retried delivery. Any 2xx is success; 5xx, 408 and 429 (with `Retry-After`) are retried.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

use super::message::DigestBody;
use crate::model::NotificationKind;

use super::{
    BoxFuture, DeliveryError, Message, MessageStep, Notifier, SecretLookup, classify, secret,
    transport_error,
};

/// Header carrying the HMAC-SHA256 signature of the raw body.
pub const SIGNATURE_HEADER: &str = "X-F3-Chaos-Signature";
/// Header carrying the outbox id (stable across retries).
pub const DELIVERY_HEADER: &str = "X-F3-Chaos-Delivery";

/// The webhook's JSON document (schema version 1).
#[derive(Debug, Clone, Serialize)]
pub struct WebhookBody<'a> {
    /// Schema version: 1.
    pub version: u32,
    /// `failures`, `resolved` or `digest`.
    pub kind: NotificationKind,
    /// Outbox id; equal across retries of one delivery.
    pub delivery_id: i64,
    /// The run.
    pub run_id: Uuid,
    /// Team short name.
    pub team: &'a str,
    /// Scenario name.
    pub scenario: &'a str,
    /// Stack name.
    pub stack: &'a str,
    /// Run outcome.
    pub outcome: Option<&'a str>,
    /// Link to the run page.
    pub run_url: Option<&'a str>,
    /// Steps (failed/inconclusive for `failures`, passing again for `resolved`).
    pub steps: &'a [MessageStep],
    /// Digest body.
    pub digest: Option<&'a DigestBody>,
    /// Plain-text rendering.
    pub text: &'a str,
}

impl<'a> WebhookBody<'a> {
    /// The document for `message`.
    pub fn of(message: &'a Message) -> Self {
        WebhookBody {
            version: 1,
            kind: message.kind,
            delivery_id: message.outbox_id,
            run_id: message.run_id,
            team: &message.team,
            scenario: &message.scenario,
            stack: &message.stack,
            outcome: message.outcome.as_deref(),
            run_url: message.run_url.as_deref(),
            steps: &message.steps,
            digest: message.digest.as_ref(),
            text: &message.text,
        }
    }
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

    fn deliver<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&WebhookBody::of(message))
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
