"""SplitMix64 exactly as recspec's `runtime/weights.rs`: parameter initialisation and the
interpreter's per-pass sampling generator, bit for bit (Python ints masked to 64 bits)."""

import math

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


def pass_rng(step):
    """The interpreter's generator for one forward pass at training step `step`."""
    return SplitMix((int(step) & MASK64) ^ PASS_SALT)


def slot_rng(seed, index):
    """The generator `Weights::init` uses for parameter slot `index` under `seed`."""
    return SplitMix((int(seed) & MASK64) ^ ((GOLDEN * (int(index) + 1)) & MASK64))


def init_values(rule, shape, seed, index):
    """Initial float32 tensor of `shape` for parameter slot `index`, as `Weights::init` draws it.

    `rule` is ("constant", v) | ("normal", std) | ("uniform", bound); values are drawn in
    row-major order in f64 and then rounded to float32.
    """
    shape = tuple(int(d) for d in shape)
    n = math.prod(shape)
    kind, arg = rule
    if kind == "constant":
        return torch.full(shape, float(arg), dtype=torch.float32)
    rng = slot_rng(seed, index)
    if kind == "normal":
        std = float(arg)
        values = [rng.normal() * std for _ in range(n)]
    elif kind == "uniform":
        bound = float(arg)
        values = [rng.uniform(-bound, bound) for _ in range(n)]
    else:
        raise ValueError(f"unknown init rule {kind!r}")
    return torch.tensor(values, dtype=torch.float32).reshape(shape)
