#!/usr/bin/env bash
# Loader throughput against training throughput, for a training split stored as one JSON Lines
# file, as a folder of 8 JSON Lines shards, and as a folder of 8 Parquet shards (issue 24,
# "loader rows/s stays above the training rate"). `recspec bench` of DIN and DFN on each layout,
# the six configurations in turn within each round; prints one JSON line per run and a median
# (min–max) table.
#
# Usage: bash bench/sharded_loader.sh [ROUNDS] [USERS]
# Environment: RECSPEC_BIN [target/release/recspec, built with `cargo build --release`]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
users=${2:-6000}
bin=${RECSPEC_BIN:-target/release/recspec}
[ -x "$bin" ] || { echo "sharded_loader.sh: $bin not found (cargo build --release)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" simulate --out "$tmp/one" --users "$users" --impressions 50 >/dev/null 2>&1
mkdir -p "$tmp/jsonl_shards/train"
cp "$tmp/one/valid.jsonl" "$tmp/one/test.jsonl" "$tmp/one/data.toml" "$tmp/jsonl_shards/"
(cd "$tmp/jsonl_shards/train" && split -n l/8 -d -a 2 --additional-suffix=.jsonl "$tmp/one/train.jsonl" part-)
"$bin" convert "$tmp/jsonl_shards" --to parquet --out "$tmp/parquet_shards" >/dev/null 2>&1
echo "rows: $(wc -l <"$tmp/one/train.jsonl"); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%FT%TZ)" >&2
for round in $(seq "$rounds"); do
  for spec in din dfn; do
    steps=$([ "$spec" = din ] && echo 200 || echo 50)
    for layout in one jsonl_shards parquet_shards; do
      line=$("$bin" bench "specs/$spec.recspec" --data "$tmp/$layout" --steps "$steps" 2>/dev/null)
      echo "{\"round\":$round,\"layout\":\"$layout\",${line#\{}"
    done
  done
done | tee "$tmp/runs.jsonl"
python3 - "$tmp/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
print("| family | split layout | loader rows/s | training samples/s | loader / training |")
print("|---|---|---|---|---|")
for spec in ("din", "dfn"):
    for layout in ("one", "jsonl_shards", "parquet_shards"):
        rs = [r for r in runs if r["spec"] == spec and r["layout"] == layout]
        def cell(xs):
            return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}–{max(xs):,.0f})"
        loader = [r["loader_rows_per_s"] for r in rs]
        train = [r["train_samples_per_s"] for r in rs]
        ratio = [a / b for a, b in zip(loader, train)]
        name = {"one": "one JSON Lines file", "jsonl_shards": "8 JSON Lines shards", "parquet_shards": "8 Parquet shards"}[layout]
        print(f"| {spec} | {name} | {cell(loader)} | {cell(train)} | {statistics.median(ratio):.1f}× ({min(ratio):.1f}–{max(ratio):.1f}) |")
PY
