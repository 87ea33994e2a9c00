//! The forward pass: interprets a [`Program`]'s steps in order with burn tensor operations.
//!
//! Every [`Kernel`] has one implementation here (`kernels.rs` for single-step ops,
//! `components.rs` for the multi-step components). Kernels receive value and parameter slots,
//! never names. Padding never leaks: masked positions are excluded from attention keys,
//! pooling, softmax and losses. The program was shape-checked, so kernels only read shapes.

use super::rows::RowLookup;
use super::tensor::{FloatTensor, IdTensor, MaskTensor, Value};
use super::weights::{SplitMix, Weights};
use crate::data::{Column, ColumnData, HostBatch};
use crate::lower::{shape_at, Kernel, LabelId, ParamId, Program, ValueId};
use burn::prelude::*;
use burn::tensor::Distribution;

mod components;
mod kernels;

/// Clamp for logarithms and divisions.
const EPS: f64 = 1e-7;
/// The additive bias that removes a position from a softmax.
const NEG_INF: f64 = crate::runtime::fused::NEG_INF as f64;

/// One batch on the device, keyed by the program's slots like the [`HostBatch`] it came from.
#[derive(Clone, Debug)]
pub struct DeviceBatch {
    pub len: usize,
    /// One value per program input, indexed by input slot; `None` for one the batch lacks.
    pub inputs: Vec<Option<Value>>,
    /// One per label stream, indexed like the host batch's (by `LabelId` for the program's).
    pub labels: Vec<Tensor<1>>,
    /// Host copies of id inputs by input slot, for sampling that must avoid the true target.
    pub host_ids: Vec<Option<Vec<i64>>>,
    pub users: Vec<u64>,
}

impl DeviceBatch {
    /// Moves a host batch to the device.
    pub fn from_host(b: &HostBatch, device: &Device) -> DeviceBatch {
        let inputs = b.inputs.iter().map(|c| c.as_ref().map(|c| Value::from_column(c, device))).collect();
        let host_ids = b
            .inputs
            .iter()
            .map(|c| match c {
                Some(Column { data: ColumnData::Ids(ids), .. }) => Some(ids.clone()),
                _ => None,
            })
            .collect();
        let labels =
            b.labels.iter().map(|v| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), device)).collect();
        DeviceBatch { len: b.len, inputs, labels, host_ids, users: b.users.clone() }
    }

    fn device(&self) -> Device {
        match self.inputs.iter().flatten().next() {
            Some(Value::Float(x)) => x.flat.device(),
            Some(Value::Ids(x)) => x.flat.device(),
            Some(Value::Mask(x)) => x.flat.device(),
            None => self.labels.first().map(|t| t.device()).unwrap_or_default(),
        }
    }
}

/// Whether a pass trains (dropout on, memory state written, sampling random) or evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// What a forward pass produces.
pub struct Forward {
    /// Every value slot the pass computed (inputs too), indexed by `ValueId`.
    pub values: Vec<Option<Value>>,
    /// Each loss term's mean over the batch, unweighted, indexed like `Program::losses` (which
    /// holds the term's name and weight).
    pub losses: Vec<Tensor<1>>,
    /// The weighted sum of the loss terms, shape [1].
    pub total: Tensor<1>,
    /// New values of persistent state parameters.
    pub state: Vec<(ParamId, Tensor<1>)>,
    /// The row-table lookups of a pass with row-sparse tables ([`forward_rows`]), in order.
    pub lookups: Vec<RowLookup>,
}

impl Forward {
    /// The value of a slot the pass computed.
    pub fn value(&self, id: ValueId) -> Option<&Value> {
        self.values.get(id.0).and_then(Option::as_ref)
    }

    /// The value of an input or node by name, if the pass computed it.
    pub fn named(&self, program: &Program, name: &str) -> Option<&Value> {
        program.find(name).and_then(|id| self.value(id))
    }
}

