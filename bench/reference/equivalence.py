"""A hand-written reference against the generated module of the same spec on the same data.

    PYTHONPATH=python:bench python -m reference.equivalence FAMILY RUN_DIR --data DATA [--rows N]

RUN_DIR holds the generated `model.py` (`recspec pytorch specs/FAMILY.recspec --data DATA`),
whose outputs and losses equal recspec's interpreter (tests/it/pytorch.rs). Checks, in float64
on one batch of N rows spread evenly over DATA/train.jsonl (rows 0, k, 2k, ...):

- the same inputs (names, shapes, vocabularies), labels and default loss weights, and the same
  number of trainable parameters;
- with recspec's initial weights (seed 1) copied into the reference (`layers.convert`), and again
  with those weights perturbed by seeded noise, in eval mode: every output, every loss term and
  the weighted total, and the gradient of the total with respect to every parameter;
- in train mode, from the same weights again: the outputs, the loss terms except the family's
  `SAMPLED_LOSSES` (drawn from torch's generator in the reference and from recspec's SplitMix
  stream in the generated module; their formulas are covered by the eval-mode check, where the
  draw is deterministic), and every buffer after the pass (DUMN's memory writes).

Prints one line per check group and exits 1 when any difference exceeds `TOLERANCE`, relative
to the largest magnitude of the compared tensor (for gradients, at least 1e-6 of the largest
gradient).
"""

import argparse
import os
import sys

import torch

from recspec_torch import data as data_mod
from recspec_torch.train import UserError, load_model

from . import FAMILIES, dims_for, load, total_loss
from .layers import convert

#: Largest accepted `max |reference - generated| / max(max |generated|, 1e-12)` (float64). Float64
#: rounding is ~1e-15; the rest of the allowance is for where the references place epsilons as
#: PyTorch does (F.normalize and F.cosine_similarity clamp a norm; recspec adds 1e-12 under its
#: square root), which differs by ~1e-12 / |x|² (~1e-10 for DUMN's memory summaries). A wrong
#: layer, mask or formula is off by far more.
TOLERANCE = 1e-8
SEED = 1


def spread_batch(data_dir, schema, rows):
    """A batch of up to `rows` rows spread evenly over DATA/train.jsonl (early rows of a
    simulated file have empty histories, later ones full)."""
    path = os.path.join(data_dir, "train.jsonl")
    world = max(1, data_mod.count_rows(path) // rows)
    batch = next(data_mod.iterate(path, schema, rows, rank=0, world=world), None)
    if batch is None:
        raise UserError(f"{path} has no rows")
    return batch


def _double(tensors):
    return {k: v.double() if v.is_floating_point() else v for k, v in tensors.items()}


def _error(a, b, floor):
    """max |a - b| relative to max(max |b|, floor); inf when the shapes differ."""
    a, b = a.detach(), b.detach()
    if a.shape != b.shape:
        return float("inf")
    if not b.numel():
        return 0.0
    return (a - b).abs().max().item() / max(b.abs().max().item(), floor)


class Report:
    """Differences found, by name; `failures` those above TOLERANCE or structural."""

    def __init__(self):
        self.errors = {}
        self.failures = []

    def value(self, name, ours, theirs, floor=1e-12):
        err = _error(ours, theirs, floor)
        self.errors[name] = err
        if not err <= TOLERANCE:
            self.failures.append(f"{name}: relative error {err:.3g}")

    def same(self, name, ours, theirs):
        if ours != theirs:
            self.failures.append(f"{name}: reference {ours!r}, generated {theirs!r}")

    def worst(self, prefix):
        errs = [e for n, e in self.errors.items() if n.startswith(prefix)]
        return max(errs) if errs else None


def perturbed(weights):
    """recspec's initial weights plus N(0, 0.05²) noise (torch's generator, seeded): zero-started
    tensors (biases, Wide) and outputs near 0.5 at initialisation would hide some differences."""
    gen = torch.Generator().manual_seed(SEED)
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in weights.items()}


