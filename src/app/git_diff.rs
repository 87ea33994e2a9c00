//! `recspec diff --git REV [PATHS]`: the architecture diff of every model spec that changed
//! between a git revision and the work tree, for review.
//!
//! A spec is compared when its own file or any file it imports (transitively, `std/` included)
//! differs from `REV`. The old side is read from git at `REV`, imports resolved at that same
//! revision; the new side is the work tree. Both go through [`crate::load::SpecFiles`] with paths
//! relative to the repository's top level, so diagnostics and headings name `specs/dfn.recspec`
//! wherever the command runs.
//!
//! `std/` imports come from the binary's standard library, except where the repository itself
//! holds that file at its top level (`std/attention.recspec` in the recspec repository): then
//! each side reads its own copy, so a change to the standard library shows in the models that
//! use it.
//!
//! Block libraries (files without a `model`) have no graph: they are not listed, but must still
//! load and resolve in the work tree. Every spec that must be compared has to compile on both
//! sides; one that does not is reported with its diagnostics ([`Outcome::Broken`]).

use super::git::{normalize, GitError, Repo};
use super::AppError;
use crate::check;
use crate::diag::Diagnostic;
use crate::diff::DiffReport;
use crate::ir::Graph;
use crate::load::{self, LoadedSpec, SpecFiles};
use crate::render::{render_builtin, GraphView, RenderError};
use crate::stdlib;
use serde::Serialize;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every compared spec, in path order.
pub struct GitDiff {
    /// The revision as given.
    pub rev: String,
    /// The commit it names, abbreviated.
    pub commit: String,
    pub specs: Vec<SpecDiff>,
}

/// One spec file (a path relative to the repository's top level) and how it compares.
pub struct SpecDiff {
    pub path: String,
    pub outcome: Outcome,
}

pub enum Outcome {
    /// Both sides compile and the graphs differ (the graphs are kept for the HTML picture).
    Changed { report: DiffReport, old: Box<Graph>, new: Box<Graph> },
    /// Both sides compile to the same architecture (a comment, a layout or an unused block changed).
    Same,
    /// A model spec that is not one at `REV` (a new file, or a block library that gained a model).
    Added(ModelInfo),
    /// A model spec at `REV` that is gone or holds no model any more; `None` when it did not
    /// compile at `REV`.
    Deleted(Option<ModelInfo>),
    /// It does not compile on one side or both: nothing can be compared.
    Broken(Vec<Failure>),
}

/// A compiled model, in a line.
#[derive(Serialize, Clone, Debug)]
pub struct ModelInfo {
    pub name: String,
    pub params: i64,
    pub nodes: usize,
}

/// Why one side of a spec did not compile.
#[derive(Serialize, Clone, Debug)]
pub struct Failure {
    /// `true` at `REV`, `false` in the work tree.
    pub at_rev: bool,
    /// The rendered diagnostics.
    pub diagnostics: String,
}

impl Outcome {
    /// `changed`, `added`, `deleted`, `broken` or `same`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Changed { .. } => "changed",
            Outcome::Same => "same",
            Outcome::Added(_) => "added",
            Outcome::Deleted(_) => "deleted",
            Outcome::Broken(_) => "broken",
        }
    }
}

impl GitDiff {
    /// `2 changed, 1 added, 3 unchanged`: the counts of each outcome that occurs.
    pub fn summary(&self) -> String {
        let count = |is: fn(&Outcome) -> bool| self.specs.iter().filter(|s| is(&s.outcome)).count();
        let counts = [
            (count(|o| matches!(o, Outcome::Changed { .. })), "changed"),
            (count(|o| matches!(o, Outcome::Added(_))), "added"),
            (count(|o| matches!(o, Outcome::Deleted(_))), "deleted"),
            (count(|o| matches!(o, Outcome::Broken(_))), "not compiling"),
            (count(|o| matches!(o, Outcome::Same)), "unchanged"),
        ];
        let parts: Vec<String> = counts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
        parts.join(", ")
    }

    /// Some spec does not compile, so the report is incomplete.
    pub fn broken(&self) -> bool {
        self.specs.iter().any(|s| matches!(s.outcome, Outcome::Broken(_)))
    }

