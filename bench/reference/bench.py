"""Speed of a hand-written reference, measured exactly as `python -m recspec_torch.bench` measures
the generated module.

    PYTHONPATH=python:bench python -m reference.bench FAMILY --data DATA [--batch-size B]
        [--steps S] [--warmup W] [--min-seconds SEC] [--threads N] [--device cpu|cuda] [--compile]
        [--sparse] [--dims K=V ...]

FAMILY is one of dfn, din, dumn, dlen, retrieval_ntr; the other flags, the JSON line's keys, the
batches (DATA/train.jsonl read by `recspec_torch.data` with the family's inputs, dims from
DATA/data.toml) and the timing protocol (`recspec_torch.bench.time_model`) are those of
`recspec_torch.bench`, with "program": "reference" (or "reference_compiled" with `--compile`,
`torch.compile` of the model before the warm-up). A step is the forward in train mode, the loss
terms' means weighted by the spec's default weights (the means read back), backward and Adam
(lr 0.001, eps 1e-5). Weights start from PyTorch's initialisation (reference.layers) after
`torch.manual_seed(1)`.

Two options depart from the reference as written, for bench/vocab.sh:

- `--sparse`: every nn.Embedding table gets sparse gradients (`nn.Embedding(sparse=True)`,
  `layers.sparse_tables`) and the parameters whose gradient is sparse are trained by
  torch.optim.SparseAdam (lr 0.001, eps 1e-5: lazy Adam, the looked-up rows and their moments
  only), the others by Adam as before: what a PyTorch user does for large tables without
  TorchRec. Which parameters get sparse gradients is read from the first step's gradients (a
  table also used whole, as retrieval_ntr's scores use `items.weight`, gets a dense one and
  stays with Adam).
- `--dims K=V ...`: replaces dims after DATA/data.toml's (`dims_for`), as `recspec bench --set`
  does, e.g. `--dims V=10000000` for a larger item table over the same data (ids stay below V).
"""

import argparse
import json
import sys

import torch

from recspec_torch import bench
from recspec_torch import data as data_mod
from recspec_torch.train import OPTIMIZER_EPS, UserError

from . import FAMILIES, dims_for, load, total_loss
from .layers import sparse_tables


class SplitAdam:
    """Adam for the parameters whose gradient is dense and SparseAdam for those whose gradient is
    sparse, both lr `lr`, eps `eps`; the split is made at the first `step`, from the gradients
    (a parameter without a gradient then is left to Adam, which skips it while it has none)."""

    def __init__(self, params, lr, eps):
        self.params, self.lr, self.eps = list(params), lr, eps
        self.optimizers = None

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def step(self):
        if self.optimizers is None:
            sparse = [p for p in self.params if p.grad is not None and p.grad.is_sparse]
            dense = [p for p in self.params if p.grad is None or not p.grad.is_sparse]
            self.optimizers = []
            if dense:
                self.optimizers.append(torch.optim.Adam(dense, lr=self.lr, eps=self.eps))
            if sparse:
                self.optimizers.append(torch.optim.SparseAdam(sparse, lr=self.lr, eps=self.eps))
        for optimizer in self.optimizers:
            optimizer.step()


def measure(
    name, data_dir, batch_size, steps, warmup, threads, device="cpu", sparse=False, dims=None, min_seconds=0.0,
    compile=False,
):
    """The result dict (the JSON line's fields). `sparse`: sparse tables and SparseAdam (the
    module docstring); `dims`: {name: value} replacing the data set's dims (ValueError for a name
    the family does not declare); `min_seconds` and `compile` as in `recspec_torch.bench`."""
    family = load(name)
    dev, sync = bench.device_and_sync(device, threads)
    overrides = dict(dims or {})
    unknown = sorted(set(overrides) - set(family.DIMS))
    if unknown:
        raise ValueError(f"{name} has no dim {', '.join(unknown)} (its dims: {', '.join(family.DIMS)})")
    dims = {**dims_for(family, data_dir), **overrides}
    schema = data_mod.Schema.from_inputs(family.inputs(dims), list(family.LABELS))
    batches, rows, load_s = bench.device_batches(data_dir, schema, batch_size, warmup + steps, dev)

    torch.manual_seed(bench.SEED)
    model = family.Model(dims).to(dev)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in trainable)
    if compile:
        model.compile()
    if sparse:
        sparse_tables(model)
        optimizer = SplitAdam(trainable, lr=bench.LR, eps=OPTIMIZER_EPS)
    else:
        optimizer = torch.optim.Adam(trainable, lr=bench.LR, eps=OPTIMIZER_EPS)

    def train_step(batch, step):
        _, losses = model(batch.inputs, batch.labels)
        total = total_loss(family, losses)
        torch.stack(list(losses.values())).tolist()  # the loss terms read back, as the generated bench does
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    def infer(batch):
        model(batch.inputs, batch.labels)

    train_rate, infer_us, timed, seconds = bench.time_model(
        model, train_step, infer, batches, steps, warmup, sync, min_seconds
    )
    program = "reference_compiled" if compile else "reference"
    return bench.report(program, name, dev, batch_size, n_params, timed, train_rate, infer_us, rows, load_s, seconds)


def parse_dim(text):
    """`K=V` → (K, V): V a positive integer, written as one (10000000) or as an integral float
    (1e7)."""
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        number = int(value)
    except ValueError:
        try:
            as_float = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a number") from None
        if not as_float.is_integer():
            raise argparse.ArgumentTypeError(f"{name}: {value!r} is not an integer") from None
        number = int(as_float)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{name}: must be at least 1, got {value!r}")
    return name, number


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m reference.bench",
        description="Training, inference and loading speed of a hand-written reference (one JSON line).",
    )
    parser.add_argument("family", metavar="FAMILY", choices=FAMILIES, help=", ".join(FAMILIES))
    parser.add_argument("--data", required=True, metavar="DATA", help="holds train.jsonl and data.toml")
    parser.add_argument("--batch-size", type=int, default=256, dest="batch_size")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (and inference batches)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    bench.add_window_flags(parser)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--sparse", action="store_true", help="sparse embedding gradients, SparseAdam for them (Adam for the rest)"
    )
    parser.add_argument(
        "--dims", nargs="+", default=[], metavar="K=V", type=parse_dim,
        help="replace dims after DATA/data.toml's, e.g. V=10000000 (or V=1e7)",
    )
    args = parser.parse_args(argv)
    names = [k for k, _ in args.dims]
    if len(set(names)) < len(names):
        parser.error("--dims: a dim is given twice")
    family = load(args.family)
    unknown = [k for k in names if k not in family.DIMS]
    if unknown:
        parser.error(f"--dims: {args.family} has no dim {', '.join(unknown)} (its dims: {', '.join(family.DIMS)})")
    bench.check_counts(parser, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        result = measure(
            args.family, args.data, args.batch_size, args.steps, args.warmup, args.threads, args.device,
            sparse=args.sparse, dims=dict(args.dims), min_seconds=args.min_seconds, compile=args.compile,
        )
    except (UserError, data_mod.DataError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
