//! The one place that calls `serde_yaml` (archived upstream: a move to a maintained fork touches
//! only this file).
//!
//! A [`YamlFile`] is a parsed document plus an index from field paths (`spec.then[1].owner`) to
//! line:column positions, built from the marked events of `saphyr-parser` (serde_yaml exposes
//! positions only for its own syntax errors). Typed deserialisation goes through
//! `serde_path_to_error` and *recovers*: after an error it removes the offending node and tries
//! again, so one pass reports every unknown field and every ill-typed value, not just the first.
//!
//! Input is bounded before serde_yaml sees it: at most [`MAX_FILE_BYTES`] bytes and
//! [`MAX_DEPTH`] levels of nesting (checked on the saphyr-parser events that also build the
//! position index, so a deeply nested file is refused after reading 64 levels of it). The index
//! is a tree of nodes, linear in the size of the document whatever its depth or key lengths.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use saphyr_parser::{Event, Parser, Span};
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::diagnostic::{Diagnostic, Diagnostics, Severity};

/// Recovery gives up after this many errors in one file (the rest would be noise).
const MAX_ERRORS_PER_FILE: usize = 50;

/// The largest file accepted, in bytes: 4 MiB. The shipped scenarios are 2–4 KB; a file of
/// 1 MB validates in well under a second.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// The deepest nesting of mappings and sequences accepted; the document's top-level mapping is
/// level 1. Scenario files nest 6 levels; serde_yaml's own limit (128) is checked only after
/// its YAML parser has read the whole file, in time quadratic in the depth of flow collections.
pub const MAX_DEPTH: usize = 64;

/// A position in a file: 1-based line and column (characters) and a width to underline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// Width in characters (≥ 1 for display).
    pub width: usize,
}

impl Pos {
    const START: Pos = Pos {
        line: 1,
        column: 1,
        width: 1,
    };

    fn from_span(span: &Span) -> Self {
        let width = if span.end.line() == span.start.line() {
            span.end.col().saturating_sub(span.start.col()).max(1)
        } else {
            1
        };
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
            width,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<Pos>,
    value: Pos,
}

/// A parsed YAML document with a path → position index.
#[derive(Debug)]
pub struct YamlFile {
    /// The file as given.
    pub path: PathBuf,
    /// Its text (kept to show source lines in diagnostics).
    pub text: String,
    value: Value,
    index: Index,
    /// Byte offset of the start of each line of `text`.
    line_starts: Vec<usize>,
}

/// The nodes removed while recovering a partial value, to map its field paths back to the file.
#[derive(Debug, Default)]
pub struct Removed(Vec<Vec<Seg>>);

impl Removed {
    /// Rewrites a diagnostic about the partial value so that its field and position name the
    /// original place in `file` (sequence items removed before it shift indices).
    pub fn relocate(&self, file: &YamlFile, d: Diagnostic) -> Diagnostic {
        if self.0.is_empty() || d.file != file.path {
            return d;
        }
        let cur = parse_path(&d.field);
        let orig = translate(&cur, &self.0);
        if orig == cur {
            return d;
        }
        let key = file.index.lookup(&cur, true);
        let on_key = d.line > 0
            && (d.line, d.column) == (key.line, key.column)
            && key != file.index.lookup(&cur, false);
        let pos = file.index.lookup(&orig, on_key);
        Diagnostic {
            field: render_path(&orig),
            ..d
        }
        .at(pos.line, pos.column, pos.width)
        .with_source_line(file.source_line(pos.line))
    }
}

/// Parses `a.b[2].c` into segments (keys containing `.` or `[` are not supported).
fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                segs.push(Seg::Key(rest[..i].to_owned()));
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                match stripped[..end].parse() {
                    Ok(n) => segs.push(Seg::Index(n)),
                    Err(_) => segs.push(Seg::Key(stripped[..end].to_owned())),
                }
                rest = &stripped[end + 1..];
            }
        } else {
            segs.push(Seg::Key(rest.to_owned()));
        }
    }
    segs
}

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

