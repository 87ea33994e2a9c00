"""SplitMix64 exactly as recspec's `runtime/weights.rs`: parameter initialisation, the
interpreter's per-pass sampling generator and the loader's training-row shuffle seeds, bit for
bit (Python ints masked to 64 bits)."""

import math

import numpy as np
import torch

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E37_79B9_7F4A_7C15
PASS_SALT = 0xA5A5_5A5A_0F0F_F0F0
TWO_POW_53 = float(1 << 53)


class SplitMix:
    """SplitMix64 with recspec's derived draws (`unit`, `uniform`, `normal`, `below`)."""

    def __init__(self, state):
        """`state`: the 64-bit seed (any int, reduced modulo 2**64)."""
        self.state = int(state) & MASK64

    def next_u64(self):
        """The next raw 64-bit output, as a non-negative int."""
        self.state = (self.state + GOLDEN) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & MASK64
        return z ^ (z >> 31)

    def unit(self):
        """Uniform in [0, 1): the top 53 bits over 2**53 (a Python float, i.e. f64)."""
        return float(self.next_u64() >> 11) / TWO_POW_53

    def units(self, n):
        """`n` calls of `unit()` at once, as a float64 numpy array (the stream is counter-based,
        so this is the same values and leaves the same state, without a Python loop)."""
        n = int(n)
        out = _units(raw_draws(self.state, 0, n))
        self.state = (self.state + n * GOLDEN) & MASK64
        return out

    def uniform(self, lo, hi):
        """Uniform in [lo, hi): `lo + (hi - lo) * unit()` in f64."""
        return lo + (hi - lo) * self.unit()

    def normal(self):
        """Standard normal by Box-Muller, one draw per two units, in f64."""
        u1 = max(self.unit(), 1e-12)
        u2 = self.unit()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def below(self, n):
        """An int in [0, max(n, 1)): the raw output modulo max(n, 1)."""
        return self.next_u64() % max(int(n), 1)


#: Multipliers of the epoch and the rank in `shuffle_seed`.
SHUFFLE_EPOCH = 0xD1B5_4A32_D192_ED03
SHUFFLE_RANK = 0x8CB9_2BA7_2F3D_8DD7


def shuffle_seed(seed, epoch, rank=0):
    """The seed of the training-row shuffle of epoch `epoch` (1-based) at rank `rank` under the
    run's seed `seed`, as recspec's loader derives it: `seed ^ (epoch * SHUFFLE_EPOCH) ^ (rank *
    SHUFFLE_RANK)`, every product wrapping at 64 bits. (recspec's own loop is rank 0.)"""
    return (
        (int(seed) & MASK64)
        ^ ((int(epoch) * SHUFFLE_EPOCH) & MASK64)
        ^ ((int(rank) * SHUFFLE_RANK) & MASK64)
    )


def pass_rng(step):
    """The interpreter's generator for one forward pass at training step `step`."""
    return SplitMix((int(step) & MASK64) ^ PASS_SALT)


def slot_rng(seed, index):
    """The generator `Weights::init` uses for parameter slot `index` under `seed`."""
    return SplitMix((int(seed) & MASK64) ^ ((GOLDEN * (int(index) + 1)) & MASK64))


#: Values drawn per vectorised chunk by `init_values` (bounds its scratch memory).
INIT_CHUNK = 1 << 20

_M1 = np.uint64(0xBF58_476D_1CE4_E5B9)
_M2 = np.uint64(0x94D0_49BB_1331_11EB)


def raw_draws(state, start, count):
    """Raw outputs `start .. start + count` (0-based) of `SplitMix(state)`, as a uint64 array.

    SplitMix64 is counter-based: the i-th output mixes `state + (i + 1)·golden` (mod 2**64), so
    any stretch of the stream is computed without stepping through the ones before it.
    """
    counters = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = counters * np.uint64(GOLDEN) + np.uint64(int(state) & MASK64)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _units(raw):
    """`unit()` of raw outputs: the top 53 bits over 2**53, exact in f64."""
    return (raw >> np.uint64(11)).astype(np.float64) / TWO_POW_53


def _normals(state, start, n, std):
    """`normal() * std` for values `start .. start + n`, rounded to float32, bit for bit.

    numpy's `log` is not libm's (it differs in the last ulp for a fraction of inputs), so the
    rare values whose f64 result lies within 1e-12 (relative) of a float32 rounding boundary are
    redrawn with `math`, which is what the scalar `SplitMix.normal` (and Rust) use; elsewhere an
    ulp of f64 cannot change the float32.
    """
    u = _units(raw_draws(state, 2 * start, 2 * n))
    u1 = np.maximum(u[0::2], 1e-12)
    u2 = u[1::2]
    values = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2) * std
    out = values.astype(np.float32)
    near = (values * (1.0 + 1e-12)).astype(np.float32) != (values * (1.0 - 1e-12)).astype(np.float32)
    for k in np.flatnonzero(near):
        a, b = max(float(u[2 * k]), 1e-12), float(u[2 * k + 1])
        out[k] = np.float32(math.sqrt(-2.0 * math.log(a)) * math.cos(2.0 * math.pi * b) * std)
    return out


def _uniforms(state, start, n, bound):
    """`uniform(-bound, bound)` for values `start .. start + n`, rounded to float32 (plain IEEE
    arithmetic: identical to the scalar path)."""
    lo, hi = -bound, bound
    return (lo + (hi - lo) * _units(raw_draws(state, start, n))).astype(np.float32)


def init_values(rule, shape, seed, index):
    """Initial float32 tensor of `shape` for parameter slot `index`, as `Weights::init` draws it.

    `rule` is ("constant", v) | ("normal", std) | ("uniform", bound); values are drawn in
    row-major order in f64 and then rounded to float32. Vectorised over the counter-based
    stream (in chunks of `INIT_CHUNK` values), equal bit for bit to drawing one value at a time
    from `slot_rng(seed, index)`.
    """
    shape = tuple(int(d) for d in shape)
    return _init_span(rule, seed, index, 0, math.prod(shape)).reshape(shape)


def init_rows(rule, shape, seed, index, first, count):
    """Rows `first .. first + count` of `init_values(rule, shape, seed, index)` for a 2-D
    parameter, drawn from their own offset in the stream (a rank initialises its shard of a
    table without the table)."""
    rows, cols = (int(d) for d in shape)
    if not 0 <= first <= first + count <= rows:
        raise ValueError(f"rows {first}..{first + count} are not in 0..{rows}")
    return _init_span(rule, seed, index, first * cols, count * cols).reshape(count, cols)


def _init_span(rule, seed, index, begin, n):
    """Values `begin .. begin + n` (row-major) of slot `index`'s initial values, a float32 [n]."""
    kind, arg = rule
    if kind == "constant":
        return torch.full((n,), float(arg), dtype=torch.float32)
    if kind == "normal":
        draw = _normals
    elif kind == "uniform":
        draw = _uniforms
    else:
        raise ValueError(f"unknown init rule {kind!r}")
    state = slot_rng(seed, index).state
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, INIT_CHUNK):
        count = min(INIT_CHUNK, n - start)
        out[start:start + count] = draw(state, begin + start, count, float(arg))
    return torch.from_numpy(out)
