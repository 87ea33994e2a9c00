//! What a program costs in arithmetic: floating-point operations per training step and per
//! inference pass, counted from the [`Program`]'s slots at a batch size, before anything runs.
//!
//! The count is analytic, in the convention of the roofline literature: a multiply-add is two
//! operations, every other element-wise operation (including `exp`, `tanh`, a comparison in a
//! max) one. Layout kernels (concat, slice, reshape, gathers) move data and count zero. The
//! backward pass of a kernel with products (a layer, an attention, a dot) is counted as twice
//! its forward pass (one product for the input's gradient, one for the weight's or the other
//! operand's), of an element-wise kernel as once. The match below has no catch-all: a new
//! kernel does not compile until its cost is written down.

use super::kernel::Kernel;
use super::memory::{numel, product};
use super::{shape_at, ParamId, Program, ValueId};
use crate::lower::kernel::{
    AttentionKernel, GeometryKernel, LayerKernel, LayoutKernel, LossKernel, MemoryKernel, PoolingKernel,
};

/// Floating-point operations of one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flops {
    pub batch: usize,
    /// One inference pass (the forward pass).
    pub forward: u128,
    /// One training step: the forward and the backward pass (the optimizer's update, a few
    /// operations per parameter, is not counted).
    pub training: u128,
}

impl Flops {
    /// Forward operations per example.
    pub(crate) fn forward_per_example(&self) -> u128 {
        self.forward / self.batch.max(1) as u128
    }

    /// Training operations per example.
    pub(crate) fn training_per_example(&self) -> u128 {
        self.training / self.batch.max(1) as u128
    }
}

/// How a kernel's backward pass relates to its forward pass.
#[derive(Clone, Copy)]
enum Backward {
    /// Twice the forward (products: the input's gradient and the weight's).
    Products,
    /// Once the forward (element-wise).
    Elementwise,
}

/// The operations of `program` at `batch` examples, and of each step (in step order).
pub fn count(program: &Program, batch: usize) -> (Flops, Vec<Flops>) {
    let mut total = Flops { batch, ..Flops::default() };
    let mut per_step = Vec::with_capacity(program.steps.len());
    for step in &program.steps {
        let (forward, backward) = kernel(program, &step.kernel, batch);
        let training = forward.saturating_add(match backward {
            Backward::Products => forward.saturating_mul(2),
            Backward::Elementwise => forward,
        });
        total.forward = total.forward.saturating_add(forward);
        total.training = total.training.saturating_add(training);
        per_step.push(Flops { batch, forward, training });
    }
    (total, per_step)
}

