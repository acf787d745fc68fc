//! Inline SVG evidence graphs: the observed series, the threshold line, the fault window shaded.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;

const W: f64 = 640.0;
const H: f64 = 160.0;
const PAD: f64 = 24.0;

/// An SVG of the evidence document's `series[].points[]` (`{at, value}`), the `threshold` as a
/// dashed line labelled as everywhere else (`needs < 250 ms`, [`crate::present`], with the
/// evidence's `op` and `unit`) and `fault` (inject..revert) shaded; `None` when there are no
/// finite points.
pub fn evidence_graph(
    evidence: &Value,
    threshold: Option<f64>,
    fault: Option<(DateTime<Utc>, DateTime<Utc>)>,
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
        "<svg class=\"graph\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" \
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
    }
    if let Some(th) = threshold.filter(|t| t.is_finite()) {
        let text = |field: &str| evidence.get(field).and_then(Value::as_str);
        let label = crate::present::comparison(None, text("op"), Some(th), text("unit"))
            .unwrap_or_default();
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
    let _ = write!(
        out,
        "<text class=\"label\" x=\"2\" y=\"{PAD}\">{}</text><text class=\"label\" x=\"2\" y=\"{:.1}\">{}</text></svg>",
        fmt(v1),
        H - PAD,
        fmt(v0)
    );
    Some(out)
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
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
        let svg = super::evidence_graph(&ev, Some(0.25), a.zip(b)).unwrap_or_default();
        assert!(
            svg.contains("polyline")
                && svg.contains(">needs &lt; 250 ms</text>")
                && svg.contains("class=\"fault\"")
        );
        assert!(super::evidence_graph(&json!({}), None, None).is_none());
    }
}
