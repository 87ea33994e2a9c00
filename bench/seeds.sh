#!/usr/bin/env bash
# Trains and evaluates several specs on one data set, several seeds each, at one budget, JOBS
# runs at a time, and prints bench/table.py's tables (mean ± sd over seeds of test AUC per label
# stream). Works on any data set `recspec train` reads: the simulator's or an imported one
# (bench/movielens.sh).
#
# Usage: bash bench/seeds.sh DATA RUNS
# Environment (defaults in brackets):
#   MODELS ["fm deepfm din dfn dumn dumn_no_fp dumn_no_umn dumn_one_memory mmoe ple dlen"]
#   SEEDS ["1 2 3"]  EPOCHS [2]  CONFIG [configs/sim.toml]  DEVICE [cpu]  JOBS [1]
#   RECSPEC_BIN [target/release/recspec]
#   CONFIGS [""]: per-model run configs instead of CONFIG, `model=path` separated by spaces
#   (`"mmoe=bench/movielens/mtl.toml dlen=bench/movielens/mtl.toml"`)
# Each run: `recspec train specs/MODEL.recspec --data DATA --out RUNS/MODEL-seedS --config CONFIG
# --epochs EPOCHS --seed S --device DEVICE`, then `recspec eval` on the test split into
# RUNS/MODEL-seedS.eval.json, with `--labels dislike` (scored 1 - p) for a model without a
# dislike loss and `--labels positive=p_up` for dlen. A run whose eval JSON exists is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: bench/seeds.sh DATA RUNS}
runs=${2:?usage: bench/seeds.sh DATA RUNS}
MODELS=${MODELS:-fm deepfm din dfn dumn dumn_no_fp dumn_no_umn dumn_one_memory mmoe ple dlen}
SEEDS=${SEEDS:-1 2 3} EPOCHS=${EPOCHS:-2} CONFIG=${CONFIG:-configs/sim.toml}
DEVICE=${DEVICE:-cpu} JOBS=${JOBS:-1} CONFIGS=${CONFIGS:-}
bin=${RECSPEC_BIN:-target/release/recspec}
[ -x "$bin" ] || { echo "seeds.sh: $bin not found (cargo build --release)" >&2; exit 2; }
mkdir -p "$runs"

# one MODEL SEED: trains and evaluates one run; its log is RUNS/MODEL-seedSEED.log.
one() {
  local model=$1 seed=$2 out="$runs/$1-seed$2"
  [ -f "$out.eval.json" ] && return 0
  rm -rf "$out"
  local start labels=() config=$CONFIG entry
  for entry in $CONFIGS; do [ "${entry%%=*}" = "$model" ] && config=${entry#*=}; done
  start=$(date +%s)
  if ! "$bin" train "specs/$model.recspec" --data "$data" --out "$out" --config "$config" \
      --epochs "$EPOCHS" --seed "$seed" --device "$DEVICE" --quiet >"$out.log" 2>&1; then
    echo "$model seed $seed: training failed:" >&2; tail -3 "$out.log" >&2; return 1
  fi
  echo "$(( $(date +%s) - start ))" > "$out.seconds"
  [ "$model" = dlen ] && labels=(--labels positive=p_up)
  grep -Eq 'label[^;]*\bdislike\b' "specs/$model.recspec" || labels+=(--labels dislike)
  if "$bin" eval "$out" --data "$data" "${labels[@]}" >"$out.eval.json.tmp" 2>>"$out.log"; then
    mv "$out.eval.json.tmp" "$out.eval.json"
    echo "$model seed $seed: $(cat "$out.seconds") s" >&2
  else
    echo "$model seed $seed: eval failed:" >&2; tail -3 "$out.log" >&2; return 1
  fi
}

status=0
for seed in $SEEDS; do
  for model in $MODELS; do
    one "$model" "$seed" &
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || status=1; done
  done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || status=1; done
python3 bench/table.py "$runs"
exit $status
