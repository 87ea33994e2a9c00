//! The forward pass: interprets a plan's nodes in order with burn tensor operations.
//!
//! Every op of `crate::ops` has one kernel here. Padding never leaks: masked positions are
//! excluded from attention keys, pooling, softmax and losses. The graph was shape-checked, so
//! kernels only read shapes, never validate them.

use super::plan::{Plan, SplitMix, Weights};
use super::tensor::{numel, split3, Ft, It, Mt, Val};
use crate::ir::{Attr, InputRole, Node};
use crate::ops::Op;
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::Distribution;
use std::collections::HashMap;

mod components;

const EPS: f64 = 1e-7;
const NEG_INF: f64 = -1e9;

/// One batch on the device: every graph input by name, plus label streams.
#[derive(Clone, Debug)]
pub struct DeviceBatch {
    pub len: usize,
    pub values: HashMap<String, Val>,
    pub labels: HashMap<String, Tensor<1>>,
    /// Host copies of id inputs, for sampling that must avoid the true target.
    pub host_ids: HashMap<String, Vec<i64>>,
    pub users: Vec<u64>,
}

impl DeviceBatch {
    /// Moves a host batch to the device.
    pub fn from_host(b: &crate::data::HostBatch, device: &Device) -> DeviceBatch {
        let mut values = HashMap::new();
        let mut host_ids = HashMap::new();
        for (name, (data, shape)) in &b.ids {
            let t = Tensor::<1, Int>::from_data(TensorData::new(data.clone(), [data.len()]), device);
            values.insert(name.clone(), Val::I(It { t, shape: shape.clone() }));
            host_ids.insert(name.clone(), data.clone());
        }
        for (name, (data, shape)) in b.floats.iter() {
            let t = Tensor::<1>::from_data(TensorData::new(data.clone(), [data.len()]), device);
            values.insert(name.clone(), Val::F(Ft::new(t, shape.clone())));
        }
        for (name, data) in &b.weights {
            let t = Tensor::<1>::from_data(TensorData::new(data.clone(), [data.len()]), device);
            values.insert(name.clone(), Val::F(Ft::new(t, vec![data.len()])));
        }
        for (name, (data, shape)) in &b.masks {
            let t = Tensor::<1, Bool>::from_data(TensorData::new(data.clone(), [data.len()]), device);
            values.insert(name.clone(), Val::M(Mt { t, shape: shape.clone() }));
        }
        let labels = b
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), device)))
            .collect();
        DeviceBatch { len: b.len, values, labels, host_ids, users: b.users.clone() }
    }
}

/// What a forward pass produces.
pub struct Forward {
    /// Every node's value, by node name (inputs too).
    pub values: HashMap<String, Val>,
    /// `(loss name, weight, mean over the batch)` for each loss term.
    pub losses: Vec<(String, f64, Tensor<1>)>,
    /// The weighted sum of the loss terms, shape [1].
    pub total: Tensor<1>,
    /// New values of persistent state parameters, by index into `Weights::tensors`.
    pub state: Vec<(usize, Tensor<1>)>,
}

/// Runs the graph on one batch. `train` enables dropout and state updates; `step` seeds sampling.
pub fn forward(plan: &Plan, w: &Weights, batch: &DeviceBatch, train: bool, step: u64) -> Forward {
    let mut cx = Cx::new(plan, w, batch, train, step);
    for node in &plan.graph.nodes {
        let v = cx.node(node);
        cx.values.insert(node.name.clone(), v);
    }
    let device = batch_device(batch);
    let mut total = Tensor::<1>::zeros([1], &device);
    let mut losses = vec![];
    for l in &plan.graph.losses {
        let per_example = cx.f(&l.node).t;
        let mean = per_example.mean();
        total = total + mean.clone().mul_scalar(l.weight);
        losses.push((l.name.clone(), l.weight, mean));
    }
    Forward { values: cx.values, losses, total, state: cx.state }
}

