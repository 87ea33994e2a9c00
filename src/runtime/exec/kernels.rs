//! Kernels of the single-step ops: arithmetic, shape manipulation, activations, pooling,
//! vector geometry, the weighted layers without recurrence, and the losses.

use super::*;
use crate::lower::kernel::{Arithmetic, DistributionLoss, Projection, Reduction, ScalarSide};
use crate::lower::kernel::{GeometryKernel, LayerKernel, LayoutKernel, LossKernel, PoolingKernel};
use crate::ops::options::{Activation, AttentionNorm, Distance, PoolMode, PositionMode};
use crate::runtime::fused;
use crate::runtime::tensor::{numel, split3};
use burn::tensor::activation;

/// Applies an activation element-wise.
pub(super) fn act<const D: usize>(x: Tensor<D>, a: Activation) -> Tensor<D> {
    match a {
        Activation::Relu => activation::relu(x),
        Activation::Sigmoid => activation::sigmoid(x),
        Activation::Tanh => activation::tanh(x),
        Activation::Gelu => activation::gelu(x),
        Activation::Identity => x,
    }
}

/// `x [N, In] @ w [In, Out] + b [Out]` → [N, Out].
pub(super) fn affine(x: Tensor<2>, w: Tensor<2>, b: Option<Tensor<1>>) -> Tensor<2> {
    let y = x.matmul(w);
    match b {
        Some(b) => y + b.unsqueeze_dim::<2>(0),
        None => y,
    }
}

/// Row norms: x [N, D] → [N, 1].
pub(super) fn l2(x: Tensor<2>) -> Tensor<2> {
    x.clone().mul(x).sum_dim(1).add_scalar(1e-12).sqrt()
}

/// Softmax of `x / temperature` over the valid positions of each row; padding gets 0.
/// x, valid [N, L] → [N, L]. One fused op ([`fused::masked_softmax`]), forward and backward.
pub(super) fn masked_softmax(x: Tensor<2>, valid: Tensor<2, Bool>, temperature: f64) -> Tensor<2> {
    let [n, l] = x.dims();
    fused::masked_softmax(x.reshape([n, 1, l]), valid, 1.0 / temperature.max(EPS), true).reshape([n, l])
}

