//! Training a run: a compiled graph becomes a run directory, and the runtime's training loop
//! fills it epoch by epoch (or continues it after a kill).

use super::dataset::split_file;
use super::run_dir::{EpochWriter, RunDir};
use super::settings::apply_loss_weights;
use super::AppError;
use crate::config::TrainSettings;
use crate::ir::Graph;
use crate::load::LoadedSpec;
use crate::lower::Program;
use crate::runtime::train::{TrainJob, TrainReport};
use burn::prelude::Device;
use std::collections::BTreeMap;
use std::path::Path;

/// The graph a run trains: `graph` with the run config's loss weights, which must have a loss.
pub fn trainable_graph(spec: &Path, mut graph: Graph, loss_weights: &BTreeMap<String, f64>) -> Result<Graph, AppError> {
    apply_loss_weights(&mut graph, loss_weights)?;
    if graph.losses.is_empty() {
        return Err(AppError::NoLoss(spec.to_path_buf()));
    }
    Ok(graph)
}

/// Prepares `out` for a run of `graph` (a new run, or with `resume` the same run continued) and
/// saves the spec, its settings and the compiled graph there.
pub fn start_run(
    out: &Path,
    resume: bool,
    spec: &Path,
    loaded: &LoadedSpec,
    graph: &Graph,
    settings: &TrainSettings,
    data: &Path,
) -> Result<RunDir, AppError> {
    let dir = RunDir::prepare(out, resume, graph)?;
    dir.save_spec(spec, loaded)?;
    dir.save_settings(graph, settings, data)?;
    Ok(dir)
}

/// Refuses a data set training cannot learn from, before anything is written: a missing or empty
/// training or validation split, or a loss whose label stream has no positive in the training
/// split (unless the run config weights that loss 0). Reads each split's labels once.
pub fn check_splits(program: &Program, data: &Path) -> Result<(), AppError> {
    let train_file = split_file(data, "train")?;
    let valid_file = split_file(data, "valid")?;
    let labels: Vec<&str> = program.labels.iter().map(String::as_str).collect();
    let scan = crate::data::scan_labels(&train_file, &labels)?;
    if scan.rows == 0 {
        return Err(AppError::EmptySplit(train_file));
    }
    // A term weighted 0 (`[loss_weights]`) is switched off: it needs no positive.
    for term in program.losses.iter().filter(|t| t.weight != 0.0) {
        for label in program.loss_labels(term) {
            if scan.positives.get(label) == Some(&0) {
                return Err(AppError::NoPositives {
                    path: train_file.to_path_buf(),
                    loss: term.name.clone(),
                    label: label.to_string(),
                    rows: scan.rows,
                });
            }
        }
    }
    if !crate::data::has_rows(&valid_file)? {
        return Err(AppError::EmptySplit(valid_file));
    }
    Ok(())
}

/// How to train, besides the model and its settings.
pub struct TrainOptions {
    pub device: Device,
    /// Skip (and count) malformed rows instead of stopping at the first.
    pub skip_bad_rows: bool,
    /// Extra label streams to report in validation (`name` or `name=output`).
    pub extra_labels: Vec<String>,
    /// Draw a progress line.
    pub progress: bool,
}

/// Trains `program` on the data set's train split, validating on its valid split, and commits
/// every epoch into `dir`; a run with completed epochs continues after the last one.
pub fn train(
    dir: &RunDir,
    program: Program,
    settings: TrainSettings,
    data: &Path,
    options: TrainOptions,
) -> Result<TrainReport, AppError> {
    let train_file = split_file(data, "train")?;
    let valid_file = split_file(data, "valid")?;
    let state = dir.load_state()?.unwrap_or_default();
    let start = if state.epochs_done > 0 {
        let checkpoint = dir.checkpoint(&state)?;
        eprintln!("resuming {} after epoch {}", dir.path().display(), state.epochs_done);
        Some(checkpoint)
    } else {
        None
    };
    let job = TrainJob {
        program,
        settings,
        train_file,
        valid_file,
        device: options.device,
        skip_bad_rows: options.skip_bad_rows,
        extra_labels: options.extra_labels,
        progress: options.progress,
    };
    let mut writer = EpochWriter { dir, state };
    crate::runtime::train::train(job, start, &mut writer)
}
