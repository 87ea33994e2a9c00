//! The execution plan of a compiled graph, and the weights it runs with.
//!
//! A `Plan` evaluates every symbolic shape at the graph's hyperparameter values once; `Weights`
//! is the burn `Module` holding one flat parameter per weight tensor, in instance order.

use crate::dim::Dim;
use crate::ir::{Graph, ParamTensor};
use crate::ops::Op;
use burn::module::Param;
use burn::prelude::*;
use std::collections::HashMap;

/// All trainable and state tensors of a model, flat, in the plan's order.
#[derive(Module, Debug)]
pub struct Weights {
    pub tensors: Vec<Param<Tensor<1>>>,
}

/// One parameter tensor of the plan.
#[derive(Clone, Debug)]
pub struct ParamInfo {
    /// `instance/param`, e.g. `f_c/attended/query.weight`.
    pub key: String,
    pub shape: Vec<usize>,
    /// Persistent state updated by the forward pass, not by the optimizer.
    pub state: bool,
    pub op: Op,
}

/// A graph with its shapes evaluated, ready to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub graph: Graph,
    dims: HashMap<String, i64>,
    /// Instance name to the index of its first parameter and its parameter names.
    slots: HashMap<String, (usize, Vec<String>)>,
    pub params: Vec<ParamInfo>,
}

impl Plan {
    pub fn new(graph: Graph) -> Result<Plan, String> {
        let dims: HashMap<String, i64> = graph.dims.iter().map(|d| (d.name.clone(), d.value)).collect();
        let mut slots = HashMap::new();
        let mut params = vec![];
        for inst in &graph.instances {
            slots.insert(inst.name.clone(), (params.len(), inst.params.iter().map(|p| p.name.clone()).collect()));
            for p in &inst.params {
                params.push(ParamInfo {
                    key: format!("{}/{}", inst.name, p.name),
                    shape: eval_shape(&dims, p)?,
                    state: p.state,
                    op: inst.op,
                });
            }
        }
        Ok(Plan { graph, dims, slots, params })
    }

    /// Evaluates a dim with the batch size bound to `batch`.
    pub fn dim(&self, d: &Dim, batch: usize) -> usize {
        let v = d.eval(&|s| if s == crate::resolve::BATCH { Some(batch as i64) } else { self.dims.get(s).copied() });
        // The checker evaluated every dim the graph uses; values are positive.
        v.unwrap_or(0).max(0) as usize
    }

    /// Index of an instance's parameter in `Weights::tensors`.
    pub fn index(&self, instance: &str, param: &str) -> usize {
        let (first, names) = &self.slots[instance];
        first + names.iter().position(|n| n == param).expect("parameter declared by the op's shape rule")
    }

    pub fn trainable_count(&self) -> usize {
        self.params.iter().filter(|p| !p.state).map(|p| p.shape.iter().product::<usize>()).sum()
    }

    /// Fresh weights, deterministic for a seed on every backend (drawn on the host).
    pub fn init(&self, device: &Device, seed: u64) -> Weights {
        let tensors = self
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut rng = SplitMix(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1)));
                let n: usize = p.shape.iter().product();
                let values = init_values(p, n, &mut rng);
                let t = Tensor::<1>::from_data(TensorData::new(values, [n]), device);
                let param = Param::from_tensor(t);
                if p.state {
                    param.set_require_grad(false)
                } else {
                    param
                }
            })
            .collect();
        Weights { tensors }
    }
}

fn eval_shape(dims: &HashMap<String, i64>, p: &ParamTensor) -> Result<Vec<usize>, String> {
    p.shape
        .iter()
        .map(|d| {
            d.eval(&|s| dims.get(s).copied())
                .map(|v| v as usize)
                .map_err(|e| format!("parameter {} dimension {d}: {e}", p.name))
        })
        .collect()
}

fn init_values(p: &ParamInfo, n: usize, rng: &mut SplitMix) -> Vec<f32> {
    let name = p.key.rsplit('/').next().unwrap_or("");
    let fan_in = if p.shape.len() >= 2 { p.shape[p.shape.len() - 2] } else { p.shape.first().copied().unwrap_or(1) };
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    match (p.op, name) {
        (_, "table") => (0..n).map(|_| (rng.normal() * 0.05) as f32).collect(),
        (_, "slots") => (0..n).map(|_| (rng.normal() * 0.1) as f32).collect(),
        (_, "gamma" | "norm.gamma") => vec![1.0; n],
        (Op::Wide, _) => vec![0.0; n],
        (Op::Gru, _) => {
            let h = p.shape.last().copied().unwrap_or(3) / 3;
            let b = 1.0 / (h.max(1) as f64).sqrt();
            (0..n).map(|_| rng.uniform(-b, b) as f32).collect()
        }
        (_, n2) if n2.ends_with("bias") || n2.ends_with("beta") => vec![0.0; n],
        _ => (0..n).map(|_| rng.uniform(-bound, bound) as f32).collect(),
    }
}

/// SplitMix64: a small, fast, seedable generator for initialisation and sampling.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
