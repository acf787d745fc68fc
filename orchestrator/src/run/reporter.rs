//! Who hears a run's events: the [`Reporter`] boundary and its fan-out, [`Reporters`].
//!
//! The runner writes every [`RunEvent`] to the store first and then hands it to each reporter of
//! the run, in the order they were added. However a run was started — `f3-chaos run`, the HTTP
//! API or the daemon's night — it gets the same reporters for the same job:
//! - the terminal: a [`ChannelReporter`] feeding the CLI's printer task (a stdout that blocks,
//!   `f3-chaos run | less`, never stalls a run with faults injected);
//! - the live API stream (`GET /api/v1/runs/{id}/events`): the API's hub of live runs;
//! - metrics ([`MetricsReporter`]): the lease wait and `f3_chaos_runs_total` of the process that
//!   serves `/metrics`; it hears each event first, so whoever hears `run-finished` next finds the
//!   run counted.
//!
//! A reporter must not block: it is called on the runner's task between two transitions.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use super::RunEvent;
use crate::metrics::Metrics;

/// Hears the events of a run after they are stored. Called on the runner's task: return quickly.
pub trait Reporter: Send + Sync {
    /// One event of run `run_id`, already in the store's event log.
    fn report(&self, run_id: Uuid, event: &RunEvent);
}

/// The reporters of one run (a fan-out; none by default). Cheap to clone.
#[derive(Clone, Default)]
pub struct Reporters(Vec<Arc<dyn Reporter>>);

impl Reporters {
    /// No reporter: the store's event log is the only record (e.g. a sweep, a test).
    pub fn none() -> Self {
        Self::default()
    }

    /// These reporters and `reporter` after them.
    #[must_use]
    pub fn with(mut self, reporter: impl Reporter + 'static) -> Self {
        self.0.push(Arc::new(reporter));
        self
    }

    /// These reporters and an already shared `reporter` after them.
    #[must_use]
    pub fn with_shared(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.0.push(reporter);
        self
    }

    /// `reporter`, then these reporters: for a record that must be up to date before anyone
    /// else hears the event (a client that sees `run-finished` on the live stream and then reads
    /// `/metrics` finds the run counted).
    #[must_use]
    pub fn with_first(mut self, reporter: impl Reporter + 'static) -> Self {
        self.0.insert(0, Arc::new(reporter));
        self
    }

    /// Hands `event` to every reporter, in order.
    pub fn report(&self, run_id: Uuid, event: &RunEvent) {
        for reporter in &self.0 {
            reporter.report(run_id, event);
        }
    }
}

/// Forwards every event into a channel: the CLI's terminal printer, a test. A closed receiver
/// is ignored (the run goes on without it).
pub struct ChannelReporter(pub UnboundedSender<RunEvent>);

impl Reporter for ChannelReporter {
    fn report(&self, _run_id: Uuid, event: &RunEvent) {
        let _ = self.0.send(event.clone());
    }
}

/// Calls a closure with every event: what an edge needs from the run besides the standard
/// reporters (the API's "the run holds its lease" answer).
pub struct FnReporter<F>(pub F);

impl<F> Reporter for FnReporter<F>
where
    F: Fn(Uuid, &RunEvent) + Send + Sync,
{
    fn report(&self, run_id: Uuid, event: &RunEvent) {
        (self.0)(run_id, event);
    }
}

/// The process's Prometheus metrics of a run: `f3_chaos_lease_wait_seconds` when it starts
/// (measured from when it was asked for), `f3_chaos_runs_total{scenario, stack, outcome}` when
/// it finishes.
pub struct MetricsReporter {
    metrics: Metrics,
    asked_at: Instant,
    /// Scenario and stack, from `run-started` (the `run-finished` event does not repeat them).
    place: Mutex<Option<(String, String)>>,
}

impl MetricsReporter {
    /// Metrics of a run asked for now.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            asked_at: Instant::now(),
            place: Mutex::new(None),
        }
    }
}

impl Reporter for MetricsReporter {
    fn report(&self, _run_id: Uuid, event: &RunEvent) {
        let mut place = self.place.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            RunEvent::RunStarted {
                scenario, stack, ..
            } => {
                self.metrics.lease_acquired_after(self.asked_at.elapsed());
                *place = Some((scenario.clone(), stack.clone()));
            }
            RunEvent::RunFinished { outcome, .. } => {
                if let Some((scenario, stack)) = place.as_ref() {
                    self.metrics.run_finished(scenario, stack, *outcome);
                }
            }
            _ => {}
        }
    }
}
