//! Inline SVG evidence graphs: the observed series, the threshold line, the fault window shaded.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;

const W: f64 = 1000.0;
const H: f64 = 200.0;
const PAD: f64 = 24.0;
/// Series with at most this many points get a marker on each.
pub const MARKED_POINTS: usize = 60;

/// An SVG of the evidence document's `series[].points[]` (`{at, value}`), the `threshold` as a
/// dashed line labelled as everywhere else (`needs < 250 ms`, [`crate::present`], with the
/// evidence's `op` and `unit`) and `fault` (inject..revert) shaded; `None` when there are no
/// finite points. Every point of a short series (at most [`MARKED_POINTS`]) gets a marker, so an
/// instant check's single point shows; the x axis is labelled with the first and last instants
/// in `tz`, the value axis's bounds in the evidence's unit. The SVG scales to
/// its container's width (`viewBox`).
pub fn evidence_graph(
    evidence: &Value,
    threshold: Option<f64>,
    fault: Option<(DateTime<Utc>, DateTime<Utc>)>,
    tz: chrono_tz::Tz,
) -> Option<String> {
    let mut series: Vec<Vec<(i64, f64)>> = Vec::new();
    for s in evidence.get("series")?.as_array()? {
        let points = s
            .get("points")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| {
                        let at = p.get("at")?.as_str()?.parse::<DateTime<Utc>>().ok()?;
                        let v = p.get("value")?.as_f64()?;
                        v.is_finite().then_some((at.timestamp_millis(), v))
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !points.is_empty() {
            series.push(points);
        }
    }
    let all = series.iter().flatten();
    let (mut t0, mut t1) = (i64::MAX, i64::MIN);
    let (mut v0, mut v1) = (f64::INFINITY, f64::NEG_INFINITY);
    for (t, v) in all {
        t0 = t0.min(*t);
        t1 = t1.max(*t);
        v0 = v0.min(*v);
        v1 = v1.max(*v);
    }
    if t0 > t1 {
        return None;
    }
    if let Some(th) = threshold.filter(|t| t.is_finite()) {
        v0 = v0.min(th);
        v1 = v1.max(th);
    }
    v0 = v0.min(0.0);
    if v1 <= v0 {
        v1 = v0 + 1.0;
    }
    v1 += (v1 - v0) * 0.1;
    let span = (t1 - t0).max(1) as f64;
    let x = |t: i64| PAD + (t - t0) as f64 / span * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - (v - v0) / (v1 - v0) * (H - 2.0 * PAD);
    let mut out = format!(
        "<svg class=\"graph\" viewBox=\"0 0 {W} {H}\" width=\"100%\" preserveAspectRatio=\"xMidYMid meet\" role=\"img\" \
         aria-label=\"evidence graph\">"
    );
    if let Some((a, b)) = fault {
        let (a, b) = (
            a.timestamp_millis().clamp(t0, t1),
            b.timestamp_millis().clamp(t0, t1),
        );
        let _ = write!(
            out,
            "<rect class=\"fault\" x=\"{:.1}\" y=\"{PAD}\" width=\"{:.1}\" height=\"{:.1}\"><title>fault active</title></rect>",
            x(a),
            (x(b) - x(a)).max(1.0),
            H - 2.0 * PAD
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{PAD}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\"/>",
        H - PAD,
        W - PAD
    );
    let unit = evidence.get("unit").and_then(Value::as_str);
    let at = |t: i64| {
        DateTime::<Utc>::from_timestamp_millis(t)
            .map(|t| t.with_timezone(&tz).format("%H:%M:%S").to_string())
            .unwrap_or_default()
    };
    for (i, s) in series.iter().enumerate() {
        let path: Vec<String> = s
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"series s{}\" points=\"{}\"/>",
            i % 4,
            path.join(" ")
        );
        if s.len() <= MARKED_POINTS {
            for (t, v) in s {
                let _ = write!(
                    out,
                    "<circle class=\"point s{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>{} {}</title></circle>",
                    i % 4,
                    x(*t),
                    y(*v),
                    at(*t),
                    minijinja::HtmlEscape(&crate::present::quantity(*v, unit))
                );
            }
        }
    }
    // Axes: first and last instant below; the value axis's top and bottom (in the unit) at the
    // left, above and on the baseline.
    let _ = write!(
        out,
        "<text class=\"label time\" x=\"{PAD}\" y=\"{0:.1}\">{1}</text>\
         <text class=\"label time\" x=\"{2:.1}\" y=\"{0:.1}\" text-anchor=\"end\">{3} {4}</text>\
         <text class=\"label value\" x=\"2\" y=\"{5:.1}\">{6}</text>\
         <text class=\"label value\" x=\"2\" y=\"{7:.1}\">{8}</text>",
        H - PAD + 14.0,
        at(t0),
        W - PAD,
        at(t1),
        tz.name(),
        PAD - 6.0,
        minijinja::HtmlEscape(&crate::present::quantity(v1, unit)),
        H - PAD - 3.0,
        minijinja::HtmlEscape(&crate::present::quantity(v0, unit)),
    );
    if let Some(th) = threshold.filter(|t| t.is_finite()) {
        let op = evidence.get("op").and_then(Value::as_str);
        let label = crate::present::comparison(None, op, Some(th), unit).unwrap_or_default();
        let label = minijinja::HtmlEscape(&label);
        let _ = write!(
            out,
            "<line class=\"threshold\" x1=\"{PAD}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\"><title>{label}</title></line>\
             <text class=\"label\" x=\"{1:.1}\" y=\"{2:.1}\" text-anchor=\"end\">{label}</text>",
            y(th),
            W - PAD,
            y(th) - 3.0
        );
    }
    out.push_str("</svg>");
    Some(out)
}

/// One night of a pass-rate chart: the night and how many of its finished runs passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NightTally {
    /// The chaos night.
    pub night: chrono::NaiveDate,
    /// Finished runs that passed.
    pub passed: usize,
    /// Finished runs.
    pub finished: usize,
}

