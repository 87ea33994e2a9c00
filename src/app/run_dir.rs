//! The run directory: everything a training run leaves on disk, and how a run is loaded back.
//!
//! Layout of `RUN/`: `spec.recspec` (and relatively imported files), `run.toml` (resolved
//! hyperparameters, training settings, loss weights), `graph.txt` (the compiled graph),
//! `model.epochN.bpk` and `optimizer.epochN.bpk` (burnpack checkpoints of the last completed
//! epoch N), `state.json` (completed epochs and history), `metrics.jsonl` (one line per
//! epoch), `steps.jsonl` (one line per step: its losses, for `recspec report`) and `data/`
//! (what the data set's import fitted: `data.toml`, `features.json`, `vocab/`). Every file is written to a temporary name and renamed, and `state.json` is written
//! last: a run killed at any point resumes from its last completed epoch.
//!
//! A run prepared by `recspec pytorch` has the spec, `run.toml`, `graph.txt` and `model.py`;
//! `python -m recspec_torch.train` adds `model.safetensors` (and `torch_metrics.jsonl`), which
//! loads like a checkpoint.

use super::settings::{apply_loss_weights, settings_toml};
use super::AppError;
use crate::config::{RunConfig, TrainSettings};
use crate::files::FileError;
use crate::ir::Graph;
use crate::load::LoadedSpec;
use crate::lower::Program;
use crate::render::{self, Emit};
use crate::runtime::train::{self as runtime_train, Checkpoint, EpochSink, Position, StepLosses};
use crate::runtime::weights::Weights;
use burn::prelude::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The run's copy of its data set's fitted features: `RUN/data/`.
pub const FITTED_DIR: &str = "data";

/// Writes `bytes` to `path` atomically: a temporary file, flushed to the disk, then renamed over
/// `path`. A failed write (a full disk) leaves `path` as it was and removes the temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AppError> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(FileError::at("write", &tmp)(e).into());
    }
    Ok(std::fs::rename(&tmp, path).map_err(FileError::renaming(&tmp, path))?)
}

fn read(path: &Path) -> Result<Vec<u8>, AppError> {
    Ok(std::fs::read(path).map_err(FileError::at("read", path))?)
}

fn create_dir(path: &Path) -> Result<(), AppError> {
    Ok(std::fs::create_dir_all(path).map_err(FileError::at("create", path))?)
}

/// Progress of a run (`state.json`), committed after every completed epoch.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct RunState {
    pub epochs_done: usize,
    pub steps: u64,
    /// The metrics line of every completed epoch (also written to `metrics.jsonl`).
    pub history: Vec<serde_json::Value>,
}

