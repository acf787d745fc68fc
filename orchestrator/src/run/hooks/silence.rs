//! The Alertmanager silence as a [`FaultWindowHook`]: the stack's alerts are silenced as the
//! last Given step (no fault is injected without it when a silence is configured) and the
//! silence is expired after the last revert.

use std::sync::Mutex;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::{FaultWindow, FaultWindowHook, HookReport, HookStep};
use crate::integrations::alertmanager::{AlertmanagerError, Silencer};
use crate::model::Verdict;
use crate::run::RunEvent;

/// Name of the Given step that silences the stack's alerts (shown and stored like any step).
pub const SILENCE_STEP: &str = "Alerts of the stack silenced in Alertmanager";

/// Silences one run's stack while its faults are active. One per run: it holds the silence id.
pub struct SilenceHook {
    silencer: Silencer,
    /// Id of the silence while it is in force.
    silence: Mutex<Option<String>>,
}

impl SilenceHook {
    /// The hook of one run on the stack `silencer` silences.
    pub fn new(silencer: Silencer) -> Self {
        Self {
            silencer,
            silence: Mutex::new(None),
        }
    }

    fn take_silence(&self) -> Option<String> {
        self.silence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl FaultWindowHook for SilenceHook {
    fn given_step(&self) -> Option<&'static str> {
        Some(SILENCE_STEP)
    }

    /// Creates the silence (Alertmanager API v2 `POST /api/v2/silences`) until the longest
    /// fault's TTL plus the stack's grace; transport errors and 5xx are retried twice, a 4xx
    /// refusal is not. Failing refuses the injection.
    fn before_inject<'a>(
        &'a self,
        window: FaultWindow<'a>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, HookReport> {
        Box::pin(async move {
            let silencer = &self.silencer;
            let body = silencer.silence(
                &window.scenario.name,
                window.run_id,
                now,
                window.longest_ttl,
            );
            let attempt = || async { silencer.client.create_silence(&body).await };
            let created = attempt
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(200))
                        .with_max_times(2),
                )
                // A refusal (4xx) will not change on retry; a transport error or 5xx may.
                .when(|e| match e {
                    AlertmanagerError::Transport { .. } => true,
                    AlertmanagerError::Status { status, .. } => *status >= 500,
                    _ => false,
                })
                .await;
            let matchers: Vec<String> = body.matchers.iter().map(ToString::to_string).collect();
            let alertmanager = silencer.client.base_url().to_owned();
            match created {
                Ok(silence_id) => {
                    tracing::info!(run_id = %window.run_id, silence_id = %silence_id, "Alerts silenced.");
                    *self.silence.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(silence_id.clone());
                    let evidence = serde_json::json!({
                        "alertmanager": alertmanager,
                        "silence_id": silence_id,
                        "matchers": matchers,
                        "starts_at": body.starts_at,
                        "ends_at": body.ends_at,
                        "created_by": body.created_by,
                        "comment": body.comment,
                    });
                    HookReport {
                        step: Some(HookStep {
                            verdict: Verdict::Passed,
                            message: format!(
                                "silence {silence_id} on {} until {} at the latest",
                                matchers.join(", "),
                                body.ends_at.format("%H:%M:%S UTC")
                            ),
                            evidence: Some(evidence),
                        }),
                        events: vec![RunEvent::AlertsSilenced {
                            silence_id,
                            alertmanager,
                            matchers,
                            ends_at: body.ends_at,
                        }],
                        refused: None,
                    }
                }
                Err(e) => {
                    tracing::warn!(run_id = %window.run_id, error = %e, "Could not silence the stack's alerts; no fault will be injected.");
                    let evidence = serde_json::json!({
                        "alertmanager": alertmanager,
                        "matchers": matchers,
                        "error": e.to_string(),
                    });
                    HookReport {
                        step: Some(HookStep {
                            verdict: Verdict::Error,
                            message: format!("could not silence the stack's alerts: {e}"),
                            evidence: Some(evidence),
                        }),
                        events: Vec::new(),
                        refused: Some(format!(
                            "could not silence the stack's alerts in Alertmanager ({e}); no fault was injected"
                        )),
                    }
                }
            }
        })
    }

    /// Expires the silence (`DELETE /api/v2/silence/{id}`, retried three times). A failure is
    /// reported, not fatal: the silence still ends at its `endsAt`.
    fn after_revert<'a>(
        &'a self,
        window: FaultWindow<'a>,
        _reverted_at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, HookReport> {
        Box::pin(async move {
            let Some(silence_id) = self.take_silence() else {
                return HookReport::default();
            };
            let client = &self.silencer.client;
            let attempt = || async { client.expire_silence(&silence_id).await };
            let expired = attempt
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(200))
                        .with_max_times(3),
                )
                .await;
            let message = match &expired {
                Ok(()) => {
                    tracing::info!(run_id = %window.run_id, silence_id = %silence_id, "Silence expired.");
                    None
                }
                Err(e) => {
                    tracing::warn!(run_id = %window.run_id, silence_id = %silence_id, error = %e, "Could not expire the silence; it ends at its endsAt.");
                    Some(e.to_string())
                }
            };
            HookReport {
                events: vec![RunEvent::SilenceExpired {
                    silence_id,
                    ok: expired.is_ok(),
                    message,
                }],
                ..HookReport::default()
            }
        })
    }
}