/// Normalises each row: x [N, D], gamma and beta [D] → [N, D].
pub(super) fn layer_norm(x: Tensor<2>, gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Tensor<2> {
    let mean = x.clone().mean_dim(1);
    let centered = x - mean;
    let var = (centered.clone() * centered.clone()).mean_dim(1);
    centered / var.add_scalar(eps).sqrt() * gamma.unsqueeze_dim::<2>(0) + beta.unsqueeze_dim::<2>(0)
}

/// Cosine similarity of rows: x, y [N, D] → [N, 1].
fn cosine(x: Tensor<2>, y: Tensor<2>) -> Tensor<2> {
    (x.clone() * y.clone()).sum_dim(1) / (l2(x) * l2(y)).clamp_min(1e-8)
}

impl Interpreter<'_> {
    /// Element-wise arithmetic and layout: joins, slices, reshapes and masks.
    pub(super) fn arithmetic_and_layout(&mut self, kernel: &LayoutKernel, out_shape: Vec<usize>) -> Value {
        let b = self.batch.len;
        let n_out = numel(&out_shape);
        let float = |t: Tensor<1>| Value::Float(FloatTensor::new(t, out_shape.clone()));
        match kernel {
            LayoutKernel::Binary { op, a, b } => {
                let (a, b) = (self.float(*a).flat, self.float(*b).flat);
                float(match op {
                    Arithmetic::Add => a + b,
                    Arithmetic::Sub => a - b,
                    Arithmetic::Mul => a * b,
                    Arithmetic::Div => a / b,
                })
            }
            LayoutKernel::Scalar { op, x, scalar, side } => {
                let (x, s) = (self.float(*x).flat, *scalar);
                float(match (op, side) {
                    (Arithmetic::Add, _) => x.add_scalar(s),
                    (Arithmetic::Sub, ScalarSide::Left) => x.neg().add_scalar(s),
                    (Arithmetic::Sub, ScalarSide::Right) => x.sub_scalar(s),
                    (Arithmetic::Mul, _) => x.mul_scalar(s),
                    (Arithmetic::Div, ScalarSide::Left) => x.recip().mul_scalar(s),
                    (Arithmetic::Div, ScalarSide::Right) => x.div_scalar(s),
                })
            }
            LayoutKernel::Neg { x } => float(self.float(*x).flat.neg()),
            LayoutKernel::Concat { xs, axis } => self.join(xs, |s| split3(s, *axis), out_shape),
            LayoutKernel::Stack { xs, axis } => {
                self.join(xs, |s| [numel(&s[..*axis]), 1, numel(&s[*axis..])], out_shape)
            }
            LayoutKernel::Slice { x, axis, start, len } => self.narrow(*x, *axis, start.at(b), len.at(b), out_shape),
            LayoutKernel::Index { x, axis, index } => self.narrow(*x, *axis, index.at(b), 1, out_shape),
            LayoutKernel::Repeat { x, axis, times } => {
                let x = self.float(*x);
                let [before, after] = [numel(&x.shape[..*axis]), numel(&x.shape[*axis..])];
                // A broadcast view, materialised once by the reshape (burn-flex's `repeat_dim`
                // writes a byte vector that `Bytes` then copies a second time).
                let v: Tensor<3> = x.flat.reshape([before, 1, after]);
                float(v.expand([before, times.at(b), after]).reshape([n_out]))
            }
            LayoutKernel::Reshape { x } => self.value(*x).clone().with_shape(out_shape),
            LayoutKernel::ToFloat { x } => float(self.float(*x).flat),
            LayoutKernel::Nonempty { mask } => {
                let m = self.mask(*mask).float();
                let [rows, len, _] = split3(&m.shape, m.shape.len() - 1);
                let any: Tensor<2> = m.flat.reshape([rows, len]).sum_dim(1).clamp_max(1.0);
                float(any.reshape([rows]))
            }
            LayoutKernel::Keep { mask, where_ } => {
                let (m, w) = (self.mask(*mask), self.float(*where_));
                Value::Mask(MaskTensor { flat: m.flat.bool_and(w.flat.greater_elem(0.5)), shape: out_shape })
            }
            LayoutKernel::FullMask { x } => {
                let device = self.float(*x).flat.device();
                let ones = Tensor::<1>::ones([n_out], &device).greater_elem(0.5);
                Value::Mask(MaskTensor { flat: ones, shape: out_shape })
            }
        }
    }

    /// Activations, softmaxes, dropout, pooling and reductions.
    pub(super) fn activation_and_pooling(&mut self, kernel: &PoolingKernel, out_shape: Vec<usize>) -> Value {
        let n_out = numel(&out_shape);
        let float = |t: Tensor<1>| Value::Float(FloatTensor::new(t, out_shape.clone()));
        match kernel {
            PoolingKernel::Activation { x, act: a } => float(act(self.float(*x).flat, *a)),
            PoolingKernel::Softmax { x, axis } => {
                float(activation::softmax(self.float(*x).around(*axis), 1).reshape([n_out]))
            }
            PoolingKernel::MaskedSoftmax { x, mask } => {
                let x = self.float(*x).rows_by_last();
                let valid = self.mask(*mask).flat.reshape(x.dims());
                float(masked_softmax(x, valid, 1.0).reshape([n_out]))
            }
            PoolingKernel::Dropout { x, rate } => float(self.dropout(self.float(*x).flat, *rate)),
            PoolingKernel::Pool { x, mask, mode, include_padding } => {
                let x = self.float(*x);
                let [batch, len, rest] = split3(&x.shape, 1);
                let x3: Tensor<3> = x.flat.reshape([batch, len, rest]);
                let m: Tensor<3> = self.mask(*mask).float().flat.reshape([batch, len, 1]);
                let y: Tensor<3> = match (mode, include_padding) {
                    (PoolMode::Mean, false) => (x3 * m.clone()).sum_dim(1) / m.sum_dim(1).clamp_min(1.0),
                    (PoolMode::Mean, true) => x3.mean_dim(1),
                    (PoolMode::Sum, false) => (x3 * m).sum_dim(1),
                    (PoolMode::Sum, true) => x3.sum_dim(1),
                    (PoolMode::Max, _) => {
                        let masked = x3 * m.clone() + (m.clone().neg().add_scalar(1.0)).mul_scalar(NEG_INF);
                        masked.max_dim(1) * m.sum_dim(1).clamp_max(1.0)
                    }
                };
                float(y.reshape([n_out]))
            }
            PoolingKernel::AttentionPool { values, scores, mask, norm, temperature } => {
                let v = self.float(*values);
                let [batch, len, d] = [v.shape[0], v.shape[1], v.shape[2]];
                let s: Tensor<2> = self.float(*scores).flat.reshape([batch, len]);
                let valid: Tensor<2, Bool> = self.mask(*mask).flat.reshape([batch, len]);
                let weights = match norm {
                    AttentionNorm::Softmax => masked_softmax(s, valid, *temperature),
                    AttentionNorm::Sum => {
                        let sm = s * valid.float();
                        sm.clone() / sm.sum_dim(1).clamp_min(EPS)
                    }
                    AttentionNorm::Raw => s * valid.float(),
                };
                let y: Tensor<3> = (weights.unsqueeze_dim::<3>(2) * v.rank3()).sum_dim(1);
                float(y.reshape([batch * d]))
            }
            PoolingKernel::Reduce { x, axis, reduction } => {
                let x3 = self.float(*x).around(*axis);
                let y = match reduction {
                    Reduction::Sum => x3.sum_dim(1),
                    Reduction::Mean => x3.mean_dim(1),
                };
                float(y.reshape([n_out]))
            }
        }
    }

    /// Vector geometry: dot products, cosines, projections, FM and item scores.
    pub(super) fn geometry(&mut self, kernel: &GeometryKernel, out_shape: Vec<usize>) -> Value {
        let n_out = numel(&out_shape);
        let float = |t: Tensor<1>| Value::Float(FloatTensor::new(t, out_shape.clone()));
        match kernel {
            GeometryKernel::Dot { a, b } => {
                let (a, b) = (self.float(*a).rows_by_last(), self.float(*b).rows_by_last());
                float((a * b).sum_dim(1).reshape([n_out]))
            }
            GeometryKernel::Cosine { a, b } => {
                let (a, b) = (self.float(*a).rows_by_last(), self.float(*b).rows_by_last());
                float(cosine(a, b).reshape([n_out]))
            }
            GeometryKernel::Project { a, onto, keep } => {
                let (a, onto) = (self.float(*a).rows_by_last(), self.float(*onto).rows_by_last());
                let coef =
                    (a.clone() * onto.clone()).sum_dim(1) / (onto.clone() * onto.clone()).sum_dim(1).add_scalar(1e-8);
                let along = onto * coef;
                float(
                    match keep {
                        Projection::Along => along,
                        Projection::Orthogonal => a - along,
                    }
                    .reshape([n_out]),
                )
            }
            GeometryKernel::Fm { x, reduce } => {
                let x = self.float(*x);
                let x3 = x.rank3();
                let sum = x3.clone().sum_dim(1);
                let sum_sq = (x3.clone() * x3).sum_dim(1);
                let bi: Tensor<3> = (sum.clone() * sum - sum_sq).mul_scalar(0.5);
                let y: Tensor<2> = bi.reshape([x.shape[0], x.shape[2]]);
                let y = if *reduce { y.sum_dim(1) } else { y };
                float(y.reshape([n_out]))
            }
            GeometryKernel::ItemLogits { s, table } => {
                let s = self.float(*s).rows_by_last();
                float(s.matmul(self.matrix(*table).transpose()).reshape([n_out]))
            }
        }
    }

    /// The weighted layers without internal steps.
    pub(super) fn layers(&mut self, kernel: &LayerKernel, out_shape: Vec<usize>) -> Value {
        let n_out = numel(&out_shape);
        let float = |t: Tensor<1>| Value::Float(FloatTensor::new(t, out_shape.clone()));
        match kernel {
            LayerKernel::Embedding { ids, table } => {
                let ids = self.ids(*ids);
                float(self.rows(*table, ids.flat).reshape([n_out]))
            }
            LayerKernel::PositionEmbedding { x, table, mode } => {
                let x = self.float(*x);
                let table = self.matrix(*table).unsqueeze_dim::<3>(0);
                let y = match mode {
                    PositionMode::Concat => Tensor::cat(vec![x.rank3(), table.repeat_dim(0, x.shape[0])], 2),
                    PositionMode::Add => x.rank3() + table,
                };
                float(y.reshape([n_out]))
            }
            LayerKernel::Linear { x, weight, bias } => {
                let x = self.float(*x).rows_by_last();
                float(affine(x, self.matrix(*weight), bias.map(|p| self.param(p))).reshape([n_out]))
            }
            LayerKernel::Mlp { x, layers, act: hidden_act, out_act, dropout } => {
                let mut h = self.float(*x).rows_by_last();
                for (i, layer) in layers.iter().enumerate() {
                    h = affine(h, self.matrix(layer.weight), Some(self.param(layer.bias)));
                    h = if i + 1 < layers.len() {
                        self.dropout(act(h, *hidden_act), *dropout)
                    } else {
                        act(h, *out_act)
                    };
                }
                float(h.reshape([n_out]))
            }
            LayerKernel::LayerNorm { x, norm, eps } => {
                let x = self.float(*x).rows_by_last();
                float(layer_norm(x, self.param(norm.gamma), self.param(norm.beta), *eps).reshape([n_out]))
            }
            LayerKernel::Wide { ids, weight, bias } => {
                let ids = self.ids(*ids);
                let (batch, fields) = (ids.shape[0], ids.shape[1]);
                let w: Tensor<2> = self.rows(*weight, ids.flat).reshape([batch, fields]);
                float((w + self.param(*bias).unsqueeze_dim::<2>(0)).reshape([batch * fields]))
            }
        }
    }

    /// The per-example loss terms, [B].
    pub(super) fn losses(&mut self, kernel: &LossKernel, out_shape: Vec<usize>) -> Value {
        let b = self.batch.len;
        let float = |t: Tensor<1>| Value::Float(FloatTensor::new(t, out_shape.clone()));
        match kernel {
            LossKernel::ProbabilityLoss { p, label, weight, positives_only } => {
                let y = self.label(*label);
                let p = self.float(*p).flat.clamp(EPS, 1.0 - EPS);
                let loss = if *positives_only {
                    (y * p.log()).neg()
                } else {
                    (y.clone() * p.clone().log() + y.neg().add_scalar(1.0) * p.neg().add_scalar(1.0).log()).neg()
                };
                float(self.weighted(*weight, loss))
            }
            LossKernel::BceLogits { logit, label, weight } => {
                let y = self.label(*label);
                let z = self.float(*logit).flat;
                let loss = activation::relu(z.clone()) - z.clone() * y + z.abs().neg().exp().log1p();
                float(self.weighted(*weight, loss))
            }
            LossKernel::Distribution { p, target, label, weight, loss } => {
                let p = self.float(*p).rows_by_last();
                // Without `target`, p is a sampled softmax whose column 0 is the target.
                let picked: Tensor<1> = match target {
                    Some(t) => p.gather(1, self.ids(*t).flat.reshape([b, 1])).reshape([b]),
                    None => p.narrow(1, 0, 1).reshape([b]),
                };
                let mut per_example = match loss {
                    DistributionLoss::CrossEntropy => picked.clamp_min(EPS).log().neg(),
                    DistributionLoss::NotToRecommend => picked.neg().add_scalar(1.0).clamp_min(EPS).log().neg(),
                };
                if let Some(l) = label {
                    per_example = per_example * self.label(*l);
                }
                float(self.weighted(*weight, per_example))
            }
            LossKernel::Triplet { anchor, positive, negative, margin, distance, weight } => {
                let a = self.float(*anchor).rows_by_last();
                let (pos, neg) = (self.float(*positive).rows_by_last(), self.float(*negative).rows_by_last());
                let dist = |x: Tensor<2>, y: Tensor<2>| -> Tensor<2> {
                    match distance {
                        Distance::Euclidean => l2(x - y),
                        Distance::Cosine => cosine(x, y).neg().add_scalar(1.0),
                    }
                };
                let loss = activation::relu(dist(a.clone(), pos) - dist(a, neg) + *margin);
                float(self.weighted(*weight, loss.reshape([b])))
            }
        }
    }

    /// Multiplies per-example losses by a weight stream, when the loss has one.
    fn weighted(&self, weight: Option<ValueId>, loss: Tensor<1>) -> Tensor<1> {
        match weight {
            Some(w) => loss * self.float(w).flat,
            None => loss,
        }
    }

    /// Concatenates values viewed as [before, axis, after] along the middle axis; masks stay
    /// masks, ids stay ids.
    fn join(&self, xs: &[ValueId], view: impl Fn(&[usize]) -> [usize; 3], out_shape: Vec<usize>) -> Value {
        let n_out = numel(&out_shape);
        match self.value(xs[0]) {
            Value::Mask(_) => {
                let parts = xs.iter().map(|x| {
                    let m = self.mask(*x);
                    m.flat.reshape(view(&m.shape))
                });
                let flat = Tensor::<3, Bool>::cat(parts.collect(), 1).reshape([n_out]);
                Value::Mask(MaskTensor { flat, shape: out_shape })
            }
            Value::Ids(_) => {
                let parts = xs.iter().map(|x| {
                    let i = self.ids(*x);
                    i.flat.reshape(view(&i.shape))
                });
                let flat = Tensor::<3, Int>::cat(parts.collect(), 1).reshape([n_out]);
                Value::Ids(IdTensor { flat, shape: out_shape })
            }
            Value::Float(_) => {
                let parts = xs.iter().map(|x| {
                    let f = self.float(*x);
                    f.flat.reshape(view(&f.shape))
                });
                Value::Float(FloatTensor::new(Tensor::<3>::cat(parts.collect(), 1).reshape([n_out]), out_shape))
            }
        }
    }

    /// `x[start : start + len]` along `axis`, any element type.
    fn narrow(&self, x: ValueId, axis: usize, start: usize, len: usize, out_shape: Vec<usize>) -> Value {
        let x = self.value(x).clone();
        let s3 = split3(x.shape(), axis);
        let n_out = numel(&out_shape);
        match x {
            Value::Float(x) => {
                Value::Float(FloatTensor::new(x.flat.reshape(s3).narrow(1, start, len).reshape([n_out]), out_shape))
            }
            Value::Ids(x) => Value::Ids(IdTensor {
                flat: x.flat.reshape(s3).narrow(1, start, len).reshape([n_out]),
                shape: out_shape,
            }),
            Value::Mask(x) => Value::Mask(MaskTensor {
                flat: x.flat.reshape(s3).narrow(1, start, len).reshape([n_out]),
                shape: out_shape,
            }),
        }
    }
}
