#!/usr/bin/env bash
# Side-by-side speed of recspec's interpreter (`recspec bench`, burn-flex on the CPU), the
# generated PyTorch module (`python -m recspec_torch.bench`) and the hand-written PyTorch
# reference of the same architecture (`python -m reference.bench`, bench/reference/), the two
# PyTorch ones eager and under `torch.compile` (`--compile`), on the same spec, data and batches.
#
# For each family (specs/NAME.recspec) on the simulator's default data set: writes the PyTorch
# run directory (`recspec pytorch`); when the reference runs, checks it against the generated
# module on that data (`python -m reference.equivalence`: the same inputs, losses and parameter
# count, and on the same weights the same outputs, losses and gradients); then runs the
# programs in turn, recspec, pytorch, reference, recspec, ... (ROUNDS rounds, one process per
# run), appending every run's JSON line to RESULTS_DIR/results.jsonl and checking that every
# program of a round reports the same parameter count; finally prints the machine and the
# Markdown table of bench/speed_table.py (also written to RESULTS_DIR/table.md).
#
# Every run times at least STEPS training steps and goes on until its timed steps add up to
# MIN_SECONDS (and the same for inference), so that a window is seconds long whatever the
# family's step time; the table prints each program's shortest window.
#
# Usage: bash bench/speed.sh [--families dfn,din] [--rounds 5] [--programs recspec,reference]
#          [--min-seconds 2]
# The flags override the environment variables of the same names (defaults in brackets):
#   ROUNDS [5]  BATCH [256]  STEPS [10]  WARMUP [3]  THREADS [2]  MIN_SECONDS [2]
#   FAMILIES ["dfn din dumn dlen retrieval_ntr"]
#   PROGRAMS ["recspec reference reference_compiled pytorch pytorch_compiled"]: which programs
#               run, in this order within a round
#   SMOKE=1     1 round, STEPS=2, WARMUP=1, BATCH=32, MIN_SECONDS=0 on a tiny simulated data
#               set, in target/speed/smoke (for tests; the numbers mean nothing)
#   RESULTS_DIR [target/speed, or target/speed/smoke with SMOKE=1]
#   RECSPEC_BIN [target/release/recspec, built with `cargo build --release`; when set, no build]
#   PYTHON      [.venv/bin/python]
# Every program runs with OMP_NUM_THREADS, MKL_NUM_THREADS and RAYON_NUM_THREADS = THREADS;
# the PyTorch ones also get --threads THREADS (torch.set_num_threads).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "speed.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --families) [ $# -ge 2 ] || die "--families needs a value"; FAMILIES=${2//,/ }; shift 2 ;;
    --rounds) [ $# -ge 2 ] || die "--rounds needs a value"; ROUNDS=$2; shift 2 ;;
    --programs) [ $# -ge 2 ] || die "--programs needs a value"; PROGRAMS=${2//,/ }; shift 2 ;;
    --min-seconds) [ $# -ge 2 ] || die "--min-seconds needs a value"; MIN_SECONDS=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  ROUNDS=${ROUNDS:-1} BATCH=${BATCH:-32} STEPS=${STEPS:-2} WARMUP=${WARMUP:-1} MIN_SECONDS=${MIN_SECONDS:-0}
  RESULTS_DIR=${RESULTS_DIR:-target/speed/smoke}
  SIM_FLAGS=(--users 100 --items 200 --impressions 10 --seq-len 8)
else
  ROUNDS=${ROUNDS:-5} BATCH=${BATCH:-256} STEPS=${STEPS:-10} WARMUP=${WARMUP:-3} MIN_SECONDS=${MIN_SECONDS:-2}
  RESULTS_DIR=${RESULTS_DIR:-target/speed}
  SIM_FLAGS=()
fi
THREADS=${THREADS:-2}
FAMILIES=${FAMILIES:-dfn din dumn dlen retrieval_ntr}
PROGRAMS=${PROGRAMS:-recspec reference reference_compiled pytorch pytorch_compiled}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS (--rounds) must be a positive integer, got $ROUNDS"
[[ $MIN_SECONDS =~ ^[0-9]+([.][0-9]+)?$ ]] || die "MIN_SECONDS (--min-seconds) must be a number of seconds, got $MIN_SECONDS"
PYTHON=${PYTHON:-.venv/bin/python}
bin=${RECSPEC_BIN:-target/release/recspec}

[ -n "${PROGRAMS// /}" ] || die "PROGRAMS is empty"
for program in $PROGRAMS; do
  case $program in
    recspec | pytorch | pytorch_compiled | reference | reference_compiled) ;;
    *) die "PROGRAMS: unknown program $program (expected recspec, pytorch, pytorch_compiled, reference, reference_compiled)" ;;
  esac
done

[ -n "${RECSPEC_BIN:-}" ] || cargo build --release --quiet
[ -x "$bin" ] || die "$bin not found"
[ -x "$PYTHON" ] || die "$PYTHON not found (set PYTHON to a Python with torch)"
"$bin" bench --help >/dev/null 2>&1 || die "$bin has no \`bench\` command"

export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS

data=$RESULTS_DIR/data
results=$RESULTS_DIR/results.jsonl
logs=$RESULTS_DIR/logs
mkdir -p "$RESULTS_DIR" "$logs"
if [ ! -f "$data/train.jsonl" ]; then
  echo "simulating $data" >&2
  "$bin" simulate --out "$data" "${SIM_FLAGS[@]}" >"$logs/simulate.log" 2>&1 \
    || { cat "$logs/simulate.log" >&2; die "recspec simulate failed"; }
fi
: > "$results"

