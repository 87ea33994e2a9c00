#!/usr/bin/env bash
# Rewrites the fixtures of python/tests/test_reference.py: a small simulated data set
# (python/tests/fixtures/reference/data: the [hparams] of its data.toml, 48 training rows spread
# over the simulated file, from empty histories to full ones, dislikes included, and 8 validation rows, which
# `recspec pytorch` asks for) and the generated module of each
# benchmarked family on it (python/tests/fixtures/reference/NAME.py, `recspec pytorch`). Run it
# after changing one of those specs or the PyTorch code generator; the test says when a fixture
# is stale (where a recspec binary exists).
#
# Usage: bash bench/reference/fixtures.sh
# Environment: RECSPEC_BIN [target/release/recspec, built with `cargo build --release`]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${RECSPEC_BIN:-target/release/recspec}
[ -x "$bin" ] || { echo "fixtures.sh: $bin not found" >&2; exit 1; }
out=python/tests/fixtures/reference
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Dims that differ from each other (T 5, P 4, F 10) and from the specs' sizes.
"$bin" simulate --out "$tmp/sim" --users 40 --items 150 --impressions 12 --seq-len 5 --fields 10 \
  >"$tmp/simulate.log" 2>&1 || { cat "$tmp/simulate.log" >&2; exit 1; }
mkdir -p "$out/data"
sed -n '/^\[hparams\]/,/^$/p' "$tmp/sim/data.toml" >"$out/data/data.toml"
# Every 9th row, and every row with a dislike (2% of rows; `recspec pytorch` refuses a label
# without positives).
awk 'NF && (n++ % 9 == 0 || /"dislike":1/)' "$tmp/sim/train.jsonl" | head -n 48 >"$out/data/train.jsonl"
head -n 8 "$tmp/sim/valid.jsonl" >"$out/data/valid.jsonl"
for name in dfn din dumn dlen retrieval_ntr; do
  "$bin" pytorch "specs/$name.recspec" --data "$out/data" --out "$tmp/$name" >"$tmp/$name.log" 2>&1 \
    || { cat "$tmp/$name.log" >&2; exit 1; }
  cp "$tmp/$name/model.py" "$out/$name.py"
done
echo "wrote $out" >&2
