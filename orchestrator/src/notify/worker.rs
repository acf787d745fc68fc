//! The outbox delivery worker. Each team row the runner queued is first split into one row per
//! configured route ([`Store::outbox_fan_out`], one transaction), so a route that succeeded is
//! never repeated when another one is retried. Each route row is then delivered; a failed
//! attempt is rescheduled with exponential back-off and jitter (`backon`'s `ExponentialBuilder`,
//! indexed by the row's attempt count so the schedule survives restarts) or at the receiver's
//! HTTP 429 / 503 `Retry-After`; after [`RetryPolicy::max_attempts`] the row is `dead`.
//!
//! Everything lives in the store: a worker that dies (or a receiver that is down for hours)
//! loses nothing; the next worker picks up what is due. Run one worker per store (the daemon's
//! leader, or `f3-chaos notify`): rows are not claimed.

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::pagerduty::PagerDutyNotifier;
use super::slack::SlackNotifier;
use super::webhook::WebhookNotifier;
use super::{DeliveryError, Message, Notifier, SecretLookup, process_env};
use crate::config::{Config, Route};
use crate::document::RunDocument;
use crate::model::NotificationKind;
use crate::scenario::Library;
use crate::store::{OutboxRecord, Store, StoreError};

/// Retry schedule and batching of the worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// First back-off delay (default 10 s); doubles per attempt, plus up to 100 % jitter.
    pub min_delay: Duration,
    /// Longest back-off delay (default 30 min).
    pub max_delay: Duration,
    /// Attempts per route before the row is `dead` (default 24 ≈ a day at the cap).
    pub max_attempts: u32,
    /// Longest `Retry-After` honoured (default 1 h); longer requests are capped.
    pub max_retry_after: Duration,
    /// Timeout of one HTTP request (default 10 s).
    pub request_timeout: Duration,
    /// How often [`run_worker`] looks for due rows (default 5 s).
    pub poll_interval: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(30 * 60),
            max_attempts: 24,
            max_retry_after: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Delay before the attempt following `attempts` failed ones; `None` = give up.
    pub fn backoff(&self, attempts: u32, seed: u64) -> Option<Duration> {
        if attempts + 1 >= self.max_attempts {
            return None;
        }
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_attempts as usize)
            .with_jitter()
            .with_jitter_seed(seed)
            .build()
            .nth(attempts as usize)
    }
}

struct TeamRoutes {
    display: String,
    routes: Vec<Box<dyn Notifier>>,
}

/// The notifiers of every configured team, built from the config (secrets are read from the
/// environment at each delivery, never stored here).
pub struct Notifiers {
    teams: BTreeMap<String, TeamRoutes>,
    dashboard_url: Option<String>,
    /// Retry schedule.
    pub policy: RetryPolicy,
}

impl std::fmt::Debug for Notifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifiers")
            .field("teams", &self.teams.keys().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .finish()
    }
}

impl Notifiers {
    /// Notifiers for `config`'s teams with the default [`RetryPolicy`].
    pub fn from_config(config: &Config) -> Notifiers {
        Self::with_policy(config, RetryPolicy::default())
    }

    /// Notifiers for `config`'s teams with `policy`, reading secrets from the process environment.
    pub fn with_policy(config: &Config, policy: RetryPolicy) -> Notifiers {
        Self::with_secrets(config, policy, process_env())
    }

