//! Row-sparse training of embedding tables: the optimizer updates only the rows a step looked
//! up, so a step costs what the batch touches, not what the table holds.
//!
//! In a training pass, every lookup of a row table (`Program::row_tables`) reads its rows from
//! the table *without* autodiff and makes them a fresh leaf ([`RowLookup`]); the loss's backward
//! then yields the gradient of those rows only, never a table-sized one. [`RowOptimizer::step`]
//! sums the gradients of each table's lookups per row and updates those rows of the table and of
//! its optimizer state in place (burn-flex's `select_assign` writes into a tensor it holds
//! alone). The rules, exactly (docs/scale.md; `recspec_torch.rows` is the PyTorch twin):
//!
//! * lazy Adam: Adam's moments and update at the looked-up rows U, with a step count per table
//!   (the steps that updated it); the other rows and their moments stay as they are.
//! * lazy Adagrad: Adagrad's sum and update at U, which equals dense Adagrad.
//! * row-wise Adagrad (fbgemm's `EXACT_ROWWISE_ADAGRAD`): one accumulator per row, plus the mean
//!   of the row's squared gradient; the row moves by `lr · g / (sqrt(acc) + 1e-8)`.

use super::weights::Weights;
use super::RuntimeError;
use crate::config::{EmbeddingOptimizer, OptimizerKind, TrainSettings};
use crate::lower::{ParamId, Program};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Gradients;
use burn::tensor::IndexingUpdateOp;

/// Adam's betas and the epsilon of Adam and Adagrad: burn's defaults, which the dense optimizer
/// uses too (`train::optimizer`).
pub const BETA_1: f32 = 0.9;
pub const BETA_2: f32 = 0.999;
pub const EPSILON: f32 = 1e-5;
/// The epsilon of row-wise Adagrad: fbgemm's default for `EXACT_ROWWISE_ADAGRAD`.
pub const ROWWISE_EPSILON: f32 = 1e-8;

/// One lookup of a row table in a training pass: the ids it read and the leaf holding those
/// rows, whose gradient the backward pass fills.
#[derive(Clone, Debug)]
pub struct RowLookup {
    pub param: ParamId,
    pub ids: Tensor<1, Int>,
    pub rows: Tensor<2>,
}

/// How table rows are updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowRule {
    LazyAdam,
    LazyAdagrad,
    RowwiseAdagrad,
}

impl RowRule {
    /// The rule for the settings, or `None` when tables are trained densely.
    pub fn of(s: &TrainSettings) -> Option<RowRule> {
        match (s.embedding_optimizer, s.optimizer) {
            (EmbeddingOptimizer::Dense, _) => None,
            (EmbeddingOptimizer::Lazy, OptimizerKind::Adam) => Some(RowRule::LazyAdam),
            (EmbeddingOptimizer::Lazy, OptimizerKind::Adagrad) => Some(RowRule::LazyAdagrad),
            (EmbeddingOptimizer::RowwiseAdagrad, _) => Some(RowRule::RowwiseAdagrad),
        }
    }

    /// The rule's name in checkpoints and messages.
    pub fn name(self) -> &'static str {
        match self {
            RowRule::LazyAdam => "lazy Adam",
            RowRule::LazyAdagrad => "lazy Adagrad",
            RowRule::RowwiseAdagrad => "row-wise Adagrad",
        }
    }

    /// The names of the state tensors a table keeps under this rule.
    pub fn state_names(self) -> &'static [&'static str] {
        match self {
            RowRule::LazyAdam => &["m", "v"],
            RowRule::LazyAdagrad => &["sum"],
            RowRule::RowwiseAdagrad => &["acc"],
        }
    }

    /// The shape of each state tensor (in [`state_names`](Self::state_names) order) of a table
    /// of `vocab` rows of width `dim`: a value per element, or row-wise Adagrad's one per row.
    fn state_shape(self, vocab: usize, dim: usize) -> [usize; 2] {
        match self {
            RowRule::LazyAdam | RowRule::LazyAdagrad => [vocab, dim],
            RowRule::RowwiseAdagrad => [vocab, 1],
        }
    }
}

/// The optimizer state of one table: the steps that updated it and its state tensors (in
/// [`RowRule::state_names`] order), on the inner (non-autodiff) device.
#[derive(Clone, Debug)]
pub struct TableState {
    pub steps: u64,
    pub tensors: Vec<Tensor<2>>,
}

/// Updates the row tables of a program.
#[derive(Clone, Debug)]
pub struct RowOptimizer {
    pub rule: RowRule,
    /// Indexed by parameter slot: `Some` for a table updated at least once.
    pub tables: Vec<Option<TableState>>,
}

