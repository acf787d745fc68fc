//! Notifications: tell the team that owns a failed Then step, once, with the evidence and what to
//! do.
//!
//! The runner records one outbox row per owner team and run ([`record`]); the delivery worker
//! ([`worker::deliver_due`], [`worker::run_worker`]) fans each row out to the team's routes and
//! delivers it through a [`Notifier`]: Slack incoming webhooks ([`slack`]), PagerDuty Events API
//! v2 ([`pagerduty`]) or a signed generic JSON webhook ([`webhook`]). Failed attempts are retried
//! with exponential back-off and jitter (the `backon` crate), honouring HTTP 429 `Retry-After`;
//! the state lives in the store, so nothing is lost across restarts. [`digest`] builds the morning
//! summary per team. See `docs/notifications.md`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub mod digest;
pub mod message;
pub mod pagerduty;
pub mod record;
pub mod slack;
pub mod webhook;
pub mod worker;

pub use message::{Message, MessageStep};
pub use worker::{
    DeliveryReport, Notifiers, RetryPolicy, deliver_due, deliver_due_with, run_worker,
    run_worker_with,
};

/// A boxed, sendable future (keeps [`Notifier`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One delivery channel of one team (a configured route): delivers one [`Message`] per call.
/// Implementations must not log secrets (webhook URLs, routing keys, HMAC keys).
pub trait Notifier: Send + Sync {
    /// Route kind for logs and the outbox: `slack`, `pagerduty` or `webhook`.
    fn kind(&self) -> &'static str;

    /// Whether [`Message::run`] must be loaded for this route (the webhook embeds the run
    /// document); `false` spares the other routes the store reads.
    fn wants_run_document(&self) -> bool {
        false
    }

    /// Delivers `message` once. A retryable error leaves the outbox row pending.
    fn deliver<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (connection refused, timeout, 5xx, 429). `retry_after` is the receiver's
    /// `Retry-After` (seconds form) when it sent one; it overrides the back-off.
    #[error("{message}")]
    Retryable {
        /// What went wrong (no secrets).
        message: String,
        /// The receiver's requested wait.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (4xx other than 408/429, missing secret, unknown route).
    #[error("{0}")]
    Permanent(String),
}

/// Maps an HTTP response status (and its `Retry-After`) to the delivery result.
pub(crate) fn classify(receiver: &str, response: &reqwest::Response) -> Result<(), DeliveryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let message = format!("{receiver} answered HTTP {status}");
    if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(DeliveryError::Retryable {
            message,
            retry_after,
        })
    } else {
        Err(DeliveryError::Permanent(message))
    }
}

/// Maps a transport error to a retryable failure, without the URL (it may hold a secret).
pub(crate) fn transport_error(receiver: &str, error: reqwest::Error) -> DeliveryError {
    DeliveryError::Retryable {
        message: format!("{receiver}: {}", error.without_url()),
        retry_after: None,
    }
}

/// Where notifiers read secrets by environment-variable name: the process environment in
/// production ([`process_env`]); a map in tests.
pub type SecretLookup = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment as a [`SecretLookup`].
pub fn process_env() -> SecretLookup {
    std::sync::Arc::new(|name| std::env::var(name).ok())
}

/// Reads the secret named by `env` (never logged). A missing secret is retryable: fixing the
/// deployment's environment and restarting delivers what waited.
pub(crate) fn secret(secrets: &SecretLookup, env: &str) -> Result<String, DeliveryError> {
    match secrets(env) {
        Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        _ => Err(DeliveryError::Retryable {
            message: format!("environment variable {env} is not set"),
            retry_after: None,
        }),
    }
}
