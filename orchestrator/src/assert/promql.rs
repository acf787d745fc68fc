//! What the engine reads from a PromQL expression and how it narrows one, on
//! `promql-parser`'s syntax tree: the series selectors behind a check (for the freshness and
//! closing-sample rules of [`super::evaluate`]) and ranges clipped to a recent span (abort
//! conditions judge only post-injection samples).

use std::time::Duration;

use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::visitor::{ExprVisitorMut, walk_expr_mut};
use promql_parser::util::{ExprVisitor, walk_expr};

/// The distinct series selectors an expression reads (instant or range selectors, rendered
/// without `offset` and `@`, so they select the series' current samples), in order of
/// appearance. Empty when `query` reads no series or does not parse.
pub fn series_selectors(query: &str) -> Vec<String> {
    struct Selectors(Vec<String>);
    impl Selectors {
        fn add(&mut self, vs: &VectorSelector) {
            let current = VectorSelector {
                offset: None,
                at: None,
                ..vs.clone()
            };
            let rendered = current.to_string();
            if !self.0.contains(&rendered) {
                self.0.push(rendered);
            }
        }
    }
    impl ExprVisitor for Selectors {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
            match expr {
                Expr::VectorSelector(vs) => self.add(vs),
                Expr::MatrixSelector(ms) => self.add(&ms.vs),
                _ => {}
            }
            Ok(true)
        }
    }

    let Ok(expr) = promql_parser::parser::parse(query) else {
        return Vec::new();
    };
    let mut selectors = Selectors(Vec::new());
    let Ok(_) = walk_expr(&mut selectors, &expr);
    selectors.0
}

/// The queries that tell up to which instant Prometheus holds the inputs of `query`: one
/// `min(timestamp(SELECTOR))` per [`series_selectors`] entry. Each answers, in Unix seconds, the
/// oldest "latest sample" among the selector's series (PromQL `timestamp()` of a vector selector
/// is its samples' own timestamps).
pub fn closing_sample_queries(query: &str) -> Vec<String> {
    series_selectors(query)
        .into_iter()
        .map(|sel| format!("min(timestamp({sel}))"))
        .collect()
}

/// The query answering, in Unix seconds, when Prometheus last scraped any series `selector`
/// selects: `max(timestamp(SELECTOR))` (the freshness rule of [`super::evaluate`]).
pub fn newest_sample_query(selector: &str) -> String {
    format!("max(timestamp({selector}))")
}

/// The longest range `query` reads back from an evaluation instant (range selectors `x[15s]`
/// and subqueries `(…)[1m:]`; offsets aside): a point of a range query at `t` is computed from
/// samples of `[t − range, t]`. `None` when the query has no range or does not parse.
pub fn longest_range(query: &str) -> Option<Duration> {
    struct Longest(Option<Duration>);
    impl ExprVisitor for Longest {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
            let range = match expr {
                Expr::MatrixSelector(ms) => Some(ms.range),
                Expr::Subquery(sq) => Some(sq.range),
                _ => None,
            };
            if let Some(range) = range {
                self.0 = Some(self.0.map_or(range, |longest| longest.max(range)));
            }
            Ok(true)
        }
    }
    let expr = promql_parser::parser::parse(query).ok()?;
    let mut longest = Longest(None);
    let Ok(_) = walk_expr(&mut longest, &expr);
    longest.0
}

/// `query` with every range (range selectors `x[15s]` and subqueries `(…)[1m:]`) shortened
/// to at most `longest`, rendered back to PromQL, and whether any range was shortened. `None`
/// when the query does not parse or has no range at all (nothing to clip).
pub fn clip_ranges(query: &str, longest: Duration) -> Option<(String, bool)> {
    struct Clip {
        longest: Duration,
        ranges: usize,
        clipped: bool,
    }
    impl Clip {
        fn clip(&mut self, range: &mut Duration) {
            self.ranges += 1;
            if *range > self.longest {
                *range = self.longest;
                self.clipped = true;
            }
        }
    }
    impl ExprVisitorMut for Clip {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &mut Expr) -> Result<bool, Self::Error> {
            match expr {
                Expr::MatrixSelector(ms) => self.clip(&mut ms.range),
                Expr::Subquery(sq) => self.clip(&mut sq.range),
                _ => {}
            }
            Ok(true)
        }
    }

    let mut expr = promql_parser::parser::parse(query).ok()?;
    let mut clip = Clip {
        longest,
        ranges: 0,
        clipped: false,
    };
    let Ok(_) = walk_expr_mut(&mut clip, &mut expr);
    (clip.ranges > 0).then(|| (expr.to_string(), clip.clipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_range_of_selectors_and_subqueries() {
        let q = "sum(rate(a[15s])) / sum(rate(b[1m]))";
        assert_eq!(longest_range(q), Some(Duration::from_secs(60)));
        assert_eq!(
            longest_range("max_over_time(rate(a[5s])[2m:10s])"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(longest_range("min(gateway_backend_healthy)"), None);
        assert_eq!(longest_range("sum(("), None);
    }

    #[test]
    fn ranges_are_clipped_to_the_span_since_injection() {
        let (query, clipped) = clip_ranges(
            "sum(rate(payments_total{status=\"ok\"}[15s])) / sum(rate(payments_total[15s]))",
            Duration::from_secs(4),
        )
        .expect("has ranges");
        assert!(clipped);
        assert_eq!(
            query,
            "sum(rate(payments_total{status=\"ok\"}[4s])) / sum(rate(payments_total[4s]))"
        );
        let (query, clipped) =
            clip_ranges("max_over_time(up[1m])", Duration::from_secs(300)).expect("has ranges");
        assert!(!clipped);
        assert_eq!(query, "max_over_time(up[1m])");
        assert!(clip_ranges("min(payment_simulator_target_tps)", Duration::from_secs(1)).is_none());
        assert!(clip_ranges("not promql (", Duration::from_secs(1)).is_none());
    }
}
