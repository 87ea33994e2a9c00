//! The application layer: what the commands do with the compiler and the runtime.
//!
//! It sits above both and is the only library layer that sees files besides specs and data:
//! [`dataset`] compiles a spec for a data set (its `data.toml` dims) and names its splits,
//! [`run_dir`] is the run directory (spec copy, settings, checkpoints, resume), [`settings`]
//! merges and validates training settings, [`train`], [`eval`], [`recommend`] and
//! [`responsiveness`] run a trained model; [`git_diff`] compares specs with a git revision. Errors are [`AppError`]; the command line renders
//! them once.

pub mod bench;
pub mod convert;
pub mod dataset;
pub mod eval;
pub mod export;
pub mod format;
pub mod git;
pub mod git_diff;
pub mod memory;
pub mod pictures;
pub mod recommend;
pub mod report;
pub mod responsiveness;
pub mod run_dir;
pub mod settings;
pub mod snapshot;
pub mod train;

pub use dataset::compile_for_data;
pub use run_dir::RunDir;

use crate::config::ConfigError;
use std::fmt;
use std::path::{Path, PathBuf};

/// A unified diff from `old` to `new` (3 lines of context), headed by the two names.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(old_name, new_name).to_string()
}

/// Rows per batch when `recspec eval` reads a split.
pub const EVAL_BATCH_SIZE: usize = 1024;

/// Histories scored per forward pass when recommending (recommend, responsiveness).
pub(crate) const RECOMMEND_CHUNK: usize = 1024;

/// Held-out rows with a dislike measured for re-recommendation: all of them, or a uniform
/// sample of this many.
pub(crate) const RERECOMMEND_ROWS: usize = 5000;

