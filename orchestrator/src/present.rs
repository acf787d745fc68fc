//! How values read for people: one formatting of observed values, thresholds and comparisons
//! for the terminal, `results`, JUnit, the dashboard, the digest and every notifier, so the same
//! value looks the same everywhere (`observed 410 ms, needs < 250 ms`).
//!
//! Rules, by the step's `unit` (as the SLO catalogue or the scenario writes it):
//! - `s` / `ms`: below one second in milliseconds (`410 ms`, `7.43 ms`), below a minute in
//!   seconds (`1.24 s`), longer as minutes and seconds (`5m 12s`, humantime);
//! - `ratio` (0–1) and `percent` (0–100): a percentage with three significant digits
//!   (`91.2 %`), and near 100 % as many decimals as it takes to show the distance to 100 % with
//!   two significant digits (`99.99 %`, `99.995 %`), so a value just under a 99.99 % threshold
//!   never reads as equal to it;
//! - `boolean`: `true` for 1 and `false` for 0;
//! - any other unit (`tps`, `failovers`, …) and none: whole numbers as integers (`0
//!   failovers`), others with three significant digits (`274.78` → `275 tps`, `2.384` → `2.38`).

/// `value` in `unit` for people, e.g. `410 ms`, `99.99 %`, `275 tps`, `0 failovers`, `true`.
/// Non-finite values read `NaN`, `∞` and `-∞`.
pub fn quantity(value: f64, unit: Option<&str>) -> String {
    if !value.is_finite() {
        let text = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "∞"
        } else {
            "-∞"
        };
        return match unit {
            Some(unit) if !matches!(unit, "boolean" | "ratio" | "percent") => {
                format!("{text} {unit}")
            }
            _ => text.to_owned(),
        };
    }
    match unit.map(str::trim) {
        Some("s") => seconds(value),
        Some("ms") => seconds(value / 1000.0),
        Some("ratio") => percent(value * 100.0),
        Some("percent" | "%") => percent(value),
        Some("boolean") if value == 0.0 => "false".to_owned(),
        Some("boolean") if value == 1.0 => "true".to_owned(),
        Some("boolean") | None | Some("") => number(value),
        Some(unit) => format!("{} {unit}", number(value)),
    }
}

/// The evidence of a judged check: `observed 410 ms, needs < 250 ms`; `needs < 250 ms` before
/// anything was observed; `observed 410 ms` without a threshold; `None` with neither. `op` is
/// the comparison that had to hold (`<`, `>=`, …), shown as written.
pub fn comparison(
    observed: Option<f64>,
    op: Option<&str>,
    threshold: Option<f64>,
    unit: Option<&str>,
) -> Option<String> {
    let needs = threshold.map(|t| match op {
        Some(op) => format!("needs {op} {}", quantity(t, unit)),
        None => format!("threshold {}", quantity(t, unit)),
    });
    match (observed, needs) {
        (Some(o), Some(needs)) => Some(format!("observed {}, {needs}", quantity(o, unit))),
        (Some(o), None) => Some(format!("observed {}", quantity(o, unit))),
        (None, needs) => needs,
    }
}

/// A ratio 0–1 as a percentage (`0.8` → `80 %`): [`quantity`] with unit `ratio`. Pass rates.
pub fn ratio(value: f64) -> String {
    quantity(value, Some("ratio"))
}

/// A duration for people: `45 s`, `5m 12s`, `1h 2m` (whole seconds, humantime); under a second
/// in milliseconds (`410 ms`).
pub fn duration(seconds_elapsed: f64) -> String {
    seconds(seconds_elapsed)
}

fn seconds(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude < 1.0 {
        // 0.9996 s rounds to 1000 ms; say 1 s instead.
        let ms = significant(value * 1000.0, 3);
        if ms.trim_start_matches('-') == "1000" {
            return format!("{} s", if value < 0.0 { "-1" } else { "1" });
        }
        format!("{ms} ms")
    } else if magnitude < 60.0 {
        format!("{} s", significant(value, 3))
    } else {
        let whole = std::time::Duration::from_secs(magnitude.round() as u64);
        let sign = if value < 0.0 { "-" } else { "" };
        format!("{sign}{}", humantime::format_duration(whole))
    }
}