    /// Notifiers for `config`'s teams with `policy`, reading secrets through `secrets`.
    pub fn with_secrets(config: &Config, policy: RetryPolicy, secrets: SecretLookup) -> Notifiers {
        let client = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .user_agent(concat!("f3-chaos/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let teams = config
            .teams
            .values()
            .map(|team| {
                let routes = team
                    .routes
                    .iter()
                    .map(|route| -> Box<dyn Notifier> {
                        match route {
                            Route::Slack { webhook_url_env } => Box::new(SlackNotifier::new(
                                client.clone(),
                                secrets.clone(),
                                webhook_url_env,
                            )),
                            Route::Pagerduty {
                                routing_key_env,
                                events_url,
                            } => Box::new(PagerDutyNotifier::new(
                                client.clone(),
                                secrets.clone(),
                                routing_key_env,
                                events_url.as_deref(),
                            )),
                            Route::Webhook { url, secret_env } => Box::new(WebhookNotifier::new(
                                client.clone(),
                                secrets.clone(),
                                url,
                                secret_env.as_deref(),
                            )),
                        }
                    })
                    .collect();
                (
                    team.name.clone(),
                    TeamRoutes {
                        display: team.display_name.clone(),
                        routes,
                    },
                )
            })
            .collect();
        Notifiers {
            teams,
            dashboard_url: config.dashboard_url.clone(),
            policy,
        }
    }
}

/// What one [`deliver_due`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// Team rows split into route rows.
    pub routed: u32,
    /// Route rows delivered.
    pub delivered: u32,
    /// Failed attempts rescheduled.
    pub retrying: u32,
    /// Rows given up on.
    pub dead: u32,
}

/// How many due rows one query reads.
const BATCH: u32 = 100;

/// Delivers every outbox row due at `now` with the routes of `library.config`'s teams and the
/// default [`RetryPolicy`]. Returns once nothing is due at `now` any more.
///
/// # Errors
/// [`StoreError`] when the store cannot be read or updated (delivery failures are recorded in
/// the outbox, not returned).
pub async fn deliver_due(
    store: &Store,
    library: &Library,
    now: DateTime<Utc>,
) -> Result<DeliveryReport, StoreError> {
    deliver_due_with(store, &Notifiers::from_config(&library.config), now).await
}

/// [`deliver_due`] with explicit notifiers (and their retry policy).
///
/// # Errors
/// See [`deliver_due`].
pub async fn deliver_due_with(
    store: &Store,
    notifiers: &Notifiers,
    now: DateTime<Utc>,
) -> Result<DeliveryReport, StoreError> {
    let mut report = DeliveryReport::default();
    loop {
        let due = store.outbox_due(now, BATCH).await?;
        if due.is_empty() {
            return Ok(report);
        }
        for row in &due {
            deliver_row(store, notifiers, row, now, &mut report).await?;
        }
    }
}

async fn deliver_row(
    store: &Store,
    notifiers: &Notifiers,
    row: &OutboxRecord,
    now: DateTime<Utc>,
    report: &mut DeliveryReport,
) -> Result<(), StoreError> {
    let Some(team) = notifiers.teams.get(&row.team) else {
        let error = format!("team `{}` is not in the configuration", row.team);
        tracing::warn!(outbox_id = row.id, team = %row.team, "Notification dropped: unknown team.");
        store.outbox_failed(row.id, &error, None).await?;
        report.dead += 1;
        return Ok(());
    };
    let route = row
        .payload
        .get("route")
        .and_then(|r| r.get("index"))
        .and_then(Value::as_u64);
    let Some(index) = route else {
        if team.routes.is_empty() {
            // Nobody is told, by configuration (the laptop sandbox): the row is `no-route`, and
            // a config with real stacks warns about such teams in `validate`.
            tracing::info!(outbox_id = row.id, team = %row.team, "The team has no notification routes: nobody is told about this notification.");
        }
        let payloads: Vec<Value> = team
            .routes
            .iter()
            .enumerate()
            .map(|(index, notifier)| {
                let mut payload = row.payload.clone();
                if let Some(object) = payload.as_object_mut() {
                    object.insert(
                        "route".into(),
                        json!({"index": index, "kind": notifier.kind()}),
                    );
                }
                payload
            })
            .collect();
        store.outbox_fan_out(row.id, &payloads, now).await?;
        report.routed += 1;
        return Ok(());
    };
    let expected_kind = row.payload["route"]["kind"].as_str().unwrap_or_default();
    let notifier = usize::try_from(index)
        .ok()
        .and_then(|i| team.routes.get(i))
        .filter(|n| n.kind() == expected_kind);
    let Some(notifier) = notifier else {
        store
            .outbox_failed(
                row.id,
                "the team's routes changed since this notification was queued",
                None,
            )
            .await?;
        report.dead += 1;
        return Ok(());
    };
    let result = match Message::from_outbox(row, &team.display, notifiers.dashboard_url.as_deref())
    {
        Ok(mut message) => {
            if notifier.wants_run_document() && row.kind != NotificationKind::Digest {
                // A store error fails this pass (retried at the next poll), not the delivery.
                message.run = RunDocument::load(store, row.run_id).await?;
            }
            notifier.deliver(&message).await
        }
        Err(error) => Err(DeliveryError::Permanent(error)),
    };
    let route_kind = notifier.kind();
    match result {
        Ok(()) => {
            tracing::info!(outbox_id = row.id, team = %row.team, route = route_kind, "Notification delivered.");
            store.outbox_delivered(row.id, now).await?;
            report.delivered += 1;
        }
        Err(DeliveryError::Retryable {
            message,
            retry_after,
        }) => {
            let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
            let seed = (row.id as u64) ^ (now.timestamp_nanos_opt().unwrap_or_default() as u64);
            let delay = match (retry_after, notifiers.policy.backoff(attempts, seed)) {
                (_, None) => None,
                (Some(asked), Some(_)) => Some(asked.min(notifiers.policy.max_retry_after)),
                (None, Some(backoff)) => Some(backoff),
            };
            match delay {
                Some(delay) => {
                    let delay = chrono::Duration::from_std(delay.max(Duration::from_millis(1)))
                        .unwrap_or(chrono::Duration::hours(1));
                    tracing::warn!(outbox_id = row.id, team = %row.team, route = route_kind, error = %message, retry_in_ms = delay.num_milliseconds(), "Notification not delivered; will retry.");
                    store
                        .outbox_failed(row.id, &message, Some(now + delay))
                        .await?;
                    report.retrying += 1;
                }
                None => {
                    tracing::error!(outbox_id = row.id, team = %row.team, route = route_kind, error = %message, "Notification not delivered; giving up.");
                    store.outbox_failed(row.id, &message, None).await?;
                    report.dead += 1;
                }
            }
        }
        Err(DeliveryError::Permanent(message)) => {
            tracing::error!(outbox_id = row.id, team = %row.team, route = route_kind, error = %message, "Notification rejected; not retrying.");
            store.outbox_failed(row.id, &message, None).await?;
            report.dead += 1;
        }
    }
    Ok(())
}

/// Delivers due notifications until `cancel` fires, polling every
/// [`RetryPolicy::poll_interval`]. Store errors are logged and retried at the next poll.
pub async fn run_worker(store: &Store, library: &Library, cancel: CancellationToken) {
    run_worker_with(store, &Notifiers::from_config(&library.config), cancel).await;
}

/// [`run_worker`] with explicit notifiers.
pub async fn run_worker_with(store: &Store, notifiers: &Notifiers, cancel: CancellationToken) {
    loop {
        match deliver_due_with(store, notifiers, Utc::now()).await {
            Ok(report) if report != DeliveryReport::default() => {
                tracing::debug!(?report, "Outbox pass done.");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Outbox pass failed; retrying at the next poll."),
        }
        tokio::select! {
            _ = tokio::time::sleep(notifiers.policy.poll_interval) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
