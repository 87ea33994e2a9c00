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
    let opts = EvalOptions::new(EVAL_BATCH_SIZE, request.skip_bad_rows, request.labels, request.ks.clone())?;
    let report = evaluate_run(request.run, &file, &opts, &request.device)?;
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
