//! Loading everything at once: a configuration, the SLO catalogue and the scenario library,
//! compiled into a [`Library`] or a list of [`Diagnostics`] naming every problem.
//!
//! Files are classified by their `kind:` — `Scenario`, `SloCatalogue`, `Config`, `Stacks`,
//! `Teams` — so `f3-chaos validate` can be pointed at any mix of files and directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::compile::{self, Context, PromqlCache};
use super::diagnostic::{Diagnostic, Diagnostics};
use super::model::{Scenario, Slo};
use super::raw::{API_VERSION, RawCatalogueFile, RawScenarioFile};
use super::yaml::{Removed, YamlFile, closest};
use crate::config::Config;
use crate::input::files::{collect_yaml, read_dir_files, read_file, read_files};

/// Everything compiled: config + catalogue + scenarios.
#[derive(Debug, Clone)]
pub struct Library {
    /// The configuration (stacks, teams, window).
    pub config: Config,
    /// The SLO catalogue by name.
    pub catalogue: BTreeMap<String, Slo>,
    /// The scenarios by name.
    pub scenarios: BTreeMap<String, Scenario>,
}

/// The kinds of file f3-chaos reads.
pub const KINDS: [&str; 5] = ["Scenario", "SloCatalogue", "Config", "Stacks", "Teams"];

/// Result of a check that keeps warnings: the library (when there is no error) and every
/// diagnostic, errors and warnings, sorted.
#[derive(Debug)]
pub struct Checked {
    /// The compiled library, `None` if any error was found.
    pub library: Option<Library>,
    /// The library without the scenario files that have errors: `Some` when every error lies in
    /// a scenario file (or a file that could not be read as YAML at all), `None` when the
    /// config or the SLO catalogue has one (then nothing can be trusted). Equal to `library`
    /// when there is no error. See [`load_runnable`].
    pub runnable: Option<Runnable>,
    /// Every diagnostic (errors and warnings), sorted by file and position.
    pub diagnostics: Diagnostics,
    /// Number of files read.
    pub files: usize,
}

/// What `run`, `plan` and the daemon work from: the library's good scenarios, and the errors of
/// the scenario files left out. One broken scenario file must not stop every other experiment
/// of the night; `validate` (and CI) still fail on it.
#[derive(Debug, Clone)]
pub struct Runnable {
    /// Config, catalogue and every scenario whose file has no error (and that does not run
    /// `after` a scenario left out).
    pub library: Library,
    /// The files left out, sorted, each once.
    pub left_out: Vec<PathBuf>,
    /// Their error diagnostics (and, for a scenario left out because one it runs after was,
    /// an error saying so), sorted.
    pub errors: Diagnostics,
}

impl Runnable {
    /// One line per file left out, for a warning: `path:line:column: message (+N more)`.
    pub fn summary_lines(&self) -> Vec<String> {
        self.left_out
            .iter()
            .map(|file| {
                let mut errors = self.errors.iter().filter(|d| &d.file == file);
                let first = errors.next();
                let more = errors.count();
                let place = match first {
                    Some(d) if d.line > 0 => {
                        format!("{}:{}:{}", file.display(), d.line, d.column.max(1))
                    }
                    _ => file.display().to_string(),
                };
                let message = first.map(|d| d.message.as_str()).unwrap_or("has errors");
                match more {
                    0 => format!("{place}: {message}"),
                    n => format!("{place}: {message} (+{n} more)"),
                }
            })
            .collect()
    }
}

/// Loads a config directory; the config names where the scenario library and catalogue live
/// (`spec.library`, paths relative to the config file). Errors if any file has an error;
/// warnings are dropped (see [`check_library`] to keep them).
pub fn load_library(config_dir: &Path) -> Result<Library, Diagnostics> {
    let checked = check_library(config_dir);
    checked.library.ok_or(checked.diagnostics)
}

/// For `validate PATHS…`: files or directories (searched recursively); every `*.yaml`/`*.yml`
/// file is classified by its `kind:`. Config files are grouped by directory; scenarios and the
/// catalogue are checked against every configuration given, and the [`Library`] carries the
/// first one. Without a config among the paths, team, stack and resource references are not
/// checked (a warning says so).
pub fn load_paths(paths: &[PathBuf]) -> Result<Library, Diagnostics> {
    let checked = check_paths(paths, None);
    checked.library.ok_or(checked.diagnostics)
}

/// Like [`load_library`], but a scenario file with errors is left out rather than failing the
/// whole library (see [`Runnable`]). Errors (with every diagnostic) only when the config or the
/// SLO catalogue has an error, or the config directory cannot be read.
pub fn load_runnable(config_dir: &Path) -> Result<Runnable, Diagnostics> {
    let checked = check_library(config_dir);
    checked.runnable.ok_or(checked.diagnostics)
}

