//! Evaluating trained runs on a data split, optionally against a baseline run (RelaImpr).

use super::dataset::split_file;
use super::{AppError, RunDir, EVAL_BATCH_SIZE};
use crate::runtime::eval::{evaluate, EvalOptions, EvalReport};
use burn::prelude::Device;
use serde_json::{json, Value};
use std::path::Path;

/// What to evaluate and how.
pub struct EvalRequest<'a> {
    pub run: &'a Path,
    pub data: &'a Path,
    pub split: &'a str,
    /// Another run to compute RelaImpr against.
    pub baseline: Option<&'a Path>,
    /// Extra label streams: `name` (scored as 1 - p) or `name=output`.
    pub labels: &'a [String],
    /// Cut-offs for recall@K and NDCG@K.
    pub ks: Vec<usize>,
    pub skip_bad_rows: bool,
    pub device: Device,
    /// Where to write every row's scores (JSON Lines), if anywhere.
    pub predictions: Option<&'a Path>,
}

/// Evaluates a run's last checkpoint on a data file.
pub fn evaluate_run(run: &Path, file: &Path, opts: &EvalOptions, device: &Device) -> Result<EvalReport, AppError> {
    let dir = RunDir::open(run);
    let (plan, _) = dir.load_program()?;
    let weights = dir.load_weights(&plan, device)?;
    Ok(evaluate(&plan, &weights, file, opts, device)?)
}

/// The JSON document `recspec eval` prints: the run's report, and with a baseline its report
/// and the RelaImpr of every label stream both have an AUC for.
pub fn eval(request: &EvalRequest) -> Result<Value, AppError> {
    let file = split_file(request.data, request.split)?;
    let mut opts = EvalOptions::new(EVAL_BATCH_SIZE, request.skip_bad_rows, request.labels, request.ks.clone())?;
    opts.keep_predictions = request.predictions.is_some();
    let mut report = evaluate_run(request.run, &file, &opts, &request.device)?;
    if let (Some(path), Some(p)) = (request.predictions, report.predictions.take()) {
        write_predictions(path, &p)?;
    }
    let mut json = json!({
        "run": request.run.display().to_string(),
        "data": file.display().to_string(),
        "report": report,
    });
    if let Some(b) = request.baseline {
        let base = evaluate_run(b, &file, &opts, &request.device)?;
        let mut rela = serde_json::Map::new();
        for (name, m) in &report.streams {
            if let (Some(a), Some(c)) = (m.auc, base.streams.get(name).and_then(|x| x.auc)) {
                rela.insert(name.clone(), json!(crate::metrics::rela_impr(a, c)));
            }
        }
        json["baseline"] = json!({ "run": b.display().to_string(), "report": base });
        json["relaimpr"] = Value::Object(rela);
    }
    Ok(json)
}

/// `recspec eval --predictions`: one JSON line per scored row, in the order read.
fn write_predictions(path: &Path, p: &crate::runtime::eval::Predictions) -> Result<(), AppError> {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (i, (file, row)) in p.rows.iter().enumerate() {
        let scores: serde_json::Map<String, Value> =
            p.scores.iter().map(|(stream, s)| (stream.clone(), json!(s[i]))).collect();
        let _ = writeln!(text, "{}", json!({ "file": file.display().to_string(), "row": row, "scores": scores }));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "predictions.jsonl".into());
    let mut staged = crate::files::Staged::create(dir, &name)?;
    staged.write(&text)?;
    let (tmp, dest) = staged.finish()?;
    std::fs::rename(&tmp, &dest).map_err(crate::files::FileError::renaming(&tmp, &dest))?;
    Ok(())
}
