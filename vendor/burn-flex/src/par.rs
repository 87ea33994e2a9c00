//! recspec patch (vendor/README.md): element-wise loops split across rayon's threads.
//!
//! Upstream burn-flex runs element-wise maps, masks and concatenations on the calling thread
//! only, so on a model whose step is mostly 0.1–1M-element tensors the second core idles
//! between matrix products. These helpers split a loop into at most one contiguous piece per
//! thread once it has `ops::PARALLEL_THRESHOLD` (256K) elements, and run it serially below that
//! or without the `rayon` feature. (32K, PyTorch's grain size, lost more to waking rayon's
//! sleeping threads than it gained on the GRU's 50K-element gate tensors: measured in
//! vendor/README.md.) Pieces start at multiples of 64 elements so SIMD loops keep their
//! alignment and no two pieces share a cache line.

use core::mem::MaybeUninit;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

/// Elements per piece are rounded up to a multiple of this.
const ALIGN: usize = 64;

/// How many pieces a loop over `len` elements is split into (1: run it serially).
#[inline]
pub(crate) fn pieces(len: usize) -> usize {
    #[cfg(feature = "rayon")]
    {
        let threshold = crate::ops::PARALLEL_THRESHOLD;
        if len >= threshold {
            // At least half a threshold of work per piece.
            return rayon::current_num_threads().min(len / (threshold / 2)).max(1);
        }
    }
    let _ = len;
    1
}

/// Length of each piece (the last may be shorter) when `len` elements are split into
/// `pieces(len)`.
#[inline]
pub(crate) fn piece_len(len: usize) -> usize {
    let p = pieces(len);
    if p <= 1 {
        return len.max(1);
    }
    len.div_ceil(p).div_ceil(ALIGN) * ALIGN
}

/// Calls `f(start, piece)` for `dst` split into contiguous pieces, `start` being the piece's
/// index in `dst`; in parallel when `dst` is large enough.
#[inline]
pub(crate) fn for_each_piece_mut<T, F>(dst: &mut [T], f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    let step = piece_len(dst.len());
    for_each_step_mut(dst, step, f)
}

/// Calls `f(start, piece)` for `dst` cut every `step` elements (the last piece may be shorter),
/// the pieces in parallel when there is more than one.
#[inline]
pub(crate) fn for_each_step_mut<T, F>(dst: &mut [T], step: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    #[cfg(feature = "rayon")]
    if step > 0 && step < dst.len() {
        dst.par_chunks_mut(step)
            .enumerate()
            .for_each(|(i, piece)| f(i * step, piece));
        return;
    }
    let _ = step;
    f(0, dst);
}

/// A vector of `len` elements that `fill(start, piece)` writes, cut every `step` elements (in
/// parallel when there is more than one piece); `piece` is the uninitialised slice of the
/// output from `start` on.
///
/// # Safety
///
/// `fill` must initialise every element of every piece it is given.
#[inline]
pub(crate) unsafe fn collect_steps<T, F>(len: usize, step: usize, fill: F) -> alloc::vec::Vec<T>
where
    T: Send,
    F: Fn(usize, &mut [MaybeUninit<T>]) + Sync + Send,
{
    let mut out = alloc::vec::Vec::with_capacity(len);
    for_each_step_mut(&mut out.spare_capacity_mut()[..len], step, fill);
    // SAFETY: the caller's `fill` initialised all `len` elements.
    unsafe { out.set_len(len) };
    out
}

/// [`collect_steps`] with the pieces of [`for_each_piece_mut`].
///
/// # Safety
///
/// `fill` must initialise every element of every piece it is given.
#[inline]
pub(crate) unsafe fn collect_pieces<T, F>(len: usize, fill: F) -> alloc::vec::Vec<T>
where
    T: Send,
    F: Fn(usize, &mut [MaybeUninit<T>]) + Sync + Send,
{
    // SAFETY: forwarded to the caller.
    unsafe { collect_steps(len, piece_len(len), fill) }
}

/// Outer rows per piece when `rows` rows of `numel` elements in all are split across threads;
/// `None` when the loop should stay serial.
#[inline]
pub(crate) fn rows_per_piece(rows: usize, numel: usize) -> Option<usize> {
    let p = pieces(numel);
    (p > 1 && rows > 1).then(|| rows.div_ceil(p.min(rows)))
}

/// Writes `values` into `dst` (equal lengths), returning `dst` as initialised.
#[inline]
pub(crate) fn write_slice<'a, T: Copy>(dst: &'a mut [MaybeUninit<T>], values: &[T]) -> &'a mut [T] {
    assert_eq!(dst.len(), values.len());
    // SAFETY: `MaybeUninit<T>` has `T`'s layout, the regions cannot overlap (one is borrowed
    // mutably), and after the copy every element of `dst` is initialised.
    unsafe {
        core::ptr::copy_nonoverlapping(values.as_ptr(), dst.as_mut_ptr().cast::<T>(), values.len());
        &mut *(dst as *mut [MaybeUninit<T>] as *mut [T])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_every_element_once() {
        for len in [0, 1, 63, 64, 65, 40_000, 100_003, 1 << 20] {
            let mut v = alloc::vec![0u32; len];
            for_each_piece_mut(&mut v, |start, piece| {
                for (i, x) in piece.iter_mut().enumerate() {
                    *x += (start + i) as u32 + 1;
                }
            });
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32 + 1), "len {len}");
            let c: alloc::vec::Vec<u64> = unsafe {
                collect_pieces(len, |start, piece| {
                    for (i, x) in piece.iter_mut().enumerate() {
                        x.write((start + i) as u64);
                    }
                })
            };
            assert!(c.iter().enumerate().all(|(i, &x)| x == i as u64), "len {len}");
        }
    }
}
