//! Recommending from a trained run: top-K items for every history in a JSON Lines file.

use super::{AppError, RunDir, RECOMMEND_CHUNK};
use crate::runtime::serve::{Pick, Recommender};
use burn::prelude::Device;
use std::path::Path;

/// A trained run ready to recommend through `output` (or its one item-scoring output).
pub fn recommender(run: &Path, output: Option<&str>, device: Device) -> Result<Recommender, AppError> {
    let dir = RunDir::open(run);
    let (plan, _) = dir.load_program()?;
    let weights = dir.load_weights(&plan, &device)?;
    Ok(Recommender::new(plan, weights, output, device)?)
}

/// The top-`k` list of every row of `histories`, with the row's line number, scored
/// [`RECOMMEND_CHUNK`] rows at a time. A row the model cannot read stops with its line.
pub fn recommend(
    rec: &Recommender,
    histories: &Path,
    k: usize,
    exclude_consumed: bool,
) -> Result<Vec<(usize, Vec<Pick>)>, AppError> {
    let mut rows = vec![];
    let mut lines = vec![];
    crate::data::for_each_json_row(histories, |line, v| {
        rows.push(v);
        lines.push(line);
        Ok(true)
    })?;
    let mut out = vec![];
    for (chunk, chunk_lines) in rows.chunks(RECOMMEND_CHUNK).zip(lines.chunks(RECOMMEND_CHUNK)) {
        let lists = rec.top_k(chunk, k, exclude_consumed).map_err(|(r, message)| AppError::BadHistoryRow {
            file: histories.to_path_buf(),
            line: chunk_lines[r],
            message,
            inputs: rec.inputs(),
        })?;
        out.extend(chunk_lines.iter().copied().zip(lists));
    }
    Ok(out)
}
