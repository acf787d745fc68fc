//! Time series data as returned by an SLO source: [`Sample`] (instant query), [`Series`]
//! (range query) and [`Point`].
//!
//! Values are plain `f64` and may be NaN or ±Inf, as in Prometheus. Because JSON has no literal
//! for those, they are (de)serialised the way Prometheus writes them: finite values as JSON
//! numbers, the others as the strings `"NaN"`, `"+Inf"`, `"-Inf"` (see [`float`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Label set of a series (`{__name__="…", cloud="gcp"}`), sorted by name.
pub type SeriesLabels = BTreeMap<String, String>;

/// One value at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Evaluation timestamp (UTC, millisecond precision as in Prometheus).
    pub at: DateTime<Utc>,
    /// The value in the query's unit; may be NaN (no data, e.g. 0/0) or ±Inf.
    #[serde(with = "float")]
    pub value: f64,
}

/// One series of a range query: a label set and its points in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The series' labels (empty for an aggregated or scalar result).
    pub labels: SeriesLabels,
    /// Points in ascending time order.
    pub points: Vec<Point>,
}

/// One series of an instant query: a label set and one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The series' labels (empty for an aggregated or scalar result).
    pub labels: SeriesLabels,
    /// The value at the evaluation instant.
    pub point: Point,
}

impl From<Sample> for Series {
    fn from(s: Sample) -> Self {
        Series {
            labels: s.labels,
            points: vec![s.point],
        }
    }
}

/// Formats a label set the PromQL way: `{cloud="gcp", job="x"}` (`{}` when empty).
pub fn format_labels(labels: &SeriesLabels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Parses a Prometheus sample value string: a Go float (`"0.25"`, `"1e-3"`) or one of the special
/// values `"NaN"`, `"+Inf"`, `"-Inf"` (Prometheus HTTP API, "Expression query result formats":
/// values are strings because JSON cannot carry NaN/Inf).
pub fn parse_prom_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse::<f64>().ok(),
    }
}

/// Writes a value as Prometheus does: `NaN`, `+Inf`, `-Inf`, or the shortest round-trip decimal.
pub fn format_prom_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

/// Serde adapter for `f64` that survives NaN and ±Inf in JSON: finite values are numbers, the
/// others the strings `"NaN"`, `"+Inf"`, `"-Inf"`. Reading accepts a number or any such string.
pub mod float {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Serialises `value` (see the module docs).
    pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            s.serialize_f64(*value)
        } else {
            s.serialize_str(&super::format_prom_float(*value))
        }
    }

    /// Deserialises a number or a special-value string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(f64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Number(n) => Ok(n),
            Repr::Text(t) => super::parse_prom_float(&t)
                .ok_or_else(|| D::Error::custom(format!("not a number: `{t}`"))),
        }
    }

    /// The same for `Option<f64>` (`null` = `None`).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialises `Some` like [`super::serialize`], `None` as `null`.
        pub fn serialize<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        /// Deserialises `null`, a number or a special-value string.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] f64);
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_special_values() {
        assert!(parse_prom_float("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_prom_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_prom_float("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_prom_float("0.25"), Some(0.25));
        assert_eq!(parse_prom_float("1e-3"), Some(0.001));
        assert_eq!(parse_prom_float("abc"), None);
    }

    #[test]
    fn points_round_trip_through_json_with_special_values() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let series = Series {
            labels: [("cloud".to_owned(), "gcp".to_owned())].into(),
            points: vec![
                Point { at, value: 0.5 },
                Point {
                    at,
                    value: f64::NAN,
                },
                Point {
                    at,
                    value: f64::INFINITY,
                },
                Point {
                    at,
                    value: f64::NEG_INFINITY,
                },
            ],
        };
        let json = serde_json::to_string(&series).unwrap();
        assert!(json.contains("\"NaN\"") && json.contains("\"+Inf\"") && json.contains("\"-Inf\""));
        let back: Series = serde_json::from_str(&json).unwrap();
        assert_eq!(back.points[0], series.points[0]);
        assert!(back.points[1].value.is_nan());
        assert_eq!(back.points[2].value, f64::INFINITY);
        assert_eq!(back.points[3].value, f64::NEG_INFINITY);
        assert_eq!(back.points[0].at, at);
    }

    #[test]
    fn formats_labels_like_promql() {
        let labels: SeriesLabels = [("a".into(), "1".into()), ("b".into(), "x\"y".into())].into();
        assert_eq!(format_labels(&labels), r#"{a="1", b="x\"y"}"#);
        assert_eq!(format_labels(&SeriesLabels::new()), "{}");
    }
}
