//! Slack incoming webhooks (<https://api.slack.com/messaging/webhooks>): `POST` JSON
//! `{"text": …, "blocks": [...]}` (Block Kit `header`, `section` with `mrkdwn`, `context`) to the
//! webhook URL read from the environment variable named in the team's route. Slack answers 200
//! `ok`, 429 with `Retry-After` when rate-limited.

use serde_json::{Value, json};

use crate::model::NotificationKind;

use super::{
    BoxFuture, DeliveryError, Message, Notifier, SecretLookup, classify, secret, transport_error,
};

/// A Slack incoming-webhook route.
#[derive(Clone)]
pub struct SlackNotifier {
    client: reqwest::Client,
    secrets: SecretLookup,
    webhook_url_env: String,
}

impl SlackNotifier {
    /// A notifier posting to the URL held by `webhook_url_env` (read at every delivery).
    pub fn new(client: reqwest::Client, secrets: SecretLookup, webhook_url_env: &str) -> Self {
        SlackNotifier {
            client,
            secrets,
            webhook_url_env: webhook_url_env.to_owned(),
        }
    }
}

/// The Slack incoming-webhook body of `message`: `text` (fallback, notifications) and `blocks`.
pub fn body(message: &Message) -> Value {
    let mut blocks = Vec::new();
    let header = match message.kind {
        NotificationKind::Failures => match message.outcome.as_deref() {
            // Named as it ended: an aborted run is not announced as "failed".
            Some(outcome) if outcome != "failed" => {
                format!("Chaos: {} {outcome} on {}", message.scenario, message.stack)
            }
            _ => format!("Chaos: {} failed on {}", message.scenario, message.stack),
        },
        NotificationKind::Resolved => format!(
            "Chaos: {} passes again on {}",
            message.scenario, message.stack
        ),
        NotificationKind::Digest => format!("Chaos night digest — {}", message.team_display),
        NotificationKind::Overrun => {
            format!("Chaos: {} overran on {}", message.scenario, message.stack)
        }
    };
    blocks.push(
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&header, 150)}}),
    );
    match message.kind {
        NotificationKind::Failures => {
            let mut what = Vec::new();
            if !message.faults.is_empty() {
                what.push(format!("*Fault injected:* {}", message.faults.join(", ")));
            }
            if let (Some(outcome), Some(reason)) = (&message.outcome, &message.reason)
                && outcome != "failed"
            {
                what.push(format!("*Run {outcome}:* {reason}"));
            }
            if !what.is_empty() {
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&what.join("\n"), 3000)}}));
            }
            for step in &message.steps {
                let mut text = format!(
                    "*{}* — {} ({})\n{}",
                    step.name,
                    step.verdict,
                    step.streak(),
                    step.evidence()
                );
                if let Some(impact) = &step.impact {
                    text.push_str(&format!("\n*Impact:* {impact}"));
                }
                if let Some(action) = &step.action {
                    text.push_str(&format!("\n*What to do:* {action}"));
                }
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 3000)}}));
            }
        }
        NotificationKind::Resolved => {
            let names: Vec<String> = message
                .steps
                .iter()
                .map(|s| format!("• {}", s.name))
                .collect();
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&names.join("\n"), 3000)}}));
        }
        NotificationKind::Overrun => {
            let text = message.overrun_sentence();
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 3000)}}));
        }
        NotificationKind::Digest => {
            if let Some(digest) = &message.digest {
                let mut text = digest.headline.clone();
                for line in &digest.lines {
                    text.push_str(&format!("\n• {line}"));
                }
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 3000)}}));
            }
        }
    }
    let mut context = format!("Team {} · run {}", message.team_display, message.run_id);
    if let Some(url) = &message.run_url {
        context.push_str(&format!(" · <{url}|run page>"));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
    json!({"text": message.text, "blocks": blocks})
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let url = secret(&self.secrets, &self.webhook_url_env)?;
            let response = self
                .client
                .post(url)
                .json(&body(message))
                .send()
                .await
                .map_err(|e| transport_error("Slack", e))?;
            classify("Slack", &response)
        })
    }
}
