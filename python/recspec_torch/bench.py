"""Speed of a generated module on the CPU, measured as `recspec bench` measures the interpreter.

    python -m recspec_torch.bench RUN_DIR --data DATA [--batch-size B] [--steps S] [--warmup W]
        [--min-seconds SEC] [--threads N] [--device cpu|cuda] [--compile]

Prints one JSON line on stdout (the same keys as `recspec bench`, "program": "pytorch", or
"pytorch_compiled" with `--compile`, which compiles the module with `torch.compile`
(`nn.Module.compile`, default mode) before the warm-up, so compilation is not timed):

- `loader_rows_per_s`: rows of DATA/train.jsonl per second, reading the whole file into
  batches of B with `recspec_torch.data.iterate` (parse, validate, collate into tensors). Only
  the first W + S batches are kept; the rest are dropped as they are read.
- `train_samples_per_s`: step i in 0..W+S trains on batch i (cycling when the file has fewer
  batches); steps 0..W are untimed warm-up, the S after them timed one by one, and more steps
  follow until the timed steps add up to at least SEC seconds (`--min-seconds`, default 0). A step is the
  forward in train mode with `step` = i, the weighted sum of the loss terms (each term's mean
  read back), backward and Adam (lr 0.001, burn's epsilon 1e-5). Rows of the timed steps /
  their seconds.
- `infer_us_per_example`: after training, one untimed eval-mode forward (under
  `torch.no_grad()`, labels given, `step` 0: the warm-up, where a compiled module compiles its
  eval graph), then the same forward of the timed steps' batches (W..W+S, cycling, again until
  at least SEC seconds): total seconds / total rows, in µs.
- `steps` and `seconds`: the timed training steps and their seconds.
- `params`: trainable parameter elements (memory slots, which are buffers, excluded).
- `peak_rss_mb`: VmHWM of /proc/self/status at the end, in MiB (kB / 1024).
- `device`, and on CUDA `peak_gpu_mb`: `torch.cuda.max_memory_allocated()` in MiB.

The batches, steps and timing boundaries are those of `recspec bench` (`src/app/bench.rs`):
every batch is on the device before its step's clock starts, and on CUDA each timed step and
inference batch ends with `torch.cuda.synchronize()` (recspec's inference reads its outputs
back to the host, which synchronises too).

One process, `torch.set_num_threads(N)`; weights start as `Cls(seed=1)`.

`device_and_sync`, `device_batches`, `time_model` and `report` are the protocol's parts;
bench/reference/bench.py times the hand-written references with them.
"""

import argparse
import json
import os
import sys
import time

import torch

from . import data as data_mod
from .train import OPTIMIZER_EPS, Objective, UserError, _to, load_model

LR = 0.001
SEED = 1


