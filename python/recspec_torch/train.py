"""Trains a generated module on a recspec data set, in one process or data-parallel.

    python -m recspec_torch.train RUN_DIR --data DATA [--epochs N] [--max-steps M]
        [--batch-size B] [--lr LR] [--seed S] [--shuffle-buffer K]
        [--embedding-optimizer lazy|rowwise_adagrad|dense] [--device cpu|cuda]
        [--compile [default|reduce-overhead|max-autotune]]
        [--table-sharding table_wise|column_wise|row_wise]
    torchrun --standalone --nproc_per_node N -m recspec_torch.train RUN_DIR --data DATA ...

RUN_DIR holds `model.py` (from `recspec compile SPEC --emit pytorch`) and optionally `run.toml`
(recspec's run config: `[train]` optimizer, lr, batch_size, epochs, seed, max_steps,
embedding_optimizer, shuffle_buffer, which the flags override, and `[loss_weights]`, which
replace the weights of the named loss terms; its `[hparams]` were fixed when model.py was
generated and are only checked for form). DATA holds the `train` and `valid` splits in
recspec's JSON Lines format (`recspec_torch.data`), each `SPLIT.jsonl` or a folder `SPLIT/` of
JSON Lines shards.

As `recspec train` does: weights start from recspec's initialisation for the seed (the same on
every rank), each epoch reads the (rank's) training rows through a shuffle buffer of
`shuffle_buffer` rows (default 10000; 0 reads them in file order) drawing from
`SplitMix(rng.shuffle_seed(seed, epoch, rank))` (`recspec_torch.data.shuffled`: recspec's
order, row for row), every step minimises the weighted sum of the loss terms' batch means with
Adam or AdaGrad (burn's epsilon, 1e-5), the module's embedding tables (ROW_TABLES) updated as
`embedding_optimizer` says (`recspec_torch.rows`: lazy or rowwise_adagrad row-sparse updates, or
dense as ordinary parameters), a non-finite loss term stops the run naming the term, epoch and
step, and after every epoch the validation file is scored (AUC, GAUC, log loss per label stream
a loss scores). `--compile` trains the module under `torch.compile` (opt-in; `reduce-overhead`
replays CUDA graphs on a GPU, the batches' padded shapes being static): the same steps as eager
to float32 rounding (python/tests/test_compile.py). Written to RUN_DIR by rank 0: `model.safetensors` (recspec keys, after every
epoch) and `torch_metrics.jsonl` (one line per epoch); by every rank: `rows.rank{R}.json`, the
sorted indices of the training rows it trained on (those of the batches it stepped on, in any
epoch), and (tables not sharded) `weights.rank{R}.sha256`, the SHA-256 of its final trainable
weights, the same on every rank when gradients were averaged.

Under torchrun (RANK/WORLD_SIZE/LOCAL_RANK in the environment) every rank reads only its part
of each split (`recspec_torch.data.SplitPlan`: of a folder of n shards, whole shards `i` with
`i mod world == rank` for the first n - (n mod world), and of the remaining shards — of a
one-file split, its one file — the rows whose 0-based index is `rank (mod world)`), the
model is wrapped in DistributedDataParallel (gloo on CPU, NCCL on CUDA with device
cuda:LOCAL_RANK), and gradients are averaged over the ranks, so one step sees world × batch rows
(a row-sparse table step updates the union of the rows the ranks looked up).
"""

import argparse
import json
import math
import os
import re
import sys
import time
import tomllib
from decimal import Decimal

import numpy as np
import torch
from torch import nn

from . import data as data_mod
from .check import load_module
from .metrics import stream_metrics
from .rows import EMBEDDING_OPTIMIZERS, Optimizers, row_table_keys
from .weights import save_safetensors

#: Rows per batch when validating after an epoch (as `recspec train`).
VALID_BATCH_SIZE = 1024
#: burn's default epsilon for Adam and AdaGrad (torch's defaults are 1e-8 and 1e-10).
OPTIMIZER_EPS = 1e-5
DEFAULTS = {
    "optimizer": "adam",
    "lr": 0.001,
    "batch_size": 256,
    "epochs": 2,
    "seed": 1,
    "max_steps": None,
    "embedding_optimizer": "lazy",
    "shuffle_buffer": 10000,
}
RUN_CONFIG_TABLES = ("hparams", "train", "loss_weights", "simulation")
TRAIN_KEYS = (
    "optimizer", "lr", "batch_size", "epochs", "seed", "max_steps", "embedding_optimizer", "shuffle_buffer",
)
MASK64 = (1 << 64) - 1


