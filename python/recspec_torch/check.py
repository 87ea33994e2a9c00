"""Runs a generated module on one batch with given weights and writes what recspec compares.

    python -m recspec_torch.check --model MODEL.py --weights W.safetensors --batch BATCH.safetensors --out OUT.safetensors

The batch file holds `input:<name>` tensors at their full shapes (ids int64, masks bool, floats
float32) and `label:<name>` streams [B]. The module runs in eval mode (no dropout, no memory
writes) with `step` seeding the sampling generator; OUT holds `output:<name>`, `loss:<name>`
(the batch mean) and `grad:<recspec key>` (gradients of the weighted total loss).
"""

import argparse
import importlib.util

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
    parser.add_argument("--batch", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--step", type=int, default=0)
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    main()