/// Runs the whole program on one batch; `step` seeds sampling.
pub fn forward(program: &Program, weights: &Weights, batch: &DeviceBatch, mode: Mode, step: u64) -> Forward {
    crate::runtime::cpu::on_pool(|| forward_here(program, weights, batch, mode, step, &[]))
}

/// A training pass in which the parameters flagged in `row_tables` (indexed by slot, see
/// `Program::row_tables`) are read without autodiff: each lookup's rows become a leaf, listed in
/// [`Forward::lookups`], so the backward pass yields gradients of looked-up rows only.
pub(crate) fn forward_rows(
    program: &Program,
    weights: &Weights,
    batch: &DeviceBatch,
    step: u64,
    row_tables: &[bool],
) -> Forward {
    crate::runtime::cpu::on_pool(|| forward_here(program, weights, batch, Mode::Train, step, row_tables))
}

fn forward_here(
    program: &Program,
    weights: &Weights,
    batch: &DeviceBatch,
    mode: Mode,
    step: u64,
    row_tables: &[bool],
) -> Forward {
    let mut run = Interpreter::new(program, weights, batch, mode, step);
    run.row_tables = row_tables;
    for s in &program.steps {
        let v = run.step(&s.kernel, s.out);
        run.values[s.out.0] = Some(v);
    }
    let mut total = Tensor::<1>::zeros([1], &batch.device());
    let mut losses = vec![];
    for l in &program.losses {
        let mean = run.float(l.value).flat.mean();
        total = total + mean.clone().mul_scalar(l.weight);
        losses.push(mean);
    }
    Forward { values: run.values, losses, total, state: run.state, lookups: run.lookups }
}

/// Evaluates (eval mode) only the steps `targets` depend on, so that serving needs only their
/// inputs.
pub(crate) fn forward_to(program: &Program, weights: &Weights, batch: &DeviceBatch, targets: &[ValueId]) -> Forward {
    let needed = program.needed_steps(targets);
    let mut run = Interpreter::new(program, weights, batch, Mode::Eval, 0);
    for (s, _) in program.steps.iter().zip(&needed).filter(|(_, n)| **n) {
        let v = run.step(&s.kernel, s.out);
        run.values[s.out.0] = Some(v);
    }
    let total = Tensor::<1>::zeros([1], &batch.device());
    Forward { values: run.values, losses: vec![], total, state: run.state, lookups: vec![] }
}

/// The state of one pass: the value slots computed so far and the state writes.
struct Interpreter<'a> {
    program: &'a Program,
    weights: &'a Weights,
    batch: &'a DeviceBatch,
    values: Vec<Option<Value>>,
    mode: Mode,
    /// New values of state parameters, the newest last.
    state: Vec<(ParamId, Tensor<1>)>,
    rng: SplitMix,
    /// Parameters read as row leaves ([`forward_rows`]), indexed by slot; empty for none.
    row_tables: &'a [bool],
    lookups: Vec<RowLookup>,
}

impl<'a> Interpreter<'a> {
    fn new(program: &'a Program, weights: &'a Weights, batch: &'a DeviceBatch, mode: Mode, step: u64) -> Self {
        // The forward, its backward and the optimizer step run on this thread and rayon's pool.
        crate::runtime::cpu::flush_subnormals();
        let mut values = vec![None; program.values.len()];
        for (slot, input) in values.iter_mut().zip(&batch.inputs).take(program.input_count) {
            *slot = input.clone();
        }
        let rng = SplitMix(step ^ 0xA5A5_5A5A_0F0F_F0F0);
        Interpreter { program, weights, batch, values, mode, state: vec![], rng, row_tables: &[], lookups: vec![] }
    }

    fn training(&self) -> bool {
        self.mode == Mode::Train
    }

    fn value(&self, id: ValueId) -> &Value {
        // Operands are inputs the batch holds or earlier steps (topological order).
        self.values[id.0].as_ref().unwrap_or_else(|| panic!("`{}` evaluated before use", self.program.value(id).name))
    }

    /// An operand as floats (masks and ids converted).
    fn float(&self, id: ValueId) -> FloatTensor {
        self.value(id).float()
    }

