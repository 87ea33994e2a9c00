//! Loading: reads the root spec and, transitively, its imports into one [`LoadedSpec`].
//!
//! Files come from a [`SpecFiles`]: the disk ([`Disk`], what [`load_file`] uses), or any other
//! store, such as a git revision (`app::git_diff`).

use crate::ast;
use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, SourceMap};
use crate::stdlib;
use crate::syntax;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Texts that stand in for files on disk (an editor's unsaved buffers), keyed by canonical path.
pub(crate) type Overlay = HashMap<PathBuf, String>;

/// A root file and everything it imports, parsed.
#[derive(Debug, Default)]
pub struct LoadedSpec {
    pub sources: SourceMap,
    /// Parsed files in load order; the root is first.
    pub files: Vec<(FileId, ast::File)>,
}

impl LoadedSpec {
    pub fn root(&self) -> Option<&ast::File> {
        self.files.first().map(|(_, f)| f)
    }

    /// The model of the root file, if it has exactly one.
    pub fn model(&self) -> Option<&ast::ModelDef> {
        self.root().and_then(|f| f.models.first())
    }

    pub fn blocks(&self) -> impl Iterator<Item = &ast::BlockDef> {
        self.files.iter().flat_map(|(_, f)| f.blocks.iter())
    }
}

/// The root spec file could not be read. (Problems inside specs, imports included, are
/// diagnostics.)
#[derive(Debug)]
pub struct LoadError {
    pub path: std::path::PathBuf,
    pub source: std::io::Error,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for LoadError {}

/// Where the loader reads spec files. Paths are the root's path as given and, for a relative
/// import, `canonical(importer).parent()` joined with the import's path.
pub(crate) trait SpecFiles {
    /// The text of a spec file.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// One path per file, so that a file imported twice is loaded once and cycles are found.
    fn canonical(&self, path: &Path) -> PathBuf;
    /// The name diagnostics show for a file.
    fn name(&self, path: &Path) -> String {
        path.display().to_string()
    }
    /// The text of a `std/` import; `None` when there is no such standard library file.
    fn std_file(&self, import: &str) -> Option<Cow<'static, str>> {
        stdlib::get(import).map(Cow::Borrowed)
    }
}

/// The file system, with the standard library built into the binary.
pub(crate) struct Disk;

impl SpecFiles for Disk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The file system, except the files an [`Overlay`] holds.
struct Overlaid<'o>(&'o Overlay);

impl SpecFiles for Overlaid<'_> {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        match self.0.get(&self.canonical(path)) {
            Some(text) => Ok(text.clone()),
            None => std::fs::read_to_string(path),
        }
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        Disk.canonical(path)
    }
}

/// [`load_file`] with some files' texts taken from `overlay` instead of the disk: the root and
/// any import whose canonical path (or, for a root not on disk, whose path as given) it holds.
pub(crate) fn load_file_with(path: &Path, overlay: &Overlay) -> Result<(LoadedSpec, Vec<Diagnostic>), LoadError> {
    load_with(&Overlaid(overlay), path)
}

/// Loads a spec file from disk. I/O failure of the root is `Err`; all spec problems are diagnostics.
pub fn load_file(path: &Path) -> Result<(LoadedSpec, Vec<Diagnostic>), LoadError> {
    load_with(&Disk, path)
}

/// Loads a spec file and its imports from `files`, as [`load_file`] does from disk.
pub(crate) fn load_with(files: &dyn SpecFiles, path: &Path) -> Result<(LoadedSpec, Vec<Diagnostic>), LoadError> {
    load_with_features(files, path, None)
}

/// [`load_with`], and `features` (a file with a feature set) loaded as if the root imported it,
/// unless the root already does.
pub(crate) fn load_with_features(
    files: &dyn SpecFiles,
    path: &Path,
    features: Option<&Path>,
) -> Result<(LoadedSpec, Vec<Diagnostic>), LoadError> {
    let text = files.read(path).map_err(|source| LoadError { path: path.to_path_buf(), source })?;
    let mut loader = Loader::new(files);
    loader.load(files.name(path), Some(files.canonical(path)), text, false);
    if let Some(f) = features {
        let canonical = files.canonical(f);
        if loader.program.sources.find_path(&canonical).is_none() {
            let text = files.read(f).map_err(|source| LoadError { path: f.to_path_buf(), source })?;
            loader.load(files.name(f), Some(canonical), text, true);
        }
    }
    Ok((loader.program, loader.diags))
}

