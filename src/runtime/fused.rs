//! Fused ops, one backend op forward and one backward each, as a burn backend extension.
//!
//! Some formulas written with burn's tensor ops make many small autodiff nodes, each an
//! allocation, a pass over memory and a tensor kept for the backward pass:
//! - a masked softmax is seven element-wise passes over the scores forward (scale, mask bias,
//!   row maximum, subtract, clamp, exp, divide) and as many backward (autodiff's exp recomputes
//!   exp). Attention runs it over `[B, heads, N, N]` scores, the largest element-wise tensors of
//!   DFN, DUMN and SASRec.
//! - a GRU step's gates are about fifteen ops on `[B, H]` tensors, thirty steps a sequence: op
//!   overhead more than arithmetic.
//!
//! [`FusedOps`] makes each one op. burn-flex runs it as a kernel on raw slices (threaded by row
//! blocks when large), its backward pass too, from what it needs alone (the softmax's output;
//! the GRU step's inputs, its gates recomputed). libtorch runs them through torch's own kernels
//! (its softmax and softmax backward, a GRU step in six element-wise kernels; the `libtorch`
//! module says how its softmax differs, below f32 precision). ndarray runs the same formulas
//! composed of its own ops (the trait's default bodies, `composed_*`), under the same
//! hand-written backward, so every backend computes the same function.
//!
//! # Masked softmax
//! The function is `z = scale · x + bias` (bias [`NEG_INF`] at invalid positions),
//! `e = exp(max(z − max z, MIN_EXPONENT))`, `y = e / Σ e`, and with `zero_invalid` `y · valid`,
//! in that order of operations in every implementation (sums aside). A row with no valid
//! position is uniform, or zero with `zero_invalid`.

// burn-ndarray is deprecated upstream; `--device ndarray` still runs on it, so it gets the op too.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::flex::simd::{exp_inplace_f32, sigmoid_inplace_f32, tanh_inplace_f32};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, NdArray};
use burn::backend::{BackendTypes, TensorMetadata};
use burn::prelude::*;
use burn::tensor::{BoolStore, DType, Slice};
use rayon::prelude::*;

/// The additive bias that removes a position from a softmax.
pub(crate) const NEG_INF: f32 = -1e9;

/// The lowest exponent a masked softmax evaluates. `exp(-30)` ≈ 9.4e-14 is far from the
/// subnormal range, so `expf` never takes its underflow path (glibc's `__expf` sets `errno`
/// through a slow handler for every result below `f32::MIN_POSITIVE`, which masked positions at
/// [`NEG_INF`] all hit: a tenth of DFN's training time on an AMD EPYC), and the weights times
/// activations and gradients stay normal too. The former bound, -80 (1.8e-35), made those
/// products subnormal: on an Intel Xeon every gemm over attention weights then took microcode
/// assists and DFN trained 7x slower (`runtime::cpu` also flushes subnormals to zero, for every
/// other source). The result equals the exact softmax to f32 precision for rows of up to a
/// million positions: a clamped entry weighs at most 9.4e-14 against the row maximum's 1, so a
/// million of them move the sum by less than f32's epsilon (1.2e-7).
pub(crate) const MIN_EXPONENT: f32 = -30.0;

/// Scores from this many elements up are cut into row blocks across rayon's threads (the
/// threshold burn-flex's element-wise kernels use).
const PARALLEL_FROM: usize = 1 << 18;

/// Backend ops recspec fuses. Each has a default body composed of the backend's own ops.
#[backend_extension(Flex, NdArray, LibTorch: cfg(feature = "tch"), Autodiff)]
pub(crate) trait FusedOps: Backend {
    /// Softmax over the last axis of `scale · scores`, `scores` `[G, R, K]`, where `valid`
    /// `[G, K]` marks the positions each of a group's `R` rows may weigh.
    fn masked_softmax(
        scores: FloatTensor<Self>,
        valid: BoolTensor<Self>,
        scale: f32,
        zero_invalid: bool,
    ) -> FloatTensor<Self> {
        composed_masked_softmax::<Self>(scores, valid, scale, zero_invalid)
    }

