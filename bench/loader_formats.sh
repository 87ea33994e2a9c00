#!/usr/bin/env bash
# Loader throughput (rows/s) of JSON Lines and Parquet on the same data: simulates a data set,
# converts it to Parquet (`recspec convert`), then runs `recspec bench` (whose
# `loader_rows_per_s` times the whole train split through the loader and its validation) on
# JSON Lines, Parquet, JSON Lines, ... for ROUNDS rounds, and prints min and median per format
# as a Markdown table with the machine.
#
# Usage: bash bench/loader_formats.sh
# Environment (defaults in brackets): ROUNDS [3]  SPEC [specs/dfn.recspec]  BATCH [256]
#   SIM_FLAGS ["--users 2000 --impressions 50"]  OUT [target/loader_formats]
#   RECSPEC_BIN [target/release/recspec, built with `cargo build --release`; when set, no build]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} SPEC=${SPEC:-specs/dfn.recspec} BATCH=${BATCH:-256}
OUT=${OUT:-target/loader_formats}
read -r -a SIM <<< "${SIM_FLAGS:---users 2000 --impressions 50}"
if [ -z "${RECSPEC_BIN:-}" ]; then
  cargo build --release --quiet
  RECSPEC_BIN=${CARGO_TARGET_DIR:-target}/release/recspec
fi
rm -rf "$OUT" && mkdir -p "$OUT"
"$RECSPEC_BIN" simulate --out "$OUT/jsonl" "${SIM[@]}" 2>/dev/null
"$RECSPEC_BIN" convert "$OUT/jsonl" --to parquet --out "$OUT/parquet"
for round in $(seq "$ROUNDS"); do
  for fmt in jsonl parquet; do
    "$RECSPEC_BIN" bench "$SPEC" --data "$OUT/$fmt" --batch-size "$BATCH" --steps 1 --warmup 0 \
      | python3 -c "import json,sys; print('$fmt', json.load(sys.stdin)['loader_rows_per_s'])" >> "$OUT/results.txt"
  done
done
rows=$(wc -l < "$OUT/jsonl/train.jsonl")
echo "$(date +%F), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $rows train rows, $(basename "$SPEC" .recspec) schema, $ROUNDS rounds"
echo
echo "| format | file size (MB) | rows/s min | rows/s median |"
echo "|---|---|---|---|"
for fmt in jsonl parquet; do
  size=$(du -m "$OUT/$fmt/train.$fmt" | cut -f1)
  grep "^$fmt " "$OUT/results.txt" | cut -d' ' -f2 | sort -g | python3 -c "
import sys, statistics
v = [float(x) for x in sys.stdin]
print(f'| $fmt | $size | {min(v):,.0f} | {statistics.median(v):,.0f} |')"
done
