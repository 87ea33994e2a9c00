//! recspec patch (vendor/README.md): a vectorised `exp` for f32 slices.
//!
//! The published crate maps `f32::exp` over every element, one call to libm's scalar `expf` at a
//! time. Here each block of `BLOCK` elements whose inputs all lie in `[LO, HI]` goes through a
//! branch-free Cephes-style kernel the compiler vectorises (range reduction by n·ln 2 in two
//! parts, a degree-6 polynomial on |r| <= ln 2 / 2, 2^n built in the exponent bits; at most
//! 2 ulp from the correctly rounded result over that range). A block with any input outside it
//! (overflow, results near or below the subnormal range, infinities, NaN) takes `f32::exp` for
//! every element, so those keep libm's exact results. On x86_64 the loop is compiled for
//! AVX-512F, AVX2+FMA and the baseline, and the best the CPU has is chosen at run time.

/// The kernel's input range: 2^n stays a normal float for every n it produces (n in
/// [-126, 127]) and the result is far from overflow.
const LO: f32 = -87.0;
const HI: f32 = 88.0;
const BLOCK: usize = 64;

const LOG2E: f32 = core::f32::consts::LOG2_E;
/// 1.5 · 2^23: adding it rounds a float of magnitude below 2^22 to the nearest integer, which
/// then sits in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// ln 2 in two parts (Cephes): `C1` has few enough mantissa bits that n·C1 is exact.
const C1: f32 = 0.693_359_4;
const C2: f32 = -2.121_944_4e-4;

#[inline(always)]
fn exp_in_range(x: f32) -> f32 {
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let bits_n = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * C1 - n * C2;
    let r2 = r * r;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let e = p * r2 + r + 1.0;
    e * f32::from_bits(((bits_n + 127) << 23) as u32)
}

#[inline(always)]
fn exp_block(a: &mut [f32]) {
    let in_range = a.iter().fold(true, |ok, &x| ok & (x >= LO) & (x <= HI));
    if in_range {
        for x in a.iter_mut() {
            *x = exp_in_range(*x);
        }
    } else {
        for x in a.iter_mut() {
            *x = x.exp();
        }
    }
}

#[inline(always)]
fn exp_slice(a: &mut [f32]) {
    for block in a.chunks_mut(BLOCK) {
        exp_block(block);
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f")]
unsafe fn exp_slice_avx512(a: &mut [f32]) {
    exp_slice(a)
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_slice_avx2(a: &mut [f32]) {
    exp_slice(a)
}

fn exp_seq(a: &mut [f32]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { exp_slice_avx512(a) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { exp_slice_avx2(a) };
        }
    }
    exp_slice(a)
}

/// `a[i] = exp(a[i])` for every element.
pub fn exp_inplace_f32(a: &mut [f32]) {
    #[cfg(feature = "rayon")]
    if a.len() >= 1 << 20 {
        use rayon::prelude::*;
        a.par_chunks_mut(1 << 16).for_each(exp_seq);
        return;
    }
    exp_seq(a)
}