/// Why a command could not do its work. Spec diagnostics are not errors here: they are
/// reported by the compiler and make a command exit with 1.
#[derive(Debug)]
pub enum AppError {
    Config(ConfigError),
    File(crate::files::FileError),
    /// The root spec file could not be read.
    Load(crate::load::LoadError),
    /// A template or a rendering failed.
    Render(crate::render::RenderError),
    /// A picture could not be laid out or plotted.
    Picture(crate::picture::PictureError),
    /// `recspec report`: a run directory without anything to report.
    NothingToReport(PathBuf),
    /// A data file is unreadable or holds a bad row.
    Data(crate::data::DataError),
    /// A model's inputs have no data layout.
    Schema(crate::data::SchemaError),
    Simulate(crate::simulate::SimulateError),
    /// `recspec import` failed: the mapping, an input file or a bad row.
    Import(crate::import::ImportError),
    /// A git command failed (`diff --git`): not a repository, an unknown revision.
    Git(git::GitError),
    /// A path given to `diff --git` holds no spec at the revision or in the work tree.
    NoSpecsInRevision {
        path: PathBuf,
        rev: String,
    },
    /// Paths given to `fmt` or `snapshot` hold no spec file: a CI job pointed at the wrong folder
    /// must not pass by checking nothing.
    NoSpecFiles(Vec<PathBuf>),
    /// `recspec lsp` lost its connection.
    Lsp(crate::lsp::LspError),
    /// The counterfactual simulation of `responsiveness` cannot run.
    Responsiveness(String),
    /// `recspec serve` could not start or stopped: the address, the runtime.
    Serve(String),
    /// `recspec export --format onnx` failed: no Python, or the exporter's message.
    Export(String),
    /// A report or `state.json` could not be serialised.
    Json(serde_json::Error),
    /// The runtime failed: bad data, a model that cannot do what was asked, a diverged loss.
    Backend(crate::runtime::RuntimeError),
    /// A checked graph did not lower: a compiler bug, reported as such.
    Lower(crate::lower::LowerError),
    /// `train --out` names a started run and `--resume` was not given.
    RunExists(PathBuf),
    /// `train --resume` on a run whose compiled graph differs from the new one.
    GraphChanged(PathBuf),
    /// A run directory without `state.json`.
    NoCompletedEpoch(PathBuf),
    CorruptState {
        path: PathBuf,
        message: String,
    },
    /// A checkpoint file that cannot be decoded or does not fit the model.
    BadCheckpoint {
        path: PathBuf,
        message: String,
    },
    /// A warm start's data set numbers an item, user or value otherwise than the earlier run's
    /// did: the copied table rows would belong to other keys.
    IdsNotKept {
        run: PathBuf,
        data: PathBuf,
        message: String,
    },
    /// A run's saved spec no longer compiles; `diagnostics` are rendered.
    SpecNoLongerCompiles {
        spec: PathBuf,
        diagnostics: String,
    },
    ImportOutsideSpecDir {
        spec: PathBuf,
        import: PathBuf,
    },
    /// A data set without `SPLIT.jsonl`.
    /// A split without a single row that parses.
    EmptySplit(PathBuf),
    /// A loss's label stream has no positive in the training split.
    NoPositives {
        path: PathBuf,
        loss: String,
        label: String,
        rows: usize,
    },
    MissingSplit {
        path: PathBuf,
        split: String,
    },
    /// Both `SPLIT.jsonl` and `SPLIT.parquet` exist.
    AmbiguousSplit {
        files: Vec<PathBuf>,
        split: String,
    },
    UnknownLossWeight {
        name: String,
        losses: Vec<String>,
    },
    NoLoss(PathBuf),
    /// `--batch-size`, `--epochs` or `--max-steps` of zero.
    ZeroCount,
    BadLearningRate(f64),
    /// `responsiveness --history` names no sequence the item scores read.
    NotAHistory {
        history: String,
        inputs: Vec<String>,
    },
    /// Training the model needs more memory than the machine has available.
    TooLarge(Box<memory::TooLarge>),
    /// A history row the recommender cannot read: `file:line: message`.
    BadHistoryRow {
        file: PathBuf,
        line: usize,
        message: String,
        inputs: Vec<String>,
    },
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Config(e) => e.fmt(f),
            AppError::File(e) => e.fmt(f),
            AppError::Load(e) => e.fmt(f),
            AppError::Render(e) => e.fmt(f),
            AppError::Picture(e) => e.fmt(f),
            AppError::NothingToReport(dir) => write!(
                f,
                "{}: not a run directory (no run.toml, steps.jsonl or metrics.jsonl); `recspec train --out` writes one",
                dir.display()
            ),
            AppError::Data(e) => e.fmt(f),
            AppError::Schema(e) => e.fmt(f),
            AppError::Simulate(e) => e.fmt(f),
            AppError::Import(e) => e.fmt(f),
            AppError::Git(e) => e.fmt(f),
            AppError::NoSpecsInRevision { path, rev } => {
                let shown = if path.as_os_str().is_empty() { Path::new(".") } else { path };
                write!(f, "no `.recspec` file in {} at {rev} or in the work tree", shown.display())
            }
            AppError::NoSpecFiles(paths) => {
                let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "no `.recspec` files in {}", shown.join(", "))
            }
            AppError::Lsp(e) => e.fmt(f),
            AppError::Responsiveness(m) | AppError::Serve(m) | AppError::Export(m) => f.write_str(m),
            AppError::Json(e) => write!(f, "cannot write JSON: {e}"),
            AppError::Backend(e) => e.fmt(f),
            AppError::Lower(e @ crate::lower::LowerError::TooLarge { .. }) => write!(f, "{e}"),
            AppError::Lower(e) => write!(f, "internal error: {e}"),
            AppError::RunExists(dir) => write!(
                f,
                "{} already holds a run; pass --resume to continue it or choose another --out",
                dir.display()
            ),
            AppError::GraphChanged(dir) => write!(
                f,
                "the spec or its hyperparameters changed since {} was started; resume needs the same model (compare with {}/graph.txt)",
                dir.display(),
                dir.display()
            ),
            AppError::NoCompletedEpoch(dir) => {
                write!(f, "{} holds no completed epoch (no state.json) and no model.safetensors", dir.display())
            }
            AppError::CorruptState { path, message } => write!(f, "{}: corrupt run state: {message}", path.display()),
            AppError::BadCheckpoint { path, message } => write!(f, "{}: {message}", path.display()),
            AppError::IdsNotKept { run, data, message } => write!(
                f,
                "cannot start from {}: {} does not keep the ids its weights were trained with: {message} (import the data set with --keep-ids-from the one {} was trained on)",
                run.display(),
                data.display(),
                run.display()
            ),
            AppError::SpecNoLongerCompiles { spec, diagnostics } => {
                write!(f, "{} no longer compiles:\n{diagnostics}", spec.display())
            }
            AppError::ImportOutsideSpecDir { spec, import } => write!(
                f,
                "{} imports {}, outside the spec's directory; runs support imports below it",
                spec.display(),
                import.display()
            ),
            AppError::EmptySplit(path) => write!(f, "{}: no rows; there is nothing to train or validate on", path.display()),
            AppError::NoPositives { path, loss, label, rows } => write!(
                f,
                "{}: label `{label}` is 0 in all {rows} rows, so loss `{loss}` has no positive to learn from (check the label's name in the data, or switch the loss off with `{loss} = 0.0` under [loss_weights] in a run config)",
                path.display()
            ),
            AppError::MissingSplit { path, split } => write!(
                f,
                "{} not found (expected {split}.jsonl, {split}.parquet or a folder {split}/ of shards in the data directory; `recspec simulate --out DIR` writes one)",
                path.display()
            ),
            AppError::AmbiguousSplit { files, split } => write!(
                f,
                "the {split} split is in two places, {}; keep one (a data set's split is one file or one folder of shards)",
                files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
            ),
            AppError::UnknownLossWeight { name, losses } => {
                write!(f, "[loss_weights] names `{name}`, but the model's losses are {}", losses.join(", "))
            }
            AppError::NoLoss(spec) => {
                write!(f, "{}: the model has no `loss` statement; there is nothing to train", spec.display())
            }
            AppError::ZeroCount => f.write_str("--batch-size, --epochs and --max-steps must be at least 1"),
            AppError::BadLearningRate(lr) => write!(f, "--lr must be a positive number, found {lr}"),
            AppError::NotAHistory { history, inputs } => write!(
                f,
                "the model's item scores do not read a sequence `{history}` (inputs: {})",
                inputs.join(", ")
            ),
            AppError::TooLarge(e) => e.fmt(f),
            AppError::BadHistoryRow { file, line, message, inputs } => {
                write!(f, "{}:{line}: {message} (inputs: {})", file.display(), inputs.join(", "))
            }
        }
    }
}

impl std::error::Error for AppError {}

/// Lowers a checked graph at its own hyperparameters for the runtime.
pub fn lower_graph(graph: &crate::ir::Graph) -> Result<crate::lower::Program, AppError> {
    Ok(crate::lower::lower(graph, &crate::lower::Bindings::of(graph))?)
}

macro_rules! from_error {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for AppError {
            fn from(e: $ty) -> AppError {
                AppError::$variant(e)
            }
        })*
    };
}

// Every lower layer's error converts with `?`.
from_error!(
    Config(ConfigError),
    Backend(crate::runtime::RuntimeError),
    Lower(crate::lower::LowerError),
    File(crate::files::FileError),
    Load(crate::load::LoadError),
    Render(crate::render::RenderError),
    Picture(crate::picture::PictureError),
    Data(crate::data::DataError),
    Schema(crate::data::SchemaError),
    Simulate(crate::simulate::SimulateError),
    Import(crate::import::ImportError),
    Git(git::GitError),
);