fn percent(p: f64) -> String {
    let distance = 100.0 - p;
    let text = if p > 99.0 && p < 100.0 {
        // Decimals that show `distance` with two significant digits.
        let decimals = ((-distance.log10()).ceil() as i32 + 1).clamp(1, 6) as usize;
        trim(format!("{p:.decimals$}"))
    } else {
        significant(p, 3)
    };
    format!("{text} %")
}

fn number(value: f64) -> String {
    if value == value.trunc() && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        significant(value, 3)
    }
}

/// `value` with `digits` significant digits, trailing zeros dropped; values of `digits` or more
/// integer digits are rounded to an integer (`274.78` → `275`, `1234.5` → `1235`).
fn significant(value: f64, digits: i32) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    trim(format!("{value:.decimals$}"))
}

fn trim(text: String) -> String {
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        if trimmed == "-0" {
            "0".to_owned()
        } else {
            trimmed.to_owned()
        }
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_in_milliseconds_below_a_second() {
        assert_eq!(quantity(0.41, Some("s")), "410 ms");
        assert_eq!(quantity(0.25, Some("s")), "250 ms");
        assert_eq!(quantity(0.3127, Some("s")), "313 ms");
        assert_eq!(quantity(0.00743, Some("s")), "7.43 ms");
        assert_eq!(quantity(0.0, Some("s")), "0 ms");
        assert_eq!(quantity(0.9999, Some("s")), "1 s");
        assert_eq!(quantity(1.2372, Some("s")), "1.24 s");
        assert_eq!(quantity(31.0, Some("s")), "31 s");
        assert_eq!(quantity(312.4, Some("s")), "5m 12s");
        assert_eq!(quantity(250.0, Some("ms")), "250 ms");
    }

    #[test]
    fn ratios_read_as_percentages_that_keep_the_distance_to_100() {
        assert_eq!(quantity(0.9123, Some("ratio")), "91.2 %");
        assert_eq!(quantity(0.898, Some("ratio")), "89.8 %");
        assert_eq!(quantity(0.8, Some("ratio")), "80 %");
        assert_eq!(quantity(1.0, Some("ratio")), "100 %");
        assert_eq!(quantity(0.0, Some("ratio")), "0 %");
        assert_eq!(quantity(0.9999, Some("ratio")), "99.99 %");
        assert_eq!(quantity(0.99995, Some("ratio")), "99.995 %");
        assert_eq!(quantity(0.99989, Some("ratio")), "99.989 %");
        assert_eq!(quantity(0.995, Some("ratio")), "99.5 %");
        assert_eq!(quantity(0.00012, Some("ratio")), "0.012 %");
        assert_eq!(quantity(99.99, Some("percent")), "99.99 %");
        // Just under a threshold never reads as the threshold.
        assert_ne!(
            quantity(0.99985, Some("ratio")),
            quantity(0.9999, Some("ratio"))
        );
    }

    #[test]
    fn counts_rates_and_booleans() {
        assert_eq!(quantity(0.0, Some("failovers")), "0 failovers");
        assert_eq!(quantity(274.78, Some("tps")), "275 tps");
        assert_eq!(quantity(300.0, Some("tps")), "300 tps");
        assert_eq!(quantity(12.345, Some("tps")), "12.3 tps");
        assert_eq!(quantity(1.0, Some("boolean")), "true");
        assert_eq!(quantity(0.0, Some("boolean")), "false");
        assert_eq!(quantity(2.3842196531791906, None), "2.38");
        assert_eq!(quantity(-0.0001, None), "-0.0001");
        assert_eq!(quantity(f64::NAN, Some("s")), "NaN s");
        assert_eq!(quantity(f64::INFINITY, Some("ratio")), "∞");
    }

    #[test]
    fn a_comparison_always_shows_its_operator() {
        assert_eq!(
            comparison(Some(0.41), Some("<"), Some(0.25), Some("s")).as_deref(),
            Some("observed 410 ms, needs < 250 ms")
        );
        assert_eq!(
            comparison(Some(0.0), Some(">"), Some(0.0), Some("failovers")).as_deref(),
            Some("observed 0 failovers, needs > 0 failovers")
        );
        assert_eq!(
            comparison(None, Some(">="), Some(270.0), Some("tps")).as_deref(),
            Some("needs >= 270 tps")
        );
        assert_eq!(
            comparison(Some(0.5), None, None, None).as_deref(),
            Some("observed 0.5")
        );
        assert_eq!(comparison(None, None, None, Some("s")), None);
    }
}
