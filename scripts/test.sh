#!/usr/bin/env bash
# The test command (README): sets up the Python side once, in .venv (PyTorch for the generated
# modules' equivalence tests, TorchRec for the sharded-table test, onnx and onnxruntime for the
# ONNX export), then runs every Rust test, the Python package's tests, and the library examples
# in examples/ (built by cargo test; each asserts what it shows). No test is skipped, except the
# browser checks of the pictures where Chromium cannot be installed (said loudly).
set -euo pipefail
cd "$(dirname "$0")/.."
# PyTorch's wheel brings its CUDA libraries (about 7 GB installed) and the release builds take
# about 6 GB more (7 with scripts/tch_check.sh): say so before pip fails on a full disk with a
# traceback. pip keeps no cache of the wheels it installs (--no-cache-dir): on 2026-12-05 a CI
# machine ran out of space in pip's caching copy of a download.
need_gb=8
.venv/bin/python -c "import torch" 2>/dev/null || need_gb=16
free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "${free_gb:-0}" -lt "$need_gb" ]; then
  echo "!!! only ${free_gb} GB free on $(df -P . | awk 'NR == 2 { print $6 }'); the tests need about ${need_gb} GB (the .venv and the release builds)" >&2
fi
if ! .venv/bin/python -c "import torch, safetensors" 2>/dev/null; then
  echo "setting up .venv (PyTorch from the Python package index, a few minutes the first time)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --no-cache-dir torch==2.9.0 safetensors==0.8.0 numpy
fi
if ! .venv/bin/python -c "import torchrec" 2>/dev/null; then
  echo "installing TorchRec into .venv (the sharded-table tests)" >&2
  # torchrec declares `fbgemm-gpu`, the CUDA build; on a CPU machine fbgemm-gpu-cpu provides the
  # same `fbgemm_gpu` package, so torchrec goes in without its declared dependencies, which are
  # listed here instead.
  .venv/bin/pip install --quiet --no-cache-dir fbgemm-gpu-cpu==1.4.2 tensordict==0.10.0 iopath==0.1.10 \
    pyre-extensions==0.0.32 torchmetrics==1.0.3 tqdm==4.70.1
  .venv/bin/pip install --quiet --no-cache-dir --no-deps torchrec==1.4.0
fi
if ! .venv/bin/python -c "import onnx, onnxruntime" 2>/dev/null; then
  echo "installing onnx and onnxruntime into .venv (the ONNX export tests)" >&2
  .venv/bin/pip install --quiet --no-cache-dir onnx==1.23.2 onnxruntime==1.32.0
fi
# The pictures' tests look at the pages in headless Chromium (Debian's package). Without it
# those tests fail, unless it could not be installed here: then they are skipped with a loud
# message (RECSPEC_SKIP_BROWSER).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium (the pictures' browser tests)" >&2
    (apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }) \
      || true
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    echo "!!! no chromium and no way to install it: the pictures' browser checks will be SKIPPED" >&2
    export RECSPEC_SKIP_BROWSER=1
  fi
fi
# Two servers sharing users' state through Redis (`recspec serve --redis`) are tested against a
# redis-server the test starts on the loopback address (Debian's package). Without it those tests
# fail, unless it could not be installed here: then they are skipped with a loud message.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's redis-server (the shared-state serving tests)" >&2
    (apt-get install -y -qq redis-server >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq redis-server >/dev/null 2>&1; }) \
      || true
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "!!! no redis-server and no way to install it: the Redis serving tests will be SKIPPED" >&2
    export RECSPEC_SKIP_REDIS=1
  fi
fi
# Rust first: it builds target/release/recspec, which the Python fixture test runs (it fails,
# rather than skips, without it).
RECSPEC_PYTHON="$PWD/.venv/bin/python" cargo test --release --locked
RECSPEC_BIN="$PWD/target/release/recspec" .venv/bin/python -m unittest discover -s python/tests
# Each example prints what it shows; only a failing one's output (a snapshot diff, an assertion)
# is shown.
for example in compile_and_snapshot diff_specs sasrec; do
  if ! output=$(cargo run --release --locked --quiet --example "$example" 2>&1); then
    printf '%s\nexample %s failed\n' "$output" "$example" >&2
    exit 1
  fi
  echo "example $example: ok" >&2
done
