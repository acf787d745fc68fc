//! A silence matcher of a stack's `silence.matchers` (config), in the Alertmanager API v2
//! `matcher` shape so the config and the wire share one type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One silence matcher: the API v2 `matcher` object
/// (`{"name":"stack","value":"uat-beta","isRegex":false,"isEqual":true}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    /// Label name, e.g. `stack`.
    pub name: String,
    /// Label value, or an RE2 regular expression when `is_regex` (anchored by Alertmanager).
    pub value: String,
    /// `=~` / `!~` rather than `=` / `!=`.
    pub is_regex: bool,
    /// `=` / `=~` rather than `!=` / `!~`.
    pub is_equal: bool,
}

impl SilenceMatcher {
    /// `name="value"`.
    pub fn equal(name: &str, value: &str) -> SilenceMatcher {
        SilenceMatcher {
            name: name.to_owned(),
            value: value.to_owned(),
            is_regex: false,
            is_equal: true,
        }
    }

    /// Parses one matcher in Prometheus selector syntax — `stack="uat-beta"`,
    /// `severity!="info"`, `cluster=~"gke-.*"`, `team!~"qa|dev"` — with the PromQL parser (the
    /// same syntax as `amtool silence add` and alerting rules).
    ///
    /// # Errors
    /// The parser's message, or "expected exactly one matcher" for `a="1",b="2"`.
    pub fn parse(text: &str) -> Result<SilenceMatcher, String> {
        use promql_parser::label::MatchOp;
        use promql_parser::parser::Expr;
        // A metric name makes the selector valid even when the one matcher matches "" (PromQL
        // refuses `{x=""}` alone); the name's own `__name__` matcher is then dropped.
        let expr = promql_parser::parser::parse(&format!("f3_silence{{{}}}", text.trim()))?;
        let Expr::VectorSelector(selector) = expr else {
            return Err("expected a label matcher such as `stack=\"uat-beta\"`".into());
        };
        let matchers: Vec<_> = selector
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name != "__name__")
            .collect();
        match (
            matchers.as_slice(),
            selector.matchers.or_matchers.is_empty(),
        ) {
            ([m], true) => Ok(SilenceMatcher {
                name: m.name.clone(),
                value: m.value.clone(),
                is_regex: matches!(m.op, MatchOp::Re(_) | MatchOp::NotRe(_)),
                is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Re(_)),
            }),
            _ => Err("expected exactly one matcher per list item".into()),
        }
    }

    /// Whether this matcher matches an absent label (the empty string). Alertmanager refuses a
    /// silence whose matchers all do: it would silence every alert.
    pub fn matches_empty(&self) -> bool {
        let hit = if self.is_regex {
            regex_matches_empty(&self.value)
        } else {
            self.value.is_empty()
        };
        hit == self.is_equal
    }
}

/// Whether the anchored regular expression `re` matches `""` (an invalid one counts as not).
fn regex_matches_empty(re: &str) -> bool {
    use promql_parser::label::{MatchOp, Matcher};
    promql_parser::parser::parse(&format!("f3_silence{{x=~{re:?}}}"))
        .ok()
        .and_then(|expr| match expr {
            promql_parser::parser::Expr::VectorSelector(s) => {
                s.matchers.matchers.into_iter().find(|m| m.name == "x")
            }
            _ => None,
        })
        .is_some_and(|m: Matcher| matches!(m.op, MatchOp::Re(_)) && m.is_match(""))
}

impl fmt::Display for SilenceMatcher {
    /// Prometheus selector syntax, e.g. `stack="uat-beta"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}