    /// The gradient of [`FusedOps::masked_softmax`]'s input from its `output` and the gradient
    /// of its output: `scale · y ⊙ (g − Σₖ g ⊙ y)` along the last axis.
    fn masked_softmax_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        composed_masked_softmax_backward::<Self>(output, grad, scale)
    }

    /// One GRU step after its two projections: `gi`, `gh` `[B, 3H]` (the input's and the
    /// state's, with their biases; gates r, z, n in that order), the state `h` `[B, H]` and the
    /// step's validity `valid` `[B, 1]` (1 or 0) → the next state `[B, H]`:
    /// `r = σ(gi_r + gh_r)`, `z = σ(gi_z + gh_z)`, `n = tanh(gi_n + r ⊙ gh_n)`,
    /// `h' = n + z ⊙ (h − n)`, and `h + valid ⊙ (h' − h)`, so padding keeps the state.
    fn gru_gates(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        valid: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_gru_gates::<Self>(gi, gh, h, valid)
    }

    /// The gradients of [`FusedOps::gru_gates`]'s `gi`, `gh` and `h` from its inputs and the
    /// gradient of its output (the gates are recomputed, not kept).
    fn gru_gates_backward(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        valid: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_gru_gates_backward::<Self>(gi, gh, h, valid, grad)
    }
}

/// [`FusedOps::masked_softmax`] on burn tensors: `scores` `[G, R, K]`, `valid` `[G, K]`.
pub fn masked_softmax(scores: Tensor<3>, valid: Tensor<2, Bool>, scale: f64, zero_invalid: bool) -> Tensor<3> {
    let y = <Dispatch as FusedOps>::masked_softmax(
        scores.into_dispatch(),
        valid.into_dispatch(),
        scale as f32,
        zero_invalid,
    );
    Tensor::from_dispatch(y)
}

/// [`FusedOps::masked_softmax`] composed of `B`'s tensor ops.
pub(crate) fn composed_masked_softmax<B: Backend>(
    scores: FloatTensor<B>,
    valid: BoolTensor<B>,
    scale: f32,
    zero_invalid: bool,
) -> FloatTensor<B> {
    let shape = scores.shape();
    let (groups, keys) = (shape[0], shape[2]);
    let dtype = scores.dtype().into();
    let valid = B::bool_expand(B::bool_reshape(valid, Shape::new([groups, 1, keys])), shape.clone());
    let valid = B::bool_into_float(valid, dtype);
    // (1 - valid) · NEG_INF, as valid · -NEG_INF + NEG_INF.
    let bias = B::float_add_scalar(B::float_mul_scalar(valid.clone(), (-NEG_INF).into()), NEG_INF.into());
    let z = B::float_add(B::float_mul_scalar(scores, scale.into()), bias);
    let max = B::float_expand(B::float_max_dim(z.clone(), 2), shape.clone());
    let e = B::float_exp(B::float_clamp_min(B::float_sub(z, max), MIN_EXPONENT.into()));
    let sum = B::float_expand(B::float_sum_dim(e.clone(), 2), shape);
    let y = B::float_div(e, sum);
    if zero_invalid {
        B::float_mul(y, valid)
    } else {
        y
    }
}

/// [`FusedOps::masked_softmax_backward`] composed of `B`'s tensor ops.
pub(crate) fn composed_masked_softmax_backward<B: Backend>(
    output: FloatTensor<B>,
    grad: FloatTensor<B>,
    scale: f32,
) -> FloatTensor<B> {
    let shape = output.shape();
    let last = shape.num_dims() - 1;
    let dot = B::float_expand(B::float_sum_dim(B::float_mul(grad.clone(), output.clone()), last), shape);
    B::float_mul_scalar(B::float_mul(output, B::float_sub(grad, dot)), scale.into())
}

