//! What the leader does with nights other than running them: closes nights whose window ended
//! while no daemon ran them to the end (a crash, a takeover after the window), and queues each
//! closed night's morning digest exactly once, `--digest-after` its window end — whichever daemon
//! leads then, whether or not it ran the night (the claim is in the store:
//! [`Store::queue_night_digest`]).

use chrono::{DateTime, Duration, Utc};

use super::night::journal;
use crate::model::NotificationKind;
use crate::notify::digest;
use crate::scenario::Library;
use crate::store::{NightDigest, NightState, Store, StoreError};

/// A night left open by a dead leader is closed this long after its window ended (a live leader
/// closes its own night itself once its runs have reverted, well within this).
pub const CLOSE_GRACE: Duration = Duration::seconds(60);

/// How often the leader looks at the nights even when no digest is due (a night closed by
/// another daemon, a night left open).
pub const SETTLE_POLL: std::time::Duration = std::time::Duration::from_secs(30);

/// A closed night's digest is not sent any more once its window ended this long ago (a daemon
/// that was down for days does not flood teams with stale digests on its return).
pub const DIGEST_GIVE_UP: Duration = Duration::hours(24);

/// The leader's view of the store's nights.
pub struct Nights<'a> {
    /// The store.
    pub store: &'a Store,
    /// Library and config (teams, for the digest).
    pub library: &'a Library,
    /// This daemon (`host pid N`), recorded with each transition.
    pub holder: &'a str,
    /// How long after a window ends its digest is queued.
    pub digest_after: Duration,
}

impl Nights<'_> {
    /// Closes nights whose window ended [`CLOSE_GRACE`] before `now`, queues the digests that are due, and
    /// returns when the next digest falls due (None: none pending).
    ///
    /// # Errors
    /// Store failures (the caller retries).
    pub async fn settle(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        for night in self.store.nights_to_close(now - CLOSE_GRACE).await? {
            // Its runs were (or are being) reconciled by the sweep; nothing of it runs any more.
            let record = self
                .store
                .set_night_state(
                    night.night,
                    (night.window_start, night.window_end),
                    NightState::Closed,
                    self.holder,
                    now,
                )
                .await?;
            journal(&serde_json::json!({
                "event": "night-closed", "night": record.night, "was": night.state,
                "reason": "the window ended while no daemon was running the night",
            }));
        }
        let mut next_due: Option<DateTime<Utc>> = None;
        for night in self
            .store
            .nights_awaiting_digest(now - DIGEST_GIVE_UP)
            .await?
        {
            let due = night.window_end + self.digest_after;
            if due > now {
                next_due = Some(next_due.map_or(due, |t| t.min(due)));
                continue;
            }
            self.queue_digest(night.night, now).await?;
        }
        Ok(next_due)
    }

    /// [`Nights::settle`] until `stop` is cancelled: at each digest's due time, whenever `wake`
    /// is notified (this daemon closed a night), and at least every [`SETTLE_POLL`].
    pub async fn keep_settling(
        &self,
        wake: &tokio::sync::Notify,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let now = Utc::now();
            let poll = now + Duration::from_std(SETTLE_POLL).unwrap_or_default();
            let wake_at = match self.settle(now).await {
                Ok(next) => next.map_or(poll, |due| due.min(poll)),
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot close nights or queue digests; retrying.");
                    now + Duration::seconds(5)
                }
            };
            tokio::select! {
                () = super::night::sleep_or_stop(wake_at, &stop) => {}
                () = wake.notified() => {}
            }
            if stop.is_cancelled() {
                return;
            }
        }
    }

    /// Builds and queues the digest of `night` unless another daemon (or an earlier life of this
    /// one) already did.
    async fn queue_digest(
        &self,
        night: chrono::NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let digests = digest::build(self.store, night, &self.library.config).await?;
        let messages: Vec<NightDigest> = digests
            .iter()
            .filter_map(|d| {
                Some(NightDigest {
                    anchor_run: d.anchor_run?,
                    team: d.team.clone(),
                    kind: NotificationKind::Digest,
                    payload: digest::payload(night, d),
                })
            })
            .collect();
        match self.store.queue_night_digest(night, &messages, now).await? {
            Some(ids) => journal(
                &serde_json::json!({ "event": "digest", "night": night, "messages": ids.len() }),
            ),
            None => {
                tracing::info!(%night, "The night's digest was already queued by another daemon.")
            }
        }
        Ok(())
    }
}