def peak_rss_mb():
    """VmHWM of this process in MiB (kB / 1024), or None where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def load_batches(path, schema, batch_size, keep):
    """Reads the whole file into batches: (the first `keep` batches, rows read, seconds)."""
    kept, rows = [], 0
    start = time.perf_counter()
    for batch in data_mod.iterate(path, schema, batch_size):
        rows += len(batch.users)
        if len(kept) < keep:
            kept.append(batch)
    return kept, rows, time.perf_counter() - start


def device_and_sync(device, threads):
    """Sets the thread count; `(torch.device, sync)`, where `sync()` waits for the device (a no-op
    on the CPU). UserError when CUDA is asked for but missing."""
    torch.set_num_threads(threads)
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: CUDA is not available")
    dev = torch.device(device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    return dev, sync


def device_batches(data_dir, schema, batch_size, keep, dev):
    """DATA/train.jsonl read whole into batches (`load_batches`), the first `keep` moved to `dev`:
    `(batches, rows read, seconds)`; UserError when the file is missing or empty."""
    path = os.path.join(data_dir, "train.jsonl")
    if not os.path.isfile(path):
        raise UserError(f"{path} not found (`recspec simulate --out {data_dir}` writes one)")
    host_batches, rows, load_s = load_batches(path, schema, batch_size, keep)
    if not host_batches:
        raise UserError(f"{path} has no rows")
    batches = [b._replace(inputs=_to(b.inputs, dev), labels=_to(b.labels, dev)) for b in host_batches]
    return batches, rows, load_s


def time_model(model, train_step, infer, batches, steps, warmup, sync, min_seconds=0.0):
    """The timing protocol (the module docstring): `train_step(batch, i)` for i in 0..W+S in train
    mode, the S after the warm-up timed, and more until the timed ones add up to `min_seconds`;
    then one untimed `infer(batch)` and timed ones on the timed steps' batches in eval mode under
    `torch.no_grad()`, at least S and `min_seconds`. Returns `(training samples/s, inference µs
    per example, timed training steps, their seconds)`."""

    def batch_at(i):
        return batches[i % len(batches)]

    model.train()
    train_s, trained, timed = 0.0, 0, 0
    i = 0
    while i < warmup + steps or train_s < min_seconds:
        batch = batch_at(i)
        start = time.perf_counter()
        train_step(batch, i)
        sync()
        if i >= warmup:
            train_s += time.perf_counter() - start
            trained += len(batch.users)
            timed += 1
        i += 1

    model.eval()
    infer_s, examples = 0.0, 0
    with torch.no_grad():
        infer(batch_at(warmup))
        sync()
        i = 0
        while i < steps or infer_s < min_seconds:
            batch = batch_at(warmup + i)
            start = time.perf_counter()
            infer(batch)
            sync()
            infer_s += time.perf_counter() - start
            examples += len(batch.users)
            i += 1
    return trained / max(train_s, 1e-12), infer_s / examples * 1e6, timed, train_s


def report(program, spec, dev, batch_size, n_params, steps, train_rate, infer_us, rows, load_s, seconds=None):
    """The JSON line's fields, in `recspec bench`'s order (`peak_gpu_mb` last, on CUDA)."""
    rss = peak_rss_mb()
    result = {
        "program": program,
        "spec": spec,
        "device": dev.type,
        "batch": batch_size,
        "threads": torch.get_num_threads(),
        "params": n_params,
        "steps": steps,
        "train_samples_per_s": round(train_rate, 3),
        "infer_us_per_example": round(infer_us, 3),
        "loader_rows_per_s": round(rows / max(load_s, 1e-12), 3),
        "peak_rss_mb": None if rss is None else round(rss, 1),
        "seconds": None if seconds is None else round(seconds, 3),
    }
    if dev.type == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return result


def measure(run_dir, data_dir, batch_size, steps, warmup, threads, device="cpu", min_seconds=0.0, compile=False):
    """The result dict (the JSON line's fields); `compile`: `torch.compile` the module first."""
    dev, sync = device_and_sync(device, threads)
    module, cls = load_model(run_dir)
    try:
        schema = data_mod.Schema.from_module(module)
    except data_mod.SchemaError as e:
        raise UserError(f"{os.path.join(run_dir, 'model.py')}: {e}") from None
    batches, rows, load_s = device_batches(data_dir, schema, batch_size, warmup + steps, dev)

    torch.manual_seed(SEED)  # dropout masks
    model = cls(seed=SEED).to(dev)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if compile:
        model.compile()
    objective = Objective(model, {})  # the module's own loss weights
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=LR, eps=OPTIMIZER_EPS)

    def train_step(batch, step):
        total, means = objective(batch.inputs, batch.labels, step)
        means.tolist()  # the loss terms read back, as recspec's step and `recspec_torch.train` do
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    def infer(batch):
        model(batch.inputs, batch.labels, step=0)

    train_rate, infer_us, timed, seconds = time_model(
        model, train_step, infer, batches, steps, warmup, sync, min_seconds
    )
    spec = getattr(module, "MODEL", os.path.basename(os.path.normpath(run_dir)))
    program = "pytorch_compiled" if compile else "pytorch"
    return report(program, spec, dev, batch_size, n_params, timed, train_rate, infer_us, rows, load_s, seconds)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m recspec_torch.bench",
        description="Training, inference and loading speed of a generated module (one JSON line).",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="holds model.py (`recspec pytorch`)")
    parser.add_argument("--data", required=True, metavar="DATA", help="holds train.jsonl")
    parser.add_argument("--batch-size", type=int, default=256, dest="batch_size")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (and inference batches)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    add_window_flags(parser)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    check_counts(parser, args)
    return args


def add_window_flags(parser):
    """`--min-seconds` and `--compile`, shared with bench/reference/bench.py."""
    parser.add_argument(
        "--min-seconds", type=float, default=0.0, dest="min_seconds",
        help="time more steps (and inference batches) until they add up to at least this many seconds",
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the model before the warm-up (program *_compiled)"
    )


def check_counts(parser, args):
    """The counts of both benches' flags are in range (a parser error otherwise)."""
    for name, low in (("batch_size", 1), ("steps", 1), ("warmup", 0), ("threads", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')} must be at least {low}")
    if not args.min_seconds >= 0 or args.min_seconds == float("inf"):
        parser.error(f"--min-seconds must be a finite number of seconds, at least 0, got {args.min_seconds}")


def main(argv=None):
    args = parse_args(argv)
    try:
        result = measure(
            args.run_dir, args.data, args.batch_size, args.steps, args.warmup, args.threads, args.device,
            min_seconds=args.min_seconds, compile=args.compile,
        )
    except (UserError, data_mod.DataError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
