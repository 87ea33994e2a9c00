//! Fused masked softmax: one backend op forward and one backward, as a burn backend extension.
//!
//! Written with burn's tensor ops, a masked softmax is seven element-wise passes over the scores
//! forward (scale, mask bias, row maximum, subtract, clamp, exp, divide) and as many autodiff
//! nodes, each keeping a score-sized tensor for the backward pass, which then runs seven more
//! (autodiff's exp recomputes exp). Attention runs it over `[B, heads, N, N]` scores, the largest
//! element-wise tensors of DFN, DUMN and SASRec. [`FusedOps::masked_softmax`] is one op:
//! - burn-flex runs it as one pass per row, on rayon's pool when the scores are large;
//! - its backward pass needs only the output, `dx = scale · y ⊙ (g − Σₖ g ⊙ y)`, one pass too
//!   ([`FusedOps::masked_softmax_backward`]), and autodiff keeps only `y`;
//! - ndarray and libtorch run the same formulas composed of their own ops (the trait's default
//!   bodies, [`composed_masked_softmax`]), so every backend computes the same function.
//!
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
use burn::backend::flex::{simd::exp_inplace_f32, FlexTensor};
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::TensorMetadata;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, NdArray};
use burn::prelude::*;
use burn::tensor::{BoolStore, DType};
use rayon::prelude::*;

/// The additive bias that removes a position from a softmax.
pub const NEG_INF: f32 = -1e9;

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
pub const MIN_EXPONENT: f32 = -30.0;

/// Scores from this many elements up are cut into row blocks across rayon's threads (the
/// threshold burn-flex's element-wise kernels use).
const PARALLEL_FROM: usize = 1 << 18;

/// Backend ops recspec fuses. Each has a default body composed of the backend's own ops.
#[backend_extension(Flex, NdArray, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait FusedOps: Backend {
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
pub fn composed_masked_softmax<B: Backend>(
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
pub fn composed_masked_softmax_backward<B: Backend>(
    output: FloatTensor<B>,
    grad: FloatTensor<B>,
    scale: f32,
) -> FloatTensor<B> {
    let shape = output.shape();
    let last = shape.num_dims() - 1;
    let dot = B::float_expand(B::float_sum_dim(B::float_mul(grad.clone(), output.clone()), last), shape);
    B::float_mul_scalar(B::float_mul(output, B::float_sub(grad, dot)), scale.into())
}

impl FusedOps for NdArray {}

#[cfg(feature = "tch")]
impl FusedOps for burn::backend::LibTorch {}

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
}

impl FusedOps for Flex {
    fn masked_softmax(scores: FlexTensor, valid: FlexTensor, scale: f32, zero_invalid: bool) -> FlexTensor {
        let shape = scores.shape();
        let bytes_per_flag = matches!(valid.dtype(), DType::Bool(BoolStore::Native | BoolStore::U8));
        if scores.dtype() != DType::F32 || !bytes_per_flag {
            return composed_masked_softmax::<Flex>(scores, valid, scale, zero_invalid);
        }
        let (rows_per_group, keys) = (shape[1], shape[2]);
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