/// Evaluates (eval mode) only the nodes `targets` depend on, so that serving needs only their
/// inputs; returns every value computed, inputs included.
pub fn forward_to(plan: &Plan, w: &Weights, batch: &DeviceBatch, targets: &[&str]) -> HashMap<String, Val> {
    let needed = ancestors(plan, targets);
    let mut cx = Cx::new(plan, w, batch, false, 0);
    for node in plan.graph.nodes.iter().filter(|n| needed.contains(n.name.as_str())) {
        let v = cx.node(node);
        cx.values.insert(node.name.clone(), v);
    }
    cx.values
}

/// `targets` and every node and input they read, transitively.
pub fn ancestors<'p>(plan: &'p Plan, targets: &[&str]) -> std::collections::HashSet<&'p str> {
    let by_name: HashMap<&str, &Node> = plan.graph.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<&str> = targets.iter().filter_map(|t| by_name.get(t).map(|n| n.name.as_str())).collect();
    while let Some(name) = stack.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(n) = by_name.get(name) {
            stack.extend(n.operands.iter().map(|o| o.source.as_str()));
        }
    }
    seen
}

fn batch_device(b: &DeviceBatch) -> Device {
    match b.values.values().next() {
        Some(Val::F(x)) => x.t.device(),
        Some(Val::I(x)) => x.t.device(),
        Some(Val::M(x)) => x.t.device(),
        None => b.labels.values().next().map(|t| t.device()).unwrap_or_default(),
    }
}

struct Cx<'a> {
    plan: &'a Plan,
    w: &'a Weights,
    batch: &'a DeviceBatch,
    values: HashMap<String, Val>,
    train: bool,
    state: Vec<(usize, Tensor<1>)>,
    rng: SplitMix,
}

impl<'a> Cx<'a> {
    /// A pass over `batch` whose values start as the batch's inputs; `step` seeds sampling.
    fn new(plan: &'a Plan, w: &'a Weights, batch: &'a DeviceBatch, train: bool, step: u64) -> Cx<'a> {
        let rng = SplitMix(step ^ 0xA5A5_5A5A_0F0F_F0F0);
        Cx { plan, w, batch, values: batch.values.clone(), train, state: vec![], rng }
    }
}

fn operand<'n>(node: &'n Node, port: &str) -> Option<&'n str> {
    node.operands.iter().find(|o| o.port == port).map(|o| o.source.as_str())
}

fn act<const D: usize>(x: Tensor<D>, name: &str) -> Tensor<D> {
    match name {
        "relu" => activation::relu(x),
        "sigmoid" => activation::sigmoid(x),
        "tanh" => activation::tanh(x),
        "gelu" => activation::gelu(x),
        _ => x,
    }
}

fn norm_axis(axis: i64, rank: usize) -> usize {
    if axis < 0 {
        (axis + rank as i64) as usize
    } else {
        axis as usize
    }
}

/// x [N, Din] @ w [Din, Dout] + b.
fn affine(x: Tensor<2>, w: Tensor<2>, b: Option<Tensor<1>>) -> Tensor<2> {
    let y = x.matmul(w);
    match b {
        Some(b) => y + b.unsqueeze_dim::<2>(0),
        None => y,
    }
}

fn l2(x: Tensor<2>) -> Tensor<2> {
    x.clone().mul(x).sum_dim(1).add_scalar(1e-12).sqrt()
}

