#!/usr/bin/env bash
# recspec on a CUDA GPU, side by side with the generated PyTorch module and the hand-written
# PyTorch reference on the same GPU, each of the PyTorch programs eager and under torch.compile.
#
# Needs a recspec binary built with `--features tch` against the machine's libtorch (RECSPEC_BIN)
# and a Python with torch and safetensors (PYTHON). In one run:
#   1. the machine: nvidia-smi, torch's version;
#   2. a simulated data set (USERS users);
#   3. for each family and each batch size in BATCHES: ROUNDS rounds of the PROGRAMS in turn
#      (`recspec bench --device "$RECSPEC_DEVICE"`, `python -m reference.bench` and
#      `python -m recspec_torch.bench`, the last two with `--compile` for *_compiled), each timing
#      at least STEPS steps and MIN_SECONDS seconds, each JSON line appended to
#      OUT/results_bBATCH.jsonl, and the Markdown table of bench/speed_table.py (ratios round by
#      round, with their spread) per batch size in OUT/table_bBATCH.md;
#   4. real training on the GPU: `recspec train --device "$RECSPEC_DEVICE"` of dfn for one epoch, and the
#      generated module under `torchrun --nproc_per_node 1 --device "$DEVICE"` (NCCL) for one epoch,
#      both scored by `recspec eval` on the test split (OUT/eval_*.json).
# A failing step is logged (OUT/logs) and the script goes on, so one run says as much as it can.
#
# Usage: RECSPEC_BIN=path/to/recspec PYTHON=python3 bash bench/gpu.sh OUT
# Environment: FAMILIES ["dfn din dumn dlen retrieval_ntr"], BATCHES ["256 2048"], ROUNDS [5],
#   STEPS [10], WARMUP [5], MIN_SECONDS [2], USERS [500], TRAIN_SPEC [dfn], DEVICE [cuda] (cpu
#   runs the same steps on the CPU, to try the script on a machine without a GPU),
#   RECSPEC_DEVICE [DEVICE] (recspec's own `--device`: tch-cpu with DEVICE=cpu tries recspec's
#   libtorch path without a GPU), PROGRAMS ["recspec reference reference_compiled pytorch
#   pytorch_compiled"]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/gpu.sh OUT}
bin=${RECSPEC_BIN:?set RECSPEC_BIN to a recspec built with --features tch}
PYTHON=${PYTHON:-python3}
FAMILIES=${FAMILIES:-dfn din dumn dlen retrieval_ntr}
BATCHES=${BATCHES:-256 2048}
ROUNDS=${ROUNDS:-5} STEPS=${STEPS:-10} WARMUP=${WARMUP:-5} MIN_SECONDS=${MIN_SECONDS:-2} USERS=${USERS:-500}
TRAIN_SPEC=${TRAIN_SPEC:-dfn} DEVICE=${DEVICE:-cuda}
RECSPEC_DEVICE=${RECSPEC_DEVICE:-$DEVICE}
PROGRAMS=${PROGRAMS:-recspec reference reference_compiled pytorch pytorch_compiled}
export PYTHONPATH=python:bench${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$out/logs"
logs=$out/logs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { echo "== $* ($(date -u +%H:%M:%S))" >&2; }

step machine
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))'
  nproc; } 2>&1 | tee "$out/machine.txt"

step simulate
"$bin" simulate --out "$work/data" --users "$USERS" >"$logs/simulate.log" 2>&1 || { cat "$logs/simulate.log"; exit 1; }

for fam in $FAMILIES; do
  "$bin" pytorch "specs/$fam.recspec" --data "$work/data" --out "$work/runs/$fam" >"$logs/pytorch_$fam.log" 2>&1 \
    || { echo "recspec pytorch $fam failed"; tail -5 "$logs/pytorch_$fam.log"; }
done

for batch in $BATCHES; do
  results=$out/results_b$batch.jsonl
  : >"$results"
  for fam in $FAMILIES; do
    for round in $(seq "$ROUNDS"); do
      step "bench $fam batch $batch round $round"
      window=(--batch-size "$batch" --steps "$STEPS" --warmup "$WARMUP" --min-seconds "$MIN_SECONDS")
      for program in $PROGRAMS; do
        case $program in
          recspec) cmd=("$bin" bench "specs/$fam.recspec" --data "$work/data" --device "$RECSPEC_DEVICE" "${window[@]}") ;;
          reference | reference_compiled)
            cmd=("$PYTHON" -m reference.bench "$fam" --data "$work/data" --device "$DEVICE" "${window[@]}" --threads 1) ;;
          pytorch | pytorch_compiled)
            cmd=("$PYTHON" -m recspec_torch.bench "$work/runs/$fam" --data "$work/data" --device "$DEVICE" "${window[@]}" \
              --threads 1) ;;
          *) echo "unknown program $program"; continue ;;
        esac
        [[ $program != *_compiled ]] || cmd+=(--compile)
        "${cmd[@]}" >>"$results" 2>"$logs/${program}_${fam}_$batch.log" \
          || { echo "$program bench $fam failed"; tail -5 "$logs/${program}_${fam}_$batch.log"; }
      done
    done
  done
  "$PYTHON" bench/speed_table.py "$results" >"$out/table_b$batch.md" 2>&1
  cat "$out/table_b$batch.md"
done

step "train $TRAIN_SPEC on $RECSPEC_DEVICE (recspec)"
"$bin" train "specs/$TRAIN_SPEC.recspec" --data "$work/data" --out "$work/train_recspec" --device "$RECSPEC_DEVICE" \
  --epochs 1 --quiet >"$logs/train_recspec.log" 2>&1 && tail -3 "$logs/train_recspec.log"
"$bin" eval "$work/train_recspec" --data "$work/data" --split test >"$out/eval_recspec.json" 2>"$logs/eval_recspec.log" \
  && cat "$out/eval_recspec.json" || tail -5 "$logs/train_recspec.log" "$logs/eval_recspec.log"

step "train $TRAIN_SPEC on $DEVICE (generated PyTorch, torchrun, NCCL)"
"$bin" pytorch "specs/$TRAIN_SPEC.recspec" --data "$work/data" --out "$work/train_torch" >/dev/null 2>&1
TMPDIR="$work" "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node 1 -m recspec_torch.train "$work/train_torch" \
  --data "$work/data" --epochs 1 --device "$DEVICE" >"$logs/train_torch.log" 2>&1 && tail -3 "$logs/train_torch.log"
"$bin" eval "$work/train_torch" --data "$work/data" --split test >"$out/eval_torch.json" 2>"$logs/eval_torch.log" \
  && cat "$out/eval_torch.json" || tail -5 "$logs/train_torch.log" "$logs/eval_torch.log"
step done
