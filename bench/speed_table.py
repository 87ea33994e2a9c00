"""Prints the Markdown table of bench/speed.sh from its results.jsonl.

    python3 bench/speed_table.py [target/speed/results.jsonl]

Each line of the file is one run's JSON line (`recspec bench`, `python -m recspec_torch.bench`
for the generated PyTorch module, `python -m reference.bench` for the hand-written PyTorch
reference, each of the PyTorch ones eager or under `torch.compile` (`--compile`)): program,
spec, params, train_samples_per_s, infer_us_per_example, loader_rows_per_s, peak_rss_mb and
`seconds`, the timed training window. Per spec and program: runs, the shortest timed window,
training samples/s min / median, training GFLOP/s at the median (recspec's count of a training
step's operations per example, `train_flops_per_example`, times samples/s: the programs compute
the same model), inference µs per example min / median, loader rows/s median, peak RSS max,
params. Per spec, one ratio row per other program that ran, recspec / that
program, computed round by round (the k-th run of each program of a spec is round k: speed.sh
runs the programs in turn, so a round's runs saw the same machine): the median of the rounds'
ratios and their min–max beside it. Training and loading: recspec / other throughput;
inference: other µs / recspec µs (so > 1 means recspec is faster everywhere); peak RSS:
recspec / other (< 1 means recspec uses less memory). Exits 1, naming the spec, when the
programs disagree on the parameter count.
"""

import json
import statistics
import sys

PROGRAMS = ("recspec", "pytorch", "pytorch_compiled", "reference", "reference_compiled")
LABELS = {
    "recspec": "recspec",
    "pytorch": "PyTorch generated",
    "pytorch_compiled": "PyTorch generated, compiled",
    "reference": "PyTorch reference",
    "reference_compiled": "PyTorch reference, compiled",
}
#: The programs recspec is compared with, each on a ratio row labelled by its value.
RATIOS = {
    "pytorch": "recspec / generated",
    "pytorch_compiled": "recspec / generated compiled",
    "reference": "recspec / reference",
    "reference_compiled": "recspec / reference compiled",
}


