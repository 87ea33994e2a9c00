//! recspec: a declarative model-spec compiler for multi-feedback recommendation models.
//!
//! The pipeline: [`load`] (text → AST per file, imports) → [`resolve`] (names) →
//! [`check`] (shapes, dtypes, ranges; lowers to the [`ir::Graph`]) → [`render`] (text, JSON,
//! Graphviz, Markdown) and [`diff`] (structural comparison of two graphs). The [`runtime`]
//! trains and runs compiled graphs with burn; the [`app`] layer above it keeps run directories
//! and does what the commands do. [`simulate`] and [`import`] write data sets.

pub mod app;
pub mod ast;
pub mod check;
pub mod config;
pub mod data;
pub mod diag;
pub mod diff;
pub mod dim;
pub mod features;
pub mod files;
pub mod fmt;
pub mod ide;
pub mod import;
pub mod ir;
pub mod load;
pub mod lower;
pub mod lsp;
pub mod metrics;
pub mod ops;
pub mod overrides;
pub mod picture;
pub mod pytorch;
pub mod render;
pub mod resolve;
pub mod rng;
pub mod runtime;
pub mod server;
pub mod simulate;
pub mod source;
pub mod stdlib;
pub mod syntax;
pub mod types;

use std::path::Path;

/// Loads and checks a spec file: the front half of the compiler in one call.
pub fn compile_file(
    path: &Path,
    overrides: &[overrides::Override],
) -> Result<(load::LoadedSpec, check::Checked), load::LoadError> {
    compile_with(&load::Disk, path, overrides)
}

/// [`compile_file`] with a feature set file checked with the spec, as if the spec imported it
/// (`recspec check SPEC --features FILE`).
pub fn compile_file_with_features(
    path: &Path,
    features: Option<&Path>,
    overrides: &[overrides::Override],
) -> Result<(load::LoadedSpec, check::Checked), load::LoadError> {
    let (program, diags) = load::load_with_features(&load::Disk, path, features)?;
    let checked = check::check(&program, diags, overrides);
    Ok((program, checked))
}

/// Loads and checks a spec file read from `files` (a git revision, say) instead of the disk.
pub(crate) fn compile_with(
    files: &dyn load::SpecFiles,
    path: &Path,
    overrides: &[overrides::Override],
) -> Result<(load::LoadedSpec, check::Checked), load::LoadError> {
    let (program, diags) = load::load_with(files, path)?;
    let checked = check::check(&program, diags, overrides);
    Ok((program, checked))
}

/// Loads and checks spec text held in memory (tests, fuzzing); relative imports are unavailable.
pub fn compile_str(name: &str, text: &str, overrides: &[overrides::Override]) -> (load::LoadedSpec, check::Checked) {
    let (program, diags) = load::load_str(name, text);
    let checked = check::check(&program, diags, overrides);
    (program, checked)
}
