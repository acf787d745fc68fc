//! The Grafana annotation as a [`FaultWindowHook`]: created in the background when the first
//! fault is in (a slow Grafana never delays the fault phase), closed with its end time after the
//! last revert. Failures are reported as `annotation-failed` events and never change the outcome.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::{FaultWindow, FaultWindowHook, HookReport};
use crate::integrations::grafana::GrafanaAnnotator;
use crate::run::RunEvent;

/// Annotates one run's fault window. One per run: it holds the open annotation.
pub struct AnnotationHook {
    annotator: GrafanaAnnotator,
    open: Mutex<Option<OpenAnnotation>>,
}

/// An annotation being created in the background: its start and the task returning its id or
/// the error text.
struct OpenAnnotation {
    start: DateTime<Utc>,
    created: tokio::task::JoinHandle<Result<i64, String>>,
}

impl AnnotationHook {
    /// The hook of one run, annotating through `annotator`.
    pub fn new(annotator: GrafanaAnnotator) -> Self {
        Self {
            annotator,
            open: Mutex::new(None),
        }
    }
}

impl FaultWindowHook for AnnotationHook {
    /// Starts `POST /api/annotations` in the background (once per run).
    fn after_inject(&self, window: FaultWindow<'_>, injected_at: DateTime<Utc>) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.is_some() {
            return;
        }
        let annotator = self.annotator.clone();
        let body = annotator.annotation(
            &window.scenario.name,
            window.stack,
            window.run_id,
            injected_at,
            None,
        );
        let created =
            tokio::spawn(async move { annotator.create(&body).await.map_err(|e| e.to_string()) });
        *open = Some(OpenAnnotation {
            start: injected_at,
            created,
        });
    }

    /// Adds the end (`PATCH /api/annotations/{id}`), or creates the whole annotation when the
    /// first create failed.
    fn after_revert<'a>(
        &'a self,
        window: FaultWindow<'a>,
        reverted_at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, HookReport> {
        Box::pin(async move {
            let open = self.open.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some(open) = open else {
                return HookReport::default();
            };
            let end = reverted_at.unwrap_or_else(Utc::now);
            let body = self.annotator.annotation(
                &window.scenario.name,
                window.stack,
                window.run_id,
                open.start,
                Some(end),
            );
            let created = open
                .created
                .await
                .unwrap_or_else(|e| Err(format!("annotation task failed: {e}")));
            let closed = match &created {
                Ok(id) => self.annotator.update(*id, &body).await,
                Err(_) => self.annotator.create(&body).await.map(drop),
            };
            let failures = [
                created.err().map(|e| ("inject", e)),
                closed.err().map(|e| ("revert", e.to_string())),
            ];
            let mut report = HookReport::default();
            for (at, message) in failures.into_iter().flatten() {
                tracing::warn!(run_id = %window.run_id, at, error = %message, "Could not annotate the fault window in Grafana.");
                report.events.push(RunEvent::AnnotationFailed {
                    at: at.to_owned(),
                    message,
                });
            }
            report
        })
    }
}