/// Loads a spec from a string (tests, fuzzing). Relative imports are unavailable.
pub(crate) fn load_str(name: &str, text: &str) -> (LoadedSpec, Vec<Diagnostic>) {
    let mut loader = Loader::new(&Disk);
    loader.load(name.to_string(), None, text.to_string(), false);
    (loader.program, loader.diags)
}

struct Loader<'f> {
    files: &'f dyn SpecFiles,
    program: LoadedSpec,
    diags: Vec<Diagnostic>,
    /// Files being loaded, outermost first, to detect cycles.
    stack: Vec<FileId>,
}

impl<'f> Loader<'f> {
    fn new(files: &'f dyn SpecFiles) -> Loader<'f> {
        Loader { files, program: LoadedSpec::default(), diags: vec![], stack: vec![] }
    }

    /// Loads one file; `imported`: not the root (so it may not define a model).
    fn load(&mut self, name: String, path: Option<PathBuf>, text: String, imported: bool) {
        let id = self.program.sources.add(name, path.clone(), text);
        let text = self.program.sources.get(id).text.clone();
        let file = match syntax::parse(id, &text) {
            Ok(f) => f,
            Err(d) => {
                self.diags.push(d);
                return;
            }
        };
        if imported {
            for m in &file.models {
                self.diags.push(
                    Diagnostic::error(Code::ModelCount, format!("imported file defines model `{}`", m.name.name))
                        .at(m.name.span, "models cannot be imported")
                        .with_help("move reusable parts into blocks"),
                );
            }
        } else if let Some(extra) = file.models.get(1) {
            self.diags.push(
                Diagnostic::error(Code::ModelCount, "a spec file has at most one model")
                    .at(extra.name.span, "second model")
                    .with_label(file.models[0].name.span, "first model"),
            );
        }
        let imports = file.imports.clone();
        self.program.files.push((id, file));
        self.stack.push(id);
        for import in imports {
            self.import(id, path.as_deref(), &import);
        }
        self.stack.pop();
    }

    fn import(&mut self, from: FileId, from_path: Option<&Path>, import: &ast::Import) {
        let (name, path, text) = if let Some(text) = self.files.std_file(&import.path) {
            (import.path.clone(), None, text.into_owned())
        } else if import.path.starts_with("std/") {
            self.diags.push(
                Diagnostic::error(Code::ImportNotFound, format!("\"{}\" is not a standard library file", import.path))
                    .at(import.span, "unknown standard library file")
                    .with_help(format!("standard library files: {}", stdlib::names().join(", "))),
            );
            return;
        } else {
            let Some(base) = from_path.and_then(Path::parent) else {
                self.diags.push(
                    Diagnostic::error(Code::ImportNotFound, format!("cannot resolve import \"{}\"", import.path))
                        .at(import.span, "not a standard library file, and this spec has no directory to search")
                        .with_help(format!("standard library files: {}", stdlib::names().join(", "))),
                );
                return;
            };
            let full = base.join(&import.path);
            let canonical = self.files.canonical(&full);
            if let Some(existing) = self.program.sources.find_path(&canonical) {
                self.check_cycle(from, existing, import);
                return;
            }
            match self.files.read(&full) {
                Ok(t) => (self.files.name(&full), Some(canonical), t),
                Err(e) => {
                    self.diags.push(
                        Diagnostic::error(
                            Code::ImportNotFound,
                            format!("cannot read imported file {}: {e}", self.files.name(&full)),
                        )
                        .at(import.span, "imported here"),
                    );
                    return;
                }
            }
        };
        if path.is_none() {
            if let Some(existing) = self.program.sources.find_name(&name) {
                self.check_cycle(from, existing, import);
                return;
            }
        }
        self.load(name, path, text, true);
    }

    fn check_cycle(&mut self, from: FileId, target: FileId, import: &ast::Import) {
        if self.stack.contains(&target) {
            let target_name = &self.program.sources.get(target).name;
            let from_name = &self.program.sources.get(from).name;
            self.diags.push(
                Diagnostic::error(
                    Code::ImportCycle,
                    format!("import cycle: {from_name} imports {target_name}, which is still being loaded"),
                )
                .at(import.span, "this import closes the cycle"),
            );
        }
    }
}
