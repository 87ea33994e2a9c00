//! SplitMix64, the seedable generator behind parameter initialisation, the interpreter's
//! sampling and the training order (`data::Shuffle`). `recspec_torch.rng` reproduces it bit for
//! bit, which is what makes those the same in the generated PyTorch module.

/// The increment of SplitMix64's state per draw.
pub(crate) const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mixer (also the simulator's and the hashed
/// ids' mixer, `data::hash_bucket`).
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: a small, fast, seedable generator for initialisation and sampling.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The state after `k` draws is `state + k·γ`: a generator started there continues the
    /// stream (what parallel initialisation relies on).
    #[test]
    fn the_stream_can_be_entered_at_any_draw() {
        let mut a = SplitMix(42);
        let skipped: Vec<u64> = (0..1000).map(|_| a.next_u64()).collect();
        let mut b = SplitMix(42u64.wrapping_add(1000u64.wrapping_mul(GOLDEN_GAMMA)));
        assert_eq!(
            (0..10).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..10).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
        assert_eq!(skipped.len(), 1000);
    }
}