/// [`FusedOps::gru_gates`] on burn tensors: `gi`, `gh` `[B, 3H]`, `h` `[B, H]`, `valid` `[B, 1]`.
pub fn gru_gates(gi: Tensor<2>, gh: Tensor<2>, h: Tensor<2>, valid: Tensor<2>) -> Tensor<2> {
    let next = <Dispatch as FusedOps>::gru_gates(
        gi.into_dispatch(),
        gh.into_dispatch(),
        h.into_dispatch(),
        valid.into_dispatch(),
    );
    Tensor::from_dispatch(next)
}

/// A GRU step's gates composed of `B`'s ops: `(r, z, n, gh_n)`, each `[B, H]`.
fn composed_gates<B: Backend>(
    gi: &FloatTensor<B>,
    gh: &FloatTensor<B>,
    hidden: usize,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let rows = gi.shape()[0];
    let gate = |t: &FloatTensor<B>, i: usize| {
        B::float_slice(t.clone(), &[Slice::from(0..rows), Slice::from(i * hidden..(i + 1) * hidden)])
    };
    let r = B::sigmoid(B::float_add(gate(gi, 0), gate(gh, 0)));
    let z = B::sigmoid(B::float_add(gate(gi, 1), gate(gh, 1)));
    let gh_n = gate(gh, 2);
    let n = B::float_tanh(B::float_add(gate(gi, 2), B::float_mul(r.clone(), gh_n.clone())));
    (r, z, n, gh_n)
}

/// `1 − t`.
fn one_minus<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    B::float_add_scalar(B::float_neg(t), 1.0.into())
}

/// [`FusedOps::gru_gates`] composed of `B`'s tensor ops.
pub(crate) fn composed_gru_gates<B: Backend>(
    gi: FloatTensor<B>,
    gh: FloatTensor<B>,
    h: FloatTensor<B>,
    valid: FloatTensor<B>,
) -> FloatTensor<B> {
    let shape = h.shape();
    let (_, z, n, _) = composed_gates::<B>(&gi, &gh, shape[1]);
    let next = B::float_add(n.clone(), B::float_mul(z, B::float_sub(h.clone(), n)));
    let valid = B::float_expand(valid, shape);
    B::float_add(h.clone(), B::float_mul(valid, B::float_sub(next, h)))
}

/// [`FusedOps::gru_gates_backward`] composed of `B`'s tensor ops.
pub(crate) fn composed_gru_gates_backward<B: Backend>(
    gi: FloatTensor<B>,
    gh: FloatTensor<B>,
    h: FloatTensor<B>,
    valid: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = h.shape();
    let (r, z, n, gh_n) = composed_gates::<B>(&gi, &gh, shape[1]);
    let valid = B::float_expand(valid, shape);
    // out = (1 − valid) h + valid h', h' = (1 − z) n + z h, n = tanh(a_n), a_n = gi_n + r gh_n.
    let d_next = B::float_mul(grad.clone(), valid.clone());
    let dh = B::float_add(B::float_mul(grad, one_minus::<B>(valid)), B::float_mul(d_next.clone(), z.clone()));
    let dz = B::float_mul(d_next.clone(), B::float_sub(h, n.clone()));
    let dn = B::float_mul(d_next, one_minus::<B>(z.clone()));
    let da_n = B::float_mul(dn, one_minus::<B>(B::float_mul(n.clone(), n)));
    let da_r = B::float_mul(B::float_mul(da_n.clone(), gh_n), B::float_mul(r.clone(), one_minus::<B>(r.clone())));
    let da_z = B::float_mul(dz, B::float_mul(z.clone(), one_minus::<B>(z)));
    let dgi = B::float_cat(vec![da_r.clone(), da_z.clone(), da_n.clone()], 1);
    let dgh = B::float_cat(vec![da_r, da_z, B::float_mul(da_n, r)], 1);
    (dgi, dgh, dh)
}