    /// Some architecture changed: a graph differs, or a model was added or deleted.
    pub fn changed(&self) -> bool {
        self.specs
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Changed { .. } | Outcome::Added(_) | Outcome::Deleted(_)))
    }
}

/// Compares the specs under `paths` (relative to `dir`, or absolute; the whole repository when
/// empty) between `rev` and the work tree of the git repository holding `dir`.
pub fn diff_against(dir: &Path, rev: &str, paths: &[PathBuf]) -> Result<GitDiff, AppError> {
    let repo = Repo::discover(dir)?;
    let commit = repo.commit(rev)?;
    let filters = paths.iter().map(|p| repo.relative(p)).collect::<Result<Vec<_>, GitError>>()?;
    let changed = repo.changed_since(&commit)?;
    let old = Side { repo: &repo, commit: Some(commit.clone()), rev, files: repo.files_at(&commit)? };
    let new = Side { repo: &repo, commit: None, rev, files: repo.work_tree_files()? };

    let specs: BTreeSet<&String> = old.files.iter().chain(&new.files).filter(|f| f.ends_with(".recspec")).collect();
    let selected: Vec<&String> =
        specs.into_iter().filter(|f| filters.is_empty() || filters.iter().any(|p| under(f, p))).collect();
    if let Some(p) = filters.iter().find(|p| !selected.iter().any(|f| under(f, p))) {
        return Err(AppError::NoSpecsInRevision { path: p.clone(), rev: rev.to_string() });
    }

    let mut out = vec![];
    for path in selected {
        let new_spec = new.files.contains(path).then(|| new.load(path)).transpose()?;
        // A spec that reads only files equal to REV's reads the same files at REV: unchanged.
        if new_spec.as_ref().is_some_and(|s| s.read.is_disjoint(&changed)) {
            continue;
        }
        let old_spec = old.files.contains(path).then(|| old.load(path)).transpose()?;
        let outcome = compare(old_spec.map(Loaded::check), new_spec.map(Loaded::check));
        out.extend(outcome.map(|outcome| SpecDiff { path: path.clone(), outcome }));
    }
    Ok(GitDiff { rev: rev.to_string(), commit: commit.chars().take(12).collect(), specs: out })
}

/// `file` is `path` or below it (`path` empty: the top level).
fn under(file: &str, path: &Path) -> bool {
    let file = Path::new(file);
    path.as_os_str().is_empty() || file.starts_with(path)
}

/// What one side of a spec compiles to.
enum State {
    /// Blocks only.
    Library,
    Model(Box<Graph>),
    /// Rendered diagnostics.
    Broken(String),
}

/// How a spec compares, or `None` when it has no model on either side.
fn compare(old: Option<State>, new: Option<State>) -> Option<Outcome> {
    use State::*;
    let info = |g: &Graph| {
        let v = GraphView::new(g);
        ModelInfo { name: v.model, params: v.totals.params, nodes: v.totals.nodes }
    };
    let failure = |at_rev, diagnostics| Failure { at_rev, diagnostics };
    Some(match (old, new) {
        (Some(Broken(a)), Some(Broken(b))) => Outcome::Broken(vec![failure(true, a), failure(false, b)]),
        (_, Some(Broken(b))) => Outcome::Broken(vec![failure(false, b)]),
        (Some(Broken(a)), Some(Model(_))) => Outcome::Broken(vec![failure(true, a)]),
        (Some(Model(a)), Some(Model(b))) => {
            let report = crate::diff::diff(&a, &b);
            if report.same {
                Outcome::Same
            } else {
                Outcome::Changed { report, old: a, new: b }
            }
        }
        (None | Some(Library), Some(Model(b))) => Outcome::Added(info(&b)),
        (Some(Model(a)), None | Some(Library)) => Outcome::Deleted(Some(info(&a))),
        (Some(Broken(_)), None) => Outcome::Deleted(None),
        (_, None | Some(Library)) => return None,
    })
}

