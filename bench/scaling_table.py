"""Prints the Markdown table of bench/scaling.sh from its results.jsonl.

    python3 bench/scaling_table.py [target/scaling/results.jsonl]

One row per spec, T and batch: median training samples/s of recspec and PyTorch and their
ratio, and the largest peak RSS of each (MB). Exits 1 when the two programs disagree on the
parameter count of a spec at some T.
"""

import json
import statistics
import sys


def main(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    cells = {}
    for r in rows:
        cells.setdefault((r["spec"], r["T"], r["batch"]), {}).setdefault(r["program"], []).append(r)
    print("| spec | T | batch | recspec samples/s | PyTorch samples/s | ratio | recspec peak MB | PyTorch peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    status = 0
    for (spec, t, batch), programs in sorted(cells.items()):
        params = {r["params"] for runs in programs.values() for r in runs}
        if len(params) > 1:
            print(f"{spec} T={t}: parameter counts differ: {sorted(params)}", file=sys.stderr)
            status = 1
        med = {p: statistics.median(r["train_samples_per_s"] for r in runs) for p, runs in programs.items()}
        rss = {p: max(r["peak_rss_mb"] or 0 for r in runs) for p, runs in programs.items()}
        a, b = med.get("recspec"), med.get("pytorch")
        ratio = f"{a / b:.2f}×" if a and b else "-"
        fmt = lambda x: "-" if x is None else f"{x:,.0f}"  # noqa: E731
        print(f"| {spec} | {t} | {batch} | {fmt(a)} | {fmt(b)} | {ratio} | {fmt(rss.get('recspec'))} | {fmt(rss.get('pytorch'))} |")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "target/scaling/results.jsonl"))
