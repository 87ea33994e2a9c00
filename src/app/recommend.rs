//! Recommending from a trained run: top-K items for every history in a JSON Lines or Parquet
//! file.

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

/// The top-`k` list of every row of `histories` (JSON Lines, or Parquet by its extension), with
/// the row's line (row) number, read and scored [`RECOMMEND_CHUNK`] rows at a time. A row the
/// model cannot read stops with its line.
pub fn recommend(
    rec: &Recommender,
    histories: &Path,
    k: usize,
    exclude_consumed: bool,
) -> Result<Vec<(usize, Vec<Pick>)>, AppError> {
    let mut chunk = Chunk { rows: Vec::with_capacity(RECOMMEND_CHUNK), lines: vec![], out: vec![] };
    let mut failed = None;
    crate::data::for_each_row(histories, |line, v| {
        chunk.rows.push(v);
        chunk.lines.push(line);
        if chunk.rows.len() == RECOMMEND_CHUNK {
            if let Err(e) = chunk.score(rec, histories, k, exclude_consumed) {
                failed = Some(e);
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    chunk.score(rec, histories, k, exclude_consumed)?;
    Ok(chunk.out)
}

/// Rows read and not yet scored, and the lists so far.
struct Chunk {
    rows: Vec<serde_json::Value>,
    lines: Vec<usize>,
    out: Vec<(usize, Vec<Pick>)>,
}

impl Chunk {
    fn score(&mut self, rec: &Recommender, file: &Path, k: usize, exclude_consumed: bool) -> Result<(), AppError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let lists = rec.top_k(&self.rows, k, exclude_consumed).map_err(|(r, message)| AppError::BadHistoryRow {
            file: file.to_path_buf(),
            line: self.lines[r],
            message,
            inputs: rec.inputs(),
        })?;
        self.out.extend(self.lines.drain(..).zip(lists));
        self.rows.clear();
        Ok(())
    }
}
