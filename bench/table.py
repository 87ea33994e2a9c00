"""Prints the result tables of docs/results.md from the eval JSONs that bench/tables.sh writes.

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
loglosses = {}  # model -> stream -> [log loss per seed]
seconds = {}
for path in sorted(glob.glob(os.path.join(runs, "*-seed*.eval.json"))):
    m = re.match(r"(.+)-seed(\d+)\.eval\.json$", os.path.basename(path))
    model = m.group(1)
    streams = json.load(open(path))["report"]["streams"]
    for name, s in streams.items():
        if s["auc"] is not None:
            results.setdefault(model, {}).setdefault(name, []).append(s["auc"])
        if s.get("logloss") is not None:
            loglosses.setdefault(model, {}).setdefault(name, []).append(s["logloss"])
    sec = path.replace(".eval.json", ".seconds")
    if os.path.exists(sec):
        seconds.setdefault(model, []).append(float(open(sec).read()))


def cell(model, stream, table=None):
    v = (results if table is None else table).get(model, {}).get(stream, [])
    if not v:
        return "-"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.4f} ± {sd:.4f}" + ("" if len(v) == 3 else f" (n={len(v)})")


def secs(model):
    v = seconds.get(model, [])
    return f"{statistics.mean(v):.0f}" if v else "-"


def table(title, models, streams, logloss=()):
    present = [m for m in models if m in results]
    if not present:
        return
    print(f"\n{title}\n")
    heads = [f"{s} AUC" for s in streams] + [f"{s} log loss" for s in logloss]
    print("| model | " + " | ".join(heads) + " | train s/run |")
    print("|---|" + "---|" * (len(heads) + 1))
    for m in present:
        cells = [cell(m, s) for s in streams] + [cell(m, s, loglosses) for s in logloss]
        print(f"| {m} | " + " | ".join(cells) + f" | {secs(m)} |")


table("CTR: FM, DeepFM, DIN, DFN, DUMN and its ablations (test split; dislike scored 1 - p)",
      ["fm", "deepfm", "din", "dfn", "dumn", "dumn_no_fp", "dumn_no_umn", "dumn_one_memory", "dumn_no_triplet"],
      ["click", "dislike"], logloss=["click"])
table("Multi-task: MMoE vs PLE vs DLEN (test split)",
      ["mmoe", "ple", "dlen"], ["click", "like", "follow", "push", "comment", "positive"])

# Retrieval runs (bench/retrieval.sh): eval JSON plus two responsiveness reports per run.
retrieval = {}


def resp_values(path, tag):
    if not os.path.exists(path):
        return {}
    by = {b["name"]: b for b in json.load(open(path))["branches"]}
    out = {
        f"{tag} content": by["positive+dislike"]["responsiveness_content"]["value"],
        f"{tag} creator": by["positive+dislike"]["responsiveness_creator"]["value"],
    }
    if "skip" in by:
        out[f"{tag} skip content"] = by["skip"]["responsiveness_content"]["value"]
    return out


# Retrieval heads of runs without a responsiveness report (a data set without creators).
plain = {}
for path in sorted(glob.glob(os.path.join(runs, "*-seed*.eval.json"))):
    if os.path.exists(path.replace(".eval.json", ".resp.json")):
        continue
    model = re.match(r"(.+)-seed(\d+)\.eval\.json$", os.path.basename(path)).group(1)
    for head in json.load(open(path))["report"]["retrieval"].values():
        for k in ("10", "50"):
            plain.setdefault(model, {}).setdefault(f"recall@{k}", []).append(head["recall"][f"@{k}"])
            plain.setdefault(model, {}).setdefault(f"ndcg@{k}", []).append(head["ndcg"][f"@{k}"])
if plain:
    cols = ["recall@10", "ndcg@10", "recall@50", "ndcg@50"]
    print("\nRetrieval heads (test split, whole corpus)\n")
    print("| model | " + " | ".join(cols) + " | train s/run |")
    print("|---|" + "---|" * (len(cols) + 1))
    for m in sorted(plain):
        cells = []
        for c in cols:
            v = plain[m].get(c, [])
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.4f} ± {sd:.4f}" + ("" if len(v) == 3 else f" (n={len(v)})") if v else "-")
        print(f"| {m} | " + " | ".join(cells) + f" | {secs(m)} |")

for path in sorted(glob.glob(os.path.join(runs, "*-seed*.resp.json"))):
    model = re.match(r"(.+)-seed(\d+)\.resp\.json$", os.path.basename(path)).group(1)
    resp = json.load(open(path))
    ev = json.load(open(path.replace(".resp.json", ".eval.json")))["report"]["retrieval"]
    head = next(iter(ev.values()))
    row = {
        "recall@10": head["recall"]["@10"], "ndcg@10": head["ndcg"]["@10"],
        "recall@50": head["recall"]["@50"],
        "re-rec disliked item": resp["rerecommend"]["disliked_items"],
        "re-rec disliked creator": resp["rerecommend"]["disliked_creators"],
    }
    row.update(resp_values(path, "paper k=50"))
    row.update(resp_values(path.replace(".resp.json", ".resp_test.json"), "held-out k=5"))
    for k, v in row.items():
        retrieval.setdefault(model, {}).setdefault(k, []).append(v)


def fmt(col, x):
    if col.startswith(("paper", "held-out")):
        return f"{100 * x:+.1f}%"
    if col.startswith("re-rec"):
        return f"{100 * x:.2f}%"
    return f"{x:.4f}"


if retrieval:
    cols = ["recall@10", "ndcg@10", "recall@50", "re-rec disliked item", "re-rec disliked creator",
            "paper k=50 content", "paper k=50 creator", "held-out k=5 content", "held-out k=5 creator",
            "held-out k=5 skip content"]
    print("\nRetrieval: test split; responsiveness to a dislike (relative change of the share of the next")
    print("10 recommendations from the last item's cluster / creator), 2000 simulated users\n")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    known = ["retrieval_positive", "retrieval_feature", "retrieval_drop", "retrieval_ntr"]
    for m in known + sorted(set(retrieval) - set(known)):
        if m not in retrieval:
            continue
        cells = []
        for c in cols:
            v = retrieval[m].get(c, [])
            if not v:
                cells.append("-")
                continue
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{fmt(c, statistics.mean(v))} ± {fmt(c, sd).lstrip('+')}" + ("" if len(v) == 3 else f" (n={len(v)})"))
        print(f"| {m} | " + " | ".join(cells) + " |")
