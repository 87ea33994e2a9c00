//! What a program costs in memory, known before any tensor is allocated.
//!
//! Everything is counted from the [`Program`]'s slots at a given batch size, in bytes, with
//! `u128` arithmetic so that an absurd spec (`dim D = 1000000000000`) yields an absurd number
//! instead of an overflow. Parameters, their gradients and the optimizer's state are exact (f32
//! per element); activations are an estimate: the sum of every value slot at the batch size,
//! counted twice in training (the autodiff graph keeps each forward value for the backward pass,
//! and the backward pass makes a gradient of the same size), once in inference. The large
//! temporaries inside a kernel that autodiff keeps too (an attention's score matrices, a GRU's
//! gates at every step, an MLP's hidden layers, a distribution loss's [B, V] intermediates) are
//! added to the kernel's value the same way ([`scratch`]); smaller ones, the allocator's slack
//! and the process itself are not, so the figure is a floor more than a bound (the speed
//! benchmark prints it beside the measured peak).

use super::kernel::{Kernel, ParamUse};
use super::{ParamRole, Program, Step};
use crate::lower::kernel::{
    AttentionKernel, GeometryKernel, LayerKernel, LayoutKernel, LossKernel, MemoryKernel, PoolingKernel,
};
use crate::types::DType;
use std::fmt;

/// Bytes of one element of a value slot, as the back ends store it.
fn element_bytes(dtype: DType) -> u128 {
    match dtype {
        DType::Float => 4,
        DType::Id => 8,
        DType::Mask => 1,
    }
}

/// Bytes of one parameter element (f32).
const PARAM_BYTES: u128 = 4;

/// What a [`Component`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentKind {
    /// An instance's parameters, with their gradients and optimizer state.
    Parameters,
    /// A value slot and the temporaries its kernel keeps, forward and backward.
    Activations,
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComponentKind::Parameters => "parameters",
            ComponentKind::Activations => "activations",
        })
    }
}

/// One named contributor to the total, for "the largest components" in reports and errors.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// An instance (`items`) or a value slot (`f_c/attended`).
    pub name: String,
    pub kind: ComponentKind,
    /// Bytes it costs in training (parameters with their gradients and optimizer state).
    pub bytes: u128,
}

/// The memory a program needs at one batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryEstimate {
    pub batch: usize,
    /// Trained parameters (f32).
    pub params: u128,
    /// Persistent state written by the forward pass (memory slots).
    pub state: u128,
    /// One gradient per trained parameter; for a row-sparse table, the rows a batch looks up.
    pub gradients: u128,
    /// The optimizer's state ([`OptimizerSlots`]).
    pub optimizer: u128,
    /// One batch of inputs.
    pub inputs: u128,
    /// Every computed value of one batch, once.
    pub forward: u128,
    /// Instances and values, largest training cost first.
    pub components: Vec<Component>,
}

impl MemoryEstimate {
    /// Activations held while training one batch: inputs, forward values and their gradients.
    pub(crate) fn training_activations(&self) -> u128 {
        self.inputs.saturating_add(self.forward.saturating_mul(2))
    }

    /// Everything a training step holds at once.
    pub(crate) fn training_total(&self) -> u128 {
        [self.state, self.gradients, self.optimizer, self.training_activations()]
            .into_iter()
            .fold(self.params, u128::saturating_add)
    }

    /// Everything an inference batch holds at once.
    pub(crate) fn inference_total(&self) -> u128 {
        [self.state, self.inputs, self.forward].into_iter().fold(self.params, u128::saturating_add)
    }

    /// Training activations per example at this batch size.
    pub(crate) fn training_per_example(&self) -> u128 {
        self.training_activations() / self.batch.max(1) as u128
    }

    /// The `n` largest components.
    pub fn largest(&self, n: usize) -> &[Component] {
        &self.components[..n.min(self.components.len())]
    }
}

/// The f32 tensors an optimizer keeps: per element of a dense parameter, and, when embedding
/// tables (`Program::row_tables`) are trained row-sparse, what a table keeps instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OptimizerSlots {
    pub dense: usize,
    pub tables: Option<TableSlots>,
}

/// A row-sparse table's optimizer state: tensors of the table's size and vectors of one value
/// per row (row-wise Adagrad's accumulator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableSlots {
    pub per_element: usize,
    pub per_row: usize,
}

impl OptimizerSlots {
    /// `slots` tensors per parameter, tables included.
    #[cfg(test)]
    pub fn dense(slots: usize) -> OptimizerSlots {
        OptimizerSlots { dense: slots, tables: None }
    }
}

