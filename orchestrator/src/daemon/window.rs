//! Tonight's chaos window as UTC instants, and the cron trigger that opens a night.
//!
//! Windows and cron expressions are evaluated in the configured IANA zone (DESIGN.md "Time"), so
//! 00:00–07:00 London stays 00:00–07:00 across DST changes; instants are UTC.

use std::str::FromStr as _;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::config::ChaosWindow;
use crate::plan::window::{night_window, open_or_next_night};

/// One night's window in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NightWindow {
    /// The chaos night: the local date on which the window starts.
    pub night: NaiveDate,
    /// Window start (UTC).
    pub start: DateTime<Utc>,
    /// Window end (UTC); slots must end by then.
    pub end: DateTime<Utc>,
}

/// The window that is open at `at`, else the next one to open — the planner's night and window
/// ([`crate::plan::window`]: DST gaps and overlaps resolved there).
pub fn window_at(window: &ChaosWindow, tz: Tz, at: DateTime<Utc>) -> NightWindow {
    let night = open_or_next_night(at, tz, *window);
    let span = night_window(night, tz, *window);
    NightWindow {
        night,
        start: span.start,
        end: span.end,
    }
}

/// The night after `night` (the window that opens next once `night`'s has ended).
pub fn next_night(window: &ChaosWindow, tz: Tz, night: &NightWindow) -> NightWindow {
    window_at(window, tz, night.end + Duration::milliseconds(1))
}

/// The default trigger: every day 5 minutes before the window opens (cron with seconds:
/// `sec min hour day-of-month month day-of-week`).
pub fn default_cron(window: &ChaosWindow) -> String {
    let fire = window.start - Duration::minutes(5);
    use chrono::Timelike as _;
    format!("{} {} {} * * *", fire.second(), fire.minute(), fire.hour())
}

/// A parsed cron trigger evaluated in a time zone.
#[derive(Debug, Clone)]
pub struct Trigger {
    schedule: cron::Schedule,
    tz: Tz,
}

impl Trigger {
    /// Parses `expression` (the `cron` crate's syntax: 6 or 7 fields, seconds first).
    ///
    /// # Errors
    /// The cron crate's message when the expression is invalid.
    pub fn parse(expression: &str, tz: Tz) -> Result<Trigger, String> {
        let schedule = cron::Schedule::from_str(expression)
            .map_err(|e| format!("invalid cron expression `{expression}`: {e}"))?;
        Ok(Trigger { schedule, tz })
    }

    /// When this trigger opens `night`: its first firing after the previous night's window ended
    /// and before `night`'s window ends (so every firing belongs to exactly one night: the one
    /// whose window is the next to end). `None`: the trigger does not schedule that night (e.g. a
    /// weekdays-only expression on a Saturday).
    ///
    /// The daemon runs a night once this instant has passed and while its window is open and the
    /// night is not closed — so a daemon started or taking over after the firing (even inside
    /// the window) still runs the night.
    pub fn opens(&self, window: &ChaosWindow, night: &NightWindow) -> Option<DateTime<Utc>> {
        let previous = night_window(night.night - Duration::days(1), self.tz, *window);
        let after = previous.end.min(night.start) - Duration::milliseconds(1);
        self.next_after(after).filter(|fire| *fire < night.end)
    }

