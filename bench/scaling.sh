#!/usr/bin/env bash
# How cost grows with the sequence length T and the batch: for each family, T and batch size,
# `recspec bench` and the generated PyTorch module (`python -m recspec_torch.bench`) side by side
# (alternating, ROUNDS rounds), on simulated data with sequences of up to T items; prints a
# Markdown table of median training samples/s and peak RSS for both (bench/scaling_table.py).
#
# Usage: bash bench/scaling.sh
# Environment (defaults in brackets): FAMILIES ["dfn dumn"]  TS ["30 100 200"]
#   BATCHES ["64 256 1024"]  ROUNDS [2]  STEPS [6]  WARMUP [1]  THREADS [2]  USERS [500]
#   RESULTS_DIR [target/scaling]  RECSPEC_BIN [target/release/recspec]  PYTHON [.venv/bin/python]
set -euo pipefail
cd "$(dirname "$0")/.."
FAMILIES=${FAMILIES:-dfn dumn} TS=${TS:-30 100 200} BATCHES=${BATCHES:-64 256 1024}
ROUNDS=${ROUNDS:-2} STEPS=${STEPS:-6} WARMUP=${WARMUP:-1} THREADS=${THREADS:-2} USERS=${USERS:-500}
RESULTS_DIR=${RESULTS_DIR:-target/scaling} PYTHON=${PYTHON:-.venv/bin/python}
bin=${RECSPEC_BIN:-target/release/recspec}
[ -n "${RECSPEC_BIN:-}" ] || cargo build --release --quiet
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
export PYTHONPATH=python${PYTHONPATH:+:$PYTHONPATH}
results=$RESULTS_DIR/results.jsonl
mkdir -p "$RESULTS_DIR/logs"
: >"$results"

# tagged T FILE: appends each JSON line of FILE with "T": T.
tagged() { sed "s/^{/{\"T\": $1, /" "$2" >>"$results"; }

for t in $TS; do
  data=$RESULTS_DIR/data-T$t
  [ -f "$data/train.jsonl" ] || "$bin" simulate --out "$data" --users "$USERS" --seq-len "$t" \
    >"$RESULTS_DIR/logs/simulate-T$t.log" 2>&1
  for fam in $FAMILIES; do
    run=$RESULTS_DIR/runs/$fam-T$t
    rm -rf "$run"
    "$bin" pytorch "specs/$fam.recspec" --data "$data" --out "$run" >"$RESULTS_DIR/logs/pytorch-$fam-T$t.log" 2>&1
    for batch in $BATCHES; do
      for round in $(seq "$ROUNDS"); do
        echo "[$fam T=$t batch $batch round $round/$ROUNDS]" >&2
        log=$RESULTS_DIR/logs/$fam-T$t-b$batch
        "$bin" bench "specs/$fam.recspec" --data "$data" --batch-size "$batch" --steps "$STEPS" \
          --warmup "$WARMUP" >"$log.recspec.json" 2>"$log.recspec.err"
        tagged "$t" "$log.recspec.json"
        "$PYTHON" -m recspec_torch.bench "$run" --data "$data" --batch-size "$batch" --steps "$STEPS" \
          --warmup "$WARMUP" --threads "$THREADS" >"$log.pytorch.json" 2>"$log.pytorch.err"
        tagged "$t" "$log.pytorch.json"
      done
    done
  done
done
echo "$(date -u +%Y-%m-%d), $(nproc) cores, $THREADS threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$PYTHON" bench/scaling_table.py "$results" | tee "$RESULTS_DIR/table.md"