class UserError(Exception):
    """A mistake in the command line, the run directory or the data: printed without a
    traceback as `error: message`."""


class PeerFailed(Exception):
    """Another rank stopped with an error (it prints its own message)."""


# ----------------------------------------------------------------------------------------------
# Settings


def rust_float(x):
    """An f64 as Rust's `{}` prints it (`2`, `0.5`, `-1`, `inf`, `NaN`; never an exponent)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return format(Decimal(repr(x)).normalize(), "f")


def _toml_type(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "table"
    return "datetime"


def _line_of(text, pattern):
    """The 1-based line of the first match of `pattern` (a regex, multiline), or None."""
    m = re.search(pattern, text, re.MULTILINE)
    return text[: m.start()].count("\n") + 1 if m else None


def _at(name, line):
    return f"{name}:{line}" if line else name


def _key_pattern(key):
    return rf"^\s*(\"?){re.escape(key)}\1\s*="


def parse_run_config(name, text):
    """Parses run-config text as recspec's `config::parse_run_config` does: returns
    `(train settings given, loss weights)`; UserError naming the file (and line when known)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        m = re.match(r"^(.*) \(at line (\d+), column \d+\)$", message)
        if m:
            raise UserError(f"{name}:{m.group(2)}: {m.group(1)}") from None
        raise UserError(f"{name}: {message}") from None
    for key in doc:
        if key not in RUN_CONFIG_TABLES:
            line = _line_of(text, rf"^\s*\[\s*{re.escape(key)}\s*\]") or _line_of(text, _key_pattern(key))
            expected = ", ".join(f"`{t}`" for t in RUN_CONFIG_TABLES)
            raise UserError(f"{_at(name, line)}: unknown field `{key}`, expected one of {expected}")
    for table in RUN_CONFIG_TABLES:
        if table in doc and not isinstance(doc[table], dict):
            line = _line_of(text, _key_pattern(table))
            raise UserError(f"{_at(name, line)}: `{table}` must be a table, found {_toml_type(doc[table])}")
    train = {}
    section = doc.get("train", {})
    for key, v in section.items():
        line = _line_of(text, _key_pattern(key))
        if key not in TRAIN_KEYS:
            expected = ", ".join(f"`{k}`" for k in TRAIN_KEYS)
            raise UserError(f"{_at(name, line)}: unknown field `{key}`, expected one of {expected}")
        if key in ("optimizer", "embedding_optimizer"):
            if not isinstance(v, str):
                raise UserError(f"{_at(name, line)}: [train] {key} must be a string, found {_toml_type(v)}")
        elif key == "lr":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise UserError(f"{_at(name, line)}: [train] lr must be a number, found {_toml_type(v)}")
            v = float(v)
        elif isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > MASK64:
            found = v if isinstance(v, int) and not isinstance(v, bool) else _toml_type(v)
            raise UserError(f"{_at(name, line)}: [train] {key} must be a non-negative integer, found {found}")
        train[key] = v
    if "optimizer" in train and train["optimizer"] not in ("adam", "adagrad"):
        raise UserError(f'{name}: [train] optimizer must be "adam" or "adagrad", found "{train["optimizer"]}"')
    if "embedding_optimizer" in train and train["embedding_optimizer"] not in EMBEDDING_OPTIMIZERS:
        raise UserError(
            f'{name}: [train] embedding_optimizer must be "lazy", "rowwise_adagrad" or "dense", '
            f'found "{train["embedding_optimizer"]}"'
        )
    if "lr" in train and not (math.isfinite(train["lr"]) and train["lr"] > 0.0):
        raise UserError(f"{name}: [train] lr must be a positive number, found {rust_float(train['lr'])}")
    for key in ("batch_size", "epochs", "max_steps"):
        if train.get(key) == 0:
            raise UserError(f"{name}: [train] {key} must be at least 1")
    loss_weights = {}
    for loss, w in doc.get("loss_weights", {}).items():
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            line = _line_of(text, _key_pattern(loss))
            raise UserError(f"{_at(name, line)}: [loss_weights] {loss} must be a number, found {_toml_type(w)}")
        w = float(w)
        if not (math.isfinite(w) and w >= 0.0):
            raise UserError(f"{name}: [loss_weights] {loss} must be a non-negative number, found {rust_float(w)}")
        loss_weights[loss] = w
    for hparam, v in doc.get("hparams", {}).items():
        if isinstance(v, (list, dict)) or not isinstance(v, (bool, int, float, str)):
            line = _line_of(text, _key_pattern(hparam))
            raise UserError(
                f"{_at(name, line)}: hparam `{hparam}` must be a number, bool or option name, found {_toml_type(v)}"
            )
    return train, loss_weights


