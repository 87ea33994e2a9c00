//! Kernels of the multi-step components: sampled logits, self-attention, GRU, MMoE, the slot
//! memory, and sampling a valid position.

use super::kernels::{act, affine, l2, layer_norm};
use super::*;
use crate::lower::kernel::{AttentionKernel, MemoryKernel};
use crate::lower::kernel::{Dense, Norm};
use crate::ops::options::{Activation, AttentionScale, GruOutput, MemoryOutput};
use crate::runtime::fused;
use crate::runtime::tensor::numel;
use burn::tensor::activation;

impl Interpreter<'_> {
    fn dense(&self, x: Tensor<2>, d: Dense) -> Tensor<2> {
        affine(x, self.matrix(d.weight), Some(self.param(d.bias)))
    }

    /// Logits of each example's target and of `samples` uniformly drawn items, logQ-corrected.
    ///
    /// # Shapes
    /// - s: [B, D], target: [B] ids, table: [V, D]
    /// - output: [B, 1 + samples], the target in column 0
    pub(super) fn sampled_logits(
        &mut self,
        s: ValueId,
        target: ValueId,
        table: ParamId,
        samples: usize,
        logq: bool,
        out_shape: Vec<usize>,
    ) -> Value {
        let s = self.float(s).rows_by_last();
        // The target's ids on the host: the batch's copy for an input, else read back.
        let host_targets = match self.program.producer(target) {
            None => self.batch.host_ids.get(target.0).cloned().flatten(),
            Some(_) => None,
        };
        let target = self.ids(target);
        let vocab = self.program.params[table.0].shape[0];
        let b = self.batch.len;
        let pos_vec: Tensor<2> = self.rows(table, target.flat.clone().reshape([b]));
        let pos = (s.clone() * pos_vec).sum_dim(1);
        let ids: Vec<i64> = (0..samples).map(|_| self.rng.below(vocab) as i64).collect();
        let device = s.device();
        let neg_table = self.rows(table, Tensor::<1, Int>::from_data(TensorData::new(ids.clone(), [samples]), &device));
        let mut neg = s.matmul(neg_table.transpose());
        if logq {
            neg = neg.sub_scalar((samples as f64 / vocab as f64).ln());
        }
        // A sampled negative equal to the example's own target is not a negative.
        let targets = host_targets.unwrap_or_else(|| {
            target.flat.clone().into_data().convert::<i64>().try_into_vec::<i64>().unwrap_or_default()
        });
        let hits: Vec<f32> =
            targets.iter().flat_map(|t| ids.iter().map(move |i| if i == t { 1.0 } else { 0.0 })).collect();
        if hits.iter().any(|h| *h > 0.0) {
            let mask = Tensor::<2>::from_data(TensorData::new(hits, [b, samples]), &device);
            neg = neg + mask.mul_scalar(NEG_INF);
        }
        Value::Float(FloatTensor::from_tensor(Tensor::cat(vec![pos, neg], 1), out_shape))
    }

    /// Multi-head scaled dot-product self-attention with padded keys masked.
    ///
    /// # Shapes
    /// - x: [B, N, D], mask: [B, N]; D = heads · Dh
    /// - output: [B, N, D]
    pub(super) fn self_attention(&mut self, kernel: &AttentionKernel, out_shape: Vec<usize>) -> Value {
        let AttentionKernel { x, mask, heads, scale, residual, dropout, query, key, value, out, norm } = kernel;
        let x = self.float(*x);
        let [b, len, d] = [x.shape[0], x.shape[1], x.shape[2]];
        let dh = d / heads;
        let x2 = x.rows_by_last();
        let project =
            |p: &Dense| -> Tensor<4> { self.dense(x2.clone(), *p).reshape([b, len, *heads, dh]).swap_dims(1, 2) };
        let (q, k, v) = (project(query), project(key), project(value));
        let divisor = match scale {
            AttentionScale::SqrtModel => (d as f64).sqrt(),
            AttentionScale::SqrtLen => (len as f64).sqrt(),
            AttentionScale::SqrtHead => (dh as f64).sqrt(),
        };
        let scores: Tensor<3> = q.matmul(k.swap_dims(2, 3)).reshape([b, heads * len, len]);
        let valid: Tensor<2, Bool> = self.mask(*mask).flat.reshape([b, len]);
        let att = fused::masked_softmax(scores, valid, 1.0 / divisor, false).reshape([b, *heads, len, len]);
        let att = self.dropout(att, *dropout);
        let context: Tensor<2> = att.matmul(v).swap_dims(1, 2).reshape([b * len, d]);
        let mut y = self.dense(context, *out);
        if *residual {
            y = y + x2;
        }
        if let Some(Norm { gamma, beta }) = norm {
            y = layer_norm(y, self.param(*gamma), self.param(*beta), 1e-5);
        }
        Value::Float(FloatTensor::from_tensor(y, out_shape))
    }

    /// A GRU over axis 1; padding keeps the previous state, so the final state is the last
    /// valid one.
    ///
    /// # Shapes
    /// - x: [B, N, In], mask: [B, N]; input: [In, 3H], hidden: [H, 3H]
    /// - output: [B, H] (last) or [B, N, H] (all)
    pub(super) fn gru(
        &mut self,
        x: ValueId,
        mask: ValueId,
        input: Dense,
        hidden: Dense,
        output: GruOutput,
        out_shape: Vec<usize>,
    ) -> Value {
        let x = self.float(x);
        let [b, len, din] = [x.shape[0], x.shape[1], x.shape[2]];
        let (w_hh, b_hh) = (self.matrix(hidden.weight), self.param(hidden.bias));
        let h_dim = w_hh.dims()[0];
        // Time-major, so a step's slice is one contiguous block.
        let x_tm = x.flat.reshape([b, len, din]).swap_dims(0, 1).reshape([len * b, din]);
        let gi = self.dense(x_tm, input).reshape([len, b, 3 * h_dim]);
        let device = gi.device();
        let gi = time_steps(gi);
        let m = self.mask(mask).float().flat.reshape([b, len]).swap_dims(0, 1).reshape([len, b, 1]);
        let m = time_steps(m);
        let mut h = Tensor::<2>::zeros([b, h_dim], &device);
        let mut all = vec![];
        // Per step: the hidden projection, then the gates, the candidate and the padding
        // blend in one fused op (`fused::gru_gates`).
        for (g, mt) in gi.into_iter().zip(m) {
            let gh = affine(h.clone(), w_hh.clone(), Some(b_hh.clone()));
            h = fused::gru_gates(g, gh, h, mt);
            all.push(h.clone());
        }
        let y = match output {
            GruOutput::All => Tensor::stack::<3>(all, 1).reshape([numel(&out_shape)]),
            GruOutput::Last => h.reshape([b * h_dim]),
        };
        Value::Float(FloatTensor::new(y, out_shape))
    }

    /// A multi-gate mixture of experts: every expert's MLP, mixed by one softmax gate per task.
    ///
    /// # Shapes
    /// - x: [B, In]; expert layers [E, in, out] with biases [E, out]; gates [T, In, E], [T, E]
    /// - output: [B, T, Out]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mmoe(
        &mut self,
        x: ValueId,
        experts: usize,
        tasks: usize,
        layers: &[Dense],
        gates: Dense,
        hidden_act: Activation,
        out_shape: Vec<usize>,
    ) -> Value {
        let x = self.float(x).rows_by_last();
        let [b, din] = x.dims();
        let mut h: Tensor<3> = x.clone().unsqueeze_dim::<3>(0).repeat_dim(0, experts);
        for layer in layers {
            let bias = self.matrix(layer.bias).unsqueeze_dim::<3>(1);
            h = act(h.matmul(self.cube(layer.weight)) + bias, hidden_act);
        }
        let gate_bias = self.matrix(gates.bias).unsqueeze_dim::<3>(1);
        let xg: Tensor<3> = x.reshape([1, b, din]).repeat_dim(0, tasks);
        let mix = activation::softmax(xg.matmul(self.cube(gates.weight)) + gate_bias, 2);
        let y = mix.swap_dims(0, 1).matmul(h.swap_dims(0, 1));
        Value::Float(FloatTensor::from_tensor(y, out_shape))
    }

    /// DUMN eqs. 8-12 and 18. Read: r = w^r M with w^r = softmax(cosine(k^r, M(j))) over slots.
    /// Write: w^w from the write key the same way, M' = (1 - w^w (x) erase) . M + w^w (x) add,
    /// averaged over the batch. `both` also returns q = w^w M', the write-addressed summary of the
    /// written memory: the only path by which erase/add/write-key weights get gradients (the
    /// memory itself is state, not a trained weight). A memory applied several times in one pass
    /// (a shared instance) reads its own earlier write of that pass.
    ///
    /// # Shapes
    /// - key: [B, K], write: [B, W], slots: [S, M]
    /// - output: [B, M] (read) or [B, 2, M] (both)
    pub(super) fn memory(&mut self, kernel: &MemoryKernel, out_shape: Vec<usize>) -> Value {
        let MemoryKernel { key, write, slots, read_key, write_key, erase, add, persist, output } = kernel;
        let key = self.float(*key).rows_by_last();
        let write = self.float(*write).rows_by_last();
        let b = key.dims()[0];
        let stored = self.matrix(*slots);
        let mem = match self.state.iter().rev().find(|(p, _)| p == slots) {
            Some((_, m)) => m.clone().reshape(stored.dims()),
            None => stored.detach(),
        };
        let normalised = mem.clone() / l2(mem.clone());
        let address = |k: Tensor<2>| activation::softmax((k.clone() / l2(k)).matmul(normalised.clone().transpose()), 1);
        let w_read = address(self.dense(key, *read_key));
        let r = w_read.matmul(mem.clone());
        let w_write = address(self.dense(write.clone(), *write_key));
        let erase = activation::sigmoid(self.dense(write.clone(), *erase));
        let add = activation::tanh(self.dense(write, *add));
        let wt = w_write.clone().transpose();
        let erase_term = wt.clone().matmul(erase).div_scalar(b as f64);
        let add_term = wt.matmul(add).div_scalar(b as f64);
        let new_mem = mem * erase_term.neg().add_scalar(1.0) + add_term;
        if self.training() && *persist {
            let n: usize = new_mem.dims().iter().product();
            self.state.retain(|(p, _)| p != slots);
            self.state.push((*slots, new_mem.clone().detach().reshape([n])));
        }
        match output {
            MemoryOutput::Both => {
                let q = w_write.matmul(new_mem);
                Value::Float(FloatTensor::from_tensor(Tensor::stack::<3>(vec![r, q], 1), out_shape))
            }
            MemoryOutput::Read => Value::Float(FloatTensor::from_tensor(r, out_shape)),
        }
    }

    /// A random valid position per row in training, the last valid one in evaluation.
    ///
    /// # Shapes
    /// - x: [B, N, D], mask: [B, N]
    /// - output: [B, D], zeros where a row has no valid position
    pub(super) fn sample_valid(&mut self, x: ValueId, mask: ValueId, out_shape: Vec<usize>) -> Value {
        let x = self.float(x);
        let [b, len, d] = [x.shape[0], x.shape[1], x.shape[2]];
        let m: Tensor<2> = self.mask(mask).float().flat.reshape([b, len]);
        let device = m.device();
        let scores: Vec<f32> = if self.training() {
            (0..b * len).map(|_| 1.0 + self.rng.unit() as f32).collect()
        } else {
            (0..b * len).map(|i| 1.0 + (i % len) as f32).collect()
        };
        let scores = Tensor::<2>::from_data(TensorData::new(scores, [b, len]), &device);
        // Padding scores below every valid position; a row with none picks position 0, zeroed.
        let masked = scores * m.clone() - m.clone().neg().add_scalar(1.0);
        let pick: Tensor<3, Int> = masked.argmax(1).reshape([b, 1, 1]).repeat_dim(2, d);
        let any: Tensor<2> = m.sum_dim(1).clamp_max(1.0);
        let y: Tensor<2> = x.rank3().gather(1, pick).reshape([b, d]) * any;
        Value::Float(FloatTensor::from_tensor(y, out_shape))
    }
}

/// The steps of a time-major `[N, B, F]` as `N` tensors `[B, F]`, by halving the time axis.
///
/// A narrow's backward writes its gradient into a zero tensor of the narrowed tensor's full
/// shape (burn-autodiff's slice backward), which is then added to that tensor's gradient. `N`
/// narrows of one `[N, B, F]` cost `N` full-size zero fills and additions in the backward pass,
/// quadratic in `N`; halving costs two per level, `2·log2(N)` in all.
fn time_steps(x: Tensor<3>) -> Vec<Tensor<2>> {
    fn split(x: Tensor<3>, out: &mut Vec<Tensor<2>>) {
        let [n, b, f] = x.dims();
        if n == 0 {
            return;
        }
        if n == 1 {
            out.push(x.reshape([b, f]));
            return;
        }
        let half = n / 2;
        split(x.clone().narrow(0, 0, half), out);
        split(x.narrow(0, half, n - half), out);
    }
    let mut out = Vec::with_capacity(x.dims()[0]);
    split(x, &mut out);
    out
}
