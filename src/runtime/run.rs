//! Run directories: the spec and settings a run was made with, and its checkpoints.
//!
//! Layout of `RUN/`: `spec.recspec` (and relatively imported files), `run.toml` (resolved
//! hyperparameters, training settings, loss weights), `graph.txt` (the compiled graph),
//! `model.epochN.bpk` and `optimizer.epochN.bpk` (burnpack checkpoints of the last completed
//! epoch N), `state.json` (completed epochs and history) and `metrics.jsonl` (one line per epoch). Every file is written to a temporary name
//! and renamed, and `state.json` is written last: a run killed at any point resumes from its
//! last completed epoch.

use crate::config::{OptimizerKind, TrainSettings};
use crate::ir::{Attr, Graph};
use crate::load::Program;
use crate::overrides::Override;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), path.display()))
}

/// Progress of a run, committed after every completed epoch.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct RunState {
    pub epochs_done: usize,
    pub steps: u64,
    pub history: Vec<serde_json::Value>,
}

/// The checkpoint files of a completed epoch. Each epoch writes new files; the state file then
/// points at them, so a kill between the two leaves the previous checkpoint intact.
pub fn checkpoint_files(dir: &Path, epoch: usize) -> (PathBuf, PathBuf) {
    (dir.join(format!("model.epoch{epoch}.bpk")), dir.join(format!("optimizer.epoch{epoch}.bpk")))
}

impl RunState {
    pub fn load(dir: &Path) -> Result<Option<RunState>, String> {
        let p = dir.join("state.json");
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        serde_json::from_str(&text).map(Some).map_err(|e| format!("{}: corrupt run state: {e}", p.display()))
    }

    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        write_atomic(&dir.join("state.json"), text.as_bytes())
    }
}

/// Copies the spec (and the files it imports by relative path) into the run directory.
pub fn save_spec(dir: &Path, spec: &Path, program: &Program) -> Result<(), String> {
    let root_dir = spec.parent().unwrap_or(Path::new("."));
    let root_dir = root_dir.canonicalize().unwrap_or(root_dir.to_path_buf());
    for (i, f) in program.sources.files().iter().enumerate() {
        let Some(path) = &f.path else { continue }; // standard library files are built in
        let target = if i == 0 {
            dir.join("spec.recspec")
        } else {
            let rel = path.strip_prefix(&root_dir).map_err(|_| {
                format!(
                    "{} imports {}, outside the spec's directory; runs support imports below it",
                    spec.display(),
                    path.display()
                )
            })?;
            dir.join(rel)
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        write_atomic(&target, f.text.as_bytes())?;
    }
    Ok(())
}

/// The settings file of a run, in the run-config format so it can be read back with
/// [`crate::config::load_run_config`].
pub fn settings_toml(graph: &Graph, train: &TrainSettings, data: &Path) -> String {
    let mut out = String::from("# written by recspec train: the resolved settings of this run\n[hparams]\n");
    for d in graph.dims.iter().filter(|d| d.derived.is_none()) {
        out.push_str(&format!("{} = {}\n", d.name, d.value));
    }
    for p in &graph.params {
        let v = match &p.value {
            Attr::Int(d) => d.to_string(),
            Attr::Float(f) => format!("{f:?}"),
            Attr::Bool(b) => b.to_string(),
            Attr::Sym(s) | Attr::Str(s) => format!("{s:?}"),
            Attr::List(_) => continue,
        };
        out.push_str(&format!("{} = {v}\n", p.name));
    }
    let opt = match train.optimizer {
        OptimizerKind::Adam => "adam",
        OptimizerKind::Adagrad => "adagrad",
    };
    out.push_str(&format!(
        "\n[train]\noptimizer = \"{opt}\"\nlr = {:?}\nbatch_size = {}\nepochs = {}\nseed = {}\n",
        train.lr, train.batch_size, train.epochs, train.seed
    ));
    if let Some(m) = train.max_steps {
        out.push_str(&format!("max_steps = {m}\n"));
    }
    out.push_str("\n[loss_weights]\n");
    for l in &graph.losses {
        out.push_str(&format!("{} = {:?}\n", l.name, l.weight));
    }
    out.push_str(&format!("\n# trained on {}\n", data.display()));
    out
}

/// Applies `[loss_weights]` to a compiled graph; unknown loss names are errors.
pub fn apply_loss_weights(graph: &mut Graph, weights: &BTreeMap<String, f64>) -> Result<(), String> {
    for (name, w) in weights {
        match graph.losses.iter_mut().find(|l| &l.name == name) {
            Some(l) => l.weight = *w,
            None => {
                let names: Vec<&str> = graph.losses.iter().map(|l| l.name.as_str()).collect();
                return Err(format!("[loss_weights] names `{name}`, but the model's losses are {}", names.join(", ")));
            }
        }
    }
    Ok(())
}

/// Compiles a spec for a data set: the data set's `data.toml` dims, applied only where the spec
/// declares them (a data set describes more dims than any one model uses), then `extra` (run
/// config, `--set`), which wins.
pub fn compile_for_data(
    spec: &Path,
    data: Option<&Path>,
    extra: &[Override],
) -> Result<(Program, crate::check::Checked), String> {
    let mut all = match data {
        Some(d) => data_overrides(d)?,
        None => vec![],
    };
    all.extend_from_slice(extra);
    crate::compile_file(spec, &all)
}

/// The data set's `data.toml` hyperparameters, if it has one, as optional overrides.
fn data_overrides(data: &Path) -> Result<Vec<Override>, String> {
    let p = data.join("data.toml");
    if !p.exists() {
        return Ok(vec![]);
    }
    Ok(crate::config::load_run_config(&p)?.overrides.into_iter().map(Override::optional).collect())
}

/// A file of the data set, which must exist.
pub fn data_file(data: &Path, split: &str) -> Result<PathBuf, String> {
    let p = data.join(format!("{split}.jsonl"));
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found (expected {split}.jsonl in the data directory; `recspec simulate --out DIR` writes one)",
            p.display()
        ))
    }
}