/// The memory `program` needs at `batch` examples with `optimizer`'s state. A row-sparse
/// table's gradient is the rows one batch can look up (its ids, at most the table), not the
/// table.
pub(crate) fn estimate(program: &Program, batch: usize, optimizer: OptimizerSlots) -> MemoryEstimate {
    let mut components: Vec<Component> = Vec::new();
    let (mut params, mut state, mut gradients, mut optimizer_bytes) = (0u128, 0u128, 0u128, 0u128);
    let row_tables = if optimizer.tables.is_some() { program.row_tables() } else { vec![false; program.params.len()] };
    let looked_up = rows_per_batch(program, batch);
    for (i, slot) in program.params.iter().enumerate() {
        let elements = numel(slot.shape.iter().copied());
        let bytes = elements.saturating_mul(PARAM_BYTES);
        let training = match (slot.role, optimizer.tables.filter(|_| row_tables[i])) {
            (ParamRole::Trained, None) => {
                let slots = elements.saturating_mul(optimizer.dense as u128);
                gradients = gradients.saturating_add(bytes);
                optimizer_bytes = optimizer_bytes.saturating_add(slots.saturating_mul(PARAM_BYTES));
                bytes.saturating_mul(2).saturating_add(slots.saturating_mul(PARAM_BYTES))
            }
            (ParamRole::Trained, Some(t)) => {
                let width = *slot.shape.last().unwrap_or(&1) as u128;
                let rows = elements / width.max(1);
                let grad = looked_up[i].min(rows).saturating_mul(width).saturating_mul(PARAM_BYTES);
                let kept = elements
                    .saturating_mul(t.per_element as u128)
                    .saturating_add(rows.saturating_mul(t.per_row as u128))
                    .saturating_mul(PARAM_BYTES);
                gradients = gradients.saturating_add(grad);
                optimizer_bytes = optimizer_bytes.saturating_add(kept);
                bytes.saturating_add(grad).saturating_add(kept)
            }
            (ParamRole::State, _) => bytes,
        };
        match slot.role {
            ParamRole::Trained => params = params.saturating_add(bytes),
            ParamRole::State => state = state.saturating_add(bytes),
        }
        match components.iter_mut().find(|c| c.kind == ComponentKind::Parameters && c.name == slot.instance) {
            Some(c) => c.bytes = c.bytes.saturating_add(training),
            None => components.push(Component {
                name: slot.instance.clone(),
                kind: ComponentKind::Parameters,
                bytes: training,
            }),
        }
    }
    let (mut inputs, mut forward) = (0u128, 0u128);
    for (i, value) in program.values.iter().enumerate() {
        let bytes = numel(value.shape.iter().map(|e| e.at(batch))).saturating_mul(element_bytes(value.dtype));
        if i < program.input_count {
            inputs = inputs.saturating_add(bytes);
        } else {
            let step = &program.steps[i - program.input_count];
            let bytes = bytes.saturating_add(scratch(program, step, batch).saturating_mul(4));
            forward = forward.saturating_add(bytes);
            components.push(Component {
                name: value.name.clone(),
                kind: ComponentKind::Activations,
                bytes: bytes.saturating_mul(2),
            });
        }
    }
    components.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    MemoryEstimate { batch, params, state, gradients, optimizer: optimizer_bytes, inputs, forward, components }
}

/// For each parameter slot, how many rows one batch looks up in it (ids and sampled rows of
/// every [`ParamUse::Rows`] use; 0 for parameters read whole).
fn rows_per_batch(program: &Program, batch: usize) -> Vec<u128> {
    let mut rows = vec![0u128; program.params.len()];
    for step in &program.steps {
        for (p, used) in step.kernel.params() {
            if let ParamUse::Rows { ids, extra } = used {
                let n = numel(program.value(ids).shape.iter().map(|e| e.at(batch)));
                rows[p.0] = rows[p.0].saturating_add(n).saturating_add(extra as u128);
            }
        }
    }
    rows
}