impl YamlFile {
    /// Parses `text` (the content of `path`). A syntax error, a second document or a document
    /// that is not a mapping yields one diagnostic at the position serde_yaml reports; a file
    /// larger than [`MAX_FILE_BYTES`] or nested deeper than [`MAX_DEPTH`] one at the place where
    /// the limit is exceeded.
    pub fn parse(path: &Path, text: String) -> Result<YamlFile, Box<Diagnostic>> {
        if text.len() > MAX_FILE_BYTES {
            return Err(Box::new(too_large(path, text.as_bytes(), text.len())));
        }
        let mut built = build_index(&text);
        // saphyr-parser looks ahead through a whole flow collection before it emits its first
        // event, so a syntax error (or its own limit of 255 flow levels) deep inside one comes
        // before the depth check: look again at what precedes the error.
        if let Some(error) = &built.syntax_error
            && built.too_deep.is_none()
        {
            let end = text
                .char_indices()
                .nth(error.index)
                .map_or(text.len(), |(i, _)| i);
            built.too_deep = build_index(&text[..end]).too_deep;
        }
        if let Some(pos) = built.too_deep {
            return Err(Box::new(
                Diagnostic::error(
                    path,
                    format!("nesting too deep: more than {MAX_DEPTH} levels of mappings and sequences"),
                )
                .at(pos.line, pos.column, pos.width)
                .help("scenario, catalogue and config files nest about 6 levels; flatten the document")
                .with_source(&text),
            ));
        }
        // The two parsers disagree on a few corner cases; when saphyr-parser stopped early on a
        // document that may still nest deeply further on, do not hand it to serde_yaml.
        if let Some(error) = &built.syntax_error
            && bracket_depth_exceeds(&text, MAX_DEPTH)
        {
            return Err(Box::new(
                Diagnostic::error(path, format!("invalid YAML: {}", error.message))
                    .at(error.pos.line, error.pos.column, 1)
                    .with_source(&text),
            ));
        }
        let value: Value = match serde_yaml::from_str(&text) {
            Ok(v) => v,
            Err(err) => {
                let (line, column) = err
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or_else(|| second_document(&text));
                let mut message = err.to_string();
                // serde_yaml appends " at line L column C"; the location is shown separately.
                if let Some(cut) = message.find(" at line ") {
                    message.truncate(cut);
                }
                return Err(Box::new(
                    Diagnostic::error(path, format!("invalid YAML: {message}"))
                        .at(line, column, 1)
                        .with_source(&text),
                ));
            }
        };
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let file = YamlFile {
            path: path.to_owned(),
            text,
            value,
            index: built.index,
            line_starts,
        };
        match &file.value {
            Value::Mapping(_) => Ok(file),
            Value::Null => Err(Box::new(
                Diagnostic::error(path, "empty document")
                    .at(1, 1, 1)
                    .help("a file starts with `apiVersion: f3-chaos/v1` and `kind: …`"),
            )),
            _ => Err(Box::new(file.error_at(
                "",
                "a document must be a mapping with `apiVersion`, `kind`, `metadata` and `spec`",
            ))),
        }
    }

