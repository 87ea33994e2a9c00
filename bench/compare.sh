#!/usr/bin/env bash
# Trains the seed CTR specs on the same simulated data with the same budget and prints test
# click and dislike AUC (dislike scored as 1 - p for every model). Used for the table in docs/results.md.
# Usage: bash bench/compare.sh [DATA_DIR] [RUNS_DIR] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-target/compare/data}
runs=${2:-target/compare/runs}
seed=${3:-1}
bin=target/release/recspec
cargo build --release --quiet
[ -f "$data/train.jsonl" ] || "$bin" simulate --out "$data" --seed 7
mkdir -p "$runs"
printf '%-8s %-12s %-12s %-12s %-10s\n' model click_auc click_gauc dislike_auc seconds
for spec in fm deepfm din dfn; do
  out="$runs/$spec-seed$seed"
  rm -rf "$out"
  start=$(date +%s)
  "$bin" train "specs/$spec.recspec" --data "$data" --out "$out" --config configs/sim.toml \
    --seed "$seed" --quiet --labels dislike >/dev/null 2>"$out.log" || { cat "$out.log"; exit 1; }
  secs=$(( $(date +%s) - start ))
  "$bin" eval "$out" --data "$data" --labels dislike > "$out.eval.json"
  python3 - "$out.eval.json" "$spec" "$secs" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["report"]["streams"]
f = lambda s, k: f"{r[s][k]:.4f}" if s in r and r[s][k] is not None else "-"
print(f"{sys.argv[2]:<8} {f('click','auc'):<12} {f('click','gauc'):<12} {f('dislike','auc'):<12} {sys.argv[3]:<10}")
PY
done
