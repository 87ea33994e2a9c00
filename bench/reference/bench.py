"""Speed of a hand-written reference, measured exactly as `python -m recspec_torch.bench` measures
the generated module.

    PYTHONPATH=python:bench python -m reference.bench FAMILY --data DATA [--batch-size B]
        [--steps S] [--warmup W] [--threads N] [--device cpu|cuda]

FAMILY is one of dfn, din, dumn, dlen, retrieval_ntr; the other flags, the JSON line's keys, the
batches (DATA/train.jsonl read by `recspec_torch.data` with the family's inputs, dims from
DATA/data.toml) and the timing protocol (`recspec_torch.bench.time_model`) are those of
`recspec_torch.bench`, with "program": "reference". A step is the forward in train mode, the loss
terms' means weighted by the spec's default weights (the means read back), backward and Adam
(lr 0.001, eps 1e-5). Weights start from PyTorch's initialisation (reference.layers) after
`torch.manual_seed(1)`.
"""

import argparse
import json
import sys

import torch

from recspec_torch import bench
from recspec_torch import data as data_mod
from recspec_torch.train import OPTIMIZER_EPS, UserError

from . import FAMILIES, dims_for, load, total_loss


def measure(name, data_dir, batch_size, steps, warmup, threads, device="cpu"):
    """The result dict (the JSON line's fields)."""
    family = load(name)
    dev, sync = bench.device_and_sync(device, threads)
    dims = dims_for(family, data_dir)
    schema = data_mod.Schema.from_inputs(family.inputs(dims), list(family.LABELS))
    batches, rows, load_s = bench.device_batches(data_dir, schema, batch_size, warmup + steps, dev)

    torch.manual_seed(bench.SEED)
    model = family.Model(dims).to(dev)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in trainable)
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

    train_rate, infer_us = bench.time_model(model, train_step, infer, batches, steps, warmup, sync)
    return bench.report("reference", name, dev, batch_size, n_params, steps, train_rate, infer_us, rows, load_s)


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
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    for name, low in (("batch_size", 1), ("steps", 1), ("warmup", 0), ("threads", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')} must be at least {low}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        result = measure(args.family, args.data, args.batch_size, args.steps, args.warmup, args.threads, args.device)
    except (UserError, data_mod.DataError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
