//! The weights a program runs with: one flat burn parameter per parameter slot, initialised on
//! the host from a seeded generator so that every backend starts from the same values.

use crate::lower::{InitRule, ParamRole, Program};
use burn::module::Param;
use burn::prelude::*;

/// All trainable and state tensors of a model, flat, in the program's parameter order.
#[derive(Module, Debug)]
pub struct Weights {
    pub tensors: Vec<Param<Tensor<1>>>,
}

impl Weights {
    /// Fresh weights for `program`, deterministic for a seed on every backend.
    pub fn init(program: &Program, device: &Device, seed: u64) -> Weights {
        let tensors = program
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut rng = SplitMix(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1)));
                let n = p.numel();
                let values: Vec<f32> = match p.init {
                    InitRule::Constant(v) => vec![v; n],
                    InitRule::Normal { std } => (0..n).map(|_| (rng.normal() * std) as f32).collect(),
                    InitRule::Uniform { bound } => (0..n).map(|_| rng.uniform(-bound, bound) as f32).collect(),
                };
                let param = Param::from_tensor(Tensor::<1>::from_data(TensorData::new(values, [n]), device));
                match p.role {
                    ParamRole::State => param.set_require_grad(false),
                    ParamRole::Trained => param,
                }
            })
            .collect();
        Weights { tensors }
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
