//! Human durations as written in scenario and config files: `90s`, `5m`, `1h30m`, `250ms`.
//!
//! Parsing is delegated to the `humantime` crate; this newtype only adds serde (as a string),
//! a JSON Schema, a `Display` that round-trips, and an upper bound ([`HumanDuration::MAX`], 365
//! days) so that no duration read from a file or a flag can overflow the time arithmetic done
//! with it. Fields have tighter bounds of their own (the scenario compile step checks them).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time written like `90s`, `5m` or `1h30m` (whole milliseconds or coarser).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub std::time::Duration);

/// Error for a duration that `humantime` cannot read, or one longer than [`HumanDuration::MAX`].
#[derive(Debug, thiserror::Error)]
#[error("invalid duration `{input}`: {reason} (write e.g. `90s`, `5m`, `1h30m`)")]
pub struct DurationError {
    /// The text as written.
    pub input: String,
    /// What is wrong: what humantime said, or that it is longer than [`HumanDuration::MAX`].
    pub reason: String,
    /// Whether the text is a well-formed duration that is too long (longer than
    /// [`HumanDuration::MAX`], or too large for `std::time::Duration`) rather than unreadable.
    pub too_long: bool,
}

impl HumanDuration {
    /// The longest duration [`HumanDuration::from_str`](std::str::FromStr) accepts: 365 days.
    pub const MAX: HumanDuration = HumanDuration::from_secs(365 * 24 * 3600);

    /// Builds from whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// The duration as `std::time::Duration`.
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// The duration in seconds (fractional).
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// The duration as a `chrono::Duration` (saturating at chrono's maximum).
    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    /// Parses `90s`, `5m`, `1h30m`, `250ms` … (humantime's syntax).
    ///
    /// Errors: text humantime cannot read, and durations longer than [`HumanDuration::MAX`]
    /// (with [`DurationError::too_long`] set).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let too_long = || DurationError {
            input: s.to_owned(),
            reason: format!("longer than {} (365 days)", HumanDuration::MAX),
            too_long: true,
        };
        if s.trim_start().starts_with('-') {
            return Err(DurationError {
                input: s.to_owned(),
                reason: "a duration cannot be negative".to_owned(),
                too_long: false,
            });
        }
        match humantime::parse_duration(s.trim()) {
            Ok(d) if d > HumanDuration::MAX.0 => Err(too_long()),
            Ok(d) => Ok(HumanDuration(d)),
            // humantime also says "overflow" for sub-nanosecond fractions (`0.5ns`): only
            // whole numbers are certainly too long.
            Err(humantime::DurationError::NumberOverflow) if !s.contains('.') => Err(too_long()),
            Err(e) => Err(DurationError {
                input: s.to_owned(),
                reason: e.to_string(),
                too_long: false,
            }),
        }
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // humantime prints `1h 30m`, and `1day` for 24h; we print the compact form users write,
        // in hours at most (`24h`, `36h30m`, `90s` → `1m30s`).
        let whole_hours = std::time::Duration::from_secs(self.0.as_secs() / 3600 * 3600);
        let rest = self.0.saturating_sub(whole_hours);
        let mut text = String::new();
        if !whole_hours.is_zero() {
            text.push_str(&format!("{}h", whole_hours.as_secs() / 3600));
        }
        if !rest.is_zero() || text.is_empty() {
            text.push_str(
                &humantime::format_duration(rest)
                    .to_string()
                    .replace(' ', ""),
            );
        }
        f.write_str(&text)
    }
}

impl From<std::time::Duration> for HumanDuration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as `90s`, `5m`, `1h30m` or `250ms`.",
            "pattern": "^\\s*([0-9]+\\s*(ns|us|ms|s|sec|secs|m|min|mins|h|hr|hrs|hour|hours|d|day|days)\\s*)+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips_compact_forms() {
        for (text, secs) in [("90s", 90), ("5m", 300), ("1h30m", 5400)] {
            let d: HumanDuration = text.parse().expect("valid duration");
            assert_eq!(d.as_std().as_secs(), secs, "{text}");
            assert_eq!(
                d.to_string().parse::<HumanDuration>().expect("round trip"),
                d
            );
        }
        assert_eq!(HumanDuration::from_secs(5400).to_string(), "1h30m");
        // `--max-age 24h` reads back as written, not `1day`.
        assert_eq!(HumanDuration::from_secs(86_400).to_string(), "24h");
        assert_eq!(HumanDuration::from_secs(131_400).to_string(), "36h30m");
        assert_eq!(HumanDuration::from_secs(0).to_string(), "0s");
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let err = "5 parsecs".parse::<HumanDuration>().expect_err("invalid");
        assert!(err.to_string().contains("1h30m"), "{err}");
        assert!(!err.too_long);
    }

    #[test]
    fn a_negative_duration_says_so() {
        let err = "-5s".parse::<HumanDuration>().expect_err("negative");
        assert_eq!(
            err.to_string(),
            "invalid duration `-5s`: a duration cannot be negative (write e.g. `90s`, `5m`, `1h30m`)"
        );
    }

    #[test]
    fn durations_are_bounded_at_365_days() {
        assert_eq!(HumanDuration::MAX.to_string(), "8760h");
        assert_eq!(
            "365d".parse::<HumanDuration>().ok(),
            Some(HumanDuration::MAX)
        );
        for text in [
            "366d",
            "18446744073709551615s",
            // More than u64::MAX seconds: humantime's own overflow.
            "99999999999999999999999s",
            "18446744073709551615h",
        ] {
            let err = text.parse::<HumanDuration>().expect_err(text);
            assert!(err.too_long, "{text}: {err}");
            assert!(err.to_string().contains("365 days"), "{err}");
        }
    }
}
