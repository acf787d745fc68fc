//! Output of `f3-chaos plan`: a table and a text Gantt for people (times in the configured zone),
//! and JSON for machines (RFC 3339 UTC instants).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use super::model::{Plan, PlanInput, Slot};
use crate::duration::HumanDuration;

/// `hh:mm:ss` in the zone: slots start and end on whole seconds, and a 16 s overrun must show.
fn hms(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%H:%M:%S").to_string()
}

/// `1h30m`, `5m30s`, `45s`: the compact form scenario files use, to the second.
fn length(secs: i64) -> String {
    HumanDuration::from_secs(u64::try_from(secs).unwrap_or(0)).to_string()
}

fn header(plan: &Plan, tz: Tz) -> String {
    let w = plan.window;
    format!(
        "Night {} ({}): {}–{} local = {} – {} UTC ({})\nPlanned {} scenario(s), skipped {}; objective {}\n",
        plan.night,
        tz.name(),
        hms(w.start, tz),
        hms(w.end, tz),
        w.start.format("%Y-%m-%dT%H:%M:%SZ"),
        w.end.format("%Y-%m-%dT%H:%M:%SZ"),
        length(w.length().num_seconds()),
        plan.slots.len(),
        plan.skipped.len(),
        plan.objective
    )
}

fn column_width<'a>(items: impl Iterator<Item = &'a str>, min: usize) -> usize {
    items.map(|s| s.chars().count()).max().unwrap_or(0).max(min)
}

fn skipped_table(plan: &Plan, out: &mut String) {
    if plan.skipped.is_empty() {
        return;
    }
    let w = column_width(plan.skipped.iter().map(|s| s.scenario.as_str()), 8);
    let _ = writeln!(out, "\nNot planned:\n{:<w$}  REASON", "SCENARIO");
    for s in &plan.skipped {
        let _ = writeln!(out, "{:<w$}  {}", s.scenario, s.reason);
    }
}

/// The plan as a table: one line per slot in start order, then the skipped scenarios and why.
pub fn table(plan: &Plan, tz: Tz) -> String {
    let mut out = header(plan, tz);
    let ws = column_width(plan.slots.iter().map(|s| s.stack.as_str()), 5);
    let _ = writeln!(
        out,
        "\nSTART     END       {:<ws$}  LENGTH    SCENARIO",
        "STACK"
    );
    for s in &plan.slots {
        let _ = writeln!(
            out,
            "{}  {}  {:<ws$}  {:<8}  {}",
            hms(s.start, tz),
            hms(s.end, tz),
            s.stack,
            length((s.end - s.start).num_seconds()),
            s.scenario
        );
    }
    skipped_table(plan, &mut out);
    out
}

/// Symbols for slots in the Gantt chart, reused cyclically.
const KEYS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The plan as a text Gantt chart: one row per stack, `width` columns across the window; slots are
/// letters (legend below), `#` busy (reserved), `.` free.
pub fn gantt(input: &PlanInput, plan: &Plan, tz: Tz, width: usize) -> String {
    let mut out = header(plan, tz);
    let width = width.max(12);
    let total = plan.window.length().num_seconds().max(1);
    let col = |t: DateTime<Utc>| -> usize {
        let off = (t - plan.window.start).num_seconds().clamp(0, total);
        ((off as i128 * width as i128) / total as i128) as usize
    };
    let names: Vec<&str> = input.stacks.iter().map(|s| s.name.as_str()).collect();
    let wn = column_width(names.iter().copied(), 5);

    // Hour ticks in local time.
    let mut ticks = vec![b' '; width + 3];
    let mut t = plan.window.start;
    while t < plan.window.end {
        let local = t.with_timezone(&tz);
        if local.minute() == 0 && local.second() == 0 {
            let c = col(t);
            let label = format!("{:02}", local.hour());
            for (k, b) in label.bytes().enumerate() {
                if c + k < ticks.len() {
                    ticks[c + k] = b;
                }
            }
        }
        t += chrono::TimeDelta::minutes(1);
    }
    let _ = writeln!(
        out,
        "\n{:<wn$}  {}",
        "",
        String::from_utf8_lossy(&ticks).trim_end()
    );

    let mut legend: Vec<(char, &Slot)> = Vec::new();
    let mut by_stack: BTreeMap<&str, Vec<(char, &Slot)>> = BTreeMap::new();
    for (k, s) in plan.slots.iter().enumerate() {
        let key = KEYS[k % KEYS.len()] as char;
        legend.push((key, s));
        by_stack.entry(s.stack.as_str()).or_default().push((key, s));
    }
    for st in &input.stacks {
        let mut row = vec!['.'; width];
        for b in &st.busy {
            for c in row.iter_mut().take(col(b.span.end)).skip(col(b.span.start)) {
                *c = '#';
            }
        }
        for (key, s) in by_stack.get(st.name.as_str()).into_iter().flatten() {
            let (a, b) = (col(s.start), col(s.end).max(col(s.start) + 1).min(width));
            for c in row.iter_mut().take(b).skip(a) {
                *c = *key;
            }
        }
        let _ = writeln!(
            out,
            "{:<wn$} |{}|",
            st.name,
            row.into_iter().collect::<String>()
        );
    }
    if !legend.is_empty() {
        let _ = writeln!(out);
        for (key, s) in legend {
            let _ = writeln!(
                out,
                "{key}  {}–{}  {:<wn$}  {}",
                hms(s.start, tz),
                hms(s.end, tz),
                s.stack,
                s.scenario
            );
        }
    }
    skipped_table(plan, &mut out);
    out
}

/// The plan's [`PlanDocument`] as pretty JSON: `{ "schemaVersion", "night", "window":
/// {"start","end"}, "slots": [...], "skipped": [{"scenario","reason","code"}], "objective" }`,
/// instants in RFC 3339 UTC.
pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(&super::PlanDocument::of(plan))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
