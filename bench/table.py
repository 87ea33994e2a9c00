"""Prints the README result tables from the eval JSONs that bench/tables.sh writes.

Each cell is mean +- sample standard deviation over seeds, with the number of seeds; a model
missing some seeds is reported with the seeds it has.
"""
import glob
import json
import os
import re
import statistics
import sys

runs = sys.argv[1] if len(sys.argv) > 1 else "target/tables/runs"
results = {}  # model -> stream -> [auc per seed]
seconds = {}
for path in sorted(glob.glob(os.path.join(runs, "*-seed*.eval.json"))):
    m = re.match(r"(.+)-seed(\d+)\.eval\.json$", os.path.basename(path))
    model = m.group(1)
    streams = json.load(open(path))["report"]["streams"]
    for name, s in streams.items():
        if s["auc"] is not None:
            results.setdefault(model, {}).setdefault(name, []).append(s["auc"])
    sec = path.replace(".eval.json", ".seconds")
    if os.path.exists(sec):
        seconds.setdefault(model, []).append(float(open(sec).read()))


def cell(model, stream):
    v = results.get(model, {}).get(stream, [])
    if not v:
        return "-"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.4f} ± {sd:.4f}" + ("" if len(v) == 3 else f" (n={len(v)})")


def secs(model):
    v = seconds.get(model, [])
    return f"{statistics.mean(v):.0f}" if v else "-"


def table(title, models, streams):
    present = [m for m in models if m in results]
    if not present:
        return
    print(f"\n{title}\n")
    print("| model | " + " | ".join(f"{s} AUC" for s in streams) + " | train s/run |")
    print("|---|" + "---|" * (len(streams) + 1))
    for m in present:
        print(f"| {m} | " + " | ".join(cell(m, s) for s in streams) + f" | {secs(m)} |")


table("CTR: DFN vs DUMN and ablations (test split)",
      ["dfn", "dumn", "dumn_no_fp", "dumn_no_umn", "dumn_one_memory", "dumn_no_triplet"], ["click"])
table("Multi-task: MMoE vs PLE vs DLEN (test split)",
      ["mmoe", "ple", "dlen"], ["click", "like", "follow", "push", "comment", "positive"])

# Retrieval runs (bench/retrieval.sh): eval JSON plus a responsiveness report per run.
retrieval = {}
for path in sorted(glob.glob(os.path.join(runs, "*-seed*.resp.json"))):
    model = re.match(r"(.+)-seed(\d+)\.resp\.json$", os.path.basename(path)).group(1)
    resp = json.load(open(path))
    ev = json.load(open(path.replace(".resp.json", ".eval.json")))["report"]["retrieval"]
    head = next(iter(ev.values()))
    by = {b["name"]: b for b in resp["branches"]}
    row = {
        "recall@10": head["recall"]["@10"], "ndcg@10": head["ndcg"]["@10"],
        "recall@50": head["recall"]["@50"],
        "re-rec disliked item": resp["rerecommend"]["disliked_items"],
        "re-rec disliked creator": resp["rerecommend"]["disliked_creators"],
        "resp content": by["positive+dislike"]["responsiveness_content"]["value"],
        "resp creator": by["positive+dislike"]["responsiveness_creator"]["value"],
        "skip resp content": by["skip"]["responsiveness_content"]["value"] if "skip" in by else None,
    }
    for k, v in row.items():
        if v is not None:
            retrieval.setdefault(model, {}).setdefault(k, []).append(v)

if retrieval:
    cols = ["recall@10", "ndcg@10", "recall@50", "re-rec disliked item", "re-rec disliked creator",
            "resp content", "resp creator", "skip resp content"]
    print("\nRetrieval: test split, and counterfactual responsiveness (2000 users, k = 50, K = 10)\n")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for m in ["retrieval_positive", "retrieval_feature", "retrieval_drop", "retrieval_ntr"]:
        if m not in retrieval:
            continue
        cells = []
        for c in cols:
            v = retrieval[m].get(c, [])
            if not v:
                cells.append("-")
                continue
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            pct = c.startswith("resp") or c.startswith("skip") or c.startswith("re-rec")
            f = (lambda x: f"{100 * x:+.1f}%") if c.startswith(("resp", "skip")) else (lambda x: f"{x:.4f}")
            if pct and not c.startswith(("resp", "skip")):
                f = lambda x: f"{100 * x:.2f}%"
            cells.append(f"{f(statistics.mean(v))} ± {f(sd).lstrip('+')}" + ("" if len(v) == 3 else f" (n={len(v)})"))
        print(f"| {m} | " + " | ".join(cells) + " |")
