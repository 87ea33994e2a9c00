"""Issue 12 NTR investigation (docs/ntr.md): p(target | s) under a trained retrieval run.

For 800 rows sampled (seed 1) per split (train, test) and label (dislike, engaged, skip) from
DATA, written to OUT/probe_{split}_{label}.jsonl (item + history), ranks the whole corpus with
`recspec recommend --k V`, takes the softmax of the item logits and reports, per file, the mean
and median p of the row's item, its rank (share in the top 10 / top 50), and the L1 norm of the
loss's gradient on the logits: softmax CE 2(1 - p), not-to-recommend 2p.
Usage: python3 bench/ntr_probe.py RECSPEC RUN DATA OUT   (V is read from DATA/data.toml)
"""
import json, math, os, random, re, subprocess, sys

recspec, run, data, out_dir = sys.argv[1:5]
v = int(re.search(r"^V = (\d+)", open(os.path.join(data, "data.toml")).read(), re.M).group(1))
os.makedirs(out_dir, exist_ok=True)
paths = []
for split in ("train", "test"):
    rows = [json.loads(l) for l in open(os.path.join(data, f"{split}.jsonl"))]
    for label in ("dislike", "engaged", "skip"):
        rng = random.Random(1)
        chosen = [r for r in rows if r["labels"][label] == 1 and r["history"]]
        rng.shuffle(chosen)
        path = os.path.join(out_dir, f"probe_{split}_{label}.jsonl")
        with open(path, "w") as f:
            for r in chosen[:800]:
                keys = ("item", "history", "history.dwell", "history.disliked")
                f.write(json.dumps({k: r[k] for k in keys}) + "\n")
        paths.append(path)
for path in paths:
    targets = [json.loads(l)["item"] for l in open(path)]
    out = subprocess.run([recspec, "recommend", run, "--user-history", path, "--k", str(v)],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    ps, ranks = [], []
    for line, t in zip(out, targets):
        r = json.loads(line)
        m = max(r["scores"])
        z = sum(math.exp(s - m) for s in r["scores"])
        pos = r["items"].index(t) if t in r["items"] else v
        ps.append(math.exp(r["scores"][pos] - m) / z if pos < v else 0.0)
        ranks.append(pos)
    n = len(ps)
    ps_sorted = sorted(ps)
    print(json.dumps({
        "file": path, "rows": n,
        "mean_p": sum(ps) / n, "median_p": ps_sorted[n // 2],
        "mean_p_times_V": sum(ps) / n * v,
        "top10": sum(r < 10 for r in ranks) / n, "top50": sum(r < 50 for r in ranks) / n,
        "median_rank": sorted(ranks)[n // 2],
        "grad_l1_ce": sum(2 * (1 - p) for p in ps) / n, "grad_l1_ntr": sum(2 * p for p in ps) / n,
    }))
