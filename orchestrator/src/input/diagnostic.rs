//! Diagnostics of the compile step: every problem found in scenario, catalogue and config files,
//! each naming file, line, column and field, rendered in the rustc/clippy style for people and as
//! JSON for tools (`f3-chaos validate --output json`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How bad a diagnostic is. Only errors make `validate` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file cannot be used; `validate` exits with `INVALID_INPUT`.
    Error,
    /// Suspicious but usable.
    Warning,
}

impl Severity {
    /// `error` or `warning`, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as given on the command line or found in a directory.
    pub file: PathBuf,
    /// 1-based line (0 = the file as a whole, e.g. it could not be read).
    pub line: usize,
    /// 1-based column in characters (0 = unknown).
    pub column: usize,
    /// Path of the field, e.g. `spec.then[1].owner` (empty = the document).
    pub field: String,
    /// What is wrong, one sentence without a trailing full stop.
    pub message: String,
    /// How to fix it, if we can tell.
    pub help: Option<String>,
    /// The source line the diagnostic points at (for rendering; not serialised).
    #[serde(skip)]
    pub source_line: Option<String>,
    /// Width in characters of the underlined text (at least 1 when rendered).
    #[serde(skip)]
    pub width: usize,
}

impl Diagnostic {
    /// An error without a position yet (see [`Diagnostic::at`]).
    pub fn error(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.into(),
            line: 0,
            column: 0,
            field: String::new(),
            message: message.into(),
            help: None,
            source_line: None,
            width: 0,
        }
    }

    /// A warning without a position yet.
    pub fn warning(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, message)
        }
    }

    /// Sets the position (1-based line and column) and the underline width.
    pub fn at(mut self, line: usize, column: usize, width: usize) -> Self {
        self.line = line;
        self.column = column;
        self.width = width;
        self
    }

    /// Sets the field path.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }

    /// Adds a help text.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Attaches the source line shown under the location arrow, taken from the file's text.
    pub fn with_source(mut self, text: &str) -> Self {
        if self.line > 0 {
            self.source_line = text.lines().nth(self.line - 1).map(str::to_owned);
        }
        self
    }

    /// Attaches the source line shown under the location arrow, already cut out of the file
    /// (`None`: no line to show). Cheaper than [`Diagnostic::with_source`] on large files.
    pub fn with_source_line(mut self, line: Option<&str>) -> Self {
        self.source_line = line.map(str::to_owned);
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// rustc style:
    ///
    /// ```text
    /// error: unknown team `paymnts`
    ///   --> scenarios/x.yaml:12:14
    ///    |
    /// 12 |       owner: paymnts
    ///    |              ^^^^^^^ field `spec.then[1].owner`
    ///    = help: known teams: payments, sre-chaos
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.severity.as_str(), self.message)?;
        let gutter = if self.line > 0 {
            self.line.to_string().len()
        } else {
            1
        };
        let pad = " ".repeat(gutter);
        write!(f, "{pad}--> {}", display_path(&self.file))?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        writeln!(f)?;
        let label = if self.field.is_empty() {
            String::new()
        } else {
            format!(" field `{}`", self.field)
        };
        match &self.source_line {
            Some(src) => {
                writeln!(f, "{pad} |")?;
                writeln!(f, "{} | {}", self.line, src)?;
                let col = self.column.max(1);
                // Underline within the line (tabs kept so the caret lines up in terminals).
                let lead: String = src
                    .chars()
                    .take(col - 1)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let avail = src.chars().count().saturating_sub(col - 1).max(1);
                let width = self.width.clamp(1, avail);
                writeln!(f, "{pad} | {lead}{}{label}", "^".repeat(width))?;
            }
            None if !label.is_empty() => writeln!(f, "{pad} ={label}")?,
            None => {}
        }
        if let Some(help) = &self.help {
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

fn display_path(path: &Path) -> String {
    path.display().to_string()
}

/// Every diagnostic of one compile, in a stable order (file, line, column).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Adds all of another list.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.0.iter().filter(|d| !d.is_error()).count()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Sorts by file, line, column and drops exact duplicates (a scenario checked against two
    /// configs may report the same problem twice).
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.file, a.line, a.column, a.severity, &a.message)
                .cmp(&(&b.file, b.line, b.column, b.severity, &b.message))
        });
        self.0.dedup_by(|a, b| a == b);
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    /// Every diagnostic, a blank line between them, then a summary line like rustc's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let (e, w) = (self.error_count(), self.warning_count());
        if e > 0 {
            write!(f, "error: {e} error{}", if e == 1 { "" } else { "s" })?;
            if w > 0 {
                write!(f, "; {w} warning{}", if w == 1 { "" } else { "s" })?;
            }
            writeln!(f)?;
        } else if w > 0 {
            writeln!(f, "warning: {w} warning{}", if w == 1 { "" } else { "s" })?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rustc() {
        let text = "a: 1\nspec:\n  then:\n    - owner: paymnts\n";
        let d = Diagnostic::error("scenarios/x.yaml", "unknown team `paymnts`")
            .at(4, 14, 7)
            .field("spec.then[0].owner")
            .help("known teams: payments")
            .with_source(text);
        let shown = d.to_string();
        assert_eq!(
            shown,
            "error: unknown team `paymnts`\n --> scenarios/x.yaml:4:14\n  |\n4 |     - owner: paymnts\n  |              ^^^^^^^ field `spec.then[0].owner`\n  = help: known teams: payments\n"
        );
    }

    #[test]
    fn sorts_and_dedups() {
        let a = Diagnostic::error("b.yaml", "x").at(2, 1, 1);
        let b = Diagnostic::error("a.yaml", "y").at(9, 1, 1);
        let mut ds = Diagnostics(vec![a.clone(), b.clone(), a.clone()]);
        ds.sort();
        assert_eq!(ds.0, vec![b, a]);
        assert_eq!(ds.error_count(), 2);
    }
}