    /// The text of 1-based line `line`, without its line break (`None` past the end).
    fn source_line(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        if start >= self.text.len() {
            return None;
        }
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |next| next - 1);
        let text = &self.text[start..end];
        Some(text.strip_suffix('\r').unwrap_or(text))
    }

    /// The document as JSON (for JSON Schema validation of YAML files).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.value).unwrap_or(serde_json::Value::Null)
    }

    /// The string at a top-level or nested field (`kind`, `metadata.name`), if it is a string.
    pub fn str_at(&self, field: &str) -> Option<&str> {
        let mut node = &self.value;
        for key in field.split('.') {
            node = node.as_mapping()?.get(key)?;
        }
        node.as_str()
    }

    /// Deserialises the whole document into `T`, reporting every structural error (unknown
    /// fields, wrong types, missing fields, unknown variants) with its position.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Diagnostics> {
        self.deserialize_partial().map_err(|(diags, _)| diags)
    }

    /// Like [`YamlFile::deserialize`], but on error also returns the value recovered by removing
    /// the offending nodes (if recovery got that far), so semantic checks can run on the rest.
    /// Field paths of the partial value may be shifted by removed sequence items: pass
    /// diagnostics about it through [`Removed::relocate`].
    pub fn deserialize_partial<T: DeserializeOwned>(
        &self,
    ) -> Result<T, (Diagnostics, Option<(T, Removed)>)> {
        let first = match try_deserialize::<T>(&self.value) {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        let mut partial = None;
        let mut diags = Diagnostics::new();
        let mut value = self.value.clone();
        // Nodes removed so far, in original coordinates.
        let mut removed: Vec<Vec<Seg>> = Vec::new();
        let mut err = first;
        while diags.len() < MAX_ERRORS_PER_FILE {
            let (cur, message) = err;
            let orig = translate(&cur, &removed);
            let target_cur;
            if let Some(field) = backticked(&message, "unknown field `") {
                // Structs put the key on the path; internally tagged enums stop at the enum.
                let (t_cur, t_orig) = if cur.last() == Some(&Seg::Key(field.to_owned())) {
                    (cur.clone(), orig.clone())
                } else {
                    let mut c = cur.clone();
                    c.push(Seg::Key(field.to_owned()));
                    let mut o = orig.clone();
                    o.push(Seg::Key(field.to_owned()));
                    (c, o)
                };
                let expected = expected_list(&message);
                let mut d = self.diag_at(
                    Severity::Error,
                    &t_orig,
                    true,
                    format!("unknown field `{field}`"),
                );
                if let Some(guess) = expected.as_ref().and_then(|list| closest(field, list)) {
                    d = d.help(format!("did you mean `{guess}`?"));
                } else if let Some(list) = expected {
                    d = d.help(format!(
                        "expected one of {}",
                        list.iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                diags.push(d);
                target_cur = if node_at(&value, &t_cur).is_some() {
                    t_cur
                } else {
                    cur.clone()
                };
            } else if let Some(field) = backticked(&message, "missing field `") {
                // After removing a child of this mapping (often the misspelt field itself),
                // a missing field is a consequence, not news.
                let child_removed = removed
                    .iter()
                    .any(|r| r.len() == orig.len() + 1 && r[..orig.len()] == orig[..]);
                if !child_removed {
                    diags.push(self.diag_at(
                        Severity::Error,
                        &orig,
                        false,
                        format!("missing field `{field}`"),
                    ));
                }
                target_cur = cur.clone();
            } else if let Some(variant) = backticked(&message, "unknown variant `") {
                // For `kind:`-tagged enums the path stops at the mapping; point at its `kind`.
                // For `kind:`-tagged enums the path stops at the mapping; point at the entry
                // holding the bad name (`kind` itself, or a field such as `cloud`).
                let mut at = orig.clone();
                if let Some(Value::Mapping(m)) = node_at(&value, &cur) {
                    let holder = m
                        .iter()
                        .find(|(_, v)| v.as_str() == Some(variant))
                        .and_then(|(k, _)| k.as_str())
                        .or_else(|| m.contains_key("kind").then_some("kind"));
                    if let Some(k) = holder {
                        at.push(Seg::Key(k.to_owned()));
                    }
                }
                let mut d = self.diag_at(
                    Severity::Error,
                    &at,
                    false,
                    format!("unknown variant `{variant}`"),
                );
                if let Some(list) = expected_list(&message) {
                    d = match closest(variant, &list) {
                        Some(g) => d.help(format!("did you mean `{g}`?")),
                        None => d.help(format!(
                            "expected one of {}",
                            list.iter()
                                .map(|s| format!("`{s}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    };
                }
                diags.push(d);
                target_cur = cur.clone();
            } else {
                diags.push(self.diag_at(Severity::Error, &orig, false, tidy(&message)));
                target_cur = cur.clone();
            }
            if target_cur.is_empty() || !remove(&mut value, &target_cur) {
                break;
            }
            removed.push(translate(&target_cur, &removed));
            match try_deserialize::<T>(&value) {
                Ok(t) => {
                    partial = Some((t, Removed(removed)));
                    break;
                }
                Err(e) => err = e,
            }
        }
        if diags.is_empty() {
            // Defensive: an error was seen, so report at least the first one.
            diags.push(self.value_diag(Severity::Error, "", "invalid document"));
        }
        Err((diags, partial))
    }

    /// Whether a field exists in the document (used to point at a key rather than its parent).
    pub fn has(&self, field: &str) -> bool {
        self.index.find(&parse_path(field)).1
    }

    /// An error pointing at the value of `field` (or the nearest ancestor that exists).
    pub fn error_at(&self, field: &str, message: impl Into<String>) -> Diagnostic {
        self.value_diag(Severity::Error, field, message)
    }

    /// A warning pointing at the value of `field`.
    pub fn warning_at(&self, field: &str, message: impl Into<String>) -> Diagnostic {
        self.value_diag(Severity::Warning, field, message)
    }

    /// An error pointing at the key of `field` (e.g. a field that must not be there).
    pub fn error_at_key(&self, field: &str, message: impl Into<String>) -> Diagnostic {
        self.key_diag(Severity::Error, field, message)
    }

    /// A diagnostic at the value of `field`.
    pub fn value_diag(
        &self,
        severity: Severity,
        field: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let pos = self.lookup(field, false);
        self.make(severity, field, pos, message)
    }

    /// A diagnostic at the key of `field`.
    pub fn key_diag(
        &self,
        severity: Severity,
        field: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let pos = self.lookup(field, true);
        self.make(severity, field, pos, message)
    }

    /// The value position of a field (or of its nearest existing ancestor).
    pub fn pos(&self, field: &str) -> Pos {
        self.lookup(field, false)
    }

    fn make(
        &self,
        severity: Severity,
        field: &str,
        pos: Pos,
        message: impl Into<String>,
    ) -> Diagnostic {
        let d = match severity {
            Severity::Error => Diagnostic::error(&self.path, message),
            Severity::Warning => Diagnostic::warning(&self.path, message),
        };
        d.at(pos.line, pos.column, pos.width)
            .field(field)
            .with_source_line(self.source_line(pos.line))
    }

    /// A diagnostic at the key (`on_key`) or the value of the node at `path`, or of its nearest
    /// existing ancestor. (Segments, not a rendered path: keys may contain `.` or `[`.)
    fn diag_at(
        &self,
        severity: Severity,
        path: &[Seg],
        on_key: bool,
        message: impl Into<String>,
    ) -> Diagnostic {
        let pos = self.index.lookup(path, on_key);
        self.make(severity, &render_path(path), pos, message)
    }

    fn lookup(&self, field: &str, key: bool) -> Pos {
        self.index.lookup(&parse_path(field), key)
    }
}

/// Where a second document starts (serde_yaml's "more than one document" error has no
/// location): the first `---` after some content, else the start of the file.
fn second_document(text: &str) -> (usize, usize) {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") || line.starts_with("...") {
            if content {
                return (i + 1, 1);
            }
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            content = true;
        }
    }
    (1, 1)
}

type DeError = (Vec<Seg>, String);

fn try_deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, DeError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let segs = err
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        (segs, err.into_inner().to_string())
    })
}

/// Maps a path in the pruned value back to the original document, accounting for removed
/// sequence items (which shift later indices down).
fn translate(cur: &[Seg], removed: &[Vec<Seg>]) -> Vec<Seg> {
    let mut orig: Vec<Seg> = Vec::with_capacity(cur.len());
    for seg in cur {
        match seg {
            Seg::Key(k) => orig.push(Seg::Key(k.clone())),
            Seg::Index(i) => {
                let mut gone: Vec<usize> = removed
                    .iter()
                    .filter(|r| r.len() == orig.len() + 1 && r[..orig.len()] == orig[..])
                    .filter_map(|r| match r.last() {
                        Some(Seg::Index(j)) => Some(*j),
                        _ => None,
                    })
                    .collect();
                gone.sort_unstable();
                let mut idx = *i;
                for j in gone {
                    if j <= idx {
                        idx += 1;
                    }
                }
                orig.push(Seg::Index(idx));
            }
        }
    }
    orig
}

fn node_at<'a>(value: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut node = value;
    for seg in path {
        node = match (seg, node) {
            (Seg::Key(k), Value::Mapping(m)) => m.get(k.as_str())?,
            (Seg::Index(i), Value::Sequence(s)) => s.get(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

fn remove(value: &mut Value, path: &[Seg]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for seg in parent {
        node = match (seg, node) {
            (Seg::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(n) => n,
                None => return false,
            },
            (Seg::Index(i), Value::Sequence(s)) => match s.get_mut(*i) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Seg::Key(k), Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        (Seg::Index(i), Value::Sequence(s)) if *i < s.len() => {
            s.remove(*i);
            true
        }
        _ => false,
    }
}

/// The text between `prefix` and the next backtick.
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    Some(&rest[..rest.find('`')?])
}

/// The names listed after `expected one of` / `expected` in a serde message.
fn expected_list(message: &str) -> Option<Vec<String>> {
    let tail = &message[message.find("expected")?..];
    let names: Vec<String> = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    (!names.is_empty()).then_some(names)
}

/// serde messages name Rust types; say what a YAML author writes instead.
fn tidy(message: &str) -> String {
    message
        .replace("expected f64", "expected a number")
        .replace("expected u32", "expected a whole number")
        .replace("expected u64", "expected a whole number")
        .replace("expected a boolean", "expected `true` or `false`")
}

/// The closest candidate by edit distance (optimal string alignment: Levenshtein plus adjacent
/// transpositions, so `gpc` → `gcp` is one edit; the `strsim` crate), if it is close enough to
/// be a likely typo.
pub fn closest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// Index of a node in [`Index::entries`].
type NodeId = u32;

/// Where every node of the first document starts: a tree whose node 0 is the document, with
/// children found by (parent, key) and (parent, item index). Memory and building time are
/// linear in the size of the document (no node stores its full path).
#[derive(Debug, Default)]
struct Index {
    entries: Vec<Entry>,
    keys: HashMap<(NodeId, String), NodeId>,
    items: HashMap<(NodeId, usize), NodeId>,
}

impl Index {
    /// Adds a node under `parent` (the document when `None`); a key seen twice keeps its first
    /// node (serde_yaml refuses duplicate keys anyway).
    fn add(&mut self, parent: Option<(NodeId, Seg)>, entry: Entry) -> Option<NodeId> {
        let next = NodeId::try_from(self.entries.len()).ok()?;
        let is_empty = self.entries.is_empty();
        let entries = &mut self.entries;
        let mut push = || {
            entries.push(entry);
            next
        };
        Some(match parent {
            None if is_empty => push(),
            None => 0,
            Some((p, Seg::Key(k))) => *self.keys.entry((p, k)).or_insert_with(push),
            Some((p, Seg::Index(i))) => *self.items.entry((p, i)).or_insert_with(push),
        })
    }

    /// The deepest node along `path` that exists, and whether it is the node at `path` itself.
    fn find(&self, path: &[Seg]) -> (Option<NodeId>, bool) {
        if self.entries.is_empty() {
            return (None, false);
        }
        let mut node: NodeId = 0;
        for seg in path {
            let child = match seg {
                Seg::Key(k) => self.keys.get(&(node, k.clone())),
                Seg::Index(i) => self.items.get(&(node, *i)),
            };
            match child {
                Some(&c) => node = c,
                None => return (Some(node), false),
            }
        }
        (Some(node), true)
    }

    /// The key (`key`, for nodes that have one) or value position of the node at `path`, or of
    /// its nearest existing ancestor; the start of the file for an empty index.
    fn lookup(&self, path: &[Seg], key: bool) -> Pos {
        match self.find(path).0.map(|n| self.entries[n as usize]) {
            Some(e) if key => e.key.unwrap_or(e.value),
            Some(e) => e.value,
            None => Pos::START,
        }
    }
}

enum Frame {
    Map {
        /// `None` below a collection used as a mapping key (not indexed).
        node: Option<NodeId>,
        key: Option<(String, Pos)>,
        complex_key: bool,
    },
    Seq {
        node: Option<NodeId>,
        next: usize,
    },
}

/// What [`build_index`] found.
struct Built {
    index: Index,
    /// Where a collection opens [`MAX_DEPTH`] levels deep (the walk stops there).
    too_deep: Option<Pos>,
    /// saphyr-parser's syntax error, if any (the walk stops there too).
    syntax_error: Option<SyntaxError>,
}

/// A syntax error as saphyr-parser reports it.
struct SyntaxError {
    pos: Pos,
    /// Offset in characters from the start of the text.
    index: usize,
    message: String,
}

/// Walks the marked events of the first document and records where each node's key and value
/// start. A syntax error simply ends the walk (serde_yaml reports syntax errors; a path missing
/// from the index falls back to its nearest ancestor); so does nesting deeper than
/// [`MAX_DEPTH`], reported in [`Built::too_deep`].
fn build_index(text: &str) -> Built {
    let mut index = Index::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut started = false;
    let mut too_deep = None;
    let mut syntax_error = None;
    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(marked) => marked,
            Err(e) => {
                let at = e.marker();
                syntax_error = Some(SyntaxError {
                    pos: Pos {
                        line: at.line().max(1),
                        column: at.col() + 1,
                        width: 1,
                    },
                    index: at.index(),
                    message: e.info().to_owned(),
                });
                break;
            }
        };
        let pos = Pos::from_span(&span);
        match event {
            Event::DocumentStart(_) => {
                if started {
                    break;
                }
                started = true;
            }
            Event::Scalar(text, ..) => {
                if let Some(Frame::Map {
                    key: key @ None,
                    complex_key: false,
                    ..
                }) = stack.last_mut()
                {
                    *key = Some((text.into_owned(), pos));
                    continue;
                }
                node_start(&mut stack, &mut index, pos);
            }
            Event::Alias(_) => {
                if let Some(Frame::Map {
                    key: key @ None,
                    complex_key: false,
                    ..
                }) = stack.last_mut()
                {
                    *key = Some(("*".into(), pos));
                    continue;
                }
                node_start(&mut stack, &mut index, pos);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    too_deep = Some(pos);
                    break;
                }
                let is_map = matches!(event, Event::MappingStart(..));
                // A collection used as a mapping key: index nothing below it.
                let as_key = matches!(
                    stack.last(),
                    Some(Frame::Map {
                        key: None,
                        complex_key: false,
                        ..
                    })
                );
                let node = if as_key {
                    if let Some(Frame::Map { complex_key, .. }) = stack.last_mut() {
                        *complex_key = true;
                    }
                    None
                } else {
                    node_start(&mut stack, &mut index, pos)
                };
                stack.push(if is_map {
                    Frame::Map {
                        node,
                        key: None,
                        complex_key: false,
                    }
                } else {
                    Frame::Seq { node, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                // The end of a collection used as a key: its value comes next, under `?`.
                if let Some(Frame::Map {
                    key,
                    complex_key: complex_key @ true,
                    ..
                }) = stack.last_mut()
                {
                    *complex_key = false;
                    *key = Some(("?".into(), pos));
                }
            }
            Event::DocumentEnd | Event::StreamEnd => {
                if started && stack.is_empty() {
                    // Keep going only until the first document has ended.
                    if matches!(event, Event::DocumentEnd) {
                        break;
                    }
                }
            }
            Event::StreamStart | Event::Nothing => {}
        }
    }
    Built {
        index,
        too_deep,
        syntax_error,
    }
}

/// Records a node starting at `pos` under the current frame and returns its id (`None` when
/// it is not indexed: below a collection used as a key).
fn node_start(stack: &mut [Frame], index: &mut Index, pos: Pos) -> Option<NodeId> {
    match stack.last_mut() {
        None => index.add(
            None,
            Entry {
                key: None,
                value: pos,
            },
        ),
        Some(Frame::Seq { node, next }) => {
            let i = *next;
            *next += 1;
            let parent = (*node)?;
            index.add(
                Some((parent, Seg::Index(i))),
                Entry {
                    key: None,
                    value: pos,
                },
            )
        }
        Some(Frame::Map { node, key, .. }) => {
            let (k, kpos) = key.take().unwrap_or_else(|| ("?".into(), pos));
            let parent = (*node)?;
            index.add(
                Some((parent, Seg::Key(k))),
                Entry {
                    key: Some(kpos),
                    value: pos,
                },
            )
        }
    }
}

/// Whether `[`/`{` nest deeper than `limit` anywhere in `text`, counting brackets as if nothing
/// were quoted (an over-estimate: only used on text saphyr-parser refused).
fn bracket_depth_exceeds(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// 1-based line and column (in characters) of byte `offset` of `bytes`, which need not be
/// UTF-8: a column counts the bytes that start a UTF-8 sequence (and stray bytes) before it.
pub(crate) fn byte_position(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + before[line_start..]
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count();
    (line, column)
}

/// The text of the line holding byte `offset`, with invalid UTF-8 replaced (for display).
pub(crate) fn line_at(bytes: &[u8], offset: usize) -> String {
    let offset = offset.min(bytes.len());
    let start = bytes[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end = bytes[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| offset + i);
    let line = String::from_utf8_lossy(&bytes[start..end]);
    line.strip_suffix('\r').unwrap_or(&line).to_owned()
}

/// The diagnostic for a file of `len` bytes, more than [`MAX_FILE_BYTES`]: at the first byte
/// past the limit (`bytes` holds at least the first `MAX_FILE_BYTES + 1`).
pub(crate) fn too_large(path: &Path, bytes: &[u8], len: usize) -> Diagnostic {
    let (line, column) = byte_position(bytes, MAX_FILE_BYTES);
    Diagnostic::error(
        path,
        format!("file too large: {len} bytes, at most 4 MiB ({MAX_FILE_BYTES} bytes)"),
    )
    .at(line, column, 1)
    .with_source_line(Some(&line_at(bytes, MAX_FILE_BYTES)))
    .help("split the file: one scenario per file, SLO catalogues in several files")
}

/// Renders `value` as a YAML document (for `--dry-run` output of Kubernetes manifests).
///
/// Errors: the value cannot be represented in YAML (non-string map keys).
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_yaml::to_string(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialised, not read")]
    struct Doc {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialised, not read")]
    struct Item {
        owner: String,
        #[serde(default)]
        count: u32,
    }

    fn file(text: &str) -> YamlFile {
        YamlFile::parse(Path::new("t.yaml"), text.to_owned()).expect("parses")
    }

    #[test]
    fn index_records_keys_and_values() {
        let f = file("name: x\nitems:\n  - owner: a\n    count: 2\n  - owner: bb\n");
        assert_eq!(
            f.pos("name"),
            Pos {
                line: 1,
                column: 7,
                width: 1
            }
        );
        assert_eq!(
            f.pos("items[1].owner"),
            Pos {
                line: 5,
                column: 12,
                width: 2
            }
        );
        assert_eq!(
            f.lookup("items[0].count", true),
            Pos {
                line: 4,
                column: 5,
                width: 5
            }
        );
        // Missing paths fall back to the nearest ancestor.
        assert_eq!(f.pos("items[1].nope"), f.pos("items[1]"));
    }

    #[test]
    fn reports_every_structural_error() {
        let f = file(
            "name: x\nitems:\n  - ownr: a\n  - owner: b\n    count: lots\n  - owner: c\n    extra: 1\n",
        );
        let diags = f.deserialize::<Doc>().expect_err("invalid");
        let got: Vec<(usize, usize, &str)> = diags
            .iter()
            .map(|d| (d.line, d.column, d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, 5, "unknown field `ownr`"),
                (
                    5,
                    12,
                    "invalid type: string \"lots\", expected a whole number"
                ),
                (7, 5, "unknown field `extra`"),
            ],
            "{diags}"
        );
        assert_eq!(diags.0[0].field, "items[0].ownr");
        assert_eq!(diags.0[0].help.as_deref(), Some("did you mean `owner`?"));
        assert_eq!(diags.0[2].field, "items[2].extra");
    }

    #[test]
    fn a_second_document_is_located() {
        let err = YamlFile::parse(Path::new("t.yaml"), "# c\na: 1\n---\nb: 2\n".into())
            .expect_err("two documents");
        assert_eq!((err.line, err.column), (3, 1), "{err}");
    }

    #[test]
    fn syntax_errors_carry_a_location() {
        let err = YamlFile::parse(Path::new("t.yaml"), "a: [1, 2\nb: c\n".into()).expect_err("bad");
        assert!(err.line > 0, "{err}");
        assert!(err.message.starts_with("invalid YAML"), "{err}");
    }
}