/// Forward operations of one kernel at `batch`, and how its backward pass compares.
fn kernel(program: &Program, k: &Kernel, batch: usize) -> (u128, Backward) {
    use Backward::{Elementwise, Products};
    let size = |id: &ValueId| numel(shape_at(&program.value(*id).shape, batch).into_iter());
    let dims = |id: &ValueId| shape_at(&program.value(*id).shape, batch);
    // The rows of a [.., D] value: every axis but the last.
    let rows = |id: &ValueId| {
        let d = dims(id);
        numel(d[..d.len().saturating_sub(1)].iter().copied())
    };
    let param = |p: &ParamId| program.params[p.0].shape.iter().map(|&d| d as u128).collect::<Vec<_>>();
    // A dense layer [in, out] applied to `r` rows: the product and the bias.
    let dense = |r: u128, p: &ParamId| {
        let s = param(p);
        let (fan_in, out) = (s.first().copied().unwrap_or(0), s.last().copied().unwrap_or(0));
        product(&[2, r, fan_in, out]).saturating_add(product(&[r, out]))
    };
    // Softmax over n elements: max, subtract, exp, sum, divide.
    let softmax = |n: u128| n.saturating_mul(5);
    match k {
        Kernel::Layout(LayoutKernel::Binary { a, .. }) => (size(a), Elementwise),
        Kernel::Layout(LayoutKernel::Scalar { x, .. })
        | Kernel::Layout(LayoutKernel::Neg { x })
        | Kernel::Layout(LayoutKernel::ToFloat { x })
        | Kernel::Pooling(PoolingKernel::Dropout { x, .. })
        | Kernel::Pooling(PoolingKernel::Activation { x, .. }) => (size(x), Elementwise),
        Kernel::Layout(LayoutKernel::Concat { .. })
        | Kernel::Layout(LayoutKernel::Stack { .. })
        | Kernel::Layout(LayoutKernel::Slice { .. })
        | Kernel::Layout(LayoutKernel::Index { .. })
        | Kernel::Layout(LayoutKernel::Repeat { .. })
        | Kernel::Layout(LayoutKernel::Reshape { .. })
        | Kernel::Layout(LayoutKernel::FullMask { .. })
        | Kernel::Layout(LayoutKernel::Keep { .. })
        | Kernel::Layout(LayoutKernel::Nonempty { .. })
        | Kernel::SampleValid { .. }
        | Kernel::Layer(LayerKernel::Embedding { .. }) => (0, Elementwise),
        Kernel::Pooling(PoolingKernel::Softmax { x, .. }) | Kernel::Pooling(PoolingKernel::MaskedSoftmax { x, .. }) => {
            (softmax(size(x)), Elementwise)
        }
        Kernel::Pooling(PoolingKernel::Pool { x, .. }) | Kernel::Pooling(PoolingKernel::Reduce { x, .. }) => {
            (size(x), Elementwise)
        }
        // The scores' softmax and the weighted sum of the values.
        Kernel::Pooling(PoolingKernel::AttentionPool { values, scores, .. }) => {
            (softmax(size(scores)).saturating_add(size(values).saturating_mul(2)), Products)
        }
        Kernel::Geometry(GeometryKernel::Dot { a, .. }) => (size(a).saturating_mul(2), Products),
        // Three dot products and the division.
        Kernel::Geometry(GeometryKernel::Cosine { a, .. }) => {
            (size(a).saturating_mul(6).saturating_add(rows(a).saturating_mul(4)), Products)
        }
        // The dot products, then a scaled copy of `onto` (and the difference).
        Kernel::Geometry(GeometryKernel::Project { a, .. }) => (size(a).saturating_mul(6), Products),
        // Sum over fields, its square, the squares' sum, the difference.
        Kernel::Geometry(GeometryKernel::Fm { x, .. }) => (size(x).saturating_mul(3), Products),
        Kernel::Geometry(GeometryKernel::ItemLogits { s, table }) => {
            let v = param(table).first().copied().unwrap_or(0);
            (product(&[2, size(s), v]), Products)
        }
        Kernel::SampledLogits { s, samples, .. } => (product(&[2, size(s), 1 + *samples as u128]), Products),
        Kernel::Layer(LayerKernel::PositionEmbedding { x, .. }) => (size(x), Elementwise),
        Kernel::Layer(LayerKernel::Linear { x, weight, bias }) => {
            let r = rows(x);
            let s = param(weight);
            let matmul = product(&[2, r, s.first().copied().unwrap_or(0), s.last().copied().unwrap_or(0)]);
            let bias = if bias.is_some() { product(&[r, s.last().copied().unwrap_or(0)]) } else { 0 };
            (matmul.saturating_add(bias), Products)
        }
        Kernel::Layer(LayerKernel::Mlp { x, layers, .. }) => {
            let r = rows(x);
            // Each layer and its activation.
            let ops = layers.iter().fold(0u128, |acc, l| {
                let out = param(&l.weight).last().copied().unwrap_or(0);
                acc.saturating_add(dense(r, &l.weight)).saturating_add(product(&[r, out]))
            });
            (ops, Products)
        }
        // Mean, centring, variance, normalisation, scale and shift.
        Kernel::Layer(LayerKernel::LayerNorm { x, .. }) => (size(x).saturating_mul(8), Products),
        Kernel::SelfAttention(AttentionKernel { x, heads, query, key, value, out, norm, .. }) => {
            let d = dims(x);
            let n = d.get(d.len().saturating_sub(2)).copied().unwrap_or(0) as u128;
            let width = d.last().copied().unwrap_or(0) as u128;
            let r = rows(x);
            let b = r / n.max(1);
            let projections =
                [query, key, value, out].iter().fold(0u128, |acc, l| acc.saturating_add(dense(r, &l.weight)));
            // Scores and the weighted sum: 2·N·N·D each per example (over all heads), the
            // softmax over heads·N·N.
            let attention = product(&[4, b, n, n, width]).saturating_add(softmax(product(&[b, *heads as u128, n, n])));
            let norm = if norm.is_some() { size(x).saturating_mul(8) } else { 0 };
            (projections.saturating_add(attention).saturating_add(norm), Products)
        }
        Kernel::Gru { x, input, hidden, .. } => {
            let r = rows(x);
            let h = param(&hidden.weight).first().copied().unwrap_or(0);
            // Per position: the input and hidden projections and the gates (about ten
            // operations per unit).
            let gates = product(&[r, h, 10]);
            (dense(r, &input.weight).saturating_add(dense(r, &hidden.weight)).saturating_add(gates), Products)
        }
        // The looked-up weights plus the per-field bias.
        Kernel::Layer(LayerKernel::Wide { ids, .. }) => (size(ids), Elementwise),
        Kernel::Mmoe { x, experts, tasks, layers, gates, .. } => {
            let b = rows(x);
            let e = *experts as u128;
            // Every expert's layers on every example, and the activations.
            let experts_ops = layers.iter().fold(0u128, |acc, l| {
                let s = param(&l.weight);
                let (fan_in, out) = (s.get(1).copied().unwrap_or(0), s.last().copied().unwrap_or(0));
                acc.saturating_add(product(&[2, b, e, fan_in, out])).saturating_add(product(&[2, b, e, out]))
            });
            // The gates' products and softmaxes, and the mixture of the last layer's outputs.
            let g = param(&gates.weight);
            let gate_ops =
                product(&[2, b]).saturating_mul(product(&g)).saturating_add(softmax(product(&[b, *tasks as u128, e])));
            let last = layers.last().map_or(0, |l| param(&l.weight).last().copied().unwrap_or(0));
            let mixture = product(&[2, b, *tasks as u128, e, last]);
            (experts_ops.saturating_add(gate_ops).saturating_add(mixture), Products)
        }
        Kernel::Memory(MemoryKernel { key, write, slots, read_key, write_key, erase, add, .. }) => {
            let b = rows(key);
            let s = param(slots);
            let (n_slots, m) = (s.first().copied().unwrap_or(0), s.last().copied().unwrap_or(0));
            let layers = dense(b, &read_key.weight)
                .saturating_add(dense(rows(write), &write_key.weight))
                .saturating_add(dense(rows(write), &erase.weight))
                .saturating_add(dense(rows(write), &add.weight));
            // Addressing (a product with the slots and a softmax) for the read and the write,
            // the read's weighted sum, and the write's erase and add over every slot.
            let address = product(&[2, 2, b, n_slots, m]).saturating_add(softmax(product(&[2, b, n_slots])));
            let read = product(&[2, b, n_slots, m]);
            let update = product(&[4, b, n_slots, m]);
            (layers.saturating_add(address).saturating_add(read).saturating_add(update), Products)
        }
        // log, the products with the label, the sum.
        Kernel::Loss(LossKernel::ProbabilityLoss { p, .. }) => (size(p).saturating_mul(6), Elementwise),
        Kernel::Loss(LossKernel::BceLogits { logit, .. }) => (size(logit).saturating_mul(6), Elementwise),
        // The target's probability, its log and the label's product (the distribution itself
        // is the softmax kernel before).
        Kernel::Loss(LossKernel::Distribution { p, .. }) => (rows(p).saturating_mul(4), Elementwise),
        // Two distances of [B, D] vectors and the hinge.
        Kernel::Loss(LossKernel::Triplet { anchor, .. }) => (size(anchor).saturating_mul(6), Products),
    }
}

/// An operation count for people: `840 FLOP`, `2.41 MFLOP`, `1.2 TFLOP`; a count that saturated
/// (`u128::MAX`) as `more than 3.4e38 FLOP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Count(pub u128);

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 6] = ["kFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP", "EFLOP"];
        let n = self.0;
        if n == u128::MAX {
            return write!(f, "more than 3.4e38 FLOP");
        }
        if n < 1000 {
            return write!(f, "{n} FLOP");
        }
        let mut value = n as f64 / 1000.0;
        let mut unit = 0;
        while value >= 1000.0 && unit + 1 < UNITS.len() {
            value /= 1000.0;
            unit += 1;
        }
        if value < 1000.0 {
            write!(f, "{} {}", three_digits(value), UNITS[unit])
        } else {
            write!(f, "{value:.3e} {}", UNITS[unit])
        }
    }
}

/// Three significant digits: `2.41`, `24.1`, `241`.
fn three_digits(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}
