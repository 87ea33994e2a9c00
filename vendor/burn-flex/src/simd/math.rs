//! recspec patch (vendor/README.md): vectorised `exp`, `sigmoid` and `tanh` for f32 slices.
//!
//! The published crate maps libm's scalar `expf` / `tanhf` over every element. Here each block of
//! `BLOCK` elements whose inputs all lie in the function's range goes through a branch-free
//! kernel the compiler vectorises: exp by Cephes-style range reduction (n·ln 2 in two parts), a
//! degree-6 polynomial on |r| <= ln 2 / 2 and 2^n built in the exponent bits; sigmoid as
//! 1 / (1 + exp(-x)); tanh as Cephes' odd polynomial below |x| = 0.625 and 1 - 2 / (exp(2|x|) + 1)
//! above. Against the correctly rounded result: exp within 1 ulp, sigmoid 2, tanh 1 (checked
//! over their ranges in steps of 1e-5). A block with any input outside the range (overflow,
//! results near or below the subnormal range, infinities, NaN) takes the scalar functions for
//! every element, so those keep libm's results. On x86_64 the loops are compiled for AVX-512F,
//! AVX2+FMA and the baseline, and the best the CPU has is chosen at run time.

const BLOCK: usize = 64;

/// Where `exp_in_range` is valid: 2^n stays a normal float for every n it produces (n in
/// [-126, 127]) and the result is far from overflow.
const EXP_LO: f32 = -87.0;
const EXP_HI: f32 = 88.0;

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

/// One element-wise function: a fast form valid where `in_range` holds, and the exact one.
trait Function {
    fn in_range(x: f32) -> bool;
    fn fast(x: f32) -> f32;
    fn exact(x: f32) -> f32;
}

struct Exp;
impl Function for Exp {
    #[inline(always)]
    fn in_range(x: f32) -> bool {
        (x >= EXP_LO) & (x <= EXP_HI)
    }
    #[inline(always)]
    fn fast(x: f32) -> f32 {
        exp_in_range(x)
    }
    #[inline(always)]
    fn exact(x: f32) -> f32 {
        x.exp()
    }
}

struct Sigmoid;
impl Function for Sigmoid {
    #[inline(always)]
    fn in_range(x: f32) -> bool {
        (x >= -EXP_HI) & (x <= -EXP_LO)
    }
    #[inline(always)]
    fn fast(x: f32) -> f32 {
        1.0 / (1.0 + exp_in_range(-x))
    }
    /// The published crate's form.
    #[inline(always)]
    fn exact(x: f32) -> f32 {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        }
    }
}

struct Tanh;
impl Function for Tanh {
    #[inline(always)]
    fn in_range(x: f32) -> bool {
        (x >= EXP_HI * -0.5) & (x <= EXP_HI * 0.5)
    }
    #[inline(always)]
    fn fast(x: f32) -> f32 {
        let a = x.abs();
        let z = x * x;
        let mut p = -5.704_988_7e-3;
        p = p * z + 2.063_908_9e-2;
        p = p * z - 5.373_971_6e-2;
        p = p * z + 1.333_144_2e-1;
        p = p * z - 3.333_328_2e-1;
        let small = p * z * a + a;
        let big = 1.0 - 2.0 / (exp_in_range(2.0 * a) + 1.0);
        // Odd: computed for |x|, signed last (so tanh(-0) = -0).
        (if a < 0.625 { small } else { big }).copysign(x)
    }
    #[inline(always)]
    fn exact(x: f32) -> f32 {
        x.tanh()
    }
}

#[inline(always)]
fn apply<F: Function>(a: &mut [f32]) {
    for block in a.chunks_mut(BLOCK) {
        if block.iter().fold(true, |ok, &x| ok & F::in_range(x)) {
            for x in block.iter_mut() {
                *x = F::fast(*x);
            }
        } else {
            for x in block.iter_mut() {
                *x = F::exact(*x);
            }
        }
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f")]
unsafe fn apply_avx512<F: Function>(a: &mut [f32]) {
    apply::<F>(a)
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn apply_avx2<F: Function>(a: &mut [f32]) {
    apply::<F>(a)
}

fn apply_seq<F: Function>(a: &mut [f32]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { apply_avx512::<F>(a) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { apply_avx2::<F>(a) };
        }
    }
    apply::<F>(a)
}

fn apply_inplace<F: Function>(a: &mut [f32]) {
    #[cfg(feature = "rayon")]
    if a.len() >= 1 << 20 {
        use rayon::prelude::*;
        a.par_chunks_mut(1 << 16).for_each(apply_seq::<F>);
        return;
    }
    apply_seq::<F>(a)
}

/// `a[i] = exp(a[i])` for every element.
pub fn exp_inplace_f32(a: &mut [f32]) {
    apply_inplace::<Exp>(a)
}

/// `a[i] = 1 / (1 + exp(-a[i]))` for every element.
pub fn sigmoid_inplace_f32(a: &mut [f32]) {
    apply_inplace::<Sigmoid>(a)
}

/// `a[i] = tanh(a[i])` for every element.
pub fn tanh_inplace_f32(a: &mut [f32]) {
    apply_inplace::<Tanh>(a)
}