impl FusedOps for NdArray {}

/// libtorch runs the fused ops through torch's own kernels: its softmax and softmax backward
/// (one kernel each, where the composed formula is seven), and a GRU step in six element-wise
/// kernels (`addcmul`, `lerp`) where the composed one is about fifteen burn ops, each a libtorch
/// call. The function is the one above except for the softmax's exponent clamp: torch's softmax
/// does not clamp at [`MIN_EXPONENT`], so an entry more than 30 below its row's maximum weighs
/// its exact `e^(z - max)` instead of `e^-30` ≈ 9.4e-14. Against the row's sum (≥ 1) that moves
/// each weight by at most K · 9.4e-14 relative for K keys, below f32's epsilon for K < 10^6; the
/// same bound as the generated PyTorch module's softmax (`recspec_torch.ops`). Masked positions
/// are filled with [`NEG_INF`] rather than offset by it, so a row with no valid position is
/// exactly uniform. Tested against the formulas, values and gradients, in
/// `tests/it/kernels.rs` (with `--features tch`: `scripts/tch_check.sh`, run by `.ci/run`).
#[cfg(feature = "tch")]
mod libtorch {
    use super::{FusedOps, NEG_INF};
    use burn::backend::libtorch::TchTensor;
    use burn::backend::LibTorch;
    use tch::Tensor;

    /// `1 − t`.
    fn one_minus(t: &Tensor) -> Tensor {
        t.neg() + 1.0
    }

    /// A GRU step's gates: `(r, z, n, gh_n)`, each `[B, H]`.
    fn gates(gi: &Tensor, gh: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
        let hidden = gh.size()[1] / 3;
        let rz = (gi.narrow(1, 0, 2 * hidden) + gh.narrow(1, 0, 2 * hidden)).sigmoid();
        let (r, z) = (rz.narrow(1, 0, hidden), rz.narrow(1, hidden, hidden));
        let gh_n = gh.narrow(1, 2 * hidden, hidden);
        let n = gi.narrow(1, 2 * hidden, hidden).addcmul(&r, &gh_n).tanh();
        (r, z, n, gh_n)
    }

    impl FusedOps for LibTorch {
        fn masked_softmax(scores: TchTensor, valid: TchTensor, scale: f32, zero_invalid: bool) -> TchTensor {
            let invalid = valid.tensor.unsqueeze(1).logical_not();
            let z = (&scores.tensor * f64::from(scale)).masked_fill(&invalid, f64::from(NEG_INF));
            let y = z.softmax(-1, None);
            TchTensor::new(if zero_invalid { y.masked_fill(&invalid, 0.0) } else { y })
        }

        fn masked_softmax_backward(output: TchTensor, grad: TchTensor, scale: f32) -> TchTensor {
            let kind = output.tensor.kind();
            let dx = Tensor::internal_softmax_backward_data(&grad.tensor, &output.tensor, -1, kind);
            TchTensor::new(dx * f64::from(scale))
        }

        fn gru_gates(gi: TchTensor, gh: TchTensor, h: TchTensor, valid: TchTensor) -> TchTensor {
            let (_, z, n, _) = gates(&gi.tensor, &gh.tensor);
            // h' = n + z (h − n); padding keeps the state: h + valid (h' − h).
            let next = n.lerp_tensor(&h.tensor, &z);
            TchTensor::new(h.tensor.lerp_tensor(&next, &valid.tensor))
        }

