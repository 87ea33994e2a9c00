#!/usr/bin/env bash
# How training throughput and peak memory grow with the embedding vocabulary: for each family
# (DIN, DFN) and item vocabulary V (10^3 ... 10^7), plus one configuration with a 10^6-row field
# table (FV), four programs side by side on the same batches:
#
#   lazy              recspec bench (embedding tables row-sparse, lazy Adam: the default)
#   dense             recspec bench --embedding-optimizer dense (table-sized gradient, dense Adam)
#   reference         the hand-written PyTorch reference as written (bench/reference: dense
#                     nn.Embedding, torch.optim.Adam)
#   reference_sparse  the same with nn.Embedding(sparse=True) tables and torch.optim.SparseAdam
#                     for them, Adam for the rest (`reference.bench --sparse`): what a PyTorch
#                     user does without TorchRec
#
# One small data set is simulated once (RESULTS_DIR/data); the tables grow by overrides only
# (`recspec bench --set V=...`, `reference.bench --dims V=...`): the ids in the data stay below
# the data set's V, so every configuration reads the same batches and does the same work per
# step except what the table's size costs. Rounds are interleaved: every round runs every family,
# configuration and program once, the programs of a configuration one after the other. Every
# run's JSON line, tagged with family, config, variant, round, steps, warmup, wall_s and status,
# is appended to RESULTS_DIR/results.jsonl (a run that fails, is killed for memory or times out
# is recorded with status "failed" and the benchmark goes on); finally the machine, date, commit
# and the Markdown tables of bench/vocab_table.py are printed and written to RESULTS_DIR/table.md.
#
# Usage: bash bench/vocab.sh
# Environment (defaults in brackets):
#   ROUNDS [5]  BATCH [256]  WARMUP [3]  THREADS [2]  USERS [500] (simulated users; items 1000)
#   FAMILIES ["din dfn"]
#   VOCABS ["1e3 1e5 1e6 1e7"]: item vocabularies V (integers or 1eN)
#   OTHER_TABLES ["FV=1e6"]: one more configuration, V = the first of VOCABS with these
#               overrides (space-separated K=V; empty for none)
#   PROGRAMS ["lazy dense reference reference_sparse"]: which run, in this order within a round
#   STEPS [din 200, dfn 50, others 50]: timed steps of a run (one value for every family when
#               set). Chosen so that the fastest program's window is ~2.5 s at V = 1e3 on two
#               cores (DIN ~20,000 samples/s, DFN ~4,000 at batch 256).
#   DENSE_ROW_STEPS [1e7]: the programs with a table-sized step (dense, reference) run
#               min(STEPS, max(MIN_DENSE_STEPS, DENSE_ROW_STEPS / table rows)) steps, table rows
#               being V + FV (V = 1e5: 100, 1e6: 10, 1e7: 2), and when that caps them 1 warm-up
#               step (the first step allocates the table-sized gradient and Adam state). A dense
#               step at V = 1e7, D = 64 makes several passes over 2.56 GB tensors: seconds per step
#               on two cores, so even 2 steps are a window of several seconds.
#   MIN_DENSE_STEPS [2]  RUN_TIMEOUT [900]: seconds before a run is killed (and recorded failed)
#   SMOKE=1     1 round, VOCABS "1e3 1e4", OTHER_TABLES "FV=1e4", STEPS=2, WARMUP=1, BATCH=32 on
#               a tiny simulated data set in target/vocab/smoke (the numbers mean nothing)
#   RESULTS_DIR [target/vocab, or target/vocab/smoke with SMOKE=1]
#   RECSPEC_BIN [target/release/recspec, built with `cargo build --release`; when set, no build]
#   PYTHON      [.venv/bin/python]
# Every program runs with OMP_NUM_THREADS, MKL_NUM_THREADS and RAYON_NUM_THREADS = THREADS;
# the PyTorch ones also get --threads THREADS (torch.set_num_threads).
#
# Memory: a dense run at V = 1e7, D = 64 holds the table (2.56 GB), its gradient and Adam's two
# moments, 10 GB, plus temporaries: the PyTorch reference peaked at 15.3 GB (DIN; recspec dense
# 12.3 GB), so the machine needs ~16 GB free. Lazy and SparseAdam keep no table-sized gradient
# (SparseAdam allocates both moments whole: 8.0 GB; recspec's lazy moments stay untouched pages
# outside the looked-up rows: 2.5 GB).
# Time: ~7 minutes a round on a 2-core VM (estimated from single runs on a loaded machine),
# about half of it the V = 1e7 runs, which spend most of their time initialising the table
# (recspec lazy ~10 s, the dense ones 30-50 s each); ROUNDS=5: ~35 minutes, give or take 10.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  ROUNDS=${ROUNDS:-1} BATCH=${BATCH:-32} STEPS=${STEPS:-2} WARMUP=${WARMUP:-1}
  VOCABS=${VOCABS:-1e3 1e4} OTHER_TABLES=${OTHER_TABLES-FV=1e4}
  RESULTS_DIR=${RESULTS_DIR:-target/vocab/smoke}
  SIM_FLAGS=(--users 100 --items 200 --impressions 10 --seq-len 8)
