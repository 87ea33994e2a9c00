//! Kernels of the multi-step components: sampled logits, self-attention, GRU, MMoE and the
//! slot memory.

use super::*;

impl Cx<'_> {
    pub(super) fn sampled_logits(&mut self, n: &Node, out_shape: &[usize]) -> Val {
        let s = self.fp(n, "s").r2();
        let table = self.table(n);
        let [vocab, _] = table.dims();
        let samples = self.size(n, "samples");
        let target_src = operand(n, "target").expect("target");
        let target = self.ip(n, "target");
        let b = self.batch.len;
        let pos_vec: Tensor<2> = table.clone().select(0, target.t.clone().reshape([b]));
        let pos = (s.clone() * pos_vec).sum_dim(1);
        let ids: Vec<i64> = (0..samples).map(|_| self.rng.below(vocab) as i64).collect();
        let device = s.device();
        let neg_table = table.select(0, Tensor::<1, Int>::from_data(TensorData::new(ids.clone(), [samples]), &device));
        let mut neg = s.matmul(neg_table.transpose());
        if self.flag(n, "logq") {
            neg = neg.sub_scalar((samples as f64 / vocab as f64).ln());
        }
        // A sampled negative equal to the example's own target is not a negative.
        let targets = self.batch.host_ids.get(target_src).cloned().unwrap_or_default();
        let hits: Vec<f32> =
            targets.iter().flat_map(|t| ids.iter().map(move |i| if i == t { 1.0 } else { 0.0 })).collect();
        if hits.iter().any(|h| *h > 0.0) {
            let mask = Tensor::<2>::from_data(TensorData::new(hits, [b, samples]), &device);
            neg = neg + mask.mul_scalar(NEG_INF);
        }
        Val::F(Ft::from2(Tensor::cat(vec![pos, neg], 1), out_shape.to_vec()))
    }

    pub(super) fn self_attention(&mut self, n: &Node, out_shape: &[usize]) -> Val {
        let x = self.fp(n, "x");
        let [b, len, d] = [x.shape[0], x.shape[1], x.shape[2]];
        let heads = self.int(n, "heads").max(1) as usize;
        let dh = d / heads;
        let x2 = x.r2();
        let proj = |name: &str| -> Tensor<4> {
            let y =
                affine(x2.clone(), self.p2(n, &format!("{name}.weight")), Some(self.p1(n, &format!("{name}.bias"))));
            y.reshape([b, len, heads, dh]).swap_dims(1, 2)
        };
        let (q, k, v) = (proj("query"), proj("key"), proj("value"));
        let scale = match self.sym(n, "scale") {
            "sqrt_model" => (d as f64).sqrt(),
            "sqrt_len" => (len as f64).sqrt(),
            _ => (dh as f64).sqrt(),
        };
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar(scale);
        let m: Tensor<4> = self.mp(n, "mask").float().t.reshape([b, 1, 1, len]);
        let bias = m.neg().add_scalar(1.0).mul_scalar(NEG_INF);
        let att = activation::softmax(scores + bias, 3);
        let att = self.dropout(att, self.float(n, "dropout"));
        let ctx: Tensor<2> = att.matmul(v).swap_dims(1, 2).reshape([b * len, d]);
        let mut y = affine(ctx, self.p2(n, "out.weight"), Some(self.p1(n, "out.bias")));
        if self.flag(n, "residual") {
            y = y + x2;
        }
        if self.flag(n, "layer_norm") {
            y = layer_norm(y, self.p1(n, "norm.gamma"), self.p1(n, "norm.beta"), 1e-5);
        }
        Val::F(Ft::from2(y, out_shape.to_vec()))
    }

    pub(super) fn gru(&mut self, n: &Node, out_shape: &[usize]) -> Val {
        let x = self.fp(n, "x");
        let [b, len, din] = [x.shape[0], x.shape[1], x.shape[2]];
        let (w_ih, w_hh) = (self.p2(n, "input.weight"), self.p2(n, "hidden.weight"));
        let (b_ih, b_hh) = (self.p1(n, "input.bias"), self.p1(n, "hidden.bias"));
        let h_dim = w_hh.dims()[0];
        let gi: Tensor<3> = affine(x.t.reshape([b * len, din]), w_ih, Some(b_ih)).reshape([b, len, 3 * h_dim]);
        let m: Tensor<3> = self.mp(n, "mask").float().t.reshape([b, len, 1]);
        let mut h = Tensor::<2>::zeros([b, h_dim], &gi.device());
        let mut all = vec![];
        for t in 0..len {
            let g: Tensor<2> = gi.clone().narrow(1, t, 1).reshape([b, 3 * h_dim]);
            let gh = affine(h.clone(), w_hh.clone(), Some(b_hh.clone()));
            let r = activation::sigmoid(g.clone().narrow(1, 0, h_dim) + gh.clone().narrow(1, 0, h_dim));
            let z = activation::sigmoid(g.clone().narrow(1, h_dim, h_dim) + gh.clone().narrow(1, h_dim, h_dim));
            let cand = activation::tanh(g.narrow(1, 2 * h_dim, h_dim) + r * gh.narrow(1, 2 * h_dim, h_dim));
            let new = (z.clone().neg().add_scalar(1.0)) * cand + z * h.clone();
            // Padding keeps the previous state, so the final state is the last valid one.
            let mt: Tensor<2> = m.clone().narrow(1, t, 1).reshape([b, 1]);
            h = new * mt.clone() + h * mt.neg().add_scalar(1.0);
            all.push(h.clone());
        }
        let y = if self.sym(n, "output") == "all" {
            Tensor::stack::<3>(all, 1).reshape([numel(out_shape)])
        } else {
            h.reshape([b * h_dim])
        };
        Val::F(Ft::new(y, out_shape.to_vec()))
    }

    pub(super) fn mmoe(&mut self, n: &Node, out_shape: &[usize]) -> Val {
        let x = self.fp(n, "x").r2();
        let [b, din] = x.dims();
        let experts = self.int(n, "experts") as usize;
        let tasks = self.int(n, "tasks") as usize;
        let layers = match n.attrs.get("units") {
            Some(Attr::List(l)) => l.len(),
            _ => 0,
        };
        let mut h: Tensor<3> = x.clone().unsqueeze_dim::<3>(0).repeat_dim(0, experts);
        for i in 0..layers {
            let w = self.p3(n, &format!("experts.layer{i}.weight"));
            let bias = self.p2(n, &format!("experts.layer{i}.bias")).unsqueeze_dim::<3>(1);
            h = act(h.matmul(w) + bias, self.sym(n, "act"));
        }
        let wg = self.p3(n, "gates.weight");
        let bg = self.p2(n, "gates.bias").unsqueeze_dim::<3>(1);
        let xg: Tensor<3> = x.reshape([1, b, din]).repeat_dim(0, tasks);
        let gates = activation::softmax(xg.matmul(wg) + bg, 2);
        let y = gates.swap_dims(0, 1).matmul(h.swap_dims(0, 1));
        Val::F(Ft::from3(y, out_shape.to_vec()))
    }

    /// DUMN eqs. 8-12 and 18. Read: r = w^r M with w^r = softmax(cosine(k^r, M(j))) over slots.
    /// Write: w^w from the write key the same way, M' = (1 - w^w (x) erase) . M + w^w (x) add,
    /// averaged over the batch. `both` also returns q = w^w M', the write-addressed summary of the
    /// written memory: the only path by which erase/add/write-key weights get gradients (the
    /// memory itself is state, not a trained weight).
    pub(super) fn memory(&mut self, n: &Node, out_shape: &[usize]) -> Val {
        let key = self.fp(n, "key").r2();
        let write = self.fp(n, "write").r2();
        let b = key.dims()[0];
        let slots_index = self.plan.index(n.instance.as_deref().expect("instance"), "slots");
        // A memory applied several times in one pass (a shared instance) sees its earlier writes.
        let mem = match self.state.iter().rev().find(|(i, _)| *i == slots_index) {
            Some((_, m)) => m.clone().reshape(self.p2(n, "slots").dims()),
            None => self.p2(n, "slots").detach(),
        };
        let mn = mem.clone() / l2(mem.clone());
        let address = |k: Tensor<2>| activation::softmax((k.clone() / l2(k)).matmul(mn.clone().transpose()), 1);
        let w_read = address(affine(key, self.p2(n, "read_key.weight"), Some(self.p1(n, "read_key.bias"))));
        let r = w_read.matmul(mem.clone());
        let w_write =
            address(affine(write.clone(), self.p2(n, "write_key.weight"), Some(self.p1(n, "write_key.bias"))));
        let erase =
            activation::sigmoid(affine(write.clone(), self.p2(n, "erase.weight"), Some(self.p1(n, "erase.bias"))));
        let add = activation::tanh(affine(write, self.p2(n, "add.weight"), Some(self.p1(n, "add.bias"))));
        let wt = w_write.clone().transpose();
        let erase_term = wt.clone().matmul(erase).div_scalar(b as f64);
        let add_term = wt.matmul(add).div_scalar(b as f64);
        let new_mem = mem * erase_term.neg().add_scalar(1.0) + add_term;
        if self.train && self.flag(n, "persist") {
            let numel_mem: usize = new_mem.dims().iter().product();
            self.state.retain(|(i, _)| *i != slots_index);
            self.state.push((slots_index, new_mem.clone().detach().reshape([numel_mem])));
        }
        if self.sym(n, "output") == "both" {
            let q = w_write.matmul(new_mem);
            let y: Tensor<3> = Tensor::stack(vec![r, q], 1);
            return Val::F(Ft::from3(y, out_shape.to_vec()));
        }
        Val::F(Ft::from2(r, out_shape.to_vec()))
    }

    /// A random valid position per row in training, the last valid one in evaluation.
    pub(super) fn sample_valid(&mut self, n: &Node, out_shape: &[usize]) -> Val {
        let x = self.fp(n, "x");
        let [b, len, d] = [x.shape[0], x.shape[1], x.shape[2]];
        let m: Tensor<2> = self.mp(n, "mask").float().t.reshape([b, len]);
        let device = m.device();
        let scores: Vec<f32> = if self.train {
            (0..b * len).map(|_| 1.0 + self.rng.unit() as f32).collect()
        } else {
            (0..b * len).map(|i| 1.0 + (i % len) as f32).collect()
        };
        let scores = Tensor::<2>::from_data(TensorData::new(scores, [b, len]), &device);
        // Padding scores below every valid position; a row with none picks position 0, zeroed.
        let masked = scores * m.clone() - m.clone().neg().add_scalar(1.0);
        let pick: Tensor<3, Int> = masked.argmax(1).reshape([b, 1, 1]).repeat_dim(2, d);
        let x3: Tensor<3> = x.t.reshape([b, len, d]);
        let any: Tensor<2> = m.sum_dim(1).clamp_max(1.0);
        let y: Tensor<2> = x3.gather(1, pick).reshape([b, d]) * any;
        Val::F(Ft::from2(y, out_shape.to_vec()))
    }
}
