#!/usr/bin/env bash
# The libtorch back end's checks, run by .ci/run after the test command (the build compiles
# torch-sys against PyTorch's libtorch and recspec a second time: about 15 minutes on 2 cores).
# Builds recspec with `--features tch` against .venv's PyTorch (set up by scripts/test.sh) into
# target/tch, lints that build, runs the fused-op tests on every CPU backend, tch-cpu included
# (libtorch's own softmax, softmax backward and GRU-step kernels against the formulas, values
# and gradients), and trains DFN for a few steps on tch-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "no PyTorch in .venv: run scripts/test.sh first" >&2
  exit 2
fi
export LIBTORCH_USE_PYTORCH=1 PATH="$PWD/.venv/bin:$PATH"
torch_lib=$(.venv/bin/python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cargo clippy --release --locked --features tch --target-dir target/tch --all-targets -- -D warnings
cargo test --release --locked --features tch --target-dir target/tch --test it -- fused_
bin=target/tch/release/recspec
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" simulate --out "$work/data" --users 60 --seed 3 >/dev/null
"$bin" train specs/dfn.recspec --data "$work/data" --out "$work/run" --device tch-cpu --epochs 1 \
  --batch-size 64 --max-steps 6 --quiet
grep -q '"epoch"' "$work/run/metrics.jsonl" || { echo "tch-cpu: DFN trained no epoch" >&2; exit 1; }
echo "tch-cpu: fused ops match the formulas; DFN trains" >&2