else
  ROUNDS=${ROUNDS:-5} BATCH=${BATCH:-256} STEPS=${STEPS:-} WARMUP=${WARMUP:-3}
  VOCABS=${VOCABS:-1e3 1e5 1e6 1e7} OTHER_TABLES=${OTHER_TABLES-FV=1e6}
  RESULTS_DIR=${RESULTS_DIR:-target/vocab}
  SIM_FLAGS=(--users "${USERS:-500}")
fi
THREADS=${THREADS:-2}
FAMILIES=${FAMILIES:-din dfn}
PROGRAMS=${PROGRAMS:-lazy dense reference reference_sparse}
DENSE_ROW_STEPS=${DENSE_ROW_STEPS:-1e7}
MIN_DENSE_STEPS=${MIN_DENSE_STEPS:-2}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
PYTHON=${PYTHON:-.venv/bin/python}
bin=${RECSPEC_BIN:-target/release/recspec}

die() { echo "vocab.sh: $*" >&2; exit 1; }
# int X: X (an integer or 1eN-style number) as a decimal integer.
int() { awk -v x="$1" 'BEGIN { if (x !~ /^[0-9.]+([eE][+]?[0-9]+)?$/ || x + 0 < 1 || x != int(x) + 0) exit 1; printf "%d", x }' \
  || die "not a positive integer: $1"; }

[ -n "${PROGRAMS// /}" ] || die "PROGRAMS is empty"
for program in $PROGRAMS; do
  case $program in
    lazy | dense | reference | reference_sparse) ;;
    *) die "PROGRAMS: unknown program $program (expected lazy, dense, reference, reference_sparse)" ;;
  esac
done
[ -n "${VOCABS// /}" ] || die "VOCABS is empty"

[ -n "${RECSPEC_BIN:-}" ] || cargo build --release --quiet
[ -x "$bin" ] || die "$bin not found"
[ -x "$PYTHON" ] || die "$PYTHON not found (set PYTHON to a Python with torch)"
"$bin" bench --help 2>/dev/null | grep -q -- --embedding-optimizer \
  || die "$bin bench has no --embedding-optimizer (an older binary?)"

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
: >"$results"

# data_dim NAME: the data set's value of dim NAME (data.toml [hparams]), empty when absent.
data_dim() { sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$data/data.toml" | head -1; }

# The configurations: "LABEL|K=V K=V" (overrides as decimal integers).
base_v=$(int "${VOCABS%% *}")
configs=()
for v in $VOCABS; do configs+=("V=$v|V=$(int "$v")"); done
if [ -n "${OTHER_TABLES// /}" ]; then
  label="V=${VOCABS%% *}" sets="V=$base_v"
  for kv in $OTHER_TABLES; do
    [[ $kv == *=* ]] || die "OTHER_TABLES: expected K=V, got $kv"
    label+=" $kv" sets+=" ${kv%%=*}=$(int "${kv#*=}")"
  done
  configs+=("$label|$sets")
fi

# table_rows SETS: V + FV under the overrides SETS (the data set's values otherwise).
table_rows() {
  local v fv kv
  v=$(data_dim V) fv=$(data_dim FV)
  for kv in $1; do
    case ${kv%%=*} in V) v=${kv#*=} ;; FV) fv=${kv#*=} ;; esac
  done
  echo $((${v:-0} + ${fv:-0}))
}

# steps_for FAMILY: the timed steps of a run with a batch-sized step.
steps_for() {
  if [ -n "$STEPS" ]; then echo "$STEPS"; return; fi
  case $1 in din) echo 200 ;; *) echo 50 ;; esac
}

# plan PROGRAM FAMILY SETS: "STEPS WARMUP" of one run.
plan() {
  local steps rows capped
  steps=$(steps_for "$2")
  case $1 in
    dense | reference)
      rows=$(table_rows "$3")
      capped=$(awk -v b="$DENSE_ROW_STEPS" -v r="$rows" -v m="$MIN_DENSE_STEPS" -v s="$steps" \
        'BEGIN { c = int(b / r + 0.999999); if (c < m) c = m; if (c > s) c = s; print c }')
      if [ "$capped" -lt "$steps" ]; then echo "$capped 1"; else echo "$steps $WARMUP"; fi ;;
    *) echo "$steps $WARMUP" ;;
  esac
}