def load_run_config(path):
    """Reads `run.toml` if it exists (settings default otherwise)."""
    if not os.path.exists(path):
        return {}, {}
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    return parse_run_config(str(path), text)


#: `--compile` modes: torch.compile's.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def merge_settings(config, args):
    """The run config's `[train]` (or the defaults) with the flags on top, validated."""
    s = dict(DEFAULTS)
    s.update(config)
    for key in ("epochs", "max_steps", "lr", "batch_size", "seed", "embedding_optimizer", "shuffle_buffer"):
        value = getattr(args, key, None)
        if value is not None:
            s[key] = value
    if s["batch_size"] < 1 or s["epochs"] < 1 or (s["max_steps"] is not None and s["max_steps"] < 1):
        raise UserError("--batch-size, --epochs and --max-steps must be at least 1")
    if not (math.isfinite(s["lr"]) and s["lr"] > 0.0):
        raise UserError(f"--lr must be a positive number, found {rust_float(s['lr'])}")
    if not 0 <= s["seed"] <= MASK64:
        raise UserError(f"--seed must be in 0..2^64, found {s['seed']}")
    if not 0 <= s["shuffle_buffer"] <= MASK64:
        raise UserError(f"--shuffle-buffer must be a non-negative integer, found {s['shuffle_buffer']}")
    return s


def describe_settings(s):
    """`adam, lr 0.005, batch 256, 3 epochs, seed 1` (and `, at most 40 steps per epoch`,
    `, file order` when the shuffle buffer is 0, and `, dense embedding updates` unless the
    embedding optimizer is lazy)."""
    epochs = "epoch" if s["epochs"] == 1 else "epochs"
    out = f"{s['optimizer']}, lr {rust_float(s['lr'])}, batch {s['batch_size']}, {s['epochs']} {epochs}, seed {s['seed']}"
    if s["max_steps"] is not None:
        out += f", at most {s['max_steps']} steps per epoch"
    if s.get("shuffle_buffer", DEFAULTS["shuffle_buffer"]) == 0:
        out += ", file order"
    embedding = s.get("embedding_optimizer", "lazy")
    if embedding != "lazy":
        out += f", {embedding} embedding updates"
    return out


# ----------------------------------------------------------------------------------------------
# The model


REQUIRED = ("INPUTS", "LABELS", "LOSSES", "PARAMS", "SCORES")


def load_model(run_dir):
    """Imports RUN_DIR/model.py: `(module, class)`, or UserError."""
    path = os.path.join(run_dir, "model.py")
    if not os.path.isfile(path):
        raise UserError(f"{path} not found (write it with `recspec compile SPEC --emit pytorch > {path}`)")
    try:
        module, cls = load_module(path)
    except Exception as e:  # noqa: BLE001 - any failure to import is the user's file
        raise UserError(f"cannot load {path}: {type(e).__name__}: {e}") from None
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    if missing:
        raise UserError(
            f"{path} lacks {', '.join(missing)}: it is not a module of this recspec's "
            "`recspec compile --emit pytorch`; regenerate it"
        )
    if any(not isinstance(v, tuple) or len(v) != 4 for v in module.INPUTS.values()):
        raise UserError(f"{path}: INPUTS entries are not (dtype, role, shape, vocab): regenerate it")
    unknown = [key for key in row_table_keys(module) if key not in module.PARAMS]
    if unknown:
        raise UserError(f"{path}: ROW_TABLES names `{unknown[0]}`, which is not in PARAMS: regenerate it")
    if not module.LOSSES:
        raise UserError(f"model `{getattr(module, 'MODEL', '?')}` has no `loss` statement: there is nothing to train")
    return module, cls


class Objective(nn.Module):
    """What DDP wraps: the weighted sum of the loss terms' batch means (only what the backward
    needs, so parameters off the loss paths count as unused rather than as missing gradients)."""

    def __init__(self, model, loss_weights):
        super().__init__()
        self.model = model
        self.loss_weights = dict(loss_weights)
        #: (name, weight) of the loss terms of the last forward, in the order of its means.
        self.terms = []

    def forward(self, inputs, labels, step, scale=1.0):
        result = self.model(inputs, labels, step=step)
        if not (isinstance(result, tuple) and len(result) == 3):
            raise UserError(
                "the model's forward does not return (outputs, losses, scores): model.py was "
                "generated by an older recspec; regenerate it"
            )
        _, losses, _ = result
        self.terms = [(name, self.loss_weights.get(name, float(w))) for name, (w, _) in losses.items()]
        means = torch.stack([mean.reshape(()).to(torch.float32) for _, mean in losses.values()])
        total = sum(w * mean for (_, w), (_, mean) in zip(self.terms, losses.values()))
        if scale != 1.0:
            total = total * scale
        return total, means