/// The f32 elements of the large temporaries a step's kernel keeps for the backward pass,
/// besides its output slot (the same algorithm in every back end). Every kernel is listed, so a
/// new one does not compile until its temporaries are written down.
pub fn scratch(program: &Program, step: &Step, batch: usize) -> u128 {
    let size = |id: super::ValueId| numel(program.value(id).shape.iter().map(|e| e.at(batch)));
    let dims = |id: super::ValueId| super::shape_at(&program.value(id).shape, batch);
    let width = |p: super::ParamId| *program.params[p.0].shape.last().unwrap_or(&0) as u128;
    match &step.kernel {
        Kernel::SelfAttention(AttentionKernel { x, heads, .. }) => {
            let d = dims(*x);
            let (rows, n) = (numel(d.iter().rev().skip(1).copied()), d[d.len().saturating_sub(2)] as u128);
            // q, k, v and the attended values; per head, the attention weights (all that the
            // fused masked softmax keeps for its backward pass) and one score-sized temporary
            // (the scores before the softmax, the weights' gradient after it).
            product(&[4, size(*x)]).saturating_add(product(&[2, rows, n, *heads as u128]))
        }
        Kernel::Gru { x, hidden, .. } => {
            let d = dims(*x);
            let steps_rows = numel(d.iter().rev().skip(1).copied());
            // Per step: the input and hidden projections (3H each), kept for the fused gates'
            // backward pass, and the new state.
            product(&[steps_rows, 7, width(hidden.weight) / 3])
        }
        Kernel::Layer(LayerKernel::Mlp { x, layers, .. }) => {
            let rows = size(*x) / dims(*x).last().copied().unwrap_or(1).max(1) as u128;
            // Every layer's pre-activation and activation but the last (the output slot).
            let hidden =
                layers[..layers.len().saturating_sub(1)].iter().map(|l| width(l.weight)).fold(0, u128::saturating_add);
            product(&[2, rows, hidden])
        }
        Kernel::Mmoe { x, experts, tasks, layers, .. } => {
            let rows = size(*x) / dims(*x).last().copied().unwrap_or(1).max(1) as u128;
            let widths = layers.iter().map(|l| width(l.weight)).fold(0, u128::saturating_add);
            let per_row =
                product(&[*experts as u128, widths]).saturating_add(product(&[*tasks as u128, *experts as u128]));
            product(&[2, rows, per_row])
        }
        Kernel::Loss(LossKernel::Distribution { p, .. }) => size(*p).saturating_mul(2),
        Kernel::Pooling(PoolingKernel::AttentionPool { scores, .. }) => size(*scores).saturating_mul(3),
        // Nothing larger than the kernel's own output or operands.
        Kernel::Layout(LayoutKernel::Binary { .. })
        | Kernel::Layout(LayoutKernel::Scalar { .. })
        | Kernel::Layout(LayoutKernel::Neg { .. })
        | Kernel::Layout(LayoutKernel::Concat { .. })
        | Kernel::Layout(LayoutKernel::Stack { .. })
        | Kernel::Layout(LayoutKernel::Slice { .. })
        | Kernel::Layout(LayoutKernel::Index { .. })
        | Kernel::Layout(LayoutKernel::Repeat { .. })
        | Kernel::Layout(LayoutKernel::Reshape { .. })
        | Kernel::Layout(LayoutKernel::FullMask { .. })
        | Kernel::Layout(LayoutKernel::ToFloat { .. })
        | Kernel::Layout(LayoutKernel::Keep { .. })
        | Kernel::Layout(LayoutKernel::Nonempty { .. })
        | Kernel::SampleValid { .. }
        | Kernel::Pooling(PoolingKernel::Activation { .. })
        | Kernel::Pooling(PoolingKernel::Softmax { .. })
        | Kernel::Pooling(PoolingKernel::MaskedSoftmax { .. })
        | Kernel::Pooling(PoolingKernel::Dropout { .. })
        | Kernel::Pooling(PoolingKernel::Pool { .. })
        | Kernel::Pooling(PoolingKernel::Reduce { .. })
        | Kernel::Geometry(GeometryKernel::Dot { .. })
        | Kernel::Geometry(GeometryKernel::Cosine { .. })
        | Kernel::Geometry(GeometryKernel::Project { .. })
        | Kernel::Geometry(GeometryKernel::Fm { .. })
        | Kernel::Geometry(GeometryKernel::ItemLogits { .. })
        | Kernel::SampledLogits { .. }
        | Kernel::Layer(LayerKernel::Embedding { .. })
        | Kernel::Layer(LayerKernel::PositionEmbedding { .. })
        | Kernel::Layer(LayerKernel::Linear { .. })
        | Kernel::Layer(LayerKernel::LayerNorm { .. })
        | Kernel::Layer(LayerKernel::Wide { .. })
        | Kernel::Memory(MemoryKernel { .. })
        | Kernel::Loss(LossKernel::ProbabilityLoss { .. })
        | Kernel::Loss(LossKernel::BceLogits { .. })
        | Kernel::Loss(LossKernel::Triplet { .. }) => 0,
    }
}

/// The elements of a shape, saturating at `u128::MAX`.
pub(super) fn numel(dims: impl Iterator<Item = usize>) -> u128 {
    dims.fold(1u128, |acc, d| acc.saturating_mul(d as u128))
}

/// The product of `factors`, saturating at `u128::MAX`.
pub(super) fn product(factors: &[u128]) -> u128 {
    factors.iter().fold(1u128, |acc, f| acc.saturating_mul(*f))
}

/// A byte count for people: `512 B`, `4.7 MiB`, `1.6 EiB`; beyond that, in bytes with an
/// exponent; a count that saturated (`u128::MAX`: the true size did not fit in 128 bits) as
/// `more than 3.4e38 bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u128);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let n = self.0;
        if n == u128::MAX {
            return write!(f, "more than {:.1e} bytes", n as f64);
        }
        if n < 1024 {
            return write!(f, "{n} B");
        }
        let mut value = n as f64;
        for unit in &UNITS[1..] {
            value /= 1024.0;
            if value < 1024.0 {
                return write!(f, "{value:.1} {unit}");
            }
        }
        write!(f, "{:.1e} bytes", n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_display() {
        assert_eq!(Bytes(0).to_string(), "0 B");
        assert_eq!(Bytes(1023).to_string(), "1023 B");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(5 * 1024 * 1024 * 1024).to_string(), "5.0 GiB");
        assert_eq!(Bytes(3 << 60).to_string(), "3.0 EiB");
        assert_eq!(Bytes(1u128 << 80).to_string(), "1.2e24 bytes");
        assert_eq!(Bytes(u128::MAX).to_string(), "more than 3.4e38 bytes");
    }
}