# one_run FAMILY LABEL SETS PROGRAM ROUND: runs one program once and appends its tagged JSON
# line (or a "failed" line) to the results.
one_run() {
  local name=$1 label=$2 sets=$3 program=$4 round=$5
  local steps warmup tag base cmd kv rc=0 started wall
  read -r steps warmup <<<"$(plan "$program" "$name" "$sets")"
  tag=$(echo "$label" | tr ' =' '_-')
  base=$logs/$name.$tag.r$round.$program
  local flags=(--data "$data" --batch-size "$BATCH" --steps "$steps" --warmup "$warmup")
  local set_flags=() dims_flags=()
  for kv in $sets; do set_flags+=(--set "$kv"); dims_flags+=("$kv"); done
  case $program in
    lazy) cmd=("$bin" bench "specs/$name.recspec" "${flags[@]}" "${set_flags[@]}" --embedding-optimizer lazy) ;;
    dense) cmd=("$bin" bench "specs/$name.recspec" "${flags[@]}" "${set_flags[@]}" --embedding-optimizer dense) ;;
    reference)
      cmd=(env PYTHONPATH=python:bench "$PYTHON" -m reference.bench "$name" "${flags[@]}" --threads "$THREADS"
        --dims "${dims_flags[@]}") ;;
    reference_sparse)
      cmd=(env PYTHONPATH=python:bench "$PYTHON" -m reference.bench "$name" "${flags[@]}" --threads "$THREADS"
        --sparse --dims "${dims_flags[@]}") ;;
  esac
  echo "[$name $label round $round/$ROUNDS] $program: ${cmd[*]}" >&2
  started=$(date +%s.%N)
  timeout -k 30 "$RUN_TIMEOUT" "${cmd[@]}" >"$base.json" 2>"$base.log" || rc=$?
  wall=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  "$PYTHON" - "$base.json" "$base.log" "$rc" "$name" "$label" "$sets" "$program" "$round" "$steps" "$warmup" \
    "$wall" "$RUN_TIMEOUT" >>"$results" <<'PY'
import json, sys
out, err, rc, family, label, sets, variant, rnd, steps, warmup, wall, limit = sys.argv[1:]
rc = int(rc)
tags = {
    "family": family, "config": label,
    "overrides": {k: int(v) for k, v in (kv.split("=", 1) for kv in sets.split())},
    "variant": variant, "round": int(rnd), "steps_planned": int(steps), "warmup": int(warmup),
    "wall_s": float(wall),
}
error = None
if rc == 0:
    lines = [l for l in open(out, encoding="utf-8", errors="replace") if l.strip()]
    try:
        assert len(lines) == 1, f"{len(lines)} lines on stdout"
        r = json.loads(lines[0])
        for key in ("spec", "params", "train_samples_per_s", "peak_rss_mb"):
            assert key in r, f"no {key!r} in the JSON line"
    except (AssertionError, ValueError) as e:
        error = f"bad output: {e}"
else:
    tail = [l.strip() for l in open(err, encoding="utf-8", errors="replace") if l.strip()]
    if rc == 124:
        error = f"timed out (RUN_TIMEOUT={limit} s)"
    elif rc == 137:
        error = "killed (SIGKILL: out of memory?)"
    else:
        error = f"exit {rc}: " + (tail[-1] if tail else "no message")[:300]
if error is None:
    print(json.dumps({**tags, "status": "ok", **r}))
else:
    print(json.dumps({**tags, "status": "failed", "error": error}))
    print(f"vocab.sh: {family} {label} {variant} round {rnd} failed: {error} (log: {err})", file=sys.stderr)
PY
}

for name in $FAMILIES; do [ -f "specs/$name.recspec" ] || die "specs/$name.recspec not found"; done
for round in $(seq 1 "$ROUNDS"); do
  for name in $FAMILIES; do
    for config in "${configs[@]}"; do
      for program in $PROGRAMS; do one_run "$name" "${config%%|*}" "${config#*|}" "$program" "$round"; done
    done
  done
done

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
[ -n "$cpu" ] || cpu=$(grep -m1 -E '^(model name|cpu model|Hardware)[[:space:]]*:' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__)')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
steps_note=""
for name in $FAMILIES; do steps_note+="${steps_note:+, }$name $(steps_for "$name")"; done
{
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "Machine: ${cpu:-unknown CPU}, $(nproc --all) cores ($(uname -m)), $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory"
  echo "recspec $commit; PyTorch $torch_version"
  echo "Settings: batch $BATCH, $THREADS threads, $ROUNDS rounds (interleaved; within a configuration: ${PROGRAMS// /, }); timed steps $steps_note after $WARMUP warm-up steps; dense and reference (table-sized steps): min(steps, max($MIN_DENSE_STEPS, $DENSE_ROW_STEPS / (V + FV))) steps, 1 warm-up step when capped$([ "$SMOKE" = 1 ] && echo '; SMOKE run on tiny data: the numbers mean nothing')"
  echo "Data: $data ($(grep -c . "$data/train.jsonl") training rows; data.toml V = $(data_dim V), FV = $(data_dim FV), F = $(data_dim F), T = $(data_dim T)); larger tables by --set / --dims"
  echo
  "$PYTHON" bench/vocab_table.py "$results"
} | tee "$RESULTS_DIR/table.md"