/// A run directory on disk.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// An existing run, to load back (nothing is read yet).
    pub fn open(path: &Path) -> RunDir {
        RunDir { path: path.to_path_buf() }
    }

    /// The directory for a new run of `graph`, created if needed. A directory that already
    /// holds a run is accepted only with `resume`, and only when the run compiled to the same
    /// graph.
    pub fn prepare(path: &Path, resume: bool, graph: &Graph) -> Result<RunDir, AppError> {
        let dir = RunDir::open(path);
        let started = dir.state_file().exists();
        if started && !resume {
            return Err(AppError::RunExists(path.to_path_buf()));
        }
        if started {
            let saved = std::fs::read_to_string(path.join("graph.txt")).unwrap_or_default();
            if saved != render::emit(graph, Emit::Graph)? {
                return Err(AppError::GraphChanged(path.to_path_buf()));
            }
        }
        create_dir(path)?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// The checkpoint files of a completed epoch: the model, then the optimizer. Each epoch
    /// writes new files; the state file then points at them, so a kill between the two leaves
    /// the previous checkpoint intact.
    pub(crate) fn checkpoint_files(&self, epoch: usize) -> (PathBuf, PathBuf) {
        (self.path.join(format!("model.epoch{epoch}.bpk")), self.path.join(format!("optimizer.epoch{epoch}.bpk")))
    }

    /// The embedding tables' optimizer state of an epoch (row-sparse training only).
    pub fn rows_file(&self, epoch: usize) -> PathBuf {
        self.path.join(format!("optimizer_rows.epoch{epoch}.safetensors"))
    }

    /// Copies the spec (and the files it imports by relative path) into the run directory.
    pub(crate) fn save_spec(&self, spec: &Path, loaded: &LoadedSpec) -> Result<(), AppError> {
        let root_dir = spec.parent().unwrap_or(Path::new("."));
        let root_dir = root_dir.canonicalize().unwrap_or(root_dir.to_path_buf());
        for (i, f) in loaded.sources.files().iter().enumerate() {
            let Some(path) = &f.path else { continue }; // standard library files are built in
            let target = if i == 0 {
                self.path.join("spec.recspec")
            } else {
                let rel = path
                    .strip_prefix(&root_dir)
                    .map_err(|_| AppError::ImportOutsideSpecDir { spec: spec.to_path_buf(), import: path.clone() })?;
                self.path.join(rel)
            };
            if let Some(parent) = target.parent() {
                create_dir(parent)?;
            }
            write_atomic(&target, f.text.as_bytes())?;
        }
        Ok(())
    }

    /// Where the run keeps its data set's fitted features ([`RunDir::save_fitted`]), when it
    /// has them.
    pub fn fitted(&self) -> Option<PathBuf> {
        let dir = self.path.join(FITTED_DIR);
        dir.join("data.toml").is_file().then_some(dir)
    }

    /// Keeps what the data set's import fitted with the run, in `RUN/data/`: `data.toml` (sizes,
    /// and the feature set or mapping that made it), `features.json` and `vocab/`. A server
    /// builds rows for this run from them, and a warm start from it checks that a newer data set
    /// kept its ids. Files are hard-linked where the file system allows (an import replaces its
    /// files by renaming, so a later import into the same directory leaves the run's copy as it
    /// was) and copied otherwise. A data set without `data.toml` keeps nothing.
    pub(crate) fn save_fitted(&self, data: &Path) -> Result<(), AppError> {
        if !data.join("data.toml").is_file() {
            return Ok(());
        }
        let dest = self.path.join(FITTED_DIR);
        let tmp = self.path.join(format!("{FITTED_DIR}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        let kept = (|| {
            create_dir(&tmp.join("vocab"))?;
            let mut files = vec![PathBuf::from("data.toml"), PathBuf::from("features.json")];
            if let Ok(entries) = std::fs::read_dir(data.join("vocab")) {
                for e in entries {
                    let e = e.map_err(FileError::at("read", &data.join("vocab")))?;
                    files.push(Path::new("vocab").join(e.file_name()));
                }
            }
            for f in files {
                let (from, to) = (data.join(&f), tmp.join(&f));
                if !from.is_file() {
                    continue;
                }
                if std::fs::hard_link(&from, &to).is_err() {
                    std::fs::copy(&from, &to).map_err(FileError::at("copy", &from))?;
                }
            }
            if dest.exists() {
                std::fs::remove_dir_all(&dest).map_err(FileError::at("replace", &dest))?;
            }
            Ok(std::fs::rename(&tmp, &dest).map_err(FileError::renaming(&tmp, &dest))?)
        })();
        if kept.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        kept
    }

    /// Writes `run.toml` (the resolved settings) and `graph.txt` (the compiled graph).
    pub(crate) fn save_settings(&self, graph: &Graph, train: &TrainSettings, data: &Path) -> Result<(), AppError> {
        write_atomic(&self.path.join("run.toml"), settings_toml(graph, train, data).as_bytes())?;
        let graph_text = render::emit(graph, Emit::Graph)?;
        write_atomic(&self.path.join("graph.txt"), graph_text.as_bytes())
    }

    /// The run's progress; `None` before its first completed epoch.
    pub fn load_state(&self) -> Result<Option<RunState>, AppError> {
        let p = self.state_file();
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).map_err(FileError::at("read", &p))?;
        serde_json::from_str(&text).map(Some).map_err(|e| AppError::CorruptState { path: p, message: e.to_string() })
    }

    fn save_state(&self, state: &RunState) -> Result<(), AppError> {
        let text = serde_json::to_string_pretty(state).map_err(AppError::Json)?;
        write_atomic(&self.state_file(), text.as_bytes())
    }

    /// The checkpoint of the last completed epoch of `state`, to resume training from.
    pub fn checkpoint(&self, state: &RunState) -> Result<Checkpoint, AppError> {
        let (model, optimizer) = self.checkpoint_files(state.epochs_done);
        Ok(Checkpoint {
            position: Position { epochs_done: state.epochs_done, steps: state.steps },
            model: read(&model)?,
            optimizer: read(&optimizer)?,
            rows: {
                let rows = self.rows_file(state.epochs_done);
                if rows.exists() {
                    read(&rows)?
                } else {
                    vec![]
                }
            },
        })
    }

    /// Rebuilds the run's program from its saved spec and `run.toml`: the compiled graph with the
    /// run's loss weights, lowered.
    pub fn load_program(&self) -> Result<(Program, RunConfig), AppError> {
        let (graph, config) = self.load_graph()?;
        Ok((super::lower_graph(&graph)?, config))
    }

    /// The run's compiled graph from its saved spec and `run.toml`, with the run's loss weights.
    pub(crate) fn load_graph(&self) -> Result<(Graph, RunConfig), AppError> {
        let config = crate::config::load_run_config(&self.path.join("run.toml"))?;
        let spec = self.path.join("spec.recspec");
        let (program, checked) = crate::compile_file(&spec, &config.overrides)?;
        let Some(mut graph) = checked.graph else {
            let diagnostics = crate::diag::render(&program.sources, &checked.diagnostics);
            return Err(AppError::SpecNoLongerCompiles { spec, diagnostics });
        };
        apply_loss_weights(&mut graph, &config.loss_weights)?;
        Ok((graph, config))
    }

    /// The weights of the run's last completed epoch, on `device`; for a run trained by the
    /// generated PyTorch module (no `state.json`), its `model.safetensors`.
    pub fn load_weights(&self, program: &Program, device: &Device) -> Result<Weights, AppError> {
        let torch_weights = self.path.join(TORCH_WEIGHTS);
        let Some(state) = self.load_state()? else {
            if !torch_weights.exists() {
                return Err(AppError::NoCompletedEpoch(self.path.clone()));
            }
            let bytes = read(&torch_weights)?;
            return Weights::from_safetensors(program, &bytes, device)
                .map_err(|message| AppError::BadCheckpoint { path: torch_weights, message: message.to_string() });
        };
        let (path, _) = self.checkpoint_files(state.epochs_done);
        let bytes = read(&path)?;
        runtime_train::weights_from_bytes(program, bytes, device)
            .map_err(|message| AppError::BadCheckpoint { path, message: message.to_string() })
    }

    /// Commits one completed epoch, in this order: its checkpoint files, `metrics.jsonl`, then
    /// `state.json` (the commit point), then the previous epoch's checkpoint files.
    fn commit(&self, state: &mut RunState, checkpoint: Checkpoint, metrics: serde_json::Value) -> Result<(), AppError> {
        let epoch = checkpoint.position.epochs_done;
        let (model_path, optimizer_path) = self.checkpoint_files(epoch);
        write_atomic(&model_path, &checkpoint.model)?;
        write_atomic(&optimizer_path, &checkpoint.optimizer)?;
        if !checkpoint.rows.is_empty() {
            write_atomic(&self.rows_file(epoch), &checkpoint.rows)?;
        }
        state.history.push(metrics);
        let lines: String = state.history.iter().map(|l| format!("{l}\n")).collect();
        write_atomic(&self.path.join("metrics.jsonl"), lines.as_bytes())?;
        state.epochs_done = epoch;
        state.steps = checkpoint.position.steps;
        self.save_state(state)?;
        let (old_model, old_optimizer) = self.checkpoint_files(epoch - 1);
        let _ = std::fs::remove_file(old_model);
        let _ = std::fs::remove_file(old_optimizer);
        let _ = std::fs::remove_file(self.rows_file(epoch - 1));
        Ok(())
    }
}

