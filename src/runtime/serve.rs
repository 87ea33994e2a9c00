//! Serving: top-K items for user histories from a trained retrieval model.
//!
//! The model scores the whole corpus through an output of shape [B, V] (`item_logits`); only the
//! nodes that output depends on run, so a history file needs only their inputs (no target item,
//! no labels).

use super::exec::{ancestors, forward_to, DeviceBatch};
use super::plan::{Plan, Weights};
use super::tensor::Val;
use crate::data::{batch_from_rows, FieldKind, Schema};
use crate::ir::InputRole;
use burn::prelude::*;
use serde_json::Value;

pub struct Recommender {
    plan: Plan,
    weights: Weights,
    device: Device,
    /// The node scoring every item, and its output name.
    scores: String,
    pub output: String,
    /// The inputs the scores depend on.
    schema: Schema,
    /// Sequence inputs over the scored corpus: their items count as consumed.
    consumed: Vec<String>,
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
    pub fn new(plan: Plan, weights: Weights, output: Option<&str>, device: Device) -> Result<Recommender, String> {
        let g = &plan.graph;
        let candidates: Vec<&crate::ir::Output> = g
            .outputs
            .iter()
            .filter(|o| g.node(&o.source).is_some_and(|n| n.ty.rank() == 2 && n.ty.shape[1].as_constant() != Some(1)))
            .collect();
        let names = || candidates.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ");
        let chosen = match output {
            Some(name) => candidates.iter().find(|o| o.name == name).ok_or_else(|| {
                format!("`{name}` is not an output scoring items ([B, N]); such outputs: {}", names())
            })?,
            None => match candidates.as_slice() {
                [one] => one,
                [] => {
                    return Err(format!(
                        "model `{}` has no output scoring items: add `output scores = item_logits(s, table: ...)`",
                        g.model
                    ))
                }
                _ => return Err(format!("several outputs score items ({}); choose one with --output", names())),
            },
        };
        let scores = chosen.source.clone();
        let output = chosen.name.clone();
        let needed = ancestors(&plan, &[scores.as_str()]);
        let mut schema = Schema::from_graph(g)?;
        schema.fields.retain(|f| needed.contains(f.name.as_str()));
        schema.labels.clear();
        schema.weights.clear();
        let vocab = g.node(&scores).map(|n| plan.dim(&n.ty.shape[1], 1) as i64);
        let consumed = schema
            .fields
            .iter()
            .filter(|f| {
                f.role == InputRole::Sequence && matches!(f.kind, FieldKind::Ids { vocab: v } if Some(v) == vocab)
            })
            .map(|f| f.name.clone())
            .collect();
        Ok(Recommender { plan, weights, device, scores, output, schema, consumed })
    }

    /// T of a sequence input the scores read.
    pub fn sequence_len(&self, name: &str) -> Option<usize> {
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
        let values = forward_to(&self.plan, &self.weights, &batch, &[self.scores.as_str()]);
        let Some(Val::F(x)) = values.get(&self.scores) else { unreachable!("scores are a float node") };
        let data = x.t.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let vocab = data.len() / rows.len().max(1);
        Ok((data, vocab))
    }

    /// The top `k` items of each row, best first; `exclude_consumed` leaves out the items of the
    /// row's own sequences. Ties break towards the smaller item id.
    pub fn top_k(&self, rows: &[Value], k: usize, exclude_consumed: bool) -> Result<Vec<Vec<Pick>>, (usize, String)> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let (scores, vocab) = self.scores(rows)?;
        let mut out = Vec::with_capacity(rows.len());
        for (r, row) in rows.iter().enumerate() {
            let mut banned = vec![false; vocab];
            if exclude_consumed {
                for name in &self.consumed {
                    for id in row.get(name).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_u64) {
                        if let Some(b) = banned.get_mut(id as usize) {
                            *b = true;
                        }
                    }
                }
            }
            let row_scores = &scores[r * vocab..(r + 1) * vocab];
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
        Ok(out)
    }
}
