"""Runs a generated module on one batch with given weights and writes what recspec compares.

    python -m recspec_torch.check --model MODEL.py --weights W.safetensors --batch BATCH.safetensors --out OUT.safetensors [--step S]

The batch file holds `input:<name>` tensors at their full shapes (ids int64, masks bool, floats
float32) and `label:<name>` streams [B]. The module runs in eval mode (no dropout, no memory
writes) with `step` seeding the sampling generator; OUT holds `output:<name>`, `loss:<name>`
(the batch mean) and `grad:<recspec key>` (gradients of the weighted total loss).

Stepping mode, training steps from given weights:

    python -m recspec_torch.check --model MODEL.py --weights W.safetensors --batches B.safetensors
        --steps N --lr LR [--optimizer adam|adagrad] [--embedding-optimizer lazy|rowwise_adagrad|dense]
        --out OUT.safetensors

B holds batches k = 1..N (at least N of them) as `{k}/input:<name>` and `{k}/label:<name>`, each
batch as in the batch file above. Step k runs the module in training mode (memory writes happen;
every dropout is off, `ops.no_dropout`) with `step` k - 1 seeding the sampling generator, takes
the weighted total loss (train.py's `Objective`, the LOSSES weights), its backward, a step of the
dense optimizer (torch's Adam or Adagrad, ε 1e-5, over every trainable parameter but the row
tables) and a step of the row optimizer over the module's ROW_TABLES (`recspec_torch.rows`; with
`dense`, or a module without ROW_TABLES, tables are dense parameters). The optimizer defaults to
adam and the embedding optimizer to lazy. After step k, OUT (float32) holds:

    {k}/loss            [1]      the weighted total loss of step k (before its update)
    {k}/w/{key}         (shape)  every PARAMS key (memory slots too) at its PARAMS shape
    {k}/m/{key}, {k}/v/{key}  [V, D]  lazy with adam: Adam's moments of each row table
    {k}/sum/{key}       [V, D]   lazy with adagrad: Adagrad's sums of each row table
    {k}/acc/{key}       [V]      rowwise_adagrad: the row accumulators of each row table

where a row table's rows V and width D are its PARAMS shape with every axis but the last merged;
a table's state is zeros until its first update. Nothing of the row state is written for
`dense`.
"""

import argparse
import importlib.util
import re
import sys

import torch
from safetensors.torch import load_file, save_file


def load_module(path):
    """Imports a generated module file; returns the module and its `nn.Module` class."""
    spec = importlib.util.spec_from_file_location("recspec_generated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [
        v for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise ValueError(f"{path}: expected one nn.Module class, found {len(classes)}")
    return module, classes[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--weights", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--batch", help="one batch: outputs, losses and gradients in eval mode")
    source.add_argument("--batches", help="batches 1..N: N training steps (with --steps, --lr)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--step", type=int, default=0)
    parser.add_argument("--steps", type=int, help="stepping mode: how many steps")
    parser.add_argument("--lr", type=float, help="stepping mode: the learning rate")
    parser.add_argument("--optimizer", choices=("adam", "adagrad"), default="adam")
    parser.add_argument(
        "--embedding-optimizer",
        dest="embedding_optimizer",
        choices=("lazy", "rowwise_adagrad", "dense"),
        default="lazy",
    )
    args = parser.parse_args(argv)
    if args.batches is not None:
        if args.steps is None or args.lr is None:
            parser.error("--batches needs --steps and --lr")
        if args.steps < 1 or not args.lr > 0.0:
            parser.error("--steps must be at least 1 and --lr positive")
        return run_steps(args)

    module, cls = load_module(args.model)
    model = cls()
    model.load_recspec_state_dict(load_file(args.weights))
    model.eval()
    batch = load_file(args.batch)
    inputs = {k[len("input:"):]: v for k, v in batch.items() if k.startswith("input:")}
    labels = {k[len("label:"):]: v for k, v in batch.items() if k.startswith("label:")}

    outputs, losses, _ = model(inputs, labels, step=args.step)
    result = {f"output:{name}": v.detach().to(torch.float32).contiguous() for name, v in outputs.items()}
    for name, (_, mean) in losses.items():
        result[f"loss:{name}"] = mean.detach().reshape(1)
    if losses:
        total = sum(weight * mean for weight, mean in losses.values())
        total.backward()
        for key, (attr, _, is_state, _) in module.PARAMS.items():
            grad = getattr(model, attr).grad
            if not is_state and grad is not None:
                result[f"grad:{key}"] = grad.contiguous()
    save_file(result, args.out)


def split_batches(tensors):
    """`{k}/input:<name>`, `{k}/label:<name>` tensors → {k: (inputs, labels)}."""
    batches = {}
    for key, value in tensors.items():
        m = re.fullmatch(r"(\d+)/(input|label):(.+)", key)
        if not m:
            raise ValueError(f"batches file: unexpected key `{key}` (expected K/input:NAME or K/label:NAME)")
        inputs, labels = batches.setdefault(int(m.group(1)), ({}, {}))
        (inputs if m.group(2) == "input" else labels)[m.group(3)] = value
    return batches


def run_steps(args):
    """The stepping mode (see the module docstring); returns the exit status."""
    from .rows import STATE_NAMES, Optimizers
    from .train import OPTIMIZER_EPS, Objective
    from . import ops

    module, cls = load_module(args.model)
    model = cls()
    model.load_recspec_state_dict(load_file(args.weights))
    model.train()
    batches = split_batches(load_file(args.batches))
    missing = [k for k in range(1, args.steps + 1) if k not in batches]
    if missing:
        print(f"error: {args.batches} has no batch {missing[0]} (keys `{missing[0]}/input:<name>`)", file=sys.stderr)
        return 2
    objective = Objective(model, {})
    optimizers = Optimizers(model, module, args.optimizer, args.lr, args.embedding_optimizer, eps=OPTIMIZER_EPS)
    names = STATE_NAMES[optimizers.rows.rule] if optimizers.rows is not None else ()
    result = {}
    with ops.no_dropout():
        for k in range(1, args.steps + 1):
            inputs, labels = batches[k]
            optimizers.zero_grad(set_to_none=True)
            total, _ = objective(inputs, labels, k - 1)
            total.backward()
            optimizers.step()
            result[f"{k}/loss"] = total.detach().to(torch.float32).reshape(1).clone()
            for key, value in model.recspec_state_dict().items():
                result[f"{k}/w/{key}"] = value.detach().to(torch.float32).contiguous().clone()
            for key in optimizers.tables:
                _, state = optimizers.row_state(key)
                for name in names:
                    result[f"{k}/{name}/{key}"] = state[name].detach().to(torch.float32).contiguous().clone()
    save_file(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