# one_run NAME PROGRAM ROUND: runs one program once, checks its JSON line, appends it.
one_run() {
  local name=$1 program=$2 round=$3
  local base=$logs/$name.r$round.$program
  local cmd window=(--batch-size "$BATCH" --steps "$STEPS" --warmup "$WARMUP" --min-seconds "$MIN_SECONDS")
  case $program in
    recspec)
      cmd=("$bin" bench "specs/$name.recspec" --data "$data" "${window[@]}") ;;
    pytorch | pytorch_compiled)
      cmd=(env PYTHONPATH=python "$PYTHON" -m recspec_torch.bench "$RESULTS_DIR/$name" --data "$data"
        "${window[@]}" --threads "$THREADS") ;;
    reference | reference_compiled)
      cmd=(env PYTHONPATH=python:bench "$PYTHON" -m reference.bench "$name" --data "$data"
        "${window[@]}" --threads "$THREADS") ;;
  esac
  [[ $program != *_compiled ]] || cmd+=(--compile)
  echo "[$name round $round/$ROUNDS] ${cmd[*]}" >&2
  "${cmd[@]}" >"$base.json" 2>"$base.log" || { cat "$base.log" >&2; die "$name: $program failed (log: $base.log)"; }
  "$PYTHON" - "$base.json" "$program" <<'PY' || die "$name: $program did not print one JSON line (see $base.json)"
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
assert len(lines) == 1, f"{len(lines)} lines"
r = json.loads(lines[0])
assert r.get("program") == sys.argv[2], r.get("program")
for key in ("spec", "params", "train_samples_per_s", "infer_us_per_example", "loader_rows_per_s", "peak_rss_mb", "seconds"):
    assert key in r, key
PY
  cat "$base.json" >> "$results"
}

# same_model NAME ROUND: every program of the round reports one spec name and parameter count.
same_model() {
  local files=() program
  for program in $PROGRAMS; do files+=("$logs/$1.r$2.$program.json"); done
  "$PYTHON" - "${files[@]}" <<'PY' || die "$1: the programs do not run the same model"
import json, sys
runs = [json.load(open(p, encoding="utf-8")) for p in sys.argv[1:]]
if len({(r["spec"], r["params"]) for r in runs}) > 1:
    sys.exit("; ".join(f"{r['program']} reports spec {r['spec']!r} with {r['params']} parameters" for r in runs))
PY
}

for name in $FAMILIES; do
  [ -f "specs/$name.recspec" ] || die "specs/$name.recspec not found"
  run=$RESULTS_DIR/$name
  rm -rf "$run"
  "$bin" pytorch "specs/$name.recspec" --data "$data" --out "$run" >"$logs/$name.pytorch-gen.log" 2>&1 \
    || { cat "$logs/$name.pytorch-gen.log" >&2; die "$name: recspec pytorch failed"; }
  if [[ " $PROGRAMS " == *" reference"* ]]; then
    echo "[$name] checking the hand-written reference against the generated module" >&2
    env PYTHONPATH=python:bench "$PYTHON" -m reference.equivalence "$name" "$run" --data "$data" \
      >"$logs/$name.equivalence.log" 2>&1 \
      || { cat "$logs/$name.equivalence.log" >&2; die "$name: the reference does not match the generated module"; }
    cat "$logs/$name.equivalence.log" >&2
  fi
  for round in $(seq 1 "$ROUNDS"); do
    for program in $PROGRAMS; do one_run "$name" "$program" "$round"; done
    same_model "$name" "$round"
  done
done

cpu=$(grep -m1 -E '^(model name|Model name|cpu model|Hardware)[[:space:]]*:' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
[ -n "$cpu" ] || cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
torch_line=$("$PYTHON" -c '
import torch
hwm = next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(f"PyTorch {torch.__version__}; peak RSS of a bare `import torch`: {int(hwm) / 1024:.1f} MB")')
# The nominal f32 peak of the threads used: cores × clock × FLOP per cycle of the widest FMA the
# CPU reports, assuming two FMA units per core (AVX-512: 2 × 16 lanes × 2; AVX2: 2 × 8 × 2).
peak=$(python3 - "$THREADS" <<'PY'
import sys
threads = int(sys.argv[1])
info = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
mhz = next((float(l.split(":", 1)[1]) for l in info.splitlines() if l.startswith("cpu MHz")), None)
per_cycle, isa = (64, "AVX-512 FMA") if "avx512f" in flags else (32, "AVX2 FMA") if "avx2" in flags and "fma" in flags else (8, "SSE")
if mhz is None:
    print(f"unknown (no clock in /proc/cpuinfo; {isa})")
else:
    print(f"{threads * mhz / 1000 * per_cycle:,.0f} GFLOP/s nominal ({threads} threads × {mhz / 1000:.2f} GHz × {per_cycle} FLOP/cycle, {isa})")
PY
)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
{
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "Machine: $(uname -m), nproc $(nproc --all), CPU: ${cpu:-unknown}; f32 peak: $peak"
  echo "recspec $commit ($bin, sha256 $(sha256sum "$bin" | cut -c1-12)); $torch_line"
  echo "Settings: batch $BATCH, at least $STEPS timed steps and $MIN_SECONDS s after $WARMUP warm-up steps, $THREADS threads, $ROUNDS rounds (programs in turn: ${PROGRAMS// /, })$([ "$SMOKE" = 1 ] && echo '; SMOKE run on tiny data: the numbers mean nothing')"
  echo "Data: $data ($(grep -c . "$data/train.jsonl") training rows)"
  echo
  "$PYTHON" bench/speed_table.py "$results"
} | tee "$RESULTS_DIR/table.md"
