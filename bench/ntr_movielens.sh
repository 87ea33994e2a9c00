#!/usr/bin/env bash
# Issue 12 NTR investigation (docs/ntr.md): retrieval_positive, retrieval_ntr and retrieval_ntr
# with the dislike weight scaled up, on MovieLens-100K (bash bench/movielens.sh first), one at a
# time on the CPU; then eval (recall@10) and responsiveness (--start test, 500 users, k = 5).
# Usage: bash bench/ntr_movielens.sh [RUNS_DIR]   (RECSPEC=path/to/recspec, EPOCHS=2, SEED=1,
#   VARIANTS="positive feature ntr ntr_w10 ntr_w100", DATA=target/movielens/data)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RECSPEC:-target/release/recspec}
data=${DATA:-target/movielens/data}
runs=${1:-runs/ntr}
epochs=${EPOCHS:-2}
seed=${SEED:-1}
mkdir -p "$runs"
# responsiveness needs a creator per item, which MovieLens lacks, and reads the first rows of
# test.jsonl, which in time order come from 4 users: bench/ntr_balanced_test.py writes a copy
# with creator = item whose test rows interleave all users.
resp_data=${data}_bal
python3 bench/ntr_balanced_test.py "$data" "$resp_data"
variants=${VARIANTS:-"positive feature ntr ntr_w10 ntr_w100"}
for v in $variants; do
  case $v in
    positive) spec=specs/retrieval_positive.recspec; sets=() ;;
    feature) spec=specs/retrieval_feature.recspec; sets=() ;;
    ntr) spec=specs/retrieval_ntr.recspec; sets=() ;;
    ntr_w10) spec=specs/retrieval_ntr.recspec; sets=(--set w_dislike=10) ;;
    ntr_w100) spec=specs/retrieval_ntr.recspec; sets=(--set w_dislike=100) ;;
    ntr_w100_s0) spec=specs/retrieval_ntr.recspec; sets=(--set w_dislike=100 --set w_skip=0) ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  out=$runs/$v
  if [ ! -f "$out/state.json" ]; then
    s=$(date +%s)
    "$bin" train "$spec" --data "$data" --out "$out" --config configs/sim.toml --epochs "$epochs" \
      --seed "$seed" --device cpu --quiet "${sets[@]}" > "$out.train.log" 2>&1 || { cat "$out.train.log"; exit 1; }
    echo "$v train $(( $(date +%s) - s )) s" >&2
  fi
  "$bin" eval "$out" --data "$data" --device cpu > "$out.eval.json"
  "$bin" responsiveness "$out" --data "$resp_data" --start test --users 500 --steps 5 --top 10 --skip-branch \
    --device cpu > "$out.resp.json"
  echo "$v done" >&2
done