def placeholder_batch(module, device, rows=2):
    """A valid batch built from INPUTS alone (ids 0, floats 0, weights 1, full masks, labels 0):
    the same on every rank, for the zero-gradient steps and the unused-parameter probe."""
    inputs = {}
    for name, (dtype, role, shape, _) in module.INPUTS.items():
        dims = (rows, *shape[1:])
        if dtype == "mask":
            inputs[name] = torch.ones(dims, dtype=torch.bool, device=device)
        elif dtype == "id":
            inputs[name] = torch.zeros(dims, dtype=torch.int64, device=device)
        elif role == "weight":
            inputs[name] = torch.ones(dims, dtype=torch.float32, device=device)
        else:
            inputs[name] = torch.zeros(dims, dtype=torch.float32, device=device)
    labels = {name: torch.zeros(rows, dtype=torch.float32, device=device) for name in module.LABELS}
    return inputs, labels


def has_unused_parameters(objective, placeholder):
    """Whether some trainable parameter gets no gradient from the loss (an output no loss
    reads): one forward and backward on the placeholder batch, memory buffers restored."""
    model = objective.model
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    total, _ = objective(*placeholder, 0)
    total.backward()
    unused = any(p.grad is None for p in params)
    for p in params:
        p.grad = None
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(saved[name])
    return unused


def data_parallel(ctx, objective, placeholder):
    """What a step calls: `objective` itself in one process, else wrapped in
    DistributedDataParallel."""
    if not ctx.distributed:
        return objective
    from torch.nn.parallel import DistributedDataParallel

    # Memory slots are buffers: DDP broadcasts rank 0's buffers before every forward
    # (broadcast_buffers=True), so each step starts from rank 0's memory and the other ranks'
    # writes are dropped. Parameters off every loss path (an output nobody trains) get no
    # gradient; only then does DDP need find_unused_parameters (a graph walk per step).
    return DistributedDataParallel(
        objective,
        device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
        find_unused_parameters=has_unused_parameters(objective, placeholder),
    )


# ----------------------------------------------------------------------------------------------
# Processes


