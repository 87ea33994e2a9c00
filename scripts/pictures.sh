#!/usr/bin/env bash
# Regenerates the pictures of docs/commands.md in docs/images/ with the release binary and headless Chromium:
#   dfn.svg     `recspec compile specs/dfn.recspec --emit svg`
#   diff.png    `recspec diff OLD NEW --format html` (tests/data/diff/added_feedback), screenshot
#   report.png  `recspec report RUN` of DFN trained 3 short epochs on simulated data, screenshot
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
bin=target/release/recspec
out=docs/images
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
shot() { # page png width height
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$work/chromium" --screenshot="$2" --window-size="$3,$4" "file://$1" 2>/dev/null
}
"$bin" compile specs/dfn.recspec --emit svg > "$out/dfn.svg"
"$bin" diff tests/data/diff/added_feedback/old.recspec tests/data/diff/added_feedback/new.recspec \
  --format html > "$work/diff.html" || [ $? = 1 ]
shot "$work/diff.html" "$out/diff.png" 1100 1250
"$bin" simulate --out "$work/data" --users 400 --impressions 40 > /dev/null
"$bin" train specs/dfn.recspec --data "$work/data" --out "$work/run" --epochs 3 --batch-size 64 \
  --set D=32 2> /dev/null > /dev/null
(cd "$work" && "$OLDPWD/$bin" report run --out report.html 2> /dev/null)
shot "$work/report.html" "$out/report.png" 1400 1150
ls -l "$out"
