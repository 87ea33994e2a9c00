//! `recspec snapshot`: the canonical graph and model card of a spec, kept in files beside it so
//! that any CI can snapshot-test compiled graphs without writing Rust.
//!
//! A spec `dir/name.recspec` has `dir/snapshots/name.graph.snap` (the canonical text graph,
//! `compile --emit graph`) and `dir/snapshots/name.summary.snap` (the model card). Each file is
//! an insta-style header (`---`, `source: name.recspec`, `---`) and the rendering, so
//! `cargo insta` users read them as they read their own.

use super::AppError;
use crate::files::FileError;
use crate::ir::Graph;
use crate::render::{emit, Emit};
use std::path::{Path, PathBuf};

/// One snapshot file and what it should hold.
pub struct Snapshot {
    pub path: PathBuf,
    pub text: String,
}

/// How a snapshot file compares with the spec's current rendering.
pub enum Status {
    Same,
    Missing,
    /// A unified diff, old file to new rendering.
    Changed(String),
}

/// The snapshots of `spec`, compiled to `graph`.
pub fn snapshots(spec: &Path, graph: &Graph) -> Result<Vec<Snapshot>, AppError> {
    let dir = spec.parent().unwrap_or(Path::new("")).join("snapshots");
    let stem = spec.file_stem().map_or("spec".into(), |s| s.to_string_lossy().to_string());
    let source = spec.file_name().map_or("spec".into(), |s| s.to_string_lossy().to_string());
    let file = |kind: &str, body: String| Snapshot {
        path: dir.join(format!("{stem}.{kind}.snap")),
        text: format!("---\nsource: {source}\n---\n{body}"),
    };
    Ok(vec![file("graph", emit(graph, Emit::Graph)?), file("summary", super::memory::model_card(graph)?)])
}

/// Compares a snapshot with its file.
pub fn compare(s: &Snapshot) -> Result<Status, AppError> {
    let old = match std::fs::read_to_string(&s.path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Status::Missing),
        Err(e) => return Err(FileError::at("read", &s.path)(e).into()),
    };
    if old == s.text {
        return Ok(Status::Same);
    }
    let name = s.path.display().to_string();
    Ok(Status::Changed(super::unified_diff(&old, &s.text, &name, &format!("{name} (now)"))))
}

/// Writes a snapshot file (and its folder).
pub fn write(s: &Snapshot) -> Result<(), AppError> {
    if let Some(dir) = s.path.parent() {
        std::fs::create_dir_all(dir).map_err(FileError::at("create", dir))?;
    }
    std::fs::write(&s.path, &s.text).map_err(FileError::at("write", &s.path))?;
    Ok(())
}

/// The spec files named by `paths`: files as given, folders searched (recursively, sorted) for
/// `*.recspec`; none at all is [`AppError::NoSpecFiles`].
pub fn spec_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, AppError> {
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            collect(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        return Err(AppError::NoSpecFiles(paths.to_vec()));
    }
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), AppError> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(FileError::at("read", dir))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "recspec") {
            out.push(path);
        }
    }
    Ok(())
}