class Context:
    """Rank, world size, device, and the collectives (no-ops in one process)."""

    def __init__(self, device_arg):
        self.distributed = "WORLD_SIZE" in os.environ and "RANK" in os.environ
        self.rank = int(os.environ.get("RANK", 0)) if self.distributed else 0
        self.world = int(os.environ.get("WORLD_SIZE", 1)) if self.distributed else 1
        want = device_arg or ("cuda" if torch.cuda.is_available() else "cpu")
        if want == "cuda":
            if not torch.cuda.is_available():
                raise UserError("--device cuda: CUDA is not available")
            count = torch.cuda.device_count()
            local = int(os.environ.get("LOCAL_RANK", self.rank % count)) if self.distributed else 0
            if local >= count:
                raise UserError(f"LOCAL_RANK {local}: this machine has {count} CUDA devices")
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)
            self.backend = "nccl"
        else:
            self.device = torch.device("cpu")
            self.backend = "gloo"
        if self.distributed:
            import torch.distributed as dist

            self.dist = dist
            dist.init_process_group(backend=self.backend)

    def all_sum(self, values):
        """Element-wise sums over the ranks of a list of floats (f64)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return t.tolist()

    def agree(self, failed):
        """Every rank says whether it failed; raises PeerFailed on the others if one did."""
        if self.distributed and self.all_sum([1.0 if failed else 0.0])[0] > 0 and not failed:
            raise PeerFailed()

    def all_gather(self, obj):
        """Objects of every rank, at every rank."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def gather(self, obj):
        """Objects of every rank, at rank 0 (None elsewhere)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world if self.rank == 0 else None
        self.dist.gather_object(obj, out, dst=0)
        return out

    def close(self):
        if self.distributed and self.dist.is_initialized():
            self.dist.destroy_process_group()


def _log(ctx, message):
    if ctx.rank == 0:
        print(message, file=sys.stderr, flush=True)


def _write_atomic(path, write):
    tmp = f"{path}.tmp"
    write(tmp)
    os.replace(tmp, path)


def _write_json(path, value):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(value if isinstance(value, str) else json.dumps(value))

    _write_atomic(path, write)


def _write_int_list(path, values, chunk=1 << 16):
    """Writes a JSON array of ints, streamed (shards of large files have many rows)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[")
        for start in range(0, len(values), chunk):
            fh.write(("," if start else "") + ",".join(map(str, values[start:start + chunk])))
        fh.write("]")


def _to(tensors, device):
    return {k: v.to(device, non_blocking=True) for k, v in tensors.items()}


def _data_path(data_dir, split):
    """`SPLIT.jsonl` or a folder `SPLIT/` of JSON Lines shards (not both, as recspec says)."""
    found = [p for p in (os.path.join(data_dir, f"{split}.jsonl"), os.path.join(data_dir, split)) if os.path.exists(p)]
    found = [p for p in found if p.endswith(".jsonl") or os.path.isdir(p)]
    if len(found) > 1:
        raise UserError(
            f"the {split} split is in two places, {found[0]} and {found[1]}; keep one (a data set's split is "
            "one file or one folder of shards)"
        )
    if not found:
        path = os.path.join(data_dir, f"{split}.jsonl")
        raise UserError(
            f"{path} not found (expected {split}.jsonl or a folder {split}/ of JSON Lines shards in the data "
            "directory; `recspec simulate --out DIR` writes one)"
        )
    return found[0]


def plan_split(ctx, path):
    """This rank's `SplitPlan` of a split, every shard's row count exchanged among the ranks
    (each counts only the shards it reads)."""
    plan, local = None, None
    try:
        plan = data_mod.SplitPlan(path, ctx.rank, ctx.world)
        local = plan.local_counts()
    except data_mod.DataError as e:
        local = str(e)  # every rank still joins the exchange, then all stop with the message
    parts = ctx.all_gather(local)
    failed = [part for part in parts if isinstance(part, str)]
    if failed:
        raise UserError(local if isinstance(local, str) else failed[0])
    counts = {}
    for part in parts:
        counts.update(part)
    plan.set_counts(counts)
    return plan


def _f32_text(v):
    return {"nan": "NaN", "inf": "inf", "-inf": "-inf"}.get(str(v), str(v))


# ----------------------------------------------------------------------------------------------
# Training


def evaluate(ctx, model, module, schema, plan, lockstep=False):
    """Scores this rank's part of a split (`plan`, a `SplitPlan`) in eval mode; at rank 0, the
    metrics of every label stream in SCORES over all ranks' rows (in file order), else None.
    With `lockstep` (tables sharded: every forward is a collective) every rank runs as many
    forwards as the rank with the most batches, the extra ones on a placeholder batch."""
    model.eval()
    if lockstep:
        batches = max(-(-plan.rank_rows(r) // VALID_BATCH_SIZE) for r in range(ctx.world))
        placeholder = placeholder_batch(module, ctx.device)
    labels_scored = sorted(module.SCORES)
    mine = {"indices": [], "users": [], "scores": {l: [] for l in labels_scored}, "labels": {l: [] for l in labels_scored}}
    error, done = None, 0
    with torch.no_grad():
        try:
            for batch in data_mod.iterate(plan.path, schema, VALID_BATCH_SIZE, plan=plan):
                result = model(_to(batch.inputs, ctx.device), _to(batch.labels, ctx.device), step=0)
                done += 1
                scores = result[2]
                mine["indices"].extend(batch.indices)
                mine["users"].extend(batch.users)
                for l in labels_scored:
                    mine["scores"][l].append(scores[l].detach().reshape(-1).to(torch.float32).cpu().numpy())
                    mine["labels"][l].append(batch.labels[l].numpy())
        except data_mod.DataError as e:
            error = e
        if lockstep:  # after a bad row too: the other ranks are still in their forwards
            for _ in range(batches - done):
                model(*placeholder, step=0)
    ctx.agree(error is not None)
    if error is not None:
        raise error
    gathered = ctx.gather(mine)
    if ctx.rank != 0:
        return None
    indices = np.concatenate([np.asarray(g["indices"], dtype=np.int64) for g in gathered])
    order = np.argsort(indices, kind="stable")
    users = np.concatenate([np.asarray(g["users"], dtype=np.uint64) for g in gathered])[order]
    streams = {}
    for l in labels_scored:
        parts = [x for g in gathered for x in g["scores"][l]]
        ys = [y for g in gathered for y in g["labels"][l]]
        s = np.concatenate(parts)[order] if parts else np.zeros(0, np.float32)
        y = np.concatenate(ys)[order] if ys else np.zeros(0, np.float32)
        kind = module.SCORES[l]
        streams[l] = stream_metrics(s, y, users, scored_by=kind)
    return {"rows": int(len(indices)), "bad_rows": 0, "streams": streams}


def summary(valid):
    """`valid click AUC 0.7012, like AUC 0.6543` (streams with an AUC, by name)."""
    parts = [f"{name} AUC {m['auc']:.4f}" for name, m in sorted(valid["streams"].items()) if m["auc"] is not None]
    return "valid " + ", ".join(parts)


def run(args):
    """Trains as the command line says; returns the report dict at rank 0 (None elsewhere)."""
    run_dir = args.run_dir
    if not os.path.isdir(run_dir):
        raise UserError(f"{run_dir}: not a directory (expected model.py and run.toml in it)")
    module, cls = load_model(run_dir)
    config, loss_weights = load_run_config(os.path.join(run_dir, "run.toml"))
    settings = merge_settings(config, args)
    unknown = [name for name in loss_weights if name not in module.LOSSES]
    if unknown:
        raise UserError(
            f"[loss_weights] names `{unknown[0]}`, but the model's losses are {', '.join(module.LOSSES)}"
        )
    try:
        schema = data_mod.Schema.from_module(module)
    except data_mod.SchemaError as e:
        raise UserError(f"{os.path.join(run_dir, 'model.py')}: {e}") from None
    train_path = _data_path(args.data, "train")
    valid_path = _data_path(args.data, "valid")

    ctx = Context(args.device)
    try:
        return _train(ctx, args, module, cls, schema, settings, loss_weights, train_path, valid_path)
    finally:
        ctx.close()


def _train(ctx, args, module, cls, schema, settings, loss_weights, train_path, valid_path):
    run_dir = args.run_dir
    rank, world = ctx.rank, ctx.world
    seed = settings["seed"]
    # Dropout masks come from torch's generator: seeded per rank, so ranks drop differently.
    torch.manual_seed((seed + rank) & MASK64)
    if rank == 0:
        for name in os.listdir(run_dir):
            if re.fullmatch(r"(rows\.rank\d+\.json|weights\.rank\d+\.sha256)", name) or name == "sharding.json":
                os.remove(os.path.join(run_dir, name))
    placeholder = placeholder_batch(module, ctx.device)
    sharding = getattr(args, "table_sharding", None)
    compile_mode = getattr(args, "compile", None)
    if compile_mode is not None and sharding is not None:
        raise UserError("--compile does not combine with --table-sharding (TorchRec's collection is not compiled)")
    if sharding is None:
        model = cls(seed=seed).to(ctx.device)  # recspec's initialisation: identical on every rank
        if compile_mode is not None:
            # Compiled lazily, on the first forward; parameters, buffers and their names stay
            # the module's own, so checkpoints, row optimizers and DDP see the same model.
            model.compile(mode=compile_mode)
        objective = Objective(model, loss_weights)
        step_fn = data_parallel(ctx, objective, placeholder)
        generated = model
    else:
        model, objective, step_fn = _shard_tables(ctx, module, cls, settings, loss_weights, sharding, run_dir)
        generated = model.model
    n_params = sum(math.prod(shape) for _, shape, is_state, _ in module.PARAMS.values() if not is_state)
    # torch's Adam or Adagrad for the dense parameters, a RowOptimizer for the embedding tables
    # the module holds (after the unused-parameter probe above, so that its lookups are not
    # logged); tables sharded by TorchRec are updated by its fused backward instead.
    optimizer = Optimizers(
        generated, module, settings["optimizer"], settings["lr"], settings["embedding_optimizer"], eps=OPTIMIZER_EPS
    )

    # Every rank takes the same number of steps: the largest part's batch count (capped by
    # max_steps); a rank with fewer batches joins the last step with a zero gradient.
    train_plan, valid_plan = plan_split(ctx, train_path), plan_split(ctx, valid_path)
    largest = max(train_plan.rank_rows(r) for r in range(world))
    steps_per_epoch = -(-largest // settings["batch_size"])
    if settings["max_steps"] is not None:
        steps_per_epoch = min(steps_per_epoch, settings["max_steps"])
    _log(
        ctx,
        f"training {os.path.join(run_dir, 'model.py')} ({n_params:,} parameters) on {args.data} with "
        f"{describe_settings(settings)}; {world} process{'es' if world > 1 else ''} on {ctx.device.type}"
        + ("" if compile_mode is None else f"; torch.compile mode {compile_mode}"),
    )

    # Rows trained on: the union over the epochs of the rows of the batches stepped on (with a
    # shuffle and max_steps, not a prefix of the rank's rows), one flag per row of the rank.
    trained = np.zeros(train_plan.rank_rows(rank), dtype=bool)
    history = []
    global_step = 0
    first_loss = last_loss = None
    samples = 0.0
    busy = 0.0
    for epoch in range(1, settings["epochs"] + 1):
        model.train()
        started = time.monotonic()
        batches = data_mod.iterate(
            train_path,
            schema,
            settings["batch_size"],
            rank,
            world,
            shuffle_buffer=settings["shuffle_buffer"],
            seed=data_mod.shuffle_seed(seed, epoch, rank),
            plan=train_plan,
        )
        loss_sum, loss_n, last = 0.0, 0, None
        for _ in range(steps_per_epoch):
            t0 = time.monotonic()
            error, batch, step_loss = None, None, 0.0
            try:
                batch = next(batches, None)
            except data_mod.DataError as e:
                error = e
            try:
                if batch is None:
                    # This rank's shard is out of rows (or its row was bad): it still runs the
                    # step's forward, so that DDP's collectives match on every rank, on its last
                    # batch (the placeholder if it had none) with the loss times 0: a zero
                    # gradient, the same optimizer steps everywhere, hence identical parameters
                    # and optimizer state. (Its memory writes are dropped: see above.)
                    total, _ = step_fn(*(last or placeholder), global_step, 0.0)
                else:
                    last = (_to(batch.inputs, ctx.device), _to(batch.labels, ctx.device))
                    total, means = step_fn(*last, global_step)
                    for (name, weight), value in zip(objective.terms, means.detach().cpu().tolist()):
                        if not math.isfinite(value):
                            raise UserError(
                                f"loss term `{name}` became {_f32_text(value)} at epoch {epoch}, step "
                                f"{global_step + 1} (batch of rows ending at {batch.files[-1]}:{batch.lines[-1]}); "
                                "lower the learning rate or check the data"
                            )
                        step_loss += weight * value
            except UserError as e:
                error = error or e
            # One small all-reduce per step: stop together on any rank's error, and sum the
            # step's loss and rows over the ranks.
            got = 0.0 if batch is None else 1.0
            rows = float(len(batch.users)) if batch is not None else 0.0
            agreed = ctx.all_sum([1.0 if error else 0.0, step_loss * got, got, rows])
            if agreed[0] > 0:
                if error is not None:
                    raise error
                raise PeerFailed()
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            global_step += 1
            if batch is not None:
                trained[train_plan.local_positions(batch.indices)] = True
            mean_loss = agreed[1] / max(agreed[2], 1.0)
            samples += agreed[3]
            busy += time.monotonic() - t0
            loss_sum += mean_loss
            loss_n += 1
            if first_loss is None:
                first_loss = mean_loss
            last_loss = mean_loss
        batches.close()
        train_loss = loss_sum / max(loss_n, 1)
        valid = evaluate(ctx, model, module, schema, valid_plan, lockstep=sharding is not None)
        # every rank takes part in gathering sharded tables; rank 0 writes them
        weights = model.recspec_state_dict(rank) if sharding else None
        failed = None
        if rank == 0:
            line = {
                "epoch": epoch,
                "steps": global_step,
                "train_loss": train_loss,
                "seconds": time.monotonic() - started,
                "world_size": world,
                "valid": valid,
            }
            history.append(line)
            print(f"epoch {epoch}: train loss {train_loss:.4f}, {summary(valid)}", file=sys.stderr, flush=True)
            try:
                _write_atomic(
                    os.path.join(run_dir, "model.safetensors"),
                    lambda tmp: save_safetensors(weights if sharding else model.recspec_state_dict(), tmp),
                )
                _write_json(
                    os.path.join(run_dir, "torch_metrics.jsonl"),
                    "".join(json.dumps(h) + "\n" for h in history),
                )
            except OSError as e:
                failed = UserError(f"cannot write to {run_dir}: {e}")
        ctx.agree(failed is not None)
        if failed is not None:
            raise failed
    trained_rows = train_plan.indices()[trained].tolist()
    _write_atomic(os.path.join(run_dir, f"rows.rank{rank}.json"), lambda tmp: _write_int_list(tmp, trained_rows))
    if sharding is None:
        # The SHA-256 of this rank's final weights (every PARAMS key, in order): data-parallel
        # ranks that averaged their gradients hold the same bytes.
        _write_json(os.path.join(run_dir, f"weights.rank{rank}.sha256"), weights_digest(generated, module))
    ctx.agree(False)
    if rank != 0:
        return None
    report = {
        "epochs": settings["epochs"],
        "steps": global_step,
        "first_loss": first_loss,
        "last_loss": last_loss,
        "samples_per_sec": samples / max(busy, 1e-9),
        "world_size": world,
        "valid": history[-1]["valid"] if history else None,
    }
    fmt = lambda x: "nan" if x is None else f"{x:.4f}"  # noqa: E731
    print(
        f"done: {report['epochs']} epoch{'' if report['epochs'] == 1 else 's'}, {report['steps']} steps, loss {fmt(first_loss)} -> {fmt(last_loss)}, "
        f"{report['samples_per_sec']:.0f} samples/s",
        file=sys.stderr,
        flush=True,
    )
    return report


def weights_digest(model, module):
    """The hex SHA-256 of a generated module's trainable weights, in PARAMS order (memory slots
    are excluded: DDP keeps rank 0's, and each rank writes its own in a training pass)."""
    import hashlib

    h = hashlib.sha256()
    for key, (attr, _, is_state, _) in module.PARAMS.items():
        if not is_state:
            h.update(key.encode())
            h.update(getattr(model, attr).detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def _shard_tables(ctx, module, cls, settings, loss_weights, sharding, run_dir):
    """The model with its embedding tables sharded by TorchRec (`recspec_torch.sharded`): the
    model, the objective, and the step function (DistributedModelParallel). Rank 0 writes
    `sharding.json`: each sharded table's shards (rank, rows, columns), and the row tables
    left replicated with the reason."""
    if not ctx.distributed:
        raise UserError("--table-sharding shards tables across torchrun's ranks: run it under torchrun")
    try:
        from . import sharded
    except ImportError as e:
        raise UserError(f"--table-sharding needs TorchRec, which does not import here: {e}") from None
    try:
        fused = sharded.fused_params(
            settings["optimizer"], settings["embedding_optimizer"], settings["lr"], ctx.device.type
        )
        model = sharded.ShardedModel(module, cls, settings["seed"], ctx.device, ctx.world)
        objective = Objective(model, loss_weights)
        step_fn = sharded.distribute(ctx, objective, model, sharding, fused)
    except ImportError as e:
        raise UserError(f"--table-sharding needs TorchRec, which does not import here: {e}") from None
    except ValueError as e:
        raise UserError(str(e)) from None
    placements = model.placements()
    if ctx.rank == 0:
        _write_json(
            os.path.join(run_dir, "sharding.json"),
            {"sharding": sharding, "world_size": ctx.world, "tables": placements, "replicated": model.skipped},
        )
    _log(
        ctx,
        f"TorchRec shards {len(placements)} table{'s' if len(placements) != 1 else ''} {sharding} over "
        f"{ctx.world} ranks ({', '.join(placements)})"
        + "".join(f"; `{k}` stays replicated: {why}" for k, why in model.skipped.items()),
    )
    return model, objective, step_fn


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m recspec_torch.train",
        description="Train a generated recspec module (single process or under torchrun).",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="holds model.py and (optionally) run.toml")
    parser.add_argument("--data", required=True, metavar="DATA", help="holds train.jsonl and valid.jsonl")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-steps", type=int, dest="max_steps", help="per epoch")
    parser.add_argument("--batch-size", type=int, dest="batch_size", help="per process")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--shuffle-buffer",
        type=int,
        dest="shuffle_buffer",
        metavar="K",
        help="rows in each epoch's shuffle buffer (default 10000; 0 reads the rows in file order)",
    )
    parser.add_argument(
        "--embedding-optimizer",
        dest="embedding_optimizer",
        choices=EMBEDDING_OPTIMIZERS,
        help="how embedding tables are updated (default lazy)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        choices=COMPILE_MODES,
        metavar="MODE",
        help="torch.compile the module (MODE: default, or reduce-overhead, which on a GPU replays CUDA "
        "graphs: batches are padded, so their shapes are static; or max-autotune)",
    )
    parser.add_argument(
        "--table-sharding",
        dest="table_sharding",
        choices=("table_wise", "column_wise", "row_wise"),
        help="under torchrun: shard the embedding tables across the ranks with TorchRec (row_wise needs CUDA)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point; returns the exit status (0 ok, 2 a user error or a failed peer)."""
    args = parse_args(argv)
    try:
        run(args)
    except (UserError, data_mod.DataError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except PeerFailed:
        print(f"error: rank {os.environ.get('RANK', '?')} stopped: another rank failed (see its error)", file=sys.stderr)
        # Exit after the failing rank, so that torchrun's summary names it as the root cause.
        time.sleep(1.0)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