/// The weights `python -m recspec_torch.train` writes into a run directory.
pub(crate) const TORCH_WEIGHTS: &str = "model.safetensors";

/// The training loop's [`EpochSink`] for a run directory: commits every completed epoch, and
/// appends every step's losses to `steps.jsonl`.
pub(crate) struct EpochWriter<'a> {
    dir: &'a RunDir,
    state: RunState,
    steps: Option<std::io::BufWriter<std::fs::File>>,
}

/// The step log: one line per training step, `{"step", "epoch", "loss", "terms": {name: value}}`
/// (`loss` the weighted sum, `terms` unweighted). Buffered; a killed run loses at most the
/// buffer's last lines, and `recspec report` skips a torn last line.
pub(crate) const STEPS_FILE: &str = "steps.jsonl";

impl<'a> EpochWriter<'a> {
    pub fn new(dir: &'a RunDir, state: RunState) -> EpochWriter<'a> {
        EpochWriter { dir, state, steps: None }
    }

    /// The step log, opened on the first step: a resumed run first drops the lines of steps after
    /// its checkpoint (they are trained again), so each step appears once.
    fn step_log(&mut self) -> Result<&mut std::io::BufWriter<std::fs::File>, AppError> {
        if self.steps.is_none() {
            let path = self.dir.path.join(STEPS_FILE);
            let kept: String = match std::fs::read_to_string(&path) {
                Ok(text) => text
                    .lines()
                    .filter(|l| {
                        let step = serde_json::from_str::<serde_json::Value>(l)
                            .ok()
                            .and_then(|v| v.get("step").and_then(|s| s.as_u64()));
                        step.is_some_and(|s| s <= self.state.steps)
                    })
                    .map(|l| format!("{l}\n"))
                    .collect(),
                Err(_) => String::new(),
            };
            write_atomic(&path, kept.as_bytes())?;
            let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(FileError::at("open", &path))?;
            self.steps = Some(std::io::BufWriter::new(file));
        }
        Ok(self.steps.as_mut().expect("opened above"))
    }
}

impl EpochSink for EpochWriter<'_> {
    type Error = AppError;

    fn epoch_done(&mut self, checkpoint: Checkpoint, metrics: serde_json::Value) -> Result<(), AppError> {
        if let Some(log) = self.steps.as_mut() {
            use std::io::Write as _;
            let path = self.dir.path.join(STEPS_FILE);
            log.flush().map_err(FileError::at("write", &path))?;
        }
        self.dir.commit(&mut self.state, checkpoint, metrics)
    }

    fn step_done(&mut self, step: StepLosses<'_>) -> Result<(), AppError> {
        use std::io::Write as _;
        let terms: serde_json::Map<String, serde_json::Value> =
            step.losses.iter().zip(step.terms).map(|(term, v)| (term.name.clone(), serde_json::json!(v))).collect();
        let line = serde_json::json!({ "step": step.step, "epoch": step.epoch, "loss": step.total, "terms": terms });
        let dir = self.dir;
        let log = self.step_log()?;
        writeln!(log, "{line}").map_err(|e| FileError::at("write", &dir.path.join(STEPS_FILE))(e))?;
        Ok(())
    }
}
