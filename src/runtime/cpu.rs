//! Subnormal floats flushed to zero on the threads that run the CPU kernels.
//!
//! On Intel cores a multiply-add whose operand or result is subnormal (below `f32::MIN_POSITIVE`,
//! about 1.2e-38) takes a microcode assist of a hundred cycles or more instead of one. Training
//! makes such values as a matter of course: a masked softmax weight of `exp(-80)` times an
//! activation (the clamp in `fused::MIN_EXPONENT` was -80 until it was found), a tiny gradient
//! squared in Adam's second moment. On this project's Intel Xeon
//! (Sapphire Rapids) build machine they made DFN train at 190 samples/s instead of 1,400, nearly
//! all of it inside gemm's microkernel; AMD cores pay little for them, which is why earlier
//! measurements on an EPYC never showed it. Flushing them to zero is what oneDNN and TensorFlow
//! do on the CPU; the values flushed are 1e-38 and below, far under what f32 training resolves.
//!
//! [`flush_subnormals`] sets the x86 MXCSR flags FTZ (results) and DAZ (operands), or the Arm
//! FPCR flag FZ, on the calling thread and, once per process, on every thread of rayon's global
//! pool, where burn-flex runs its parallel kernels. It changes the floating-point mode of those
//! threads for the rest of the process: a library user who embeds the runtime gets the same mode
//! on the threads that call it.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    static FLUSHED: Cell<bool> = const { Cell::new(false) };
}

static POOL: Once = Once::new();

/// Flushes subnormal floats to zero on this thread and on rayon's global pool (cheap after the
/// first call on a thread).
pub(crate) fn flush_subnormals() {
    if !FLUSHED.get() {
        set_this_thread();
        FLUSHED.set(true);
    }
    POOL.call_once(|| {
        rayon::broadcast(|_| {
            set_this_thread();
            FLUSHED.set(true);
        });
    });
}

/// Runs `f` on a thread of rayon's global pool (here when already on one).
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// Whether this thread flushes subnormal results to zero.
#[cfg(test)]
pub(crate) fn flushes_subnormals() -> bool {
    let tiny = std::hint::black_box(f32::MIN_POSITIVE);
    std::hint::black_box(tiny * std::hint::black_box(0.5f32)) == 0.0
}

#[cfg(target_arch = "x86_64")]
fn set_this_thread() {
    const FTZ: u32 = 1 << 15;
    const DAZ: u32 = 1 << 6;
    let mut csr: u32 = 0;
    // SAFETY: stmxcsr/ldmxcsr read and write this thread's SSE control register; setting FTZ
    // and DAZ changes only how subnormal floats are treated, and every x86_64 CPU has both.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
        csr |= FTZ | DAZ;
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
    }
}

#[cfg(target_arch = "aarch64")]
fn set_this_thread() {
    const FZ: u64 = 1 << 24;
    let mut fpcr: u64;
    // SAFETY: reads and writes this thread's floating-point control register; FZ changes only
    // how subnormal floats are treated.
    unsafe {
        std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
        fpcr |= FZ;
        std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack));
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_this_thread() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_pool_runs_on_a_pool_thread_once() {
        assert_eq!(rayon::current_thread_index(), None, "test threads are outside the pool");
        let (outer, inner) = on_pool(|| (rayon::current_thread_index(), on_pool(rayon::current_thread_index)));
        assert!(outer.is_some());
        assert_eq!(outer, inner, "already on the pool, `on_pool` runs here");
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn subnormal_results_become_zero_on_the_caller_and_the_pool() {
        std::thread::spawn(|| {
            assert!(!flushes_subnormals(), "a fresh thread keeps subnormals");
            flush_subnormals();
            assert!(flushes_subnormals());
            let pool: Vec<bool> = rayon::broadcast(|_| flushes_subnormals());
            assert!(pool.iter().all(|f| *f), "{pool:?}");
        })
        .join()
        .unwrap();
    }
}