/// One side of the comparison: git at a commit, or the work tree (`commit: None`).
struct Side<'r> {
    repo: &'r Repo,
    commit: Option<String>,
    /// The revision as given, to name files read from it.
    rev: &'r str,
    /// Every file on this side.
    files: BTreeSet<String>,
}

impl Side<'_> {
    /// Loads `path` and its imports.
    fn load(&self, path: &str) -> Result<Loaded, AppError> {
        let reading = Reading { side: self, read: RefCell::new(BTreeSet::new()) };
        let (program, diagnostics) = load::load_with(&reading, Path::new(path))?;
        Ok(Loaded { program, diagnostics, read: reading.read.into_inner() })
    }
}

/// A spec loaded from one side, not yet checked.
struct Loaded {
    program: LoadedSpec,
    diagnostics: Vec<Diagnostic>,
    /// Every file the loader read or tried to read, the spec's own included.
    read: BTreeSet<String>,
}

impl Loaded {
    fn check(self) -> State {
        let checked = check::check(&self.program, self.diagnostics, &[]);
        if checked.has_errors() {
            return State::Broken(crate::diag::render(&self.program.sources, &checked.diagnostics));
        }
        match checked.graph {
            Some(g) => State::Model(Box::new(g)),
            None => State::Library,
        }
    }
}

/// The files of one [`Side`], for the loader; records each path it is asked for.
struct Reading<'s> {
    side: &'s Side<'s>,
    read: RefCell<BTreeSet<String>>,
}

impl Reading<'_> {
    /// The `/`-separated path relative to the top level; the loader only sees such paths.
    fn key(path: &Path) -> String {
        normalize(path).components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
    }
}

impl SpecFiles for Reading<'_> {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let key = Self::key(path);
        self.read.borrow_mut().insert(key.clone());
        if key.starts_with("..") || path.is_absolute() {
            return Err(std::io::Error::other(
                "outside the repository; `diff --git` reads specs from the repository only",
            ));
        }
        match &self.side.commit {
            None => std::fs::read_to_string(self.side.repo.top.join(&key)),
            Some(_) if !self.side.files.contains(&key) => {
                Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no such file at {}", self.side.rev)))
            }
            Some(commit) => self.side.repo.read_at(commit, &key).map_err(std::io::Error::other),
        }
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        normalize(path)
    }

    fn name(&self, path: &Path) -> String {
        match &self.side.commit {
            None => Self::key(path),
            Some(_) => format!("{}:{}", self.side.rev, Self::key(path)),
        }
    }

    fn std_file(&self, import: &str) -> Option<Cow<'static, str>> {
        let builtin = stdlib::get(import)?;
        self.read.borrow_mut().insert(import.to_string());
        if self.side.files.contains(import) {
            if let Ok(text) = self.read(Path::new(import)) {
                return Some(Cow::Owned(text));
            }
        }
        Some(Cow::Borrowed(builtin))
    }
}

/// The report as text (`markdown = false`) or as a pull-request comment.
pub fn render(report: &GitDiff, markdown: bool) -> Result<String, RenderError> {
    #[derive(Serialize)]
    struct Section<'a> {
        path: &'a str,
        kind: &'static str,
        diff: String,
        model: Option<&'a ModelInfo>,
        failures: &'a [Failure],
    }
    let mut sections = vec![];
    let mut unchanged = vec![];
    for s in &report.specs {
        let mut section =
            Section { path: &s.path, kind: s.outcome.kind(), diff: String::new(), model: None, failures: &[] };
        match &s.outcome {
            Outcome::Same => {
                unchanged.push(s.path.as_str());
                continue;
            }
            Outcome::Changed { report: d, .. } => section.diff = crate::diff::render(d, markdown)?,
            Outcome::Added(m) => section.model = Some(m),
            Outcome::Deleted(m) => section.model = m.as_ref(),
            Outcome::Broken(f) => section.failures = f,
        }
        sections.push(section);
    }
    let summary = report.summary();
    let name = if markdown { "git_diff.md" } else { "git_diff.txt" };
    render_builtin(
        name,
        minijinja::context! {
            rev => report.rev,
            commit => report.commit,
            summary => summary,
            sections => sections,
            unchanged => unchanged,
        },
    )
}
