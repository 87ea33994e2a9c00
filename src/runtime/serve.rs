//! Serving: per-row probabilities of a trained model's label streams ([`RowScorer`]), and top-K
//! items for user histories from a trained retrieval model ([`Recommender`]).
//!
//! Both run only the nodes their outputs depend on, so rows need only those inputs (no labels,
//! no weights; for recommending, no target item). A retrieval model scores the whole corpus
//! through an output of shape [B, V] (`item_logits`).

use super::eval::{score, scorers, Scorer};
use super::exec::{forward_to, DeviceBatch};
use super::tensor::Value as TensorValue;
use super::weights::Weights;
use super::RuntimeError;
use crate::data::{batch_from_rows, FieldKind, Schema};
use crate::ir::InputRole;
use crate::lower::{OutputSlot, Program, ValueId};
use burn::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// Scores rows without labels: for every label stream of the model, the probability that
/// `recspec eval` reports it by (the loss's probability, sigmoid of a `bce_logits` logit, or
/// 1 - the primary output), in eval mode.
pub(crate) struct RowScorer {
    program: Program,
    weights: Weights,
    device: Device,
    scorers: BTreeMap<String, Scorer>,
    values: Vec<ValueId>,
    schema: Schema,
}

impl RowScorer {
    pub fn new(program: Program, weights: Weights, device: Device) -> Result<RowScorer, RuntimeError> {
        let scorers = scorers(&program, &program.labels, &BTreeMap::new());
        if scorers.is_empty() {
            return Err(RuntimeError::Model(format!(
                "model `{}` scores no label stream (no loss gives a probability, and no output is per example)",
                program.model
            )));
        }
        let values: Vec<ValueId> = scorers.values().map(Scorer::value).collect();
        let schema = reads_only(&program, &values)?;
        Ok(RowScorer { program, weights, device, scorers, values, schema })
    }

    /// The label streams scored, in the order of each row's scores.
    pub fn streams(&self) -> Vec<String> {
        self.scorers.keys().cloned().collect()
    }

    /// The inputs a row must provide.
    pub fn inputs(&self) -> Vec<String> {
        self.schema.fields.iter().map(|f| f.name.clone()).collect()
    }

    /// Every row's scores, one per stream of [`RowScorer::streams`]; the first row that cannot
    /// be read is `Err((row index, message))`.
    pub fn score(&self, rows: &[Value]) -> Result<Vec<Vec<f32>>, (usize, String)> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let hb = batch_from_rows(&self.schema, rows)?;
        let batch = DeviceBatch::from_host(&hb, &self.device);
        let pass = forward_to(&self.program, &self.weights, &batch, &self.values);
        let per_stream: Vec<Vec<f32>> = self.scorers.values().map(|s| score(s, &pass)).collect();
        Ok((0..rows.len()).map(|r| per_stream.iter().map(|s| s[r]).collect()).collect())
    }
}

/// The schema of the inputs the steps computing `values` read, without labels and weights.
fn reads_only(program: &Program, values: &[ValueId]) -> Result<Schema, RuntimeError> {
    let needed = program.needed_steps(values);
    let reads = |slot: usize| {
        let input = ValueId(slot);
        values.contains(&input)
            || program.steps.iter().zip(&needed).any(|(s, n)| *n && s.kernel.operands().contains(&input))
    };
    Ok(Schema::from_program(program)?.reading_only(reads))
}

pub struct Recommender {
    program: Program,
    weights: Weights,
    device: Device,
    /// The value scoring every item.
    scores: ValueId,
    /// The output name of `scores`.
    pub output: String,
    /// The inputs the scores depend on.
    schema: Schema,
    /// Sequence inputs over the scored corpus: their items count as consumed. With the
    /// number of buckets when the input is hashed (its raw ids are hashed before banning).
    consumed: Vec<(String, Option<i64>)>,
}

/// One recommended item.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Pick {
    pub item: i64,
    pub score: f32,
}

