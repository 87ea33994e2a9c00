//! All integration tests in one binary: spec snapshots, the error corpus, diffs, mutations,
//! fuzzing, the command line, the language server and data import.

mod cli;
mod diff_git;
mod diffs;
mod errors;
mod format;
mod fuzz;
mod import;
mod kernels;
mod lsp;
mod mutations;
mod ok;
mod parquet;
mod pytorch;
mod rows;
mod specs;
mod training;

use recspec::check::Checked;
use recspec::diag;
use recspec::overrides::Override;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path relative to the repository root, as diagnostics show it.
pub fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(root()).unwrap_or(path).to_path_buf()
}

/// Compiles a file (relative to the root) and renders its diagnostics with stable paths.
pub fn compile(path: &Path, overrides: &[Override]) -> (Checked, String) {
    let rel = relative(path);
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(cwd, root(), "tests run from the crate root");
    let (program, checked) = recspec::compile_file(&rel, overrides).expect("readable spec");
    let text = diag::render(&program.sources, &checked.diagnostics);
    (checked, text.replace(&root().display().to_string(), "[ROOT]"))
}

pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(root().join("tests/snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s
}
