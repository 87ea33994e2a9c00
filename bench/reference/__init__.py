"""Hand-written PyTorch eager references of the five benchmarked families, for bench/speed.sh.

One module per family (`dfn`, `din`, `dumn`, `dlen`, `retrieval_ntr`): the architecture of
`specs/NAME.recspec` at its default parameters, written as a PyTorch user would write it
(nn.Module, nn.Embedding, nn.Linear, batched matmuls, masked softmaxes; plain eager, no
torch.compile) rather than through `recspec_torch.ops`. Each module defines

- `DIMS`: the spec's `dim`s with their defaults; a data set's `data.toml` `[hparams]` replaces
  those it names, as `recspec` binds a spec to a data set (`dims_for`);
- `LABELS`, `LOSS_WEIGHTS` (the spec's loss terms with their default weights, in spec order) and
  `inputs(dims)`: the inputs in a generated module's `INPUTS` format, so that
  `recspec_torch.data` reads exactly the batches the generated module reads;
- `Model(dims)`: `forward(inputs, labels)` returns `(outputs, losses)`, the spec's outputs by
  name and every loss term's batch mean; `recspec_layout(w)` maps recspec's weights onto the
  module's `state_dict` (`layers.RecspecWeights`), which the equivalence check
  (`reference.equivalence`) uses to run both on the same weights.

Run with `PYTHONPATH=python:bench`: `python -m reference.bench FAMILY --data DATA ...` times
one (bench/speed.sh), `python -m reference.equivalence FAMILY RUN_DIR --data DATA` compares one
with the generated module in RUN_DIR.
"""

import importlib
import os
import tomllib

FAMILIES = ("dfn", "din", "dumn", "dlen", "retrieval_ntr")


def load(name):
    """The module of family `name`; ValueError for an unknown name."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}: expected one of {', '.join(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{name}")


def dims_for(family, data_dir):
    """The family's dims on the data set in `data_dir`: `DIMS`, with the values of DATA/data.toml
    `[hparams]` for the names it declares (recspec's `compile_for_data`); `DIMS` alone when there
    is no data.toml."""
    path = os.path.join(data_dir, "data.toml")
    hparams = {}
    if os.path.isfile(path):
        with open(path, "rb") as fh:
            hparams = tomllib.load(fh).get("hparams", {})
    return {name: int(hparams.get(name, default)) for name, default in family.DIMS.items()}


def total_loss(family, losses):
    """The training objective: the loss terms' means weighted by the spec's default weights."""
    return sum(weight * losses[name] for name, weight in family.LOSS_WEIGHTS.items())
