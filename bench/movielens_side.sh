#!/usr/bin/env bash
# Side features on MovieLens-100K (issue 36, item 5): imports RecBole's ml-100k with the feature
# set of bench/movielens/side.recspec (the user's age as a number and in buckets, gender and
# occupation ids, the movie's genre set as a multi-hot sequence, its release year), then trains
# that spec with all its inputs and with the item and click history alone (`--set
# inputs=ids_only`), SEEDS seeds each, and prints the test click AUC of both: mean ± sd over
# seeds, and the range.
#
# Usage: bash bench/movielens_side.sh [RUNS]   (default target/movielens/side-runs)
# Environment: SEEDS ["1 2 3"] EPOCHS [2] CONFIG [configs/sim.toml]
#   RECSPEC [target/release/recspec, built if missing]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-target/movielens/side-runs}
SEEDS=${SEEDS:-1 2 3} EPOCHS=${EPOCHS:-2} CONFIG=${CONFIG:-configs/sim.toml}
if [ -z "${RECSPEC:-}" ]; then
  cargo build --release --locked --quiet
  RECSPEC=${CARGO_TARGET_DIR:-target}/release/recspec
fi
# Downloads ml-100k when missing (and imports the seed data set beside it).
RECSPEC=$RECSPEC bash bench/movielens.sh >/dev/null 2>&1 || RECSPEC=$RECSPEC bash bench/movielens.sh
data=target/movielens/side
"$RECSPEC" import --features bench/movielens/side.recspec --out "$data" --quiet 2>"$runs.import.log" \
  || { cat "$runs.import.log" >&2; exit 1; }
mkdir -p "$runs"
for seed in $SEEDS; do
  for inputs in all ids_only; do
    out="$runs/$inputs-seed$seed"
    [ -f "$out.eval.json" ] && continue
    rm -rf "$out"
    "$RECSPEC" train bench/movielens/side.recspec --data "$data" --out "$out" --config "$CONFIG" \
      --epochs "$EPOCHS" --seed "$seed" --set "inputs=$inputs" --quiet >"$out.log" 2>&1 \
      || { tail -3 "$out.log" >&2; exit 1; }
    "$RECSPEC" eval "$out" --data "$data" >"$out.eval.json"
  done
done
python3 - "$runs" $SEEDS <<'PY'
import json, statistics, sys
runs, seeds = sys.argv[1], sys.argv[2:]
print("| inputs | test click AUC, mean ± sd | range | seeds |")
print("|---|---|---|---|")
for inputs, label in [("all", "item, click history and side features"), ("ids_only", "item and click history only")]:
    aucs = [json.load(open(f"{runs}/{inputs}-seed{s}.eval.json"))["report"]["streams"]["click"]["auc"] for s in seeds]
    sd = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
    print(f"| {label} | {statistics.mean(aucs):.4f} ± {sd:.4f} | {min(aucs):.4f}–{max(aucs):.4f} | {len(aucs)} |")
PY
