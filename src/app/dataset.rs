//! Data sets as the application sees them: the `data.toml` dims a spec is compiled with, and
//! the splits (`train`, `valid`, `test`, each a `.jsonl` or `.parquet` file or a folder of such
//! shards).

use super::AppError;
use crate::check::Checked;
use crate::data::DataFormat;
use crate::load::LoadedSpec;
use crate::overrides::Override;
use std::path::{Path, PathBuf};

/// Compiles a spec for a data set: the data set's `data.toml` dims, applied only where the spec
/// declares them (a data set describes more dims than any one model uses), then `extra` (run
/// config, `--set`), which wins. Without `data`, this is [`crate::compile_file`]. `features`: a
/// feature set file checked with the spec (`--features`).
pub fn compile_for_data(
    spec: &Path,
    data: Option<&Path>,
    features: Option<&Path>,
    extra: &[Override],
) -> Result<(LoadedSpec, Checked), AppError> {
    let mut all = match data {
        Some(d) => data_overrides(d)?,
        None => vec![],
    };
    all.extend_from_slice(extra);
    Ok(crate::compile_file_with_features(spec, features, &all)?)
}

/// The data set's `data.toml` hyperparameters, if it has one, as optional overrides.
pub(crate) fn data_overrides(data: &Path) -> Result<Vec<Override>, AppError> {
    let p = data.join("data.toml");
    if !p.exists() {
        return Ok(vec![]);
    }
    Ok(crate::config::load_run_config(&p)?.overrides.into_iter().map(Override::optional).collect())
}

/// The splits of a data set, in the order they are used.
pub(crate) const SPLITS: [&str; 3] = ["train", "valid", "test"];

/// The path of one split of the data set, which must exist: `SPLIT.jsonl`, `SPLIT.parquet`, or
/// a folder `SPLIT/` of shards ([`crate::data::shards`]); one of them — two is an error naming
/// both, so a stale copy is never read by accident.
pub(crate) fn split_file(data: &Path, split: &str) -> Result<PathBuf, AppError> {
    let mut found: Vec<PathBuf> = DataFormat::ALL
        .iter()
        .map(|f| data.join(format!("{split}.{}", f.extension())))
        .filter(|p| p.exists())
        .chain(Some(data.join(split)).filter(|p| p.is_dir()))
        .collect();
    match found.len() {
        0 => Err(AppError::MissingSplit { path: data.join(format!("{split}.jsonl")), split: split.to_string() }),
        1 => Ok(found.remove(0)),
        _ => Err(AppError::AmbiguousSplit { files: found, split: split.to_string() }),
    }
}

/// The features data set `data` was imported with, fitted, ready to build rows from raw events
/// (`recspec serve --data`): the mapping or feature set `definition` names, or else the one its
/// `data.toml` records (a path as given to `recspec import`, tried as it is and then beside
/// the data set).
pub fn featurizer(data: &Path, definition: Option<&Path>) -> Result<crate::import::online::Featurizer, AppError> {
    let file = match definition {
        Some(d) => d.to_path_buf(),
        None => {
            let toml_path = data.join("data.toml");
            let text = std::fs::read_to_string(&toml_path).map_err(|e| {
                AppError::Serve(format!(
                    "{}: cannot read ({e}); --data needs a data set made by recspec import",
                    toml_path.display()
                ))
            })?;
            let doc: toml::Table = toml::from_str(&text)
                .map_err(|e| AppError::Serve(format!("{}: not TOML: {}", toml_path.display(), e.message())))?;
            let Some(recorded) = doc.get("import").and_then(|i| i.get("mapping")).and_then(|m| m.as_str()) else {
                return Err(AppError::Serve(format!(
                    "{}: no [import] mapping; this data set was not made by recspec import (give --features)",
                    toml_path.display()
                )));
            };
            let recorded = PathBuf::from(recorded);
            match recorded.exists() {
                true => recorded,
                false => data.join(recorded.file_name().unwrap_or_default()),
            }
        }
    };
    let mapping = if file.extension().is_some_and(|e| e == "toml") {
        crate::import::mapping::load(&file)?
    } else {
        let (program, checked) = crate::compile_file(&file, &[])?;
        if checked.has_errors() {
            return Err(AppError::Serve(crate::diag::render(&program.sources, &checked.diagnostics)));
        }
        let Some(set) = checked.features else {
            return Err(AppError::Serve(format!("{}: has no feature set (`features NAME {{ ... }}`)", file.display())));
        };
        crate::import::mapping::from_features(&file, &set, &|s| program.sources.place(s))?
    };
    Ok(crate::import::online::Featurizer::load(data, mapping)?)
}
