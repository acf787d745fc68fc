//! Nights and their windows in the configured IANA time zone.
//!
//! **Night `D`** is the chaos window that *starts* on local date `D` at the configured start time and
//! ends at the configured end time — on `D` when `end > start` (00:00–07:00), on `D + 1` when the
//! window crosses midnight (22:00–06:00). Local times are resolved with the zone's rules of that
//! date, so the window keeps its wall-clock edges across DST changes and its length in real time
//! changes instead: 00:00–07:00 Europe/London is 6 h on the last Sunday of March and 8 h on the last
//! Sunday of October.
//!
//! A local time that does not exist (inside a spring-forward gap) resolves to the first instant
//! after the gap; an ambiguous one (inside the autumn overlap) resolves to the earlier instant.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::model::Window;
use crate::config::ChaosWindow;

/// What decides which night an instant belongs to: the configured zone and window. Every run
/// is counted on a night this way — the daemon's planned night, or for an ad-hoc run the night of
/// its start — never on its UTC date (a run at 00:30 BST is on that local night, not the day
/// before).
#[derive(Debug, Clone, Copy)]
pub struct NightCalendar {
    /// IANA zone of the window.
    pub tz: Tz,
    /// The window in local wall-clock time.
    pub window: ChaosWindow,
}

impl NightCalendar {
    /// The calendar of `config` (`spec.timezone`, `spec.window`).
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            tz: config.timezone,
            window: config.window,
        }
    }

    /// The UTC window `[start, end)` of `night` in this calendar ([`night_window`]).
    pub fn window_of(&self, night: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let w = night_window(night, self.tz, self.window);
        (w.start, w.end)
    }

    /// [`night_of`] in this calendar.
    pub fn night_of(&self, instant: DateTime<Utc>) -> NaiveDate {
        night_of(instant, self.tz, self.window)
    }
}

impl Default for NightCalendar {
    /// The configuration defaults: Europe/London, 00:00–07:00.
    fn default() -> Self {
        Self::of(&crate::config::Config::default())
    }
}

/// The UTC window of night `night` (see the module docs for the definition).
pub fn night_window(night: NaiveDate, tz: Tz, window: ChaosWindow) -> Window {
    let end_date = if window.end <= window.start {
        night.succ_opt().unwrap_or(night)
    } else {
        night
    };
    Window {
        start: resolve(tz, night.and_time(window.start)),
        end: resolve(tz, end_date.and_time(window.end)),
    }
}

/// The night an instant belongs to: the local date on which the most recent window start at or
/// before it fell (for a 00:00 start, simply the local date).
pub fn night_of(instant: DateTime<Utc>, tz: Tz, window: ChaosWindow) -> NaiveDate {
    let local = instant.with_timezone(&tz).naive_local();
    let since_midnight = window.start - NaiveTime::MIN;
    (local - since_midnight).date()
}

/// The night whose window is open at `at`, else the next one to open (the night `f3-chaos plan`,
/// the API's `next` and the daemon work on).
pub fn open_or_next_night(at: DateTime<Utc>, tz: Tz, window: ChaosWindow) -> NaiveDate {
    let current = night_of(at, tz, window);
    if at < night_window(current, tz, window).end {
        current
    } else {
        current.succ_opt().unwrap_or(current)
    }
}

/// A local wall-clock time as a UTC instant (gap → first instant after it; overlap → earlier).
pub fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    // DST gaps are at most a few hours; step by minutes until the wall clock exists again.
    for _ in 0..(24 * 60) {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += Duration::minutes(1);
    }
    // No zone has a day-long gap; fall back to reading the wall clock as UTC.
    Utc.from_utc_datetime(&local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> ChaosWindow {
        ChaosWindow {
            start: NaiveTime::from_hms_opt(0, 0, 0).expect("valid"),
            end: NaiveTime::from_hms_opt(7, 0, 0).expect("valid"),
        }
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn plan_window_is_seven_hours_on_an_ordinary_night() {
        let w = night_window(date(2026, 11, 21), chrono_tz::Europe::London, london());
        assert_eq!(w.start.to_rfc3339(), "2026-11-21T00:00:00+00:00");
        assert_eq!(w.length(), Duration::hours(7));
        let w = night_window(date(2026, 7, 1), chrono_tz::Europe::London, london());
        assert_eq!(w.start.to_rfc3339(), "2026-06-30T23:00:00+00:00");
        assert_eq!(w.length(), Duration::hours(7));
    }

    #[test]
    fn plan_window_is_six_hours_when_clocks_go_forward() {
        // Last Sunday of March 2026: 01:00 GMT → 02:00 BST.
        let w = night_window(date(2026, 3, 29), chrono_tz::Europe::London, london());
        assert_eq!(w.start.to_rfc3339(), "2026-03-29T00:00:00+00:00");
        assert_eq!(w.end.to_rfc3339(), "2026-03-29T06:00:00+00:00");
        assert_eq!(w.length(), Duration::hours(6));
    }

    #[test]
    fn plan_window_is_eight_hours_when_clocks_go_back() {
        // Last Sunday of October 2026: 02:00 BST → 01:00 GMT.
        let w = night_window(date(2026, 10, 25), chrono_tz::Europe::London, london());
        assert_eq!(w.start.to_rfc3339(), "2026-10-24T23:00:00+00:00");
        assert_eq!(w.end.to_rfc3339(), "2026-10-25T07:00:00+00:00");
        assert_eq!(w.length(), Duration::hours(8));
    }

    #[test]
    fn plan_window_crossing_midnight_ends_next_day_and_gap_start_moves_forward() {
        let cw = ChaosWindow {
            start: NaiveTime::from_hms_opt(22, 0, 0).expect("valid"),
            end: NaiveTime::from_hms_opt(6, 0, 0).expect("valid"),
        };
        let w = night_window(date(2026, 3, 28), chrono_tz::Europe::London, cw);
        assert_eq!(w.start.to_rfc3339(), "2026-03-28T22:00:00+00:00");
        assert_eq!(w.end.to_rfc3339(), "2026-03-29T05:00:00+00:00");
        assert_eq!(
            night_of(w.start + Duration::hours(3), chrono_tz::Europe::London, cw),
            date(2026, 3, 28)
        );
        // 01:30 does not exist on 2026-03-29 in London: the window starts at 02:00 BST = 01:00Z.
        let gap = ChaosWindow {
            start: NaiveTime::from_hms_opt(1, 30, 0).expect("valid"),
            end: cw.end,
        };
        let w = night_window(date(2026, 3, 29), chrono_tz::Europe::London, gap);
        assert_eq!(w.start.to_rfc3339(), "2026-03-29T01:00:00+00:00");
    }
}
