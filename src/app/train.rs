//! Training a run: a compiled graph becomes a run directory, and the runtime's training loop
//! fills it epoch by epoch (or continues it after a kill).

use super::dataset::split_file;
use super::run_dir::{EpochWriter, RunDir};
use super::settings::{apply_loss_weights, merge_train_settings, TrainFlags};
use super::AppError;
use crate::config::{RunConfig, TrainSettings};
use crate::ir::Graph;
use crate::load::LoadedSpec;
use crate::lower::Program;
use crate::overrides::Override;
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

/// A run as the user asked for it: the spec, the data set, the run directory, the run config
/// (read once, by the caller) and what the command line adds to it.
pub struct RunRequest<'a> {
    pub spec: &'a Path,
    pub data: &'a Path,
    pub out: &'a Path,
    /// The run config's overrides, `[train]` and loss weights (the defaults when there is none).
    pub config: RunConfig,
    /// `--set` overrides, applied after the config's.
    pub set: Vec<Override>,
    /// Training settings from flags, each replacing the config's.
    pub flags: TrainFlags,
    /// Continue the run in `out` after its last completed epoch.
    pub resume: bool,
    /// Bytes of memory available: a model whose training step needs more is refused before
    /// anything is written. `None` skips the check.
    pub available: Option<u64>,
}

/// A run directory ready to train in.
pub struct Started {
    pub dir: RunDir,
    pub program: Program,
    pub settings: TrainSettings,
}

/// Assembles a run: merges the settings, compiles the spec for the data set (handing its
/// diagnostics, if any, to `report` at once), applies the loss weights, lowers, checks memory and
/// the splits, and prepares the run directory (saving the spec, settings and graph), in that
/// order, so that nothing is written for a run that cannot start. `None` when the spec has
/// errors.
pub fn prepare(
    request: RunRequest,
    report: &mut dyn FnMut(&LoadedSpec, &[crate::diag::Diagnostic]),
) -> Result<Option<Started>, AppError> {
    let RunRequest { spec, data, out, config, set, flags, resume, available } = request;
    let settings = merge_train_settings(config.train.as_ref(), &flags)?;
    let mut overrides = config.overrides;
    overrides.extend(set);
    let (loaded, checked) = super::compile_for_data(spec, Some(data), None, &overrides)?;
    if !checked.diagnostics.is_empty() {
        report(&loaded, &checked.diagnostics);
    }
    let Some(graph) = checked.graph else { return Ok(None) };
    let graph = trainable_graph(spec, graph, &config.loss_weights)?;
    let program = super::lower_graph(&graph)?;
    super::memory::check_fits(&program, settings.batch_size, &settings, available)?;
    check_splits(&program, data)?;
    let dir = start_run(out, resume, spec, &loaded, &graph, &settings, data)?;
    Ok(Some(Started { dir, program, settings }))
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
    dir.save_fitted(data)?;
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
    /// An earlier run's weights to start from ([`earlier_weights`]); ignored when the run
    /// resumes from its own checkpoint.
    pub init_from: Option<Vec<u8>>,
}

/// The weights of the earlier run `run` (its last completed epoch) as safetensors, for a warm
/// start (`recspec train --init-from RUN`), and how `program` would start from them.
pub fn earlier_weights(
    run: &Path,
    program: &Program,
    device: &Device,
) -> Result<(Vec<u8>, crate::runtime::weights::WarmStart), AppError> {
    let dir = RunDir::open(run);
    let (earlier, _) = dir.load_program()?;
    let bytes = dir.load_weights(&earlier, device)?.to_safetensors(&earlier)?;
    let plan = crate::runtime::weights::WarmStart::plan(program, &bytes)
        .map_err(|e| AppError::BadCheckpoint { path: run.to_path_buf(), message: e.to_string() })?;
    Ok((bytes, plan))
}

/// What a warm start found of the ids: how many items, users and feature values of the earlier
/// run's data set the new one numbers alike, or `None` when the earlier run kept no copy of its
/// data set's ids (a run trained before runs kept one, or on a data set without vocabularies).
pub type KeptIds = Option<[usize; 3]>;

/// Refuses a warm start from `run` on `data` unless `data` gives every item, user and feature
/// vocabulary value the same id as the data set `run` was trained on (`RUN/data/`, kept by
/// [`RunDir::save_fitted`]): otherwise the rows copied from the earlier tables would belong to
/// other keys. Names the first key that moved or is missing.
pub fn check_kept_ids(run: &Path, data: &Path) -> Result<KeptIds, AppError> {
    let Some(earlier) = RunDir::open(run).fitted() else { return Ok(None) };
    let refuse = |message: String| AppError::IdsNotKept { run: run.to_path_buf(), data: data.to_path_buf(), message };
    let (before, now) = (crate::import::given_ids(&earlier)?, crate::import::given_ids(data)?);
    let mut kept = [0; 3];
    for (k, what, before, now) in [(0, "item", &before.items, &now.items), (1, "user", &before.users, &now.users)] {
        for (key, was) in before {
            match now.get(key) {
                Some(is) if is == was => {}
                Some(is) => return Err(refuse(format!("{what} \"{key}\" has id {is}, not {was}"))),
                None => return Err(refuse(format!("{what} \"{key}\" (id {was}) has no id"))),
            }
        }
        kept[k] = before.len();
    }
    // `fields` and `profile` values, by (column, value); a column's out-of-vocabulary id too.
    for (before, now) in before.columns.iter().zip(&now.columns) {
        for ((column, value), was) in before {
            let what = match value {
                Some(v) => format!("`{column}` value \"{v}\""),
                None => format!("`{column}`'s out-of-vocabulary id"),
            };
            match now.get(&(column.clone(), value.clone())) {
                Some(is) if is == was => {}
                Some(is) => return Err(refuse(format!("{what} has id {is}, not {was}"))),
                None => return Err(refuse(format!("{what} (id {was}) has no id"))),
            }
        }
        kept[2] += before.len();
    }
    for (input, values) in &before.vocabularies {
        let is = now.vocabularies.iter().find(|(i, _)| i == input).map(|(_, v)| v.as_slice()).unwrap_or_default();
        if let Some(i) = (0..values.len()).find(|i| is.get(*i) != Some(&values[*i])) {
            return Err(refuse(format!(
                "feature `{input}`: id {} is {}, not \"{}\"",
                i + 1,
                is.get(i).map_or("unused".to_string(), |v| format!("\"{v}\"")),
                values[i]
            )));
        }
        kept[2] += values.len();
    }
    Ok(Some(kept))
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
        init: if start.is_some() { None } else { options.init_from },
    };
    let mut writer = EpochWriter::new(dir, state);
    crate::runtime::train::train(job, start, &mut writer)
}
