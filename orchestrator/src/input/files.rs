//! Reading a directory's YAML files: in path order, hidden files skipped, on all cores when there
//! are many; every problem (unreadable, too large, not UTF-8, not YAML) is a [`Diagnostic`] at
//! its file, line and column.

use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Diagnostics};
use super::yaml::{MAX_FILE_BYTES, YamlFile, byte_position, line_at, too_large};

/// Reads and parses one file; problems are pushed to `diags`: a file that cannot be read, one
/// larger than [`MAX_FILE_BYTES`] (at most that much of it is read) and one that is not UTF-8
/// (at the line and column of its first invalid byte), besides what [`YamlFile::parse`] finds.
pub(crate) fn read_file(path: &Path, diags: &mut Diagnostics) -> Option<YamlFile> {
    match read_text(path) {
        Ok(text) => match YamlFile::parse(path, text) {
            Ok(f) => Some(f),
            Err(d) => {
                diags.push(*d);
                None
            }
        },
        Err(d) => {
            diags.push(*d);
            None
        }
    }
}

/// The text of the file at `path`, read up to one byte past [`MAX_FILE_BYTES`].
fn read_text(path: &Path) -> Result<String, Box<Diagnostic>> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| Diagnostic::error(path, format!("cannot read file: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    // `MAX_FILE_BYTES` fits in u64 on every target.
    let limit = MAX_FILE_BYTES as u64 + 1;
    file.take(limit).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() > MAX_FILE_BYTES {
        let len = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(Box::new(too_large(
            path,
            &bytes,
            usize::try_from(len).unwrap_or(usize::MAX),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let (line, column) = byte_position(bytes, at);
        Box::new(
            Diagnostic::error(
                path,
                format!("file is not UTF-8: invalid byte 0x{:02X}", bytes[at]),
            )
            .at(line, column, 1)
            .with_source_line(Some(&line_at(bytes, at)))
            .help("save the file as UTF-8"),
        )
    })
}

/// Reads every `*.yaml`/`*.yml` file of a directory (recursively if asked), in path order.
pub(crate) fn read_dir_files(
    dir: &Path,
    recursive: bool,
    diags: &mut Diagnostics,
) -> Vec<YamlFile> {
    let mut paths = Vec::new();
    collect_yaml(dir, recursive, &mut paths, diags);
    paths.sort();
    read_files(&paths, diags)
}

/// Below this many files, parsing on one thread is cheaper than starting others.
const PARALLEL_THRESHOLD: usize = 64;

/// Reads and parses files, on all cores when there are many (YAML parsing and the position
/// index dominate the cost of validating a large library). Order is kept.
pub(crate) fn read_files(paths: &[PathBuf], diags: &mut Diagnostics) -> Vec<YamlFile> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || paths.len() < PARALLEL_THRESHOLD {
        return paths.iter().filter_map(|p| read_file(p, diags)).collect();
    }
    let chunk = paths.len().div_ceil(threads);
    let parts: Vec<(Vec<YamlFile>, Diagnostics)> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut d = Diagnostics::new();
                    let files: Vec<YamlFile> =
                        part.iter().filter_map(|p| read_file(p, &mut d)).collect();
                    (files, d)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut files = Vec::with_capacity(paths.len());
    for (f, d) in parts {
        files.extend(f);
        diags.extend(d);
    }
    files
}

pub(crate) fn collect_yaml(
    dir: &Path,
    recursive: bool,
    out: &mut Vec<PathBuf>,
    diags: &mut Diagnostics,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::error(
                dir,
                format!("cannot read directory: {e}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            if recursive {
                collect_yaml(&path, true, out, diags);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}
