#!/usr/bin/env bash
# Feature computation speed (issue 36, item 6): `recspec import --features` over a synthetic event
# log of EVENTS events (bench/features/make_events.py; default 10^6) with every feature kind
# (bench/features/all.recspec) against the mapping file's kinds alone (bench/features/base.recspec),
# interleaved, ROUNDS rounds each, then `recspec bench` of all.recspec's model on the result for
# the training side. Prints the CPU, events/s (median and range) and peak RSS of each import, and
# training samples/s.
#
# Usage: bash bench/features.sh [WORK_DIR]   (default target/features-bench)
# Environment: EVENTS [1000000] ROUNDS [5] RECSPEC [target/release/recspec, built if missing]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/features-bench}
EVENTS=${EVENTS:-1000000} ROUNDS=${ROUNDS:-5}
if [ -z "${RECSPEC:-}" ]; then
  cargo build --release --locked --quiet
  RECSPEC=${CARGO_TARGET_DIR:-target}/release/recspec
fi
mkdir -p "$work"
if [ ! -f "$work/events.csv" ] || [ "$(($(wc -l <"$work/events.csv") - 1))" != "$EVENTS" ]; then
  python3 bench/features/make_events.py "$work" "$EVENTS"
fi
# The sets name their files relative to themselves: run copies beside the data.
cp bench/features/all.recspec bench/features/base.recspec "$work/"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $EVENTS events"
python3 - "$RECSPEC" "$work" "$ROUNDS" "$EVENTS" <<'PY'
import os, statistics, subprocess, sys, time
recspec, work, rounds, events = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
results = {"base": [], "all": []}
for r in range(rounds):
    for name in (["base", "all"] if r % 2 == 0 else ["all", "base"]):
        out = os.path.join(work, f"data-{name}")
        start = time.perf_counter()
        p = subprocess.Popen([recspec, "import", "--features", os.path.join(work, f"{name}.recspec"),
                              "--out", out, "--quiet"], stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            sys.exit(f"import of {name}.recspec failed ({status})")
        results[name].append((events / wall, usage.ru_maxrss / 1024))
print(f"| feature set | events/s, median | range ({rounds} rounds) | peak RSS, MiB |")
print("|---|---|---|---|")
for name, label in [("base", "the mapping's kinds (base.recspec)"), ("all", "every kind (all.recspec)")]:
    rates = [x for x, _ in results[name]]
    rss = max(m for _, m in results[name])
    print(f"| {label} | {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} | {rss:.0f} |")
PY
"$RECSPEC" bench "$work/all.recspec" --data "$work/data-all" --min-seconds 5 2>/dev/null | python3 -c '
import json, sys
b = json.loads(sys.stdin.readline())
print("training all.recspec: %.0f samples/s (batch %d); its loader %.0f rows/s" % (b["train_samples_per_s"], b["batch"], b["loader_rows_per_s"]))
'
