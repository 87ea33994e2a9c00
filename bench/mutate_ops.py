"""Mutation check of the PyTorch equivalence tests (issue 27): does a small change in any one op
of `recspec_torch.ops` fail them?

    .venv/bin/python bench/mutate_ops.py [--ops a,b] [--scale 1e-3]

For every public function of `python/recspec_torch/ops.py`, a copy of the package is made in
which that one function's floating-point results are multiplied by (1 + scale) — a relative
change of 1e-3 by default, a hundred times the tests' tolerance — and the Rust tests
`every_spec_matches_its_generated_pytorch_module` (outputs, loss terms and gradients of every
shipped spec on one batch) and `every_spec_trains_the_same_steps_in_burn_and_pytorch` (weights
and optimizer state after each of several steps) are run against the copy
(`RECSPEC_TORCH_PATH`). A mutant is killed when a test fails. Prints one line per op and the
count; an op that neither a shipped spec nor tests/data/coverage/ops.recspec calls survives,
and is named as such.

Runs the test binary cargo last built (`cargo test --release --test it --no-run` first).
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = (
    "pytorch::every_spec_matches_its_generated_pytorch_module",
    "pytorch::every_spec_trains_the_same_steps_in_burn_and_pytorch",
)

PERTURB = '''

# ---- mutation (bench/mutate_ops.py): {name}'s float results times (1 + {scale}) ----
def _mutated(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value * (1.0 + {scale})
    if isinstance(value, (tuple, list)):
        return type(value)(_mutated(v) for v in value)
    if isinstance(value, dict):
        return {{k: _mutated(v) for k, v in value.items()}}
    return value


_original_{name} = {name}


def {name}(*args, **kwargs):
    return _mutated(_original_{name}(*args, **kwargs))
'''


def test_binary():
    candidates = [p for p in glob.glob(os.path.join(ROOT, "target/release/deps/it-*")) if os.access(p, os.X_OK) and not p.endswith(".d")]
    if not candidates:
        raise SystemExit("no test binary: run `cargo test --release --test it --no-run` first")
    return max(candidates, key=os.path.getmtime)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", help="comma-separated op names (default: every public function of ops.py)")
    parser.add_argument("--scale", type=float, default=1e-3)
    args = parser.parse_args()
    source = open(os.path.join(ROOT, "python/recspec_torch/ops.py"), encoding="utf-8").read()
    names = re.findall(r"^def ([a-z][a-z0-9_]*)\(", source, flags=re.M)
    if args.ops:
        names = [n for n in names if n in args.ops.split(",")]
    binary = test_binary()
    env = dict(os.environ, RECSPEC_PYTHON=os.environ.get("RECSPEC_PYTHON", sys.executable))
    killed, survived = [], []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"mutant-{name}-") as tmp:
            shutil.copytree(os.path.join(ROOT, "python/recspec_torch"), os.path.join(tmp, "recspec_torch"))
            with open(os.path.join(tmp, "recspec_torch/ops.py"), "a", encoding="utf-8") as fh:
                fh.write(PERTURB.format(name=name, scale=args.scale))
            run = subprocess.run(
                [binary, *TESTS, "--exact", "--test-threads", "2"],
                cwd=ROOT,
                env=dict(env, RECSPEC_TORCH_PATH=tmp),
                capture_output=True,
                text=True,
            )
        failed = [t for t in TESTS if f"{t} ... FAILED" in run.stdout]
        ran = all(f"{t} ..." in run.stdout for t in TESTS)
        if not ran:
            raise SystemExit(f"{name}: the tests did not run:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
        (killed if failed else survived).append(name)
        print(f"{name}: {'killed by ' + ', '.join(t.split('::')[1] for t in failed) if failed else 'SURVIVED'}", flush=True)
    print(f"\n{len(killed)} of {len(names)} mutants killed; survived: {', '.join(survived) or 'none'}")


if __name__ == "__main__":
    main()