impl Recommender {
    /// `output` names the corpus-scoring output; without it the model must have exactly one
    /// output of shape [B, N] with N > 1.
    pub fn new(
        program: Program,
        weights: Weights,
        output: Option<&str>,
        device: Device,
    ) -> Result<Recommender, RuntimeError> {
        let scores_items = |o: &&OutputSlot| {
            let shape = &program.value(o.value).shape;
            shape.len() == 2 && shape[1].constant() != Some(1)
        };
        let candidates: Vec<&OutputSlot> = program.outputs.iter().filter(scores_items).collect();
        let names = || candidates.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ");
        let chosen = match output {
            Some(name) => candidates.iter().find(|o| o.name == name).ok_or_else(|| {
                RuntimeError::Model(format!(
                    "`{name}` is not an output scoring items ([B, N]); such outputs: {}",
                    names()
                ))
            })?,
            None => match candidates.as_slice() {
                [one] => one,
                [] => {
                    return Err(RuntimeError::Model(format!(
                        "model `{}` has no output scoring items: add `output scores = item_logits(s, table: ...)`",
                        program.model
                    )))
                }
                _ => {
                    return Err(RuntimeError::Model(format!(
                        "several outputs score items ({}); choose one with --output",
                        names()
                    )))
                }
            },
        };
        let scores = chosen.value;
        let output = chosen.name.clone();
        let schema = reads_only(&program, &[scores])?;
        let vocab = program.value(scores).shape[1].constant().map(|v| v as i64);
        let consumed = schema
            .fields
            .iter()
            .filter(|f| {
                f.role == InputRole::Sequence
                    && matches!(f.kind, FieldKind::Ids { vocab: v } | FieldKind::HashedIds { buckets: v } if Some(v) == vocab)
            })
            .map(|f| (f.name.clone(), if let FieldKind::HashedIds { buckets } = f.kind { Some(buckets) } else { None }))
            .collect();
        Ok(Recommender { program, weights, device, scores, output, schema, consumed })
    }

    /// T of a sequence input the scores read.
    pub(crate) fn sequence_len(&self, name: &str) -> Option<usize> {
        self.schema.fields.iter().find(|f| f.name == name && f.role == InputRole::Sequence).map(|f| f.max_len())
    }

    /// The inputs a history row must provide.
    pub fn inputs(&self) -> Vec<String> {
        self.schema.fields.iter().map(|f| f.name.clone()).collect()
    }

    /// Scores of every item for each row, row-major [rows, V].
    pub fn scores(&self, rows: &[Value]) -> Result<(Vec<f32>, usize), (usize, String)> {
        let hb = batch_from_rows(&self.schema, rows)?;
        let batch = DeviceBatch::from_host(&hb, &self.device);
        let pass = forward_to(&self.program, &self.weights, &batch, &[self.scores]);
        let Some(TensorValue::Float(x)) = pass.value(self.scores) else { unreachable!("scores are a float value") };
        let data = x.flat.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let vocab = data.len() / rows.len().max(1);
        Ok((data, vocab))
    }

    /// The top `k` items of each row, best first; `exclude_consumed` leaves out the items of the
    /// row's own sequences. Ties break towards the smaller item id.
    pub(crate) fn top_k(
        &self,
        rows: &[Value],
        k: usize,
        exclude_consumed: bool,
    ) -> Result<Vec<Vec<Pick>>, (usize, String)> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let (scores, vocab) = self.scores(rows)?;
        let per_row: Vec<&[f32]> = scores.chunks(vocab.max(1)).collect();
        Ok(self.pick(rows, &per_row, k, exclude_consumed))
    }

    /// The sequence inputs over the scored items, whose items count as consumed.
    pub fn consumed(&self) -> Vec<String> {
        self.consumed.iter().map(|(name, _)| name.clone()).collect()
    }

    /// [`Recommender::top_k`] from the rows' scores (`scores[r]`: every item's score for row r).
    pub fn pick(&self, rows: &[Value], scores: &[&[f32]], k: usize, exclude_consumed: bool) -> Vec<Vec<Pick>> {
        let mut out = Vec::with_capacity(rows.len());
        for (row, row_scores) in rows.iter().zip(scores) {
            let vocab = row_scores.len();
            let mut banned = vec![false; vocab];
            if exclude_consumed {
                for (name, hashed) in &self.consumed {
                    for v in row.get(name).and_then(Value::as_array).into_iter().flatten() {
                        // A hashed sequence holds raw keys: ban their buckets, as the loader reads them.
                        let id = match hashed {
                            Some(buckets) => crate::data::hashed_value(v, *buckets, name).ok().map(|b| b as u64),
                            None => v.as_u64(),
                        };
                        if let Some(b) = id.and_then(|id| banned.get_mut(id as usize)) {
                            *b = true;
                        }
                    }
                }
            }
            let mut ids: Vec<usize> = (0..vocab).filter(|i| !banned[*i]).collect();
            let by_score = |a: &usize, b: &usize| row_scores[*b].total_cmp(&row_scores[*a]).then(a.cmp(b));
            let k = k.min(ids.len());
            if k > 0 && k < ids.len() {
                ids.select_nth_unstable_by(k - 1, by_score);
            }
            ids.truncate(k);
            ids.sort_by(by_score);
            out.push(ids.into_iter().map(|i| Pick { item: i as i64, score: row_scores[i] }).collect());
        }
        out
    }
}