def compare(family, module, cls, data_dir, rows=64):
    """Checks the reference of `family` (its module) against the generated `module` / `cls` on
    DATA, at recspec's initial weights and at perturbed ones: a Report."""
    report = Report()
    dims = dims_for(family, data_dir)
    report.same("inputs", family.inputs(dims), dict(module.INPUTS))
    report.same("labels", list(family.LABELS), list(module.LABELS))
    report.same("loss weights", family.LOSS_WEIGHTS, dict(module.LOSSES))
    if report.failures:
        return report
    batch = spread_batch(data_dir, data_mod.Schema.from_module(module), rows)
    inputs, labels = _double(batch.inputs), _double(batch.labels)

    torch.manual_seed(SEED)
    generated = cls(seed=SEED).double()
    reference = family.Model(dims).double()
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    report.same("trainable parameters", count(reference), count(generated))
    initial = {k: v.clone() for k, v in generated.recspec_state_dict().items()}  # buffers get written
    for label, weights in (("initial", initial), ("perturbed", perturbed(initial))):
        _compare_at(report, family, module, generated, reference, weights, inputs, labels, f" ({label} weights)")
    return report


def _compare_at(report, family, module, generated, reference, weights, inputs, labels, suffix):
    def run(train):
        """Both modules at `weights` (buffers included), one forward in train or eval mode."""
        generated.load_recspec_state_dict(weights)
        reference.load_state_dict(convert(reference, weights))
        generated.train(train)
        reference.train(train)
        ours, our_losses = reference(inputs, labels)
        theirs, their_losses, _ = generated(inputs, labels, step=0)
        return ours, our_losses, theirs, {n: mean for n, (_, mean) in their_losses.items()}

    generated.zero_grad(set_to_none=True)
    reference.zero_grad(set_to_none=True)
    ours, our_losses, theirs, their_losses = run(train=False)
    report.same("outputs", sorted(ours), sorted(module.OUTPUTS))
    for name in module.OUTPUTS:
        report.value(f"eval output {name}{suffix}", ours[name], theirs[name])
    for name in module.LOSSES:
        report.value(f"eval loss {name}{suffix}", our_losses[name], their_losses[name])
    our_total = total_loss(family, our_losses)
    their_total = sum(w * their_losses[n] for n, w in module.LOSSES.items())
    report.value(f"eval total loss{suffix}", our_total, their_total)
    our_total.backward()
    their_total.backward()
    grads = {}
    for key, (attr, _, is_state, _) in module.PARAMS.items():
        t = getattr(generated, attr)
        grads[key] = t if is_state else (torch.zeros_like(t) if t.grad is None else t.grad)
    expected = convert(reference, grads)
    # A gradient that is zero in exact arithmetic (a bias under a softmax) is rounding noise on
    # both sides: errors are relative to at least 1e-6 of the largest gradient.
    floor = 1e-6 * max(g.abs().max().item() for k, g in grads.items() if not module.PARAMS[k][2])
    for name, param in reference.named_parameters():
        grad = torch.zeros_like(param) if param.grad is None else param.grad
        report.value(f"gradient {name}{suffix}", grad, expected[name], floor)

    with torch.no_grad():
        ours, our_losses, theirs, their_losses = run(train=True)
    for name in module.OUTPUTS:
        report.value(f"train output {name}{suffix}", ours[name], theirs[name])
    for name in module.LOSSES:
        if name not in family.SAMPLED_LOSSES:
            report.value(f"train loss {name}{suffix}", our_losses[name], their_losses[name])
    their_buffers = convert(reference, generated.recspec_state_dict())
    for name, buffer in reference.named_buffers():
        report.value(f"buffer after training pass {name}{suffix}", buffer, their_buffers[name])


def summary(name, report):
    """One line per check group: the largest relative error of each."""
    parts = []
    for prefix in ("eval output", "eval loss", "eval total", "gradient", "train output", "train loss", "buffer"):
        worst = report.worst(prefix)
        if worst is not None:
            parts.append(f"{prefix} {worst:.1e}")
    status = "ok" if not report.failures else "MISMATCH"
    return f"{name}: {status}; largest relative errors: {', '.join(parts) or '-'}"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m reference.equivalence",
        description="Compare a hand-written reference with the generated module on the same weights and batch.",
    )
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="holds the generated model.py")
    parser.add_argument("--data", required=True, metavar="DATA", help="holds train.jsonl (and data.toml)")
    parser.add_argument("--rows", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        module, cls = load_model(args.run_dir)
        report = compare(load(args.family), module, cls, args.data, args.rows)
    except (UserError, data_mod.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(args.family, report))
    for failure in report.failures:
        print(f"  {failure}", file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
