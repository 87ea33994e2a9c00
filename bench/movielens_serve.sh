#!/usr/bin/env bash
# Training/serving parity on MovieLens-100K (issue 37, item 4): imports the data with
# bench/movielens/features.recspec, trains DFN (STEPS steps), and replays every test event into a
# fresh `recspec serve --data` (bench/serve_parity.py): each raw request's scores must equal
# `recspec eval --predictions` on that event's row within 1e-6.
#
# Usage: bash bench/movielens_serve.sh [WORK_DIR]   (default target/movielens/serve)
# Environment: STEPS [200]; RECSPEC [target/release/recspec, built if missing]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/movielens/serve}
STEPS=${STEPS:-200}
if [ -z "${RECSPEC:-}" ]; then
  cargo build --release --locked --quiet
  RECSPEC=${CARGO_TARGET_DIR:-target}/release/recspec
fi
[ -f target/movielens/ml-100k/ml-100k.inter ] || RECSPEC="$RECSPEC" bash bench/movielens.sh >/dev/null
rm -rf "$work" && mkdir -p "$work"
"$RECSPEC" import --features bench/movielens/features.recspec --out "$work/data" --quiet
"$RECSPEC" train specs/dfn.recspec --data "$work/data" --out "$work/run" --epochs 1 --max-steps "$STEPS" --quiet
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; recspec $(git rev-parse --short HEAD)"
python3 bench/serve_parity.py "$RECSPEC" "$work/run" "$work/data" bench/movielens/features.recspec \
  target/movielens/ml-100k/ml-100k.inter "user_id:token" "item_id:token" "timestamp:float" "$work/parity"