        fn gru_gates_backward(
            gi: TchTensor,
            gh: TchTensor,
            h: TchTensor,
            valid: TchTensor,
            grad: TchTensor,
        ) -> (TchTensor, TchTensor, TchTensor) {
            let (r, z, n, gh_n) = gates(&gi.tensor, &gh.tensor);
            let grad = &grad.tensor;
            let d_next = grad * &valid.tensor;
            // dh = grad (1 − valid) + d_next z = grad − d_next (1 − z).
            let dn = &d_next * one_minus(&z);
            let dh = grad - &dn;
            let dz = &d_next * (&h.tensor - &n);
            let da_n = dn * one_minus(&n.square());
            let da_r = &da_n * &gh_n * &r * one_minus(&r);
            let da_z = dz * &z * one_minus(&z);
            let dgh_n = &da_n * &r;
            let dgi = Tensor::cat(&[&da_r, &da_z, &da_n], 1);
            let dgh = Tensor::cat(&[&da_r, &da_z, &dgh_n], 1);
            (TchTensor::new(dgi), TchTensor::new(dgh), TchTensor::new(dh))
        }
    }
}

impl<B: Backend + FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn masked_softmax(
        scores: FloatTensor<Self>,
        valid: BoolTensor<Self>,
        scale: f32,
        zero_invalid: bool,
    ) -> FloatTensor<Self> {
        /// The backward pass keeps the output and the scale.
        #[derive(Debug)]
        struct MaskedSoftmax;

        impl<B: Backend + FusedOps> Backward<B, 1> for MaskedSoftmax {
            type State = (B::FloatTensorPrimitive, f32);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let (output, scale) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| B::masked_softmax_backward(output, grad, scale));
            }
        }

        let node = scores.node();
        let output = B::masked_softmax(scores.into_primitive(), valid, scale, zero_invalid);
        match MaskedSoftmax.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((output.clone(), scale), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
    fn gru_gates(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        valid: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        /// The backward pass keeps the inputs (`valid` is a constant) and recomputes the gates.
        #[derive(Debug)]
        struct GruGates;

        type Inputs<B> = [<B as BackendTypes>::FloatTensorPrimitive; 4];

        impl<B: Backend + FusedOps> Backward<B, 3> for GruGates {
            type State = Inputs<B>;

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [gi, gh, h, valid] = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let (dgi, dgh, dh) = B::gru_gates_backward(gi, gh, h, valid, grad);
                for (parent, grad) in ops.parents.into_iter().zip([dgi, dgh, dh]) {
                    if let Some(node) = parent {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let nodes = [gi.node(), gh.node(), h.node()];
        let inputs = [gi.into_primitive(), gh.into_primitive(), h.into_primitive(), valid.into_primitive()];
        let [gi, gh, h, valid] = inputs.clone();
        let next = B::gru_gates(gi, gh, h, valid);
        match GruGates.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(inputs, next),
            OpsKind::UnTracked(prep) => prep.finish(next),
        }
    }
}

impl FusedOps for Flex {
    fn masked_softmax(scores: FlexTensor, valid: FlexTensor, scale: f32, zero_invalid: bool) -> FlexTensor {
        let shape = scores.shape();
        let bytes_per_flag = matches!(valid.dtype(), DType::Bool(BoolStore::Native | BoolStore::U8));
        if scores.dtype() != DType::F32 || !bytes_per_flag {
            return composed_masked_softmax::<Flex>(scores, valid, scale, zero_invalid);
        }
        let (rows_per_group, keys) = (shape[1], shape[2]);
        if shape.num_elements() == 0 {
            return from_f32s(vec![], shape);
        }
        let scores = contiguous(scores);
        let valid = contiguous(valid);
        let x = f32s(&scores);
        let valid = bytes(&valid);
        let mut out = vec![0f32; x.len()];
        for_row_blocks(&mut out, keys, |first_row, block| {
            let n = block.len();
            let x = &x[first_row * keys..first_row * keys + n];
            let group_of = |row: usize| &valid[(first_row + row) / rows_per_group * keys..][..keys];
            // z = scale · x + bias and its maximum, then the shifted, clamped exponent.
            for (row, (y, x)) in block.chunks_exact_mut(keys).zip(x.chunks_exact(keys)).enumerate() {
                let mut max = f32::NEG_INFINITY;
                for ((y, &x), &v) in y.iter_mut().zip(x).zip(group_of(row)) {
                    *y = x * scale + if v != 0 { 0.0 } else { NEG_INF };
                    max = max.max(*y);
                }
                for y in y.iter_mut() {
                    let d = *y - max;
                    // Written so that NaN stays NaN (`f32::max` would clamp it away).
                    *y = if d < MIN_EXPONENT { MIN_EXPONENT } else { d };
                }
            }
            exp_inplace_f32(block);
            for (row, y) in block.chunks_exact_mut(keys).enumerate() {
                let sum: f32 = y.iter().sum();
                for y in y.iter_mut() {
                    *y /= sum;
                }
                if zero_invalid {
                    for (y, &v) in y.iter_mut().zip(group_of(row)) {
                        if v == 0 {
                            *y = 0.0;
                        }
                    }
                }
            }
        });
        from_f32s(out, shape)
    }

    fn masked_softmax_backward(output: FlexTensor, grad: FlexTensor, scale: f32) -> FlexTensor {
        let shape = output.shape();
        if output.dtype() != DType::F32 || grad.dtype() != DType::F32 {
            return composed_masked_softmax_backward::<Flex>(output, grad, scale);
        }
        let keys = shape[shape.num_dims() - 1];
        if shape.num_elements() == 0 {
            return from_f32s(vec![], shape);
        }
        let (output, grad) = (contiguous(output), contiguous(grad));
        let (y, g) = (f32s(&output), f32s(&grad));
        let mut out = vec![0f32; y.len()];
        for_row_blocks(&mut out, keys, |first_row, block| {
            let at = first_row * keys..first_row * keys + block.len();
            let rows = block.chunks_exact_mut(keys).zip(y[at.clone()].chunks_exact(keys)).zip(g[at].chunks_exact(keys));
            for ((dx, y), g) in rows {
                let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(g) {
                    *dx = scale * y * (g - dot);
                }
            }
        });
        from_f32s(out, shape)
    }

    fn gru_gates(gi: FlexTensor, gh: FlexTensor, h: FlexTensor, valid: FlexTensor) -> FlexTensor {
        let shape = h.shape();
        let hidden = shape[1];
        if hidden == 0 || ![&gi, &gh, &h, &valid].iter().all(|t| t.dtype() == DType::F32) {
            return composed_gru_gates::<Flex>(gi, gh, h, valid);
        }
        let [gi, gh, h, valid] = [gi, gh, h, valid].map(contiguous);
        let (h, valid) = (f32s(&h), f32s(&valid));
        let (rz, n) = flex_gates(f32s(&gi), f32s(&gh), hidden);
        let mut out = vec![0f32; h.len()];
        let rows = out.chunks_exact_mut(hidden).zip(h.chunks_exact(hidden)).zip(rz.chunks_exact(2 * hidden));
        for (((out, h), rz), (n, &m)) in rows.zip(n.chunks_exact(hidden).zip(valid)) {
            for (j, out) in out.iter_mut().enumerate() {
                let next = n[j] + rz[hidden + j] * (h[j] - n[j]);
                *out = h[j] + m * (next - h[j]);
            }
        }
        from_f32s(out, shape)
    }

    fn gru_gates_backward(
        gi: FlexTensor,
        gh: FlexTensor,
        h: FlexTensor,
        valid: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (shape, gates_shape) = (h.shape(), gi.shape());
        let hidden = shape[1];
        if hidden == 0 || ![&gi, &gh, &h, &valid, &grad].iter().all(|t| t.dtype() == DType::F32) {
            return composed_gru_gates_backward::<Flex>(gi, gh, h, valid, grad);
        }
        let [gi, gh, h, valid, grad] = [gi, gh, h, valid, grad].map(contiguous);
        let (gh, h, valid, grad) = (f32s(&gh), f32s(&h), f32s(&valid), f32s(&grad));
        let (rz, n) = flex_gates(f32s(&gi), gh, hidden);
        let (mut dgi, mut dgh, mut dh) = (vec![0f32; gh.len()], vec![0f32; gh.len()], vec![0f32; h.len()]);
        let rows =
            dgi.chunks_exact_mut(3 * hidden).zip(dgh.chunks_exact_mut(3 * hidden)).zip(dh.chunks_exact_mut(hidden));
        let inputs = gh.chunks_exact(3 * hidden).zip(h.chunks_exact(hidden)).zip(grad.chunks_exact(hidden));
        let gates = rz.chunks_exact(2 * hidden).zip(n.chunks_exact(hidden)).zip(valid);
        for (((dgi, dgh), dh), (((gh, h), g), ((rz, cand), &m))) in rows.zip(inputs.zip(gates)) {
            for j in 0..hidden {
                let (r, z, n) = (rz[j], rz[hidden + j], cand[j]);
                let d_next = g[j] * m;
                dh[j] = g[j] * (1.0 - m) + d_next * z;
                let dz = d_next * (h[j] - n);
                let da_n = d_next * (1.0 - z) * (1.0 - n * n);
                let da_r = da_n * gh[2 * hidden + j] * r * (1.0 - r);
                let da_z = dz * z * (1.0 - z);
                dgi[j] = da_r;
                dgh[j] = da_r;
                dgi[hidden + j] = da_z;
                dgh[hidden + j] = da_z;
                dgi[2 * hidden + j] = da_n;
                dgh[2 * hidden + j] = da_n * r;
            }
        }
        (from_f32s(dgi, gates_shape.clone()), from_f32s(dgh, gates_shape), from_f32s(dh, shape))
    }
}

/// Runs `f(first_row, block)` over blocks of whole rows of `out` (rows of `keys` elements), on
/// rayon's threads when `out` is large.
fn for_row_blocks(out: &mut [f32], keys: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let keys = keys.max(1);
    let rows = out.len() / keys;
    if out.len() < PARALLEL_FROM {
        return f(0, out);
    }
    // About 16K elements a block: small enough for L1/L2 between the passes, many blocks a thread.
    let rows_per_block = (16_384 / keys).clamp(1, rows);
    out.par_chunks_mut(rows_per_block * keys).enumerate().for_each(|(i, block)| f(i * rows_per_block, block));
}

/// `t`, or a contiguous copy when its elements are strided (an offset into its buffer is fine).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.layout().contiguous_offsets().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// A contiguous f32 tensor's elements.
fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A contiguous bool tensor's elements, one byte each.
fn bytes(t: &FlexTensor) -> &[u8] {
    let (start, end) = t.layout().contiguous_offsets().expect("a contiguous tensor");
    &t.storage::<u8>()[start..end]
}

fn from_f32s(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// A GRU step's gates on contiguous rows: `r, z` interleaved per row as `[B, 2H]`, and `n`
/// `[B, H]`, through burn-flex's vectorised sigmoid and tanh.
fn flex_gates(gi: &[f32], gh: &[f32], hidden: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = gi.len() / (3 * hidden).max(1);
    let mut rz = vec![0f32; rows * 2 * hidden];
    let mut n = vec![0f32; rows * hidden];
    for ((rz, gi), gh) in
        rz.chunks_exact_mut(2 * hidden).zip(gi.chunks_exact(3 * hidden)).zip(gh.chunks_exact(3 * hidden))
    {
        for (j, rz) in rz.iter_mut().enumerate() {
            *rz = gi[j] + gh[j];
        }
    }
    sigmoid_inplace_f32(&mut rz);
    let rows = n.chunks_exact_mut(hidden).zip(rz.chunks_exact(2 * hidden));
    for ((n, rz), (gi, gh)) in rows.zip(gi.chunks_exact(3 * hidden).zip(gh.chunks_exact(3 * hidden))) {
        for (j, n) in n.iter_mut().enumerate() {
            *n = gi[2 * hidden + j] + rz[j] * gh[2 * hidden + j];
        }
    }
    tanh_inplace_f32(&mut n);
    (rz, n)
}