    fn ids(&self, id: ValueId) -> IdTensor {
        match self.value(id) {
            Value::Ids(i) => i.clone(),
            _ => unreachable!("the checker requires ids for `{}`", self.program.value(id).name),
        }
    }

    fn mask(&self, id: ValueId) -> MaskTensor {
        match self.value(id) {
            Value::Mask(m) => m.clone(),
            _ => unreachable!("the checker requires a mask for `{}`", self.program.value(id).name),
        }
    }

    /// The shape of a slot at this batch size.
    fn shape(&self, id: ValueId) -> Vec<usize> {
        shape_at(&self.program.value(id).shape, self.batch.len)
    }

    /// A parameter as stored (rank 1).
    fn param(&self, p: ParamId) -> Tensor<1> {
        self.weights.tensors[p.0].val()
    }

    /// A parameter as a matrix: every axis but the last merged.
    fn matrix(&self, p: ParamId) -> Tensor<2> {
        let s = &self.program.params[p.0].shape;
        let last = *s.last().unwrap_or(&1);
        self.param(p).reshape([s.iter().product::<usize>() / last.max(1), last])
    }

    /// Rows `ids` of the table `p` (every axis but the last merged) → [N, last]. For a row-sparse
    /// table the rows are read without autodiff and become a leaf recorded in `lookups`.
    fn rows(&mut self, p: ParamId, ids: Tensor<1, Int>) -> Tensor<2> {
        if !self.row_tables.get(p.0).copied().unwrap_or(false) {
            return self.matrix(p).select(0, ids);
        }
        let ids = ids.inner();
        let rows = self.matrix(p).inner().select(0, ids.clone()).autodiff().require_grad();
        self.lookups.push(RowLookup { param: p, ids, rows: rows.clone() });
        rows
    }

    /// A rank-3 parameter.
    fn cube(&self, p: ParamId) -> Tensor<3> {
        let s = &self.program.params[p.0].shape;
        self.param(p).reshape([s[0], s[1], s[2]])
    }

    fn label(&self, l: LabelId) -> Tensor<1> {
        self.batch
            .labels
            .get(l.0)
            .cloned()
            .unwrap_or_else(|| panic!("label stream `{}` missing from the batch", self.program.labels[l.0]))
    }

    /// Inverted dropout in training; the identity in evaluation.
    fn dropout<const D: usize>(&self, x: Tensor<D>, rate: f64) -> Tensor<D> {
        if !self.training() || rate <= 0.0 {
            return x;
        }
        let keep = Tensor::<D>::random(x.shape(), Distribution::Bernoulli(1.0 - rate), &x.device());
        x.mul(keep).div_scalar(1.0 - rate)
    }

    /// Runs one kernel writing the slot `out`.
    fn step(&mut self, kernel: &Kernel, out: ValueId) -> Value {
        let out_shape = self.shape(out);
        match kernel {
            Kernel::SampledLogits { s, target, table, samples, logq } => {
                self.sampled_logits(*s, *target, *table, *samples, *logq, out_shape)
            }
            Kernel::SampleValid { x, mask } => self.sample_valid(*x, *mask, out_shape),
            Kernel::SelfAttention(a) => self.self_attention(a, out_shape),
            Kernel::Gru { x, mask, input, hidden, output } => self.gru(*x, *mask, *input, *hidden, *output, out_shape),
            Kernel::Mmoe { x, experts, tasks, layers, gates, act } => {
                self.mmoe(*x, *experts, *tasks, layers, *gates, *act, out_shape)
            }
            Kernel::Memory(m) => self.memory(m, out_shape),
            Kernel::Layout(k) => self.arithmetic_and_layout(k, out_shape),
            Kernel::Pooling(k) => self.activation_and_pooling(k, out_shape),
            Kernel::Geometry(k) => self.geometry(k, out_shape),
            Kernel::Layer(k) => self.layers(k, out_shape),
            Kernel::Loss(k) => self.losses(k, out_shape),
        }
    }
}