/// Like [`load_library`], keeping warnings.
pub fn check_library(config_dir: &Path) -> Checked {
    let mut diags = Diagnostics::new();
    if !config_dir.is_dir() {
        diags.push(
            Diagnostic::error(config_dir, "config directory not found").help(
                "pass --config DIR or set F3_CHAOS_CONFIG (the default, config/local, is relative to the repository root)",
            ),
        );
        return Checked {
            library: None,
            runnable: None,
            diagnostics: diags,
            files: 0,
        };
    }
    let config_files = read_dir_files(config_dir, false, &mut diags);
    let mut files: Vec<YamlFile> = config_files;
    let config_count = files.len();
    // Read the library directories named by the config (compiled below with the rest).
    let probe: Vec<&YamlFile> = files.iter().filter(|f| is_config_kind(f)).collect();
    let mut probe_diags = Diagnostics::new();
    let probe_config = crate::config::load::compile(config_dir, &probe, &mut probe_diags);
    let mut extra = Vec::new();
    match probe_config.as_ref().map(|c| c.library.clone()) {
        Some(lib) => {
            for dir in [lib.scenarios, lib.assertions].into_iter().flatten() {
                if dir.is_dir() {
                    extra.extend(read_dir_files(&dir, true, &mut diags));
                }
            }
            if config_count > 0
                && probe_config
                    .as_ref()
                    .is_some_and(|c| c.library.scenarios.is_none())
            {
                diags.push(Diagnostic::warning(
                    config_dir,
                    "the config has no `spec.library`: no scenarios or SLO catalogue loaded",
                ));
            }
        }
        None if config_count == 0 => {
            diags.push(Diagnostic::error(
                config_dir,
                "no YAML files in the config directory",
            ));
        }
        None => {}
    }
    files.extend(extra);
    check_files(files, diags, None)
}

/// Like [`load_paths`], keeping warnings. `fallback_config` (e.g. `config/local`) is used when
/// no `kind: Config` file is among the paths; its catalogue is used when no catalogue file is.
/// A directory among `paths` without any `*.yaml`/`*.yml` file is an error (a mistyped or
/// empty library must not pass as valid).
pub fn check_paths(paths: &[PathBuf], fallback_config: Option<&Path>) -> Checked {
    let mut diags = Diagnostics::new();
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            let before = diags.len();
            collect_yaml(p, true, &mut found, &mut diags);
            if found.is_empty() && diags.len() == before {
                diags.push(
                    Diagnostic::error(p, "no YAML files in this directory: nothing to validate")
                        .help("scenario, SLO catalogue and config files end in `.yaml` or `.yml`; directories are searched recursively, hidden ones skipped"),
                );
            }
            found.sort();
            files.extend(read_files(&found, &mut diags));
        } else if p.is_file() {
            if let Some(f) = read_file(p, &mut diags) {
                files.push(f);
            }
        } else {
            diags.push(Diagnostic::error(p, "no such file or directory"));
        }
    }
    check_files(files, diags, fallback_config)
}

/// Like [`check_paths`] for in-memory sources (`(name, text)`), e.g. from an API request or a
/// test. `config_dir` is used as with `check_paths`' fallback.
pub fn check_texts(sources: Vec<(PathBuf, String)>, config_dir: Option<&Path>) -> Checked {
    let mut diags = Diagnostics::new();
    let mut files = Vec::new();
    for (path, text) in sources {
        match YamlFile::parse(&path, text) {
            Ok(f) => files.push(f),
            Err(d) => diags.push(*d),
        }
    }
    check_files(files, diags, config_dir)
}

fn is_config_kind(f: &YamlFile) -> bool {
    matches!(f.str_at("kind"), Some("Config" | "Stacks" | "Teams"))
}