    /// The next firing strictly after `after` (None if the expression never fires again).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&self.tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, TimeZone as _};

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("valid time")
    }

    #[test]
    fn open_window_is_tonight_and_closed_one_is_tomorrow() {
        let w = ChaosWindow {
            start: hm(0, 0),
            end: hm(7, 0),
        };
        let tz = chrono_tz::Europe::London;
        // 2026-07-01 02:00 BST = 01:00 UTC: the window is open.
        let at = Utc
            .with_ymd_and_hms(2026, 7, 1, 1, 0, 0)
            .single()
            .expect("instant");
        let n = window_at(&w, tz, at);
        assert_eq!(n.night, NaiveDate::from_ymd_opt(2026, 7, 1).expect("date"));
        assert_eq!(
            n.start,
            Utc.with_ymd_and_hms(2026, 6, 30, 23, 0, 0)
                .single()
                .expect("instant")
        );
        assert_eq!(
            n.end,
            Utc.with_ymd_and_hms(2026, 7, 1, 6, 0, 0)
                .single()
                .expect("instant")
        );
        // 12:00 UTC: the next window opens at midnight local.
        let at = Utc
            .with_ymd_and_hms(2026, 7, 1, 12, 0, 0)
            .single()
            .expect("instant");
        assert_eq!(
            window_at(&w, tz, at).night,
            NaiveDate::from_ymd_opt(2026, 7, 2).expect("date")
        );
    }

    #[test]
    fn window_crossing_midnight_and_default_cron() {
        let w = ChaosWindow {
            start: hm(23, 0),
            end: hm(5, 0),
        };
        let at = Utc
            .with_ymd_and_hms(2026, 1, 10, 2, 0, 0)
            .single()
            .expect("instant");
        let n = window_at(&w, chrono_tz::UTC, at);
        assert_eq!(n.night, NaiveDate::from_ymd_opt(2026, 1, 9).expect("date"));
        assert_eq!(default_cron(&w), "0 55 22 * * *");
        let t = Trigger::parse(&default_cron(&w), chrono_tz::UTC).expect("valid cron");
        assert_eq!(
            t.next_after(at),
            Some(
                Utc.with_ymd_and_hms(2026, 1, 10, 22, 55, 0)
                    .single()
                    .expect("instant")
            )
        );
        assert!(Trigger::parse("not cron", chrono_tz::UTC).is_err());
    }

    #[test]
    fn each_firing_opens_the_night_whose_window_ends_next() {
        let w = ChaosWindow {
            start: hm(0, 0),
            end: hm(7, 0),
        };
        let tz = chrono_tz::Europe::London;
        let utc = |d: u32, h: u32, m: u32| {
            Utc.with_ymd_and_hms(2026, 12, d, h, m, 0)
                .single()
                .expect("instant")
        };
        // 2 December 2026 is a Wednesday; London is on UTC in December.
        let night = window_at(&w, tz, utc(2, 12, 0)); // opens Thursday 3 December 00:00
        assert_eq!(
            night.night,
            NaiveDate::from_ymd_opt(2026, 12, 3).expect("date")
        );
        // The default trigger fires at 23:55 the evening before.
        let daily = Trigger::parse(&default_cron(&w), tz).expect("cron");
        assert_eq!(daily.opens(&w, &night), Some(utc(2, 23, 55)));
        // A firing inside the window opens that night (the daemon starts it then).
        let late = Trigger::parse("0 30 2 * * *", tz).expect("cron");
        assert_eq!(late.opens(&w, &night), Some(utc(3, 2, 30)));
        // A firing after the window ended belongs to the next night.
        let evening = Trigger::parse("0 0 20 * * *", tz).expect("cron");
        assert_eq!(evening.opens(&w, &night), Some(utc(2, 20, 0)));
        // Weekday nights only (Monday–Friday mornings): Sunday's night is not scheduled.
        let weekdays = Trigger::parse("0 55 23 * * Sun-Thu", tz).expect("cron");
        assert_eq!(weekdays.opens(&w, &night), Some(utc(2, 23, 55)));
        let sunday = window_at(&w, tz, utc(5, 12, 0)); // Sunday 6 December's night
        assert_eq!(
            sunday.night,
            NaiveDate::from_ymd_opt(2026, 12, 6).expect("date")
        );
        assert_eq!(weekdays.opens(&w, &sunday), None);
        assert_eq!(
            next_night(&w, tz, &night).night,
            NaiveDate::from_ymd_opt(2026, 12, 4).expect("date")
        );
    }
}