/// Nights whose runs the trailing pass rate of [`pass_rate_chart`] pools.
pub const TRAILING_NIGHTS: usize = 7;

/// An SVG of pass rate (0–100 %) by night from `first` to `last`, oldest left: a marker per
/// night with finished runs at that night's pass rate (coloured: all passed, some, none), and a
/// line of the trailing [`TRAILING_NIGHTS`]-night pass rate (passed ÷ finished over the nights
/// up to it, pooled, so a night of one run weighs less than a night of ten). The x axis names
/// the first and last night, the y axis 0 % and 100 %. `None` when no night has a finished run.
/// `tallies` may come in any order, several for one night are added up, and nights outside
/// `first..=last` are ignored.
pub fn pass_rate_chart(
    tallies: &[NightTally],
    first: chrono::NaiveDate,
    last: chrono::NaiveDate,
    label: &str,
) -> Option<String> {
    let span = (last - first).num_days();
    if span < 0 {
        return None;
    }
    let mut by_night = vec![(0_usize, 0_usize); usize::try_from(span).ok()? + 1];
    for t in tallies {
        if let Some(i) = usize::try_from((t.night - first).num_days())
            .ok()
            .filter(|i| *i < by_night.len())
        {
            by_night[i].0 += t.passed;
            by_night[i].1 += t.finished;
        }
    }
    if by_night.iter().all(|(_, finished)| *finished == 0) {
        return None;
    }
    let (w, h) = (W, 160.0);
    let x = |i: usize| PAD + 30.0 + i as f64 / (span.max(1) as f64) * (w - 2.0 * PAD - 30.0);
    let y = |rate: f64| h - PAD - rate * (h - 2.0 * PAD);
    let mut out = format!(
        "<svg class=\"graph pass-rate\" viewBox=\"0 0 {w} {h}\" width=\"100%\" preserveAspectRatio=\"xMidYMid meet\" role=\"img\" \
         aria-label=\"{}\">",
        minijinja::HtmlEscape(label)
    );
    for rate in [0.0, 0.5, 1.0] {
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{:.1}\" y1=\"{1:.1}\" x2=\"{2:.1}\" y2=\"{1:.1}\"/>\
             <text class=\"label value\" x=\"2\" y=\"{3:.1}\">{4}</text>",
            PAD + 30.0,
            y(rate),
            w - PAD,
            y(rate) + 3.0,
            crate::present::ratio(rate)
        );
    }
    let mut trailing = Vec::new();
    for i in 0..by_night.len() {
        let from = i.saturating_sub(TRAILING_NIGHTS - 1);
        let (passed, finished) = by_night[from..=i]
            .iter()
            .fold((0, 0), |(p, f), (np, nf)| (p + np, f + nf));
        if finished > 0 {
            trailing.push(format!(
                "{:.1},{:.1}",
                x(i),
                y(passed as f64 / finished as f64)
            ));
        }
    }
    let _ = write!(
        out,
        "<polyline class=\"series trailing\" points=\"{}\"/>",
        trailing.join(" ")
    );
    for (i, (passed, finished)) in by_night.iter().enumerate() {
        if *finished == 0 {
            continue;
        }
        let rate = *passed as f64 / *finished as f64;
        let class = if passed == finished {
            "o-passed"
        } else if *passed == 0 {
            "o-failed"
        } else {
            "o-some"
        };
        let night = first + chrono::Duration::days(i as i64);
        let _ = write!(
            out,
            "<circle class=\"dot {class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{night}: {} ({passed} of {finished})</title></circle>",
            x(i),
            y(rate),
            crate::present::ratio(rate)
        );
    }
    let _ = write!(
        out,
        "<text class=\"label time\" x=\"{:.1}\" y=\"{1:.1}\">{first}</text>\
         <text class=\"label time\" x=\"{2:.1}\" y=\"{1:.1}\" text-anchor=\"end\">{last}</text></svg>",
        PAD + 30.0,
        h - PAD + 14.0,
        w - PAD,
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn draws_series_threshold_and_fault() {
        let ev = json!({"op": "<", "unit": "s", "series": [{"labels": {}, "points": [
            {"at": "2026-11-21T01:00:00Z", "value": 0.1},
            {"at": "2026-11-21T01:01:00Z", "value": 0.3}]}]});
        let a = "2026-11-21T01:00:30Z".parse().ok();
        let b = "2026-11-21T01:01:00Z".parse().ok();
        let svg = super::evidence_graph(&ev, Some(0.25), a.zip(b), chrono_tz::Europe::London)
            .unwrap_or_default();
        assert!(
            svg.contains("polyline")
                && svg.contains(">needs &lt; 250 ms</text>")
                && svg.contains("class=\"fault\"")
        );
        // Markers on the points, both axes labelled in the unit and the zone.
        assert_eq!(svg.matches("<circle class=\"point").count(), 2, "{svg}");
        assert!(svg.contains(">01:00:00</text>"), "{svg}");
        assert!(svg.contains(">01:01:00 Europe/London</text>"), "{svg}");
        assert!(
            // The value axis runs from 0 to the highest value plus a tenth, in ms.
            svg.contains(">330 ms</text>") && svg.contains(">0 ms</text>"),
            "{svg}"
        );
        assert!(super::evidence_graph(&json!({}), None, None, chrono_tz::Europe::London).is_none());
    }

    /// An instant check (one point) is drawn as a visible marker, not an empty box.
    #[test]
    fn a_single_point_is_marked() {
        let ev = json!({"unit": "ratio", "series": [{"labels": {}, "points": [
            {"at": "2026-11-21T01:00:00Z", "value": 0.9999}]}]});
        let svg = super::evidence_graph(&ev, Some(0.999), None, chrono_tz::UTC).unwrap();
        assert_eq!(svg.matches("<circle class=\"point").count(), 1, "{svg}");
        assert!(svg.contains("<title>01:00:00 99.99 %</title>"), "{svg}");
    }

    fn tally(day: u32, passed: usize, finished: usize) -> super::NightTally {
        super::NightTally {
            night: chrono::NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            passed,
            finished,
        }
    }

    /// Nightly markers at each night's rate, coloured by it, and a trailing line that pools the
    /// nights' runs; nights without a finished run have no marker.
    #[test]
    fn a_pass_rate_chart_marks_each_night_and_pools_the_trailing_rate() {
        let first = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let last = chrono::NaiveDate::from_ymd_opt(2026, 11, 10).unwrap();
        // Night 2: 1 of 1; night 3: 0 of 3; night 5: 1 of 2; night 30 is outside the range.
        let svg = super::pass_rate_chart(
            &[
                tally(2, 1, 1),
                tally(3, 0, 3),
                tally(5, 1, 2),
                tally(30, 0, 9),
            ],
            first,
            last,
            "pass rate",
        )
        .unwrap();
        assert_eq!(svg.matches("<circle class=\"dot").count(), 3, "{svg}");
        assert!(
            svg.contains("<title>2026-11-02: 100 % (1 of 1)</title>"),
            "{svg}"
        );
        assert!(svg.contains("class=\"dot o-failed\""), "{svg}");
        assert!(
            svg.contains("<title>2026-11-05: 50 % (1 of 2)</title>"),
            "{svg}"
        );
        assert!(svg.contains("class=\"dot o-some\""), "{svg}");
        // Trailing 7 nights on night 3: 1 passed of 4 runs, pooled (not the mean of 100 % and
        // 0 %): y = 160 - 24 - 0.25 × 112 = 108.
        let points = svg
            .split("class=\"series trailing\" points=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        let ys: Vec<&str> = points
            .split(' ')
            .map(|p| p.split(',').nth(1).unwrap())
            .collect();
        // Nights 2..10 all have a trailing rate (night 1 has none yet).
        assert_eq!(ys.len(), 9, "{points}");
        assert_eq!(ys[1], "108.0", "{points}");
        assert!(svg.contains(">2026-11-01</text>") && svg.contains(">2026-11-10</text>"));
        assert!(svg.contains(">100 %</text>") && svg.contains(">0 %</text>"));
        assert!(super::pass_rate_chart(&[tally(30, 0, 9)], first, last, "x").is_none());
    }
}
