//! Data sets as the application sees them: the `data.toml` dims a spec is compiled with, and
//! the split files (`train.jsonl`, `valid.jsonl`, `test.jsonl`).

use super::AppError;
use crate::check::Checked;
use crate::load::LoadedSpec;
use crate::overrides::Override;
use std::path::{Path, PathBuf};

/// Compiles a spec for a data set: the data set's `data.toml` dims, applied only where the spec
/// declares them (a data set describes more dims than any one model uses), then `extra` (run
/// config, `--set`), which wins. Without `data`, this is [`crate::compile_file`].
pub fn compile_for_data(
    spec: &Path,
    data: Option<&Path>,
    extra: &[Override],
) -> Result<(LoadedSpec, Checked), AppError> {
    let mut all = match data {
        Some(d) => data_overrides(d)?,
        None => vec![],
    };
    all.extend_from_slice(extra);
    Ok(crate::compile_file(spec, &all)?)
}

/// The data set's `data.toml` hyperparameters, if it has one, as optional overrides.
pub fn data_overrides(data: &Path) -> Result<Vec<Override>, AppError> {
    let p = data.join("data.toml");
    if !p.exists() {
        return Ok(vec![]);
    }
    Ok(crate::config::load_run_config(&p)?.overrides.into_iter().map(Override::optional).collect())
}

/// The file of one split of the data set, which must exist.
pub fn split_file(data: &Path, split: &str) -> Result<PathBuf, AppError> {
    let path = data.join(format!("{split}.jsonl"));
    if path.exists() {
        Ok(path)
    } else {
        Err(AppError::MissingSplit { path, split: split.to_string() })
    }
}