fn check_files(
    mut files: Vec<YamlFile>,
    mut diags: Diagnostics,
    fallback_config: Option<&Path>,
) -> Checked {
    // The same file reached twice (a path given twice, a library inside the config dir) counts
    // once. (In-memory sources that do not exist on disk are compared by name.)
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.path.canonicalize().unwrap_or_else(|_| f.path.clone())));
    // Classify by kind; bad or missing kinds are reported once here.
    let mut scenario_files = Vec::new();
    let mut catalogue_files = Vec::new();
    let mut config_groups: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    let mut group_order: Vec<PathBuf> = Vec::new();
    let mut have_fallback = false;
    if let Some(dir) = fallback_config
        && !files.iter().any(|f| f.str_at("kind") == Some("Config"))
    {
        let mut fallback = read_dir_files(dir, false, &mut diags);
        fallback.retain(is_config_kind);
        have_fallback = !fallback.is_empty();
        files.extend(fallback);
    }
    for (i, f) in files.iter().enumerate() {
        match f.str_at("apiVersion") {
            Some(API_VERSION) => {}
            Some(other) => diags.push(
                f.error_at("apiVersion", format!("unsupported apiVersion `{other}`"))
                    .help(format!("this build reads `{API_VERSION}`")),
            ),
            None => diags.push(
                f.error_at("", "missing `apiVersion`")
                    .help(format!("add `apiVersion: {API_VERSION}`")),
            ),
        }
        match f.str_at("kind") {
            Some("Scenario") => scenario_files.push(i),
            Some("SloCatalogue") => catalogue_files.push(i),
            Some("Config" | "Stacks" | "Teams") => {
                let dir = f.path.parent().map(Path::to_owned).unwrap_or_default();
                if !config_groups.contains_key(&dir) {
                    group_order.push(dir.clone());
                }
                config_groups.entry(dir).or_default().push(i);
            }
            Some(other) => {
                let kinds: Vec<String> = KINDS.iter().map(|k| (*k).to_owned()).collect();
                let d = f.error_at("kind", format!("unknown kind `{other}`"));
                diags.push(match closest(other, &kinds) {
                    Some(g) => d.help(format!("did you mean `{g}`?")),
                    None => d.help(format!("expected one of {}", KINDS.join(", "))),
                });
            }
            None => diags.push(
                f.error_at("", "missing `kind`")
                    .help(format!("add `kind:` with one of {}", KINDS.join(", "))),
            ),
        }
    }

    // Configurations, one per directory.
    let mut configs: Vec<Config> = Vec::new();
    for dir in &group_order {
        let group: Vec<&YamlFile> = config_groups[dir].iter().map(|&i| &files[i]).collect();
        if let Some(c) = crate::config::load::compile(dir, &group, &mut diags) {
            configs.push(c);
        }
    }
    if configs.is_empty() && config_groups.is_empty() && !scenario_files.is_empty() {
        diags.push(Diagnostic::warning(
            files[scenario_files[0]].path.clone(),
            "no configuration among the given paths: team, stack and resource references are not checked",
        ).help("add a config directory to the paths, e.g. `config/local`, or pass `--config`"));
    }

    // Without catalogue files, take the catalogue the (first) config names.
    let mut extra_catalogue = Vec::new();
    if catalogue_files.is_empty()
        && (have_fallback || !scenario_files.is_empty())
        && let Some(dir) = configs.first().and_then(|c| c.library.assertions.clone())
        && dir.is_dir()
    {
        extra_catalogue = read_dir_files(&dir, true, &mut diags);
        extra_catalogue.retain(|f| f.str_at("kind") == Some("SloCatalogue"));
    }

    // Structural deserialisation (once per file).
    // A file with structural errors still gets semantic checks on what could be recovered; the
    // diagnostics about a partial value are relocated to the original positions at the end.
    let mut relocations: Vec<(&YamlFile, Removed)> = Vec::new();
    let mut raw_catalogue: Vec<(&YamlFile, RawCatalogueFile)> = Vec::new();
    for f in catalogue_files
        .iter()
        .map(|&i| &files[i])
        .chain(extra_catalogue.iter())
    {
        match f.deserialize_partial::<RawCatalogueFile>() {
            Ok(raw) => raw_catalogue.push((f, raw)),
            Err((d, partial)) => {
                diags.extend(d);
                if let Some((raw, removed)) = partial {
                    raw_catalogue.push((f, raw));
                    relocations.push((f, removed));
                }
            }
        }
    }
    let mut raw_scenarios: Vec<(&YamlFile, RawScenarioFile)> = Vec::new();
    for &i in &scenario_files {
        match files[i].deserialize_partial::<RawScenarioFile>() {
            Ok(raw) => raw_scenarios.push((&files[i], raw)),
            Err((d, partial)) => {
                diags.extend(d);
                if let Some((raw, removed)) = partial {
                    raw_scenarios.push((&files[i], raw));
                    relocations.push((&files[i], removed));
                }
            }
        }
    }
    let structural = diags.len();

    // Semantic checks: against every config (or none).
    let mut promql = PromqlCache::default();
    let config_refs: Vec<Option<&Config>> = if configs.is_empty() {
        vec![None]
    } else {
        configs.iter().map(Some).collect()
    };
    let mut result: Option<(BTreeMap<String, Slo>, BTreeMap<String, Scenario>)> = None;
    for config in config_refs {
        let catalogue = compile::compile_catalogue(&raw_catalogue, config, &mut promql, &mut diags);
        let ctx = Context {
            catalogue: &catalogue,
            config,
        };
        let mut scenarios = BTreeMap::new();
        let mut by_name: BTreeMap<String, (&YamlFile, &RawScenarioFile)> = BTreeMap::new();
        for (file, raw) in &raw_scenarios {
            let name = &raw.metadata.name;
            if let Some((first, _)) = by_name.get(name) {
                diags.push(
                    file.error_at(
                        "metadata.name",
                        format!("scenario `{name}` is defined twice"),
                    )
                    .help(format!("first defined in {}", first.path.display())),
                );
                continue;
            }
            by_name.insert(name.clone(), (file, raw));
            if let Some(s) = compile::compile_scenario(file, raw, &ctx, &mut promql, &mut diags) {
                scenarios.insert(name.clone(), s);
            }
        }
        compile::check_after(&by_name, &mut diags);
        if result.is_none() {
            result = Some((catalogue, scenarios));
        }
    }
    if !relocations.is_empty() {
        let semantic: Vec<Diagnostic> = diags.0.split_off(structural);
        for d in semantic {
            let d = match relocations.iter().find(|(f, _)| f.path == d.file) {
                Some((f, removed)) => removed.relocate(f, d),
                None => d,
            };
            diags.push(d);
        }
    }
    diags.sort();
    // Files whose errors leave nothing trustworthy: config and catalogue files, any file in a
    // config's directory (one that is not even YAML may be its teams), and the directories (a
    // config directory without YAML, a library directory that cannot be read).
    let mut blocking: std::collections::HashSet<&Path> = files
        .iter()
        .chain(extra_catalogue.iter())
        .filter(|f| is_config_kind(f) || f.str_at("kind") == Some("SloCatalogue"))
        .map(|f| f.path.as_path())
        .collect();
    blocking.extend(group_order.iter().map(PathBuf::as_path));
    let runnable = result.and_then(|(catalogue, scenarios)| {
        let library = Library {
            config: configs.into_iter().next().unwrap_or_default(),
            catalogue,
            scenarios,
        };
        runnable_part(library, &diags, &blocking)
    });
    let library = runnable
        .as_ref()
        .filter(|r| r.left_out.is_empty())
        .map(|r| r.library.clone());
    Checked {
        library,
        runnable,
        diagnostics: diags,
        files: files.len() + extra_catalogue.len(),
    }
}

