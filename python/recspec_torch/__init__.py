"""PyTorch versions of recspec's kernels, called by modules that `recspec compile --emit pytorch`
generates. `ops` has one function per kernel of `src/lower/kernel.rs`, reproducing the burn
interpreter (`src/runtime/exec`); `rng` the SplitMix64 generator of `src/runtime/weights.rs`;
`weights` safetensors files keyed by recspec parameter keys; `data` the JSON Lines reader of
`src/data/`; `metrics` AUC, GAUC and log loss of `src/metrics.rs`; `rows` the row-sparse
embedding optimizers of `src/runtime/rows.rs`; `train` the training entry point
(`python -m recspec_torch.train`, single process or under torchrun)."""

from . import data, metrics, ops, rng, rows, weights

__all__ = ["data", "metrics", "ops", "rng", "rows", "weights"]
