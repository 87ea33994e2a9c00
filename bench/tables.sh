#!/usr/bin/env bash
# Trains the issue-4 comparisons on the simulator's default data set, three seeds each, same
# budget (configs/sim.toml with --epochs EPOCHS), and evaluates on the test split:
#   ctr  DFN vs DUMN and DUMN's ablations (click AUC)
#   mtl  MMoE vs PLE vs DLEN (per-task AUC; DLEN's P(UP) against "any positive interaction")
# Each run's eval JSON lands in RUNS_DIR; `python3 bench/table.py RUNS_DIR` prints the tables.
# Usage: bash bench/tables.sh [ctr|mtl|all] [DATA_DIR] [RUNS_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
data=${2:-target/tables/data}
runs=${3:-target/tables/runs}
epochs=${4:-2}
bin=${RECSPEC_BIN:-target/release/recspec}
[ -n "${RECSPEC_BIN:-}" ] || cargo build --release --quiet
[ -f "$data/train.jsonl" ] || "$bin" simulate --out "$data" --seed 7 >/dev/null
mkdir -p "$runs"

# run NAME SPEC SEED [train args...]: trains unless the run already has its eval JSON.
run() {
  local name=$1 spec=$2 seed=$3
  shift 3
  local out="$runs/$name-seed$seed"
  [ -f "$out.eval.json" ] && return 0
  rm -rf "$out"
  local start
  start=$(date +%s)
  "$bin" train "specs/$spec.recspec" --data "$data" --out "$out" --config configs/sim.toml \
    --epochs "$epochs" --seed "$seed" --quiet "$@" >/dev/null 2>"$out.log" || { cat "$out.log"; exit 1; }
  echo "$(( $(date +%s) - start ))" > "$out.seconds"
  local labels=()
  [ "$spec" = dlen ] && labels=(--labels positive=p_up)
  "$bin" eval "$out" --data "$data" "${labels[@]}" > "$out.eval.json.tmp"
  mv "$out.eval.json.tmp" "$out.eval.json"
  echo "$name seed $seed: $(cat "$out.seconds") s" >&2
}

for seed in 1 2 3; do
  if [ "$which" = mtl ] || [ "$which" = all ]; then
    for spec in mmoe ple dlen; do run "$spec" "$spec" "$seed"; done
  fi
  if [ "$which" = ctr ] || [ "$which" = all ]; then
    run dfn dfn "$seed"
    run dumn dumn "$seed"
    run dumn_no_fp dumn_no_fp "$seed"
    run dumn_no_umn dumn_no_umn "$seed"
    run dumn_one_memory dumn_one_memory "$seed"
    run dumn_no_triplet dumn "$seed" --set lambda_t=0
  fi
done
python3 bench/table.py "$runs"
