//! Run settings: training settings merged from a run config and the command line, the
//! `run.toml` a run is saved with, and loss weights applied to a compiled graph.

use super::AppError;
use crate::config::TrainSettings;
use crate::ir::{Attr, Graph};
use std::collections::BTreeMap;
use std::path::Path;

/// Training settings given on the command line; each replaces the run config's value.
#[derive(Clone, Debug, Default)]
pub struct TrainFlags {
    pub epochs: Option<usize>,
    pub max_steps: Option<usize>,
    pub lr: Option<f64>,
    pub batch_size: Option<usize>,
    pub seed: Option<u64>,
    pub embedding_optimizer: Option<crate::config::EmbeddingOptimizer>,
    pub shuffle_buffer: Option<usize>,
}

/// The run config's `[train]` (or the defaults) with `flags` on top, validated.
pub fn merge_train_settings(config: Option<&TrainSettings>, flags: &TrainFlags) -> Result<TrainSettings, AppError> {
    let mut settings = config.cloned().unwrap_or_default();
    settings.epochs = flags.epochs.unwrap_or(settings.epochs);
    settings.max_steps = flags.max_steps.or(settings.max_steps);
    settings.lr = flags.lr.unwrap_or(settings.lr);
    settings.batch_size = flags.batch_size.unwrap_or(settings.batch_size);
    settings.seed = flags.seed.unwrap_or(settings.seed);
    settings.embedding_optimizer = flags.embedding_optimizer.unwrap_or(settings.embedding_optimizer);
    settings.shuffle_buffer = flags.shuffle_buffer.unwrap_or(settings.shuffle_buffer);
    if settings.batch_size == 0 || settings.epochs == 0 || settings.max_steps == Some(0) {
        return Err(AppError::ZeroCount);
    }
    if !(settings.lr.is_finite() && settings.lr > 0.0) {
        return Err(AppError::BadLearningRate(settings.lr));
    }
    Ok(settings)
}

/// The settings file of a run, in the run-config format so it can be read back with
/// [`crate::config::load_run_config`].
pub(crate) fn settings_toml(graph: &Graph, train: &TrainSettings, data: &Path) -> String {
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
    let opt = train.optimizer.name();
    out.push_str(&format!(
        "\n[train]\noptimizer = \"{opt}\"\nlr = {:?}\nbatch_size = {}\nepochs = {}\nseed = {}\n",
        train.lr, train.batch_size, train.epochs, train.seed
    ));
    if let Some(m) = train.max_steps {
        out.push_str(&format!("max_steps = {m}\n"));
    }
    out.push_str(&format!("embedding_optimizer = \"{}\"\n", train.embedding_optimizer.name()));
    out.push_str(&format!("shuffle_buffer = {}\n", train.shuffle_buffer));
    out.push_str("\n[loss_weights]\n");
    for l in &graph.losses {
        out.push_str(&format!("{} = {:?}\n", l.name, l.weight));
    }
    out.push_str(&format!("\n# trained on {}\n", data.display()));
    out
}

/// Applies `[loss_weights]` to a compiled graph; unknown loss names are errors.
pub(crate) fn apply_loss_weights(graph: &mut Graph, weights: &BTreeMap<String, f64>) -> Result<(), AppError> {
    for (name, w) in weights {
        match graph.losses.iter_mut().find(|l| &l.name == name) {
            Some(l) => l.weight = *w,
            None => {
                let losses = graph.losses.iter().map(|l| l.name.clone()).collect();
                return Err(AppError::UnknownLossWeight { name: name.clone(), losses });
            }
        }
    }
    Ok(())
}
