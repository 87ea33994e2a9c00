"""PyTorch versions of recspec's kernels, called by modules that `recspec compile --emit pytorch`
generates. `ops` has one function per kernel of `src/lower/kernel.rs`, reproducing the burn
interpreter (`src/runtime/exec`); `rng` the SplitMix64 generator of `src/runtime/weights.rs`;
`weights` safetensors files keyed by recspec parameter keys."""

from . import ops, rng, weights

__all__ = ["ops", "rng", "weights"]