/// `library` without the files that have errors, or `None` when an error lies in a blocking
/// file, a file in a blocking directory (a config's), or a directory. Scenarios that run `after` a left-out one are left out too (their plan
/// would wait for a scenario that never runs), with an error naming it.
fn runnable_part(
    mut library: Library,
    diags: &Diagnostics,
    blocking: &std::collections::HashSet<&Path>,
) -> Option<Runnable> {
    let mut errors = Diagnostics::new();
    let mut left_out = std::collections::BTreeSet::new();
    for d in diags.iter().filter(|d| d.is_error()) {
        let in_config_dir = d.file.parent().is_some_and(|dir| blocking.contains(dir));
        if blocking.contains(d.file.as_path()) || in_config_dir || d.file.is_dir() {
            return None;
        }
        left_out.insert(d.file.clone());
        errors.push(d.clone());
    }
    library
        .scenarios
        .retain(|_, s| !left_out.contains(&s.source));
    loop {
        let orphaned: Vec<(String, String)> = library
            .scenarios
            .iter()
            .filter_map(|(name, s)| {
                s.schedule
                    .after
                    .iter()
                    .find(|dep| !library.scenarios.contains_key(*dep))
                    .map(|dep| (name.clone(), dep.clone()))
            })
            .collect();
        if orphaned.is_empty() {
            break;
        }
        for (name, dep) in orphaned {
            if let Some(s) = library.scenarios.remove(&name) {
                errors.push(
                    Diagnostic::error(
                        &s.source,
                        format!("scenario `{name}` runs after `{dep}`, which is left out"),
                    )
                    .field("spec.schedule.after")
                    .help(format!("fix `{dep}`, then `{name}` runs again")),
                );
                left_out.insert(s.source.clone());
            }
        }
    }
    errors.sort();
    Some(Runnable {
        library,
        left_out: left_out.into_iter().collect(),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn local_config_loads_the_shipped_library() {
        let lib = load_library(&repo().join("config/local")).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(lib.config.stacks.keys().collect::<Vec<_>>(), ["local"]);
        let s = &lib.scenarios["gcp-failover-validation"];
        assert_eq!(s.targets.eligible_stacks, ["local"]);
        assert_eq!(s.then.len(), 5);
        assert!(lib.catalogue.contains_key("payments-e2e-latency-p99"));
    }
}