def read(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def summarize(rows):
    """{spec: {program: stats}} in the specs' order of appearance; stats: runs, seconds_min (the
    shortest timed window; None for results without one), train_min, train_median, infer_min,
    infer_median, loader_median, rss_max, params (a sorted list of the distinct counts seen),
    and `rounds`, the runs' results in order (round k is the k-th run)."""
    grouped = {}
    for r in rows:
        grouped.setdefault(r["spec"], {}).setdefault(r["program"], []).append(r)
    out = {}
    for spec, programs in grouped.items():
        out[spec] = {}
        for program, runs in programs.items():
            train = [float(r["train_samples_per_s"]) for r in runs]
            infer = [float(r["infer_us_per_example"]) for r in runs]
            loader = [float(r["loader_rows_per_s"]) for r in runs]
            rss = [float(r["peak_rss_mb"]) for r in runs if r.get("peak_rss_mb") is not None]
            seconds = [float(r["seconds"]) for r in runs if r.get("seconds") is not None]
            out[spec][program] = {
                "runs": len(runs),
                "seconds_min": min(seconds) if seconds else None,
                "train_min": min(train),
                "train_median": statistics.median(train),
                "infer_min": min(infer),
                "infer_median": statistics.median(infer),
                "loader_median": statistics.median(loader),
                "rss_max": max(rss) if rss else None,
                "params": sorted({int(r["params"]) for r in runs}),
                "rounds": runs,
            }
    return out


def _div(a, b):
    return None if a is None or b is None or b == 0 else a / b


def _spread(values):
    """(median, min, max) of the non-None values; None when there are none."""
    values = [v for v in values if v is not None]
    return (statistics.median(values), min(values), max(values)) if values else None


def ratios(stats, other):
    """recspec / `other` (a program) for one spec's stats, round by round, each > 1 when recspec
    is faster (train, infer, loader) or larger (rss): {metric: (median, min, max) over the
    rounds both programs ran}; None where either program is missing."""
    rs, ot = stats.get("recspec"), stats.get(other)
    if rs is None or ot is None:
        return None
    pairs = list(zip(rs["rounds"], ot["rounds"]))

    def per_round(f):
        return _spread([f(a, b) for a, b in pairs])

    def value(run, key):
        v = run.get(key)
        return None if v is None else float(v)

    return {
        "rounds": len(pairs),
        "train": per_round(lambda a, b: _div(value(a, "train_samples_per_s"), value(b, "train_samples_per_s"))),
        "infer": per_round(lambda a, b: _div(value(b, "infer_us_per_example"), value(a, "infer_us_per_example"))),
        "loader": per_round(lambda a, b: _div(value(a, "loader_rows_per_s"), value(b, "loader_rows_per_s"))),
        "rss": per_round(lambda a, b: _div(value(a, "peak_rss_mb"), value(b, "peak_rss_mb"))),
    }


def param_mismatches(summary):
    """Specs whose runs do not all report one parameter count: [(spec, {program: counts})]."""
    bad = []
    for spec, programs in summary.items():
        counts = {c for s in programs.values() for c in s["params"]}
        if len(counts) > 1:
            bad.append((spec, {p: s["params"] for p, s in programs.items()}))
    return bad


def _num(x, digits=0):
    return "-" if x is None else f"{x:,.{digits}f}"


def _ratio(x):
    """A (median, min, max) ratio as `**1.21×** (1.10–1.30)`."""
    if x is None:
        return "-"
    median, low, high = x
    return f"**{median:.2f}×** ({low:.2f}–{high:.2f})"


def render(summary):
    lines = [
        "| spec | program | runs | timed s min | train samples/s min / median | train GFLOP/s "
        "| inference µs/example min / median | loader rows/s median | peak RSS MB max | params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec, programs in summary.items():
        flops = [r.get("train_flops_per_example") for r in programs.get("recspec", {}).get("rounds", [])]
        flops = next((float(f) for f in flops if f), None)
        for program in [p for p in PROGRAMS if p in programs] + sorted(set(programs) - set(PROGRAMS)):
            s = programs[program]
            lines.append(
                f"| {spec} | {LABELS.get(program, program)} | {s['runs']} | {_num(s['seconds_min'], 1)} "
                f"| {_num(s['train_min'])} / {_num(s['train_median'])} "
                f"| {_num(None if flops is None else flops * s['train_median'] / 1e9, 2)} "
                f"| {_num(s['infer_min'], 1)} / {_num(s['infer_median'], 1)} "
                f"| {_num(s['loader_median'])} | {_num(s['rss_max'], 1)} "
                f"| {', '.join(f'{c:,}' for c in s['params'])} |"
            )
        for other, label in RATIOS.items():
            r = ratios(programs, other)
            if r is not None:
                lines.append(
                    f"| {spec} | {label} | {r['rounds']} | | {_ratio(r['train'])} | | {_ratio(r['infer'])} "
                    f"| {_ratio(r['loader'])} | {_ratio(r['rss'])} | |"
                )
    lines.append("")
    lines.append(
        "PyTorch generated: the module `recspec pytorch` writes (recspec's kernels one by one through "
        "`recspec_torch.ops`); PyTorch reference: the hand-written eager model of bench/reference; "
        "compiled: the same under `torch.compile` (compilation in the untimed warm-up). "
        "Ratios, recspec / each, computed round by round (runs: the rounds both ran), the median with "
        "the min–max over rounds beside it: throughput (training, loading) recspec / other; "
        "inference other µs / recspec µs (> 1: recspec faster); peak RSS recspec / other (< 1: "
        "recspec smaller)."
    )
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else "target/speed/results.jsonl"
    summary = summarize(read(path))
    print(render(summary))
    bad = param_mismatches(summary)
    for spec, counts in bad:
        print(f"error: {spec}: the programs disagree on the parameter count: {counts}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
