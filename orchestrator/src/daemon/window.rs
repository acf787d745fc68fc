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
}
