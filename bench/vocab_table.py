"""Prints the Markdown tables of bench/vocab.sh from its results.jsonl.

    python3 bench/vocab_table.py [target/vocab/results.jsonl]

Each line is one run: the tags bench/vocab.sh adds (family, config, overrides, variant, round,
steps_planned, warmup, wall_s, status "ok" or "failed" with an error) and, when it ran, the
program's own JSON line (`recspec bench`, `python -m reference.bench`): params,
train_samples_per_s, peak_rss_mb, and for recspec estimate_train_mb and embedding_optimizer.

Rows are (family, config) in the order of the file. Tables:

1. Training samples/s per variant, median (min–max over the rounds); the ratios of recspec lazy
   to each other variant, computed per round (the runs of one round ran one after the other)
   and shown as median (min–max); recspec lazy's median relative to its own median on the
   family's first configuration (the smallest V).
2. Memory: weights + Adam's two moments, 12 bytes per parameter (what any Adam-trained model
   must hold; a dense step adds a table-sized gradient, 4 bytes per table parameter), recspec's
   own estimate of the training step (lazy / dense), and the median peak RSS of each variant.
3. The runs: timed steps / warm-up steps and median wall-clock seconds of a run, per variant.

A variant whose runs all failed shows "failed"; a failed run among ok ones is counted in the
cell. Exits 1 when the variants of a configuration report different parameter counts.
"""

import json
import statistics
import sys

VARIANTS = ("lazy", "dense", "reference", "reference_sparse")
LABELS = {
    "lazy": "recspec lazy",
    "dense": "recspec dense",
    "reference": "PyTorch reference",
    "reference_sparse": "PyTorch sparse",
}


