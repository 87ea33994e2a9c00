//! All integration tests in one binary: spec snapshots, the error corpus, diffs, mutations,
//! fuzzing, the command line, the language server and data import.

mod cli;
mod diff_git;
mod diffs;
mod errors;
mod features;
mod format;
mod fuzz;
mod import;
mod kernels;
mod lsp;
mod mutations;
mod ok;
mod parquet;
mod pictures;
mod probe;
mod pytorch;
mod rows;
mod serve;
mod specs;
mod training;

use recspec::check::Checked;
use recspec::diag;
use recspec::overrides::Override;
use std::path::{Path, PathBuf};

/// A test's scratch directory: a fresh directory under the system's temporary directory, named
/// `recspec-{name}-…`, removed with everything in it when dropped, so that a test leaves nothing
/// behind whether it passes or fails. It reads as the `Path` it holds.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = tempfile::Builder::new().prefix(&format!("recspec-{name}-")).tempdir();
        Scratch(dir.unwrap_or_else(|e| panic!("cannot make a scratch directory for {name}: {e}")))
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

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

/// The graph of a spec that must compile (relative to the root); its diagnostics otherwise.
pub fn graph(path: &Path) -> recspec::ir::Graph {
    let (checked, diags) = compile(path, &[]);
    checked.graph.unwrap_or_else(|| panic!("{} does not compile:\n{diags}", path.display()))
}

/// A small deterministic generator (xorshift64*), so that a fuzzed failure names a seed that
/// reproduces it.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Copies the folder `from`, recursively, to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(root().join("tests/snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s
}

/// The largest `|a - b|` of two equally long slices; infinite when either side holds a NaN or an
/// infinity, so that a check `max_difference(..) <= tolerance` fails on them (`f32::max` alone
/// drops NaN: `0f32.max(NAN)` is 0). Every float comparison of these tests goes through it.
pub fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared slices differ in length");
    a.iter().zip(b).fold(0f32, |worst, (x, y)| {
        let d = if x.is_finite() && y.is_finite() { (x - y).abs() } else { f32::INFINITY };
        worst.max(d)
    })
}

#[test]
fn max_difference_fails_on_nan_and_infinity_in_either_argument() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert_eq!(max_difference(&[0.0, bad], &[0.0, 1.0]), f32::INFINITY, "{bad} on the left");
        assert_eq!(max_difference(&[1.0, 0.0], &[bad, 0.0]), f32::INFINITY, "{bad} on the right");
        assert!(max_difference(&[bad], &[bad]) > 1e30, "{bad} on both sides");
    }
    assert_eq!(max_difference(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
    assert_eq!(max_difference(&[], &[]), 0.0);
}
