#!/usr/bin/env bash
# Raw-request serving speed (issue 37, item 7): DFN (specs/dfn.recspec) trained briefly on a
# synthetic shop log (bench/features/make_events.py, EVENTS events) imported with
# bench/serve/dfn.recspec, served with `recspec serve --data --state --load-events`; then
# bench/serve_raw.py: p50/p99 of raw /score requests of 100 candidates at fixed rates, and the
# server's rows/s beside `recspec bench`'s inference rows/s, interleaved by round.
#
# Usage: bash bench/serve_raw.sh [WORK_DIR]   (default target/serve-raw-bench)
# Environment: EVENTS [200000], and serve_raw.py's RATES SECONDS ROUNDS CANDIDATES CLIENTS
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/serve-raw-bench}
EVENTS=${EVENTS:-200000}
if [ -z "${RECSPEC:-}" ]; then
  cargo build --release --locked --quiet
  RECSPEC=${CARGO_TARGET_DIR:-target}/release/recspec
fi
mkdir -p "$work"
python3 bench/features/make_events.py "$work" "$EVENTS"
cp bench/serve/dfn.recspec "$work/"
"$RECSPEC" import --features "$work/dfn.recspec" --out "$work/data" --quiet
rm -rf "$work/run" "$work/state.redb"
"$RECSPEC" train specs/dfn.recspec --data "$work/data" --out "$work/run" --epochs 1 --max-steps 50 --quiet
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; recspec $(git rev-parse --short HEAD); DFN, $EVENTS events"
"$RECSPEC" serve "$work/run" --port 0 --data "$work/data" --state "$work/state.redb" \
  --load-events "$work/events.csv" 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -q "http://" "$work/serve.log" 2>/dev/null && break
  sleep 0.1
done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)
[ -n "$url" ] || { cat "$work/serve.log" >&2; exit 1; }
python3 bench/serve_raw.py "$url" "$RECSPEC" specs/dfn.recspec "$work/data" "$work"
