#!/usr/bin/env bash
# Imports MovieLens-100K with the feature set bench/movielens/features.recspec and prints the
# import summary.
#
# The data comes from the RecBole wheel on the Python package index (`pip download --no-deps
# recbole`, files recbole/dataset_example/ml-100k/ml-100k.{inter,user,item}) and is unpacked
# into target/movielens/ml-100k, which git ignores: MovieLens is licensed by GroupLens for
# research use only and is never committed. Training on the imported set is a separate step:
#   recspec train specs/dfn.recspec --data target/movielens/data --out runs/ml-dfn
#
# Usage: bash bench/movielens.sh [OUT_DIR]   (default target/movielens/data)
# RECSPEC=path/to/recspec uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
work=target/movielens
out=${1:-$work/data}
if [ -n "${RECSPEC:-}" ]; then
  bin=$RECSPEC
else
  cargo build --release --locked --quiet
  bin=${CARGO_TARGET_DIR:-target}/release/recspec
fi

if [ ! -f "$work/ml-100k/ml-100k.inter" ]; then
  mkdir -p "$work/wheel" "$work/ml-100k"
  python3 -m pip download --no-deps --quiet recbole -d "$work/wheel"
  python3 - "$work" <<'PY'
import glob, os, sys, zipfile
work = sys.argv[1]
wheel = sorted(glob.glob(os.path.join(work, "wheel", "recbole-*.whl")))[-1]
with zipfile.ZipFile(wheel) as z:
    for ext in ("inter", "user", "item"):
        data = z.read(f"recbole/dataset_example/ml-100k/ml-100k.{ext}")
        with open(os.path.join(work, "ml-100k", f"ml-100k.{ext}"), "wb") as f:
            f.write(data)
print(f"unpacked ml-100k from {os.path.basename(wheel)}", file=sys.stderr)
PY
fi

start=$(date +%s.%N)
"$bin" import --features bench/movielens/features.recspec --out "$out"
end=$(date +%s.%N)
python3 -c "import sys; print(f'import wall time: {float(sys.argv[2]) - float(sys.argv[1]):.2f} s', file=sys.stderr)" "$start" "$end"
