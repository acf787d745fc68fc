//! `GET /api/v1/runs/{id}/events`: a run's [`RunEvent`]s as Server-Sent Events.
//!
//! Each SSE message is `event: <kind>` (`run-started`, `step-finished`, …, `run-finished`),
//! `id: <seq>` (1, 2, … as in the store's event log) and `data: <the RunEvent as JSON>`. The
//! stream replays the run's events from the first and ends after `run-finished`:
//! - runs started in this process — through this API or by the daemon's night — are followed
//!   live: [`LiveRuns`] is one of their [`Reporter`]s, an in-memory hub that hands a subscriber
//!   the history so far and every later event, without gap or duplicate;
//! - other runs are replayed from the store; while such a run is still running (another process
//!   owns it, e.g. `f3-chaos run` in a terminal) the store is polled every [`POLL`] for new
//!   events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, BoxStream, StreamExt as _};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use uuid::Uuid;

use super::auth::Caller;
use super::reads::find_run;
use super::{ApiError, ApiState};
use crate::run::{Reporter, RunEvent};
use crate::store::Store;

/// How often a run owned by another process is polled in the store.
pub(super) const POLL: Duration = Duration::from_secs(1);

/// Runs of this process that have not ended: their events so far and the subscribers. As a
/// [`Reporter`] it opens a run's hub at `run-started` and closes it after `run-finished`.
#[derive(Default)]
pub(crate) struct LiveRuns {
    runs: Mutex<HashMap<Uuid, LiveRun>>,
}

#[derive(Default)]
struct LiveRun {
    history: Vec<RunEvent>,
    subscribers: Vec<UnboundedSender<RunEvent>>,
}

impl LiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, LiveRun>> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens the hub of a run about to start (an open hub is kept).
    pub(super) fn register(&self, run_id: Uuid) {
        self.lock().entry(run_id).or_default();
    }

    /// Records `event` and hands it to every subscriber.
    pub(super) fn publish(&self, run_id: Uuid, event: &RunEvent) {
        if let Some(run) = self.lock().get_mut(&run_id) {
            run.history.push(event.clone());
            run.subscribers.retain(|s| s.send(event.clone()).is_ok());
        }
    }

    /// Closes the hub: subscribers' streams end once they have read what was sent.
    pub(super) fn finish(&self, run_id: Uuid) {
        self.lock().remove(&run_id);
    }

    /// The events so far and a receiver of the later ones, if the run is live here.
    pub(super) fn subscribe(
        &self,
        run_id: Uuid,
    ) -> Option<(Vec<RunEvent>, UnboundedReceiver<RunEvent>)> {
        let mut runs = self.lock();
        let run = runs.get_mut(&run_id)?;
        let (tx, rx) = unbounded_channel();
        run.subscribers.push(tx);
        Some((run.history.clone(), rx))
    }
}

impl Reporter for LiveRuns {
    fn report(&self, run_id: Uuid, event: &RunEvent) {
        if matches!(event, RunEvent::RunStarted { .. }) {
            self.register(run_id);
        }
        self.publish(run_id, event);
        if matches!(event, RunEvent::RunFinished { .. }) {
            self.finish(run_id);
        }
    }
}

fn sse_event(seq: i64, event: &RunEvent) -> Event {
    let message = Event::default().event(event.kind()).id(seq.to_string());
    match message.clone().json_data(event) {
        Ok(m) => m,
        // RunEvent serialises to JSON by construction; keep the stream going regardless.
        Err(_) => message.data("{}"),
    }
}

/// A live run's events: history first, then whatever is published, numbered from 1.
pub(super) fn live_stream(
    history: Vec<RunEvent>,
    rx: UnboundedReceiver<RunEvent>,
) -> BoxStream<'static, RunEvent> {
    let later = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    stream::iter(history).chain(later).boxed()
}