impl RowOptimizer {
    pub fn new(rule: RowRule, program: &Program) -> RowOptimizer {
        RowOptimizer { rule, tables: vec![None; program.params.len()] }
    }

    /// Applies one step: `lookups` are the pass's row lookups, `grads` its backward's gradients
    /// (each lookup's gradient is removed from them). A table whose lookups got no gradient is
    /// left as it is.
    pub fn step(
        &mut self,
        program: &Program,
        weights: &mut Weights,
        lookups: Vec<RowLookup>,
        grads: &mut Gradients,
        lr: f64,
    ) {
        let mut by_table: Vec<(ParamId, Vec<Tensor<1, Int>>, Vec<Tensor<2>>)> = vec![];
        for l in lookups {
            let Some(grad) = l.rows.grad_remove(grads) else { continue };
            match by_table.iter_mut().find(|(p, _, _)| *p == l.param) {
                Some((_, ids, gs)) => {
                    ids.push(l.ids);
                    gs.push(grad);
                }
                None => by_table.push((l.param, vec![l.ids], vec![grad])),
            }
        }
        for (param, ids, grads) in by_table {
            let (rows, grad) = coalesce(ids, grads);
            self.update(program, weights, param, rows, grad, lr as f32);
        }
    }

    fn update(
        &mut self,
        program: &Program,
        weights: &mut Weights,
        param: ParamId,
        rows: Tensor<1, Int>,
        g: Tensor<2>,
        lr: f32,
    ) {
        let shape = &program.params[param.0].shape;
        let dim = *shape.last().unwrap_or(&1);
        let vocab = program.params[param.0].numel() / dim.max(1);
        let device = g.device();
        let rule = self.rule;
        let state = self.tables[param.0].get_or_insert_with(|| TableState {
            steps: 0,
            tensors: rule.state_names().iter().map(|_| Tensor::zeros(rule.state_shape(vocab, dim), &device)).collect(),
        });
        state.steps += 1;
        let t = state.steps.min(i32::MAX as u64) as i32;
        let (id, table) = take_param(weights, param);
        let table: Tensor<2> = table.inner().reshape([vocab, dim]);
        let w = table.clone().select(0, rows.clone());
        let take = |x: &mut Tensor<2>| x.clone().select(0, rows.clone());
        let put = |x: &mut Tensor<2>, v: Tensor<2>| {
            let old = std::mem::replace(x, Tensor::empty([0, 0], &device));
            *x = old.select_assign(0, rows.clone(), v, IndexingUpdateOp::Assign);
        };
        let step = match rule {
            RowRule::LazyAdam => {
                let (m, v) = (take(&mut state.tensors[0]), take(&mut state.tensors[1]));
                // burn's Adam, term for term (burn_optim::AdaptiveMomentum), at the rows U.
                let m = m.mul_scalar(BETA_1).add(g.clone().mul_scalar(1.0 - BETA_1));
                let v = v.mul_scalar(BETA_2).add(g.square().mul_scalar(1.0 - BETA_2));
                let c2 = (1.0 - BETA_2.powi(t)).sqrt();
                let f = c2 / (1.0 - BETA_1.powi(t));
                let step = m.clone().mul_scalar(f).div(v.clone().sqrt().add_scalar(EPSILON * c2));
                put(&mut state.tensors[0], m);
                put(&mut state.tensors[1], v);
                step
            }
            RowRule::LazyAdagrad => {
                let sum = take(&mut state.tensors[0]).add(g.clone().square());
                let step = g.div(sum.clone().sqrt().add_scalar(EPSILON));
                put(&mut state.tensors[0], sum);
                step
            }
            RowRule::RowwiseAdagrad => {
                let acc = take(&mut state.tensors[0]).add(g.clone().square().mean_dim(1));
                let step = g.div(acc.clone().sqrt().add_scalar(ROWWISE_EPSILON));
                put(&mut state.tensors[0], acc);
                step
            }
        };
        let w = w - step.mul_scalar(lr);
        let table = table.select_assign(0, rows, w, IndexingUpdateOp::Assign);
        weights.tensors[param.0] = Param::initialized(id, Tensor::from_inner(table.reshape([vocab * dim])));
    }