impl Cx<'_> {
    fn val(&self, source: &str) -> &Val {
        // Operands are inputs or earlier nodes (topological order is an IR invariant).
        self.values.get(source).unwrap_or_else(|| panic!("operand `{source}` evaluated before use"))
    }

    fn f(&self, source: &str) -> Ft {
        match self.val(source) {
            Val::F(x) => x.clone(),
            Val::M(m) => m.float(),
            Val::I(i) => Ft::new(i.t.clone().float(), i.shape.clone()),
        }
    }

    fn fp(&self, node: &Node, port: &str) -> Ft {
        self.f(operand(node, port).expect("port bound by the checker"))
    }

    fn ip(&self, node: &Node, port: &str) -> It {
        match self.val(operand(node, port).expect("port bound by the checker")) {
            Val::I(i) => i.clone(),
            _ => unreachable!("the checker requires ids on port {port}"),
        }
    }

    fn mp(&self, node: &Node, port: &str) -> Mt {
        match self.val(operand(node, port).expect("port bound by the checker")) {
            Val::M(m) => m.clone(),
            _ => unreachable!("the checker requires a mask on port {port}"),
        }
    }

    fn int(&self, node: &Node, name: &str) -> i64 {
        match node.attrs.get(name) {
            Some(Attr::Int(d)) => d.as_constant().unwrap_or_else(|| self.plan.dim(d, self.batch.len) as i64),
            _ => 0,
        }
    }

    fn size(&self, node: &Node, name: &str) -> usize {
        match node.attrs.get(name) {
            Some(Attr::Int(d)) => self.plan.dim(d, self.batch.len),
            _ => 0,
        }
    }

    fn float(&self, node: &Node, name: &str) -> f64 {
        match node.attrs.get(name) {
            Some(Attr::Float(v)) => *v,
            _ => 0.0,
        }
    }

    fn flag(&self, node: &Node, name: &str) -> bool {
        matches!(node.attrs.get(name), Some(Attr::Bool(true)))
    }

    fn sym<'n>(&self, node: &'n Node, name: &str) -> &'n str {
        match node.attrs.get(name) {
            Some(Attr::Sym(s)) => s,
            _ => "",
        }
    }

    /// A parameter of the node's instance, viewed at rank 1.
    fn param(&self, node: &Node, name: &str) -> (Tensor<1>, Vec<usize>) {
        let inst = node.instance.as_deref().expect("constructor nodes have an instance");
        let i = self.plan.index(inst, name);
        (self.w.tensors[i].val(), self.plan.params[i].shape.clone())
    }

    fn p2(&self, node: &Node, name: &str) -> Tensor<2> {
        let (t, s) = self.param(node, name);
        let last = *s.last().unwrap_or(&1);
        t.reshape([numel(&s) / last.max(1), last])
    }

    fn p3(&self, node: &Node, name: &str) -> Tensor<3> {
        let (t, s) = self.param(node, name);
        t.reshape([s[0], s[1], s[2]])
    }

    fn p1(&self, node: &Node, name: &str) -> Tensor<1> {
        self.param(node, name).0
    }

    fn dropout<const D: usize>(&self, x: Tensor<D>, rate: f64) -> Tensor<D> {
        if !self.train || rate <= 0.0 {
            return x;
        }
        let keep = Tensor::<D>::random(x.shape(), Distribution::Bernoulli(1.0 - rate), &x.device());
        x.mul(keep).div_scalar(1.0 - rate)
    }

    fn node(&mut self, n: &Node) -> Val {
        use Op::*;
        let b = self.batch.len;
        let out_shape: Vec<usize> = n.ty.shape.iter().map(|d| self.plan.dim(d, b)).collect();
        let f = |t: Tensor<1>| Val::F(Ft::new(t, out_shape.clone()));
        match n.op {
            Add | Sub | Mul | Div | Neg => {
                if let Some(x) = operand(n, "x") {
                    let x = self.f(x).t;
                    let (s, left) = match (n.attrs.get("lhs"), n.attrs.get("rhs")) {
                        (Some(Attr::Float(v)), _) => (*v, true),
                        (_, Some(Attr::Float(v))) => (*v, false),
                        _ => (0.0, false),
                    };
                    return f(match (n.op, left) {
                        (Add, _) => x.add_scalar(s),
                        (Sub, true) => x.neg().add_scalar(s),
                        (Sub, false) => x.sub_scalar(s),
                        (Mul, _) => x.mul_scalar(s),
                        (Div, true) => x.recip().mul_scalar(s),
                        (Div, false) => x.div_scalar(s),
                        _ => x.neg(),
                    });
                }
                let (a, bb) = (self.fp(n, "a").t, self.fp(n, "b").t);
                f(match n.op {
                    Add => a + bb,
                    Sub => a - bb,
                    Mul => a * bb,
                    _ => a / bb,
                })
            }
            Concat | Stack => {
                let parts: Vec<Val> = n.operands.iter().map(|o| self.val(&o.source).clone()).collect();
                let first = parts[0].shape().to_vec();
                let (axis, stack) = if n.op == Stack {
                    (norm_axis(self.int(n, "axis"), first.len() + 1), true)
                } else {
                    (norm_axis(self.int(n, "axis"), first.len()), false)
                };
                let view = |s: &[usize]| -> [usize; 3] {
                    if stack {
                        [numel(&s[..axis]), 1, numel(&s[axis..])]
                    } else {
                        split3(s, axis)
                    }
                };
                match &parts[0] {
                    Val::M(_) => {
                        let ts: Vec<Tensor<3, Bool>> =
                            parts
                                .iter()
                                .map(|p| {
                                    if let Val::M(m) = p {
                                        m.t.clone().reshape(view(&m.shape))
                                    } else {
                                        unreachable!()
                                    }
                                })
                                .collect();
                        let n_out = numel(&out_shape);
                        Val::M(Mt { t: Tensor::cat(ts, 1).reshape([n_out]), shape: out_shape })
                    }
                    _ => {
                        let ts: Vec<Tensor<3>> = n
                            .operands
                            .iter()
                            .map(|o| {
                                let x = self.f(&o.source);
                                x.t.reshape(view(&x.shape))
                            })
                            .collect();
                        f(Tensor::cat(ts, 1).reshape([numel(&out_shape)]))
                    }
                }
            }
            Slice | Index => {
                let x = self.val(operand(n, "x").expect("x")).clone();
                let axis = norm_axis(self.int(n, "axis"), x.shape().len());
                let (start, len) = if n.op == Slice {
                    (self.int(n, "start") as usize, self.size(n, "len"))
                } else {
                    (self.int(n, "index") as usize, 1)
                };
                let s3 = split3(x.shape(), axis);
                let n_out = numel(&out_shape);
                match x {
                    Val::F(x) => f(x.t.reshape(s3).narrow(1, start, len).reshape([n_out])),
                    Val::I(x) => {
                        Val::I(It { t: x.t.reshape(s3).narrow(1, start, len).reshape([n_out]), shape: out_shape })
                    }
                    Val::M(x) => {
                        Val::M(Mt { t: x.t.reshape(s3).narrow(1, start, len).reshape([n_out]), shape: out_shape })
                    }
                }
            }
            Repeat => {
                let x = self.fp(n, "x");
                let axis = norm_axis(self.int(n, "axis"), x.rank() + 1);
                let times = self.size(n, "n");
                let v: Tensor<3> = x.t.reshape([numel(&x.shape[..axis]), 1, numel(&x.shape[axis..])]);
                f(v.repeat_dim(1, times).reshape([numel(&out_shape)]))
            }
            Unsqueeze | Squeeze | Flatten => self.val(operand(n, "x").expect("x")).clone().with_shape(out_shape),
            ToFloat => f(self.fp(n, "x").t),
            Nonempty => {
                let m = self.mp(n, "mask").float();
                let [rows, len, _] = split3(&m.shape, m.shape.len() - 1);
                let any: Tensor<2> = m.t.reshape([rows, len]).sum_dim(1).clamp_max(1.0);
                f(any.reshape([rows]))
            }
            SampleValid => self.sample_valid(n, &out_shape),
            Keep => {
                let (m, w) = (self.mp(n, "mask"), self.fp(n, "where"));
                Val::M(Mt { t: m.t.bool_and(w.t.greater_elem(0.5)), shape: out_shape })
            }
            FullMask => {
                let device = self.fp(n, "x").t.device();
                let ones = Tensor::<1>::ones([numel(&out_shape)], &device).greater_elem(0.5);
                Val::M(Mt { t: ones, shape: out_shape })
            }
            Sigmoid => f(activation::sigmoid(self.fp(n, "x").t)),
            Relu => f(activation::relu(self.fp(n, "x").t)),
            Tanh => f(activation::tanh(self.fp(n, "x").t)),
            Softmax => {
                let x = self.fp(n, "x");
                let axis = norm_axis(self.int(n, "axis"), x.rank());
                f(activation::softmax(x.r3(axis), 1).reshape([numel(&out_shape)]))
            }
            MaskedSoftmax => {
                let (x, m) = (self.fp(n, "x"), self.mp(n, "mask").float());
                f(masked_softmax(x.r2(), m.r2(), 1.0).reshape([numel(&out_shape)]))
            }
            Dropout => {
                let rate = self.float(n, "rate");
                f(self.dropout(self.fp(n, "x").t, rate))
            }
            Pool => {
                let x = self.fp(n, "x");
                let [bb, len, rest] = split3(&x.shape, 1);
                let x3: Tensor<3> = x.t.reshape([bb, len, rest]);
                let m: Tensor<3> = self.mp(n, "mask").float().t.reshape([bb, len, 1]);
                let include = self.sym(n, "padding") == "include";
                let y: Tensor<3> = match (self.sym(n, "mode"), include) {
                    ("mean", false) => (x3 * m.clone()).sum_dim(1) / m.sum_dim(1).clamp_min(1.0),
                    ("mean", true) => x3.mean_dim(1),
                    ("sum", false) => (x3 * m).sum_dim(1),
                    ("sum", true) => x3.sum_dim(1),
                    _ => {
                        let masked = x3 * m.clone() + (m.clone().neg().add_scalar(1.0)).mul_scalar(NEG_INF);
                        masked.max_dim(1) * m.sum_dim(1).clamp_max(1.0)
                    }
                };
                f(y.reshape([numel(&out_shape)]))
            }
            AttentionPool => {
                let v = self.fp(n, "values");
                let [bb, len, d] = [v.shape[0], v.shape[1], v.shape[2]];
                let s: Tensor<2> = self.fp(n, "scores").t.reshape([bb, len]);
                let m: Tensor<2> = self.mp(n, "mask").float().t.reshape([bb, len]);
                let weights = match self.sym(n, "norm") {
                    "softmax" => masked_softmax(s, m, self.float(n, "temperature")),
                    "sum" => {
                        let sm = s * m;
                        sm.clone() / sm.sum_dim(1).clamp_min(EPS)
                    }
                    _ => s * m,
                };
                let v3: Tensor<3> = v.t.reshape([bb, len, d]);
                let y: Tensor<3> = (weights.unsqueeze_dim::<3>(2) * v3).sum_dim(1);
                f(y.reshape([bb * d]))
            }
            ReduceSum | ReduceMean => {
                let x = self.fp(n, "x");
                let axis = norm_axis(self.int(n, "axis"), x.rank());
                let x3 = x.r3(axis);
                let y = if n.op == ReduceSum { x3.sum_dim(1) } else { x3.mean_dim(1) };
                f(y.reshape([numel(&out_shape)]))
            }
            Dot | Cosine => {
                let (a, bb) = (self.fp(n, "a").r2(), self.fp(n, "b").r2());
                let dot = (a.clone() * bb.clone()).sum_dim(1);
                let y = if n.op == Dot { dot } else { dot / (l2(a) * l2(bb)).clamp_min(1e-8) };
                f(y.reshape([numel(&out_shape)]))
            }
            Project | Orthogonal => {
                let a = self.fp(n, "a");
                let onto = operand(n, "onto").or_else(|| operand(n, "to")).expect("onto/to");
                let bb = self.f(onto).r2();
                let a2 = a.r2();
                let coef = (a2.clone() * bb.clone()).sum_dim(1) / (bb.clone() * bb.clone()).sum_dim(1).add_scalar(1e-8);
                let proj = bb * coef;
                let y = if n.op == Project { proj } else { a2 - proj };
                f(y.reshape([numel(&out_shape)]))
            }
            Fm => {
                let x = self.fp(n, "x");
                let x3: Tensor<3> = x.t.reshape([x.shape[0], x.shape[1], x.shape[2]]);
                let s = x3.clone().sum_dim(1);
                let s2 = (x3.clone() * x3).sum_dim(1);
                let bi: Tensor<3> = (s.clone() * s - s2).mul_scalar(0.5);
                let y: Tensor<2> = bi.reshape([x.shape[0], x.shape[2]]);
                let y = if self.flag(n, "reduce") { y.sum_dim(1) } else { y };
                f(y.reshape([numel(&out_shape)]))
            }
            ItemLogits => {
                let s = self.fp(n, "s").r2();
                let table = self.table(n);
                f(s.matmul(table.transpose()).reshape([numel(&out_shape)]))
            }
            SampledLogits => self.sampled_logits(n, &out_shape),
            Embedding => {
                let ids = self.ip(n, "ids");
                let table = self.p2(n, "table");
                f(table.select(0, ids.t).reshape([numel(&out_shape)]))
            }
            PositionEmbedding => {
                let x = self.fp(n, "x");
                let [bb, len, d] = [x.shape[0], x.shape[1], x.shape[2]];
                let x3: Tensor<3> = x.t.reshape([bb, len, d]);
                let table = self.p2(n, "table").unsqueeze_dim::<3>(0);
                let y = if self.sym(n, "mode") == "concat" {
                    Tensor::cat(vec![x3, table.repeat_dim(0, bb)], 2)
                } else {
                    x3 + table
                };
                f(y.reshape([numel(&out_shape)]))
            }
            Linear => {
                let x = self.fp(n, "x").r2();
                let bias = self.flag(n, "bias").then(|| self.p1(n, "bias"));
                f(affine(x, self.p2(n, "weight"), bias).reshape([numel(&out_shape)]))
            }
            Mlp => {
                let mut h = self.fp(n, "x").r2();
                let layers = match n.attrs.get("units") {
                    Some(Attr::List(l)) => l.len(),
                    _ => 0,
                };
                let rate = self.float(n, "dropout");
                for i in 0..layers {
                    h = affine(h, self.p2(n, &format!("layer{i}.weight")), Some(self.p1(n, &format!("layer{i}.bias"))));
                    if i + 1 < layers {
                        h = self.dropout(act(h, self.sym(n, "act")), rate);
                    } else {
                        h = act(h, self.sym(n, "out_act"));
                    }
                }
                f(h.reshape([numel(&out_shape)]))
            }
            LayerNorm => {
                let x = self.fp(n, "x").r2();
                f(layer_norm(x, self.p1(n, "gamma"), self.p1(n, "beta"), self.float(n, "eps"))
                    .reshape([numel(&out_shape)]))
            }
            SelfAttention => self.self_attention(n, &out_shape),
            Gru => self.gru(n, &out_shape),
            Wide => {
                let ids = self.ip(n, "ids");
                let (bb, fields) = (ids.shape[0], ids.shape[1]);
                let w: Tensor<2> = self.p2(n, "weight").select(0, ids.t).reshape([bb, fields]);
                f((w + self.p1(n, "bias").unsqueeze_dim::<2>(0)).reshape([bb * fields]))
            }
            Mmoe => self.mmoe(n, &out_shape),
            Memory => self.memory(n, &out_shape),
            Bce | Nll | BceLogits => {
                let label = self.label(n, if n.op == Nll { "on" } else { "label" });
                let loss = match n.op {
                    BceLogits => {
                        let z = self.fp(n, "logit").t;
                        activation::relu(z.clone()) - z.clone() * label + z.abs().neg().exp().log1p()
                    }
                    _ => {
                        let p = self.fp(n, "p").t.clamp(EPS, 1.0 - EPS);
                        if n.op == Nll {
                            (label * p.log()).neg()
                        } else {
                            (label.clone() * p.clone().log()
                                + label.neg().add_scalar(1.0) * p.neg().add_scalar(1.0).log())
                            .neg()
                        }
                    }
                };
                f(self.weighted(n, loss))
            }
            SoftmaxCe | NotToRecommend => {
                let p = self.fp(n, "p").r2();
                // Without `target`, p is a sampled softmax whose column 0 is the target.
                let picked: Tensor<1> = match operand(n, "target") {
                    Some(_) => p.gather(1, self.ip(n, "target").t.reshape([b, 1])).reshape([b]),
                    None => p.narrow(1, 0, 1).reshape([b]),
                };
                let mut loss = if n.op == SoftmaxCe {
                    picked.clamp_min(EPS).log().neg()
                } else {
                    picked.neg().add_scalar(1.0).clamp_min(EPS).log().neg()
                };
                if n.attrs.contains_key("on") {
                    loss = loss * self.label(n, "on");
                }
                f(self.weighted(n, loss))
            }
            Triplet => {
                let (a, pos, neg) =
                    (self.fp(n, "anchor").r2(), self.fp(n, "positive").r2(), self.fp(n, "negative").r2());
                let dist = |x: Tensor<2>, y: Tensor<2>| -> Tensor<2> {
                    if self.sym(n, "distance") == "euclidean" {
                        l2(x - y)
                    } else {
                        let cos = (x.clone() * y.clone()).sum_dim(1) / (l2(x) * l2(y)).clamp_min(1e-8);
                        cos.neg().add_scalar(1.0)
                    }
                };
                let margin = self.float(n, "margin");
                let loss = activation::relu(dist(a.clone(), pos) - dist(a, neg) + margin);
                f(self.weighted(n, loss.reshape([b])))
            }
        }
    }

    fn label(&self, n: &Node, attr: &str) -> Tensor<1> {
        let name = self.sym(n, attr);
        self.batch.labels.get(name).cloned().unwrap_or_else(|| panic!("label stream `{name}` missing from the batch"))
    }

    fn weighted(&self, n: &Node, loss: Tensor<1>) -> Tensor<1> {
        match operand(n, "weight") {
            Some(w) => loss * self.f(w).t,
            None => loss,
        }
    }

    fn table(&self, n: &Node) -> Tensor<2> {
        let name = match n.attrs.get("table") {
            Some(Attr::Str(s)) => s.clone(),
            _ => unreachable!("item_logits carries its table"),
        };
        let i = self.plan.index(&name, "table");
        let s = &self.plan.params[i].shape;
        self.w.tensors[i].val().reshape([s[0], s[1]])
    }
}

fn masked_softmax(x: Tensor<2>, m: Tensor<2>, temperature: f64) -> Tensor<2> {
    let z = x.div_scalar(temperature.max(EPS)) + m.clone().neg().add_scalar(1.0).mul_scalar(NEG_INF);
    activation::softmax(z, 1) * m
}

fn layer_norm(x: Tensor<2>, gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Tensor<2> {
    let mean = x.clone().mean_dim(1);
    let centered = x - mean;
    let var = (centered.clone() * centered.clone()).mean_dim(1);
    centered / var.add_scalar(eps).sqrt() * gamma.unsqueeze_dim::<2>(0) + beta.unsqueeze_dim::<2>(0)
}

/// Inputs of a graph that a batch must provide.
pub fn required_inputs(plan: &Plan) -> Vec<&str> {
    plan.graph.inputs.iter().filter(|i| i.role != InputRole::Mask).map(|i| i.name.as_str()).collect()
}
