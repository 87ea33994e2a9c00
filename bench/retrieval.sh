#!/usr/bin/env bash
# Trains the issue-5 retrieval comparison on the simulator's default data set, three seeds each,
# same budget (configs/sim.toml with --epochs EPOCHS): baseline (positives only), dislike as
# input feature, the drop-disliked heuristic, and the not-to-recommend loss. Each run is
# evaluated on the test split (recall/NDCG@K of held-out long views) and by
# `recspec responsiveness` twice, 2000 simulated users, K = 10, with a skip branch: the paper's
# protocol (empty start, k = 50; resp.json) and trajectories that start from held-out users'
# histories (k = 5; resp_test.json).
# `python3 bench/table.py RUNS_DIR` prints the table.
# Usage: bash bench/retrieval.sh [DATA_DIR] [RUNS_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-target/retrieval/data}
runs=${2:-target/retrieval/runs}
epochs=${3:-2}
bin=${RECSPEC_BIN:-target/release/recspec}
[ -n "${RECSPEC_BIN:-}" ] || cargo build --release --quiet
[ -f "$data/train.jsonl" ] || "$bin" simulate --out "$data" --seed 7 >/dev/null 2>&1
mkdir -p "$runs"
for seed in 1 2 3; do
  for spec in retrieval_positive retrieval_feature retrieval_drop retrieval_ntr; do
    out="$runs/$spec-seed$seed"
    [ -f "$out.resp_test.json" ] && continue
    if [ ! -f "$out.resp.json" ]; then
      rm -rf "$out"
      start=$(date +%s)
      "$bin" train "specs/$spec.recspec" --data "$data" --out "$out" --config configs/sim.toml \
        --epochs "$epochs" --seed "$seed" --quiet >/dev/null 2>"$out.log" || { cat "$out.log"; exit 1; }
      echo "$(( $(date +%s) - start ))" > "$out.seconds"
      "$bin" eval "$out" --data "$data" --k 10,50 > "$out.eval.json"
      "$bin" responsiveness "$out" --data "$data" --users 2000 --steps 50 --top 10 --seed "$seed" \
        --skip-branch > "$out.resp.json.tmp"
      mv "$out.resp.json.tmp" "$out.resp.json"
      echo "$spec seed $seed: $(cat "$out.seconds") s" >&2
    fi
    "$bin" responsiveness "$out" --data "$data" --users 2000 --steps 5 --top 10 --seed "$seed" \
      --skip-branch --start test > "$out.resp_test.json.tmp"
    mv "$out.resp_test.json.tmp" "$out.resp_test.json"
  done
done
python3 bench/table.py "$runs"