    /// The state as safetensors bytes: `KEY/NAME` tensors ([`RowRule::state_names`]) and the
    /// step counts in the metadata (`KEY` → steps).
    pub fn to_safetensors(&self, program: &Program) -> Result<Vec<u8>, RuntimeError> {
        // The tensors' own little-endian f32 bytes, viewed in place: one copy of the state
        // (read back from the device) and the file's bytes, nothing more.
        let mut tensors = vec![];
        let mut steps = std::collections::HashMap::new();
        for (slot, state) in program.params.iter().zip(&self.tables) {
            let Some(state) = state else { continue };
            steps.insert(slot.key(), state.steps.to_string());
            for (name, t) in self.rule.state_names().iter().zip(&state.tensors) {
                let data = t.clone().into_data().convert::<f32>();
                tensors.push((format!("{}/{name}", slot.key()), t.dims().to_vec(), data));
            }
        }
        steps.insert("rule".into(), self.rule.name().to_string());
        let views = tensors
            .iter()
            .map(|(key, shape, data)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data.as_bytes())
                    .map(|v| (key.clone(), v))
                    .map_err(|e| RuntimeError::Checkpoint(format!("{key}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize(views, Some(steps))
            .map_err(|e| RuntimeError::Checkpoint(format!("cannot write the embedding optimizer state: {e}")))
    }

    /// The state written by [`to_safetensors`](Self::to_safetensors), for `program` under this
    /// optimizer's rule; tensors land on `device` (an inner device).
    pub(crate) fn load_safetensors(
        &mut self,
        program: &Program,
        bytes: &[u8],
        device: &Device,
    ) -> Result<(), RuntimeError> {
        let bad = |m: String| RuntimeError::Checkpoint(format!("embedding optimizer state: {m}"));
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let file =
            safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let rule = self.rule.name();
        if meta.get("rule").is_some_and(|r| r != rule) {
            return Err(bad(format!(
                "written by the {} rule, this run uses {rule}; train with the run's embedding_optimizer",
                meta["rule"]
            )));
        }
        for (i, slot) in program.params.iter().enumerate() {
            let key = slot.key();
            let Some(steps) = meta.get(&key) else { continue };
            let steps = steps.parse::<u64>().map_err(|_| bad(format!("`{key}` has step count `{steps}`")))?;
            let dim = *slot.shape.last().unwrap_or(&1);
            let vocab = slot.numel() / dim.max(1);
            let mut tensors = vec![];
            for name in self.rule.state_names() {
                let want = self.rule.state_shape(vocab, dim);
                let view =
                    file.tensor(&format!("{key}/{name}")).map_err(|_| bad(format!("`{key}/{name}` is missing")))?;
                if view.dtype() != safetensors::Dtype::F32 || view.shape() != want {
                    let list = |s: &[usize]| s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
                    return Err(bad(format!(
                        "`{key}/{name}` is {} [{}]; expected F32 [{}]",
                        view.dtype(),
                        list(view.shape()),
                        list(&want)
                    )));
                }
                let values: Vec<f32> =
                    view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                tensors.push(Tensor::<2>::from_data(TensorData::new(values, want), device));
            }
            self.tables[i] = Some(TableState { steps, tensors });
        }
        Ok(())
    }
}

/// Moves a parameter's tensor out of `weights` (so that its storage is held once and can be
/// written in place), leaving an empty placeholder until it is put back.
fn take_param(weights: &mut Weights, p: ParamId) -> (burn::module::ParamId, Tensor<1>) {
    let device = weights.tensors[p.0].val().device();
    let placeholder = Param::initialized(burn::module::ParamId::new(), Tensor::<1>::empty([0], &device));
    let (id, tensor, _) = std::mem::replace(&mut weights.tensors[p.0], placeholder).consume();
    (id, tensor)
}

/// The distinct rows of a table's lookups in ascending order, and the sum of their gradients
/// per row: ids [N_i] and gradients [N_i, D] → rows [U], gradient [U, D].
fn coalesce(ids: Vec<Tensor<1, Int>>, grads: Vec<Tensor<2>>) -> (Tensor<1, Int>, Tensor<2>) {
    let device = grads[0].device();
    let ids: Vec<i64> = ids
        .into_iter()
        .flat_map(|t| t.into_data().convert::<i64>().try_into_vec::<i64>().unwrap_or_default())
        .collect();
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_unstable_by_key(|&i| ids[i as usize]);
    let mut rows: Vec<i64> = Vec::with_capacity(ids.len());
    let mut slot = vec![0i64; ids.len()];
    for &i in &order {
        let id = ids[i as usize];
        if rows.last() != Some(&id) {
            rows.push(id);
        }
        slot[i as usize] = rows.len() as i64 - 1;
    }
    let mut grads = grads;
    let grad = if grads.len() == 1 { grads.swap_remove(0) } else { Tensor::cat(grads, 0) };
    let dim = grad.dims()[1];
    let n = slot.len();
    let u = rows.len();
    let slot = Tensor::<1, Int>::from_data(TensorData::new(slot, [n]), &device);
    let summed = Tensor::<2>::zeros([u, dim], &device).select_assign(0, slot, grad, IndexingUpdateOp::Add);
    (Tensor::<1, Int>::from_data(TensorData::new(rows, [u]), &device), summed)
}