def read(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def group(rows):
    """{(family, config): {variant: [row, ...]}} in the order of first appearance."""
    out = {}
    for r in rows:
        out.setdefault((r["family"], r["config"]), {}).setdefault(r["variant"], []).append(r)
    return out


def ok(runs):
    return [r for r in runs if r.get("status", "ok") == "ok"]


def spread(values):
    """'median (min–max)' of `values`, '-' when empty."""
    if not values:
        return "-"
    med, lo, hi = statistics.median(values), min(values), max(values)
    if len(values) == 1:
        return _fmt(med)
    return f"{_fmt(med)} ({_fmt(lo)}–{_fmt(hi)})"


def _fmt(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def rate_cell(runs):
    good = [float(r["train_samples_per_s"]) for r in ok(runs)]
    failed = len(runs) - len(good)
    if not runs:
        return "-"
    if not good:
        return f"failed ({failed}/{len(runs)})"
    return spread(good) + (f", {failed} failed" if failed else "")


def per_round_ratios(a_runs, b_runs):
    """a / b training samples/s of the rounds where both ran ok."""
    b_by_round = {r["round"]: float(r["train_samples_per_s"]) for r in ok(b_runs)}
    return [
        float(r["train_samples_per_s"]) / b_by_round[r["round"]]
        for r in ok(a_runs)
        if b_by_round.get(r["round"])
    ]


def ratio_cell(values):
    if not values:
        return "-"
    med, lo, hi = statistics.median(values), min(values), max(values)
    if len(values) == 1:
        return f"**{med:.2f}×**"
    return f"**{med:.2f}×** ({lo:.2f}–{hi:.2f})"


def median_of(runs, key):
    values = [float(r[key]) for r in ok(runs) if r.get(key) is not None]
    return statistics.median(values) if values else None


def params_of(variants):
    return sorted({int(r["params"]) for runs in variants.values() for r in ok(runs)})


def mib(x):
    return "-" if x is None else f"{x:,.0f}"


def render(grouped):
    present = [v for v in VARIANTS if any(v in g for g in grouped.values())]
    present += sorted({v for g in grouped.values() for v in g} - set(VARIANTS))
    others = [v for v in present if v != "lazy"]
    has_lazy = "lazy" in present
    bases = {}
    for (family, config), variants in grouped.items():
        bases.setdefault(family, (config, variants))

    lines = ["Training samples/s, median (min–max) over the rounds:", ""]
    head = ["family", "config", "params"] + [LABELS.get(v, v) for v in present]
    if has_lazy:
        head += [f"lazy / {LABELS.get(v, v).replace('recspec ', '')}" for v in others]
        head += ["lazy vs its own " + "; ".join(sorted({c for c, _ in bases.values()}))]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (family, config), variants in grouped.items():
        params = params_of(variants)
        cells = [family, config, ", ".join(f"{p:,}" for p in params) + (" (mismatch!)" if len(params) > 1 else "")]
        cells += [rate_cell(variants.get(v, [])) for v in present]
        if has_lazy:
            lazy = variants.get("lazy", [])
            cells += [ratio_cell(per_round_ratios(lazy, variants.get(v, []))) for v in others]
            base = median_of(bases[family][1].get("lazy", []), "train_samples_per_s")
            here = median_of(lazy, "train_samples_per_s")
            cells.append("-" if base is None or here is None else f"{here / base:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")

    lines += ["", "Memory, MiB (peak RSS: median over the rounds):", ""]
    head = ["family", "config", "weights + Adam m, v (12 B/param)", "recspec estimate lazy / dense"]
    head += [f"peak RSS {LABELS.get(v, v)}" for v in present]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (family, config), variants in grouped.items():
        params = params_of(variants)
        state = mib(params[0] * 12 / 2**20) if len(params) == 1 else "-"
        estimate = f"{mib(median_of(variants.get('lazy', []), 'estimate_train_mb'))} / " \
                   f"{mib(median_of(variants.get('dense', []), 'estimate_train_mb'))}"
        cells = [family, config, state, estimate]
        for v in present:
            runs = variants.get(v, [])
            cells.append("failed" if runs and not ok(runs) else mib(median_of(runs, "peak_rss_mb")))
        lines.append("| " + " | ".join(cells) + " |")

    lines += ["", "Runs: timed steps / warm-up steps, median wall-clock seconds of a whole run:", ""]
    head = ["family", "config"] + [LABELS.get(v, v) for v in present]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (family, config), variants in grouped.items():
        cells = [family, config]
        for v in present:
            runs = variants.get(v, [])
            if not runs:
                cells.append("-")
                continue
            steps = sorted({(r["steps_planned"], r["warmup"]) for r in runs})
            wall = statistics.median(float(r["wall_s"]) for r in runs)
            cells.append(", ".join(f"{s} / {w}" for s, w in steps) + f", {wall:.1f} s")
        lines.append("| " + " | ".join(cells) + " |")

    failures = [r for variants in grouped.values() for runs in variants.values() for r in runs
                if r.get("status") == "failed"]
    if failures:
        lines += ["", "Failed runs:", ""]
        for r in failures:
            lines.append(f"- {r['family']} {r['config']} {LABELS.get(r['variant'], r['variant'])} "
                         f"round {r['round']}: {r.get('error', '?')}")

    lines += [
        "",
        "recspec lazy: `recspec bench` (row-sparse tables, lazy Adam; the default); recspec dense: "
        "`--embedding-optimizer dense` (table-sized gradient, dense Adam); PyTorch reference: "
        "bench/reference as written (dense nn.Embedding, torch.optim.Adam); PyTorch sparse: "
        "`reference.bench --sparse` (nn.Embedding(sparse=True), SparseAdam for the tables, Adam for "
        "the rest). The larger tables come from overrides on one data set whose ids stay below its "
        "own V, so every configuration trains on the same batches. Ratios: recspec lazy / the other "
        "variant per round (> 1: lazy faster), median (min–max). Weights + Adam m, v: 3 × 4 bytes "
        "per parameter; a dense step also holds a table-sized gradient (4 bytes per table "
        "parameter), and SparseAdam allocates both moments whole too.",
    ]
    return "\n".join(lines)


def mismatches(grouped):
    return [(key, params_of(v)) for key, v in grouped.items() if len(params_of(v)) > 1]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else "target/vocab/results.jsonl"
    grouped = group(read(path))
    print(render(grouped))
    bad = mismatches(grouped)
    for (family, config), counts in bad:
        print(f"error: {family} {config}: the variants disagree on the parameter count: {counts}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
