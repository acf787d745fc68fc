//! PagerDuty Events API v2 (<https://developer.pagerduty.com/docs/events-api-v2/overview/>):
//! `POST {events_url}/v2/enqueue` with `{"routing_key", "event_action": "trigger"|"resolve",
//! "dedup_key", "payload": {"summary", "source", "severity", "component", "group", "class",
//! "custom_details"}, "links"}`. One event per step; `dedup_key` = `scenario/step/stack`, so a step
//! that fails night after night updates one open incident instead of paging again, and the
//! `resolve` sent when it passes closes it. PagerDuty answers 202; 429 when throttled.

use serde_json::{Value, json};

use crate::model::{NotificationKind, Verdict};

use super::{
    BoxFuture, DeliveryError, Message, Notifier, SecretLookup, classify, secret, transport_error,
};

/// Default Events API base URL.
pub const DEFAULT_EVENTS_URL: &str = "https://events.pagerduty.com";

/// A PagerDuty Events API v2 route.
#[derive(Clone)]
pub struct PagerDutyNotifier {
    client: reqwest::Client,
    secrets: SecretLookup,
    routing_key_env: String,
    events_url: String,
}

impl PagerDutyNotifier {
    /// A notifier enqueueing to `events_url` (None = [`DEFAULT_EVENTS_URL`]) with the routing key
    /// held by `routing_key_env` (read at every delivery).
    pub fn new(
        client: reqwest::Client,
        secrets: SecretLookup,
        routing_key_env: &str,
        events_url: Option<&str>,
    ) -> Self {
        PagerDutyNotifier {
            client,
            secrets,
            routing_key_env: routing_key_env.to_owned(),
            events_url: events_url
                .unwrap_or(DEFAULT_EVENTS_URL)
                .trim_end_matches('/')
                .to_owned(),
        }
    }
}

/// The Events API v2 bodies of `message` (one per step; none for a digest or an overrun — an
/// overrun is not an incident of the owning team's service, and the chat routes carry it).
pub fn events(message: &Message, routing_key: &str) -> Vec<Value> {
    let action = match message.kind {
        NotificationKind::Failures => "trigger",
        NotificationKind::Resolved => "resolve",
        NotificationKind::Digest | NotificationKind::Overrun => return Vec::new(),
    };
    message
        .steps
        .iter()
        .map(|step| {
            let mut event = json!({
                "routing_key": routing_key,
                "event_action": action,
                "dedup_key": message.dedup_key(step),
            });
            if action == "trigger" {
                // Named as the run ended: an aborted run is not "failed".
                let summary = format!(
                    "{} {} on {}: {} ({})",
                    message.scenario,
                    message.outcome.as_deref().unwrap_or("failed"),
                    message.stack,
                    step.name,
                    step.evidence()
                );
                event["payload"] = json!({
                    "summary": summary.chars().take(1024).collect::<String>(),
                    "source": message.stack,
                    "severity": if step.verdict == Verdict::Failed { "error" } else { "warning" },
                    "component": message.scenario,
                    "group": message.team,
                    "class": "chaos-experiment",
                    "custom_details": {
                        "run_id": message.run_id,
                        "step": step.name,
                        "verdict": step.verdict,
                        "observed": step.observed,
                        "threshold": step.threshold,
                        "op": step.op,
                        "unit": step.unit,
                        "impact": step.impact,
                        "action": step.action,
                        "nights_failing": step.nights_failing,
                    },
                });
                if let Some(url) = &message.run_url {
                    event["links"] = json!([{"href": url, "text": "f3-chaos run"}]);
                }
            }
            event
        })
        .collect()
}

impl Notifier for PagerDutyNotifier {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let key = secret(&self.secrets, &self.routing_key_env)?;
            // Re-sending an event already accepted is harmless: the dedup key makes it idempotent.
            for event in events(message, &key) {
                let response = self
                    .client
                    .post(format!("{}/v2/enqueue", self.events_url))
                    .json(&event)
                    .send()
                    .await
                    .map_err(|e| transport_error("PagerDuty", e))?;
                classify("PagerDuty", &response)?;
            }
            Ok(())
        })
    }
}