/// A stored run's events from `seq` 1 on; polls while the run is still running, ends after
/// `run-finished` (or when the run has an outcome and no further events).
fn stored_stream(store: Store, run_id: Uuid) -> BoxStream<'static, (i64, RunEvent)> {
    struct Cursor {
        store: Store,
        run_id: Uuid,
        after: i64,
        done: bool,
        first: bool,
    }
    let cursor = Cursor {
        store,
        run_id,
        after: 0,
        done: false,
        first: true,
    };
    stream::unfold(cursor, |mut c| async move {
        loop {
            if c.done {
                return None;
            }
            if !c.first {
                tokio::time::sleep(POLL).await;
            }
            c.first = false;
            let records = match c.store.events(c.run_id).await {
                Ok(records) => records,
                Err(e) => {
                    tracing::warn!(run_id = %c.run_id, error = %e, "Could not read run events.");
                    return None;
                }
            };
            let mut batch = Vec::new();
            let after = c.after;
            for record in records.into_iter().filter(|r| r.seq > after) {
                c.after = record.seq;
                match serde_json::from_value::<RunEvent>(record.payload) {
                    Ok(event) => {
                        if matches!(event, RunEvent::RunFinished { .. }) {
                            c.done = true;
                        }
                        batch.push((record.seq, event));
                    }
                    Err(e) => {
                        tracing::warn!(run_id = %c.run_id, seq = record.seq, error = %e, "Skipped an unreadable stored event.");
                    }
                }
            }
            if !c.done && batch.is_empty() {
                // Ended without a run-finished event (e.g. swept as interrupted): stop.
                match c.store.run(c.run_id).await {
                    Ok(Some(run)) if run.is_running() => {}
                    _ => return None,
                }
            }
            if !batch.is_empty() {
                return Some((stream::iter(batch), c));
            }
        }
    })
    .flatten()
    .boxed()
}

/// `GET /api/v1/runs/{id}/events` (viewer). `id` is a run id or an unambiguous prefix of one.
pub(super) async fn run_events(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let run = find_run(&state, &id).await?;
    let events: BoxStream<'static, Result<Event, Infallible>> =
        match state.inner.live.subscribe(run.id) {
            Some((history, rx)) => live_stream(history, rx)
                .enumerate()
                .map(|(i, e)| Ok(sse_event(i as i64 + 1, &e)))
                .boxed(),
            None => stored_stream(state.inner.store.clone(), run.id)
                .map(|(seq, e)| Ok(sse_event(seq, &e)))
                .boxed(),
        };
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Phase, RunOutcome};

    fn started(run_id: Uuid) -> RunEvent {
        RunEvent::RunStarted {
            run_id,
            scenario: "gcp-failover-validation".into(),
            stack: "local".into(),
            started_by: "daemon".into(),
        }
    }

    /// A run started outside the API (the daemon's night) is never registered: as a reporter
    /// the hub opens it at `run-started`, serves history plus later events, and closes it after
    /// `run-finished`.
    #[test]
    fn a_run_reported_to_the_hub_is_followed_live_until_it_finishes() {
        let hub = LiveRuns::default();
        let run_id = Uuid::now_v7();
        assert!(hub.subscribe(run_id).is_none(), "not live before it starts");
        hub.report(run_id, &started(run_id));
        let step = RunEvent::StepStarted {
            index: 0,
            phase: Phase::Given,
            name: "Steady".into(),
        };
        hub.report(run_id, &step);
        let (history, mut rx) = hub.subscribe(run_id).expect("live once started");
        assert_eq!(
            history.iter().map(RunEvent::kind).collect::<Vec<_>>(),
            ["run-started", "step-started"]
        );
        hub.report(
            run_id,
            &RunEvent::RunFinished {
                outcome: RunOutcome::Passed,
                pass_rate: Some(1.0),
                reason: None,
            },
        );
        assert_eq!(rx.try_recv().map(|e| e.kind()), Ok("run-finished"));
        assert!(
            rx.try_recv().is_err() && rx.is_closed(),
            "the stream ends after run-finished"
        );
        assert!(hub.subscribe(run_id).is_none(), "the hub is closed");
    }
}
