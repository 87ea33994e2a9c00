"""Issue 12 NTR investigation (docs/ntr.md): the markdown table of bench/ntr_movielens.sh runs,
mean ± sd over seeds (one runs dir per seed).
Usage: python3 bench/ntr_table.py RUNS_DIR[,RUNS_DIR...] VARIANT..."""
import json, statistics, sys

dirs = sys.argv[1].split(",")


def fmt(xs, scale=1.0, digits=4, sign=False):
    xs = [x * scale for x in xs]
    m = statistics.mean(xs)
    s = f"{m:+.{digits}f}" if sign else f"{m:.{digits}f}"
    return s + (f" ± {statistics.stdev(xs):.{digits}f}" if len(xs) > 1 else "")


print("| run | seeds | recall@10 | ndcg@10 | dislike: same genre | dislike: same movie | skip: same genre "
      "| same-genre share, positive branch | re-rec disliked item |")
print("|---|---|---|---|---|---|---|---|---|")
for v in sys.argv[2:]:
    cols = {k: [] for k in ("r10", "n10", "dc", "dm", "sc", "share", "rerec")}
    for d in dirs:
        try:
            ev = json.load(open(f"{d}/{v}.eval.json"))["report"]["retrieval"]["loss/engaged"]
            rs = json.load(open(f"{d}/{v}.resp.json"))
        except (OSError, ValueError):
            continue
        b = {x["name"]: x for x in rs["branches"]}
        cols["r10"].append(ev["recall"]["@10"])
        cols["n10"].append(ev["ndcg"]["@10"])
        cols["dc"].append(b["positive+dislike"]["responsiveness_content"]["value"])
        cols["dm"].append(b["positive+dislike"]["responsiveness_creator"]["value"])
        cols["sc"].append(b["skip"]["responsiveness_content"]["value"])
        cols["share"].append(b["positive"]["same_cluster"])
        cols["rerec"].append(rs["rerecommend"]["disliked_items"])
    if not cols["r10"]:
        continue
    print(f"| {v} | {len(cols['r10'])} | {fmt(cols['r10'])} | {fmt(cols['n10'])} | "
          f"{fmt(cols['dc'], 100, 1, True)}% | {fmt(cols['dm'], 100, 1, True)}% | {fmt(cols['sc'], 100, 1, True)}% | "
          f"{fmt(cols['share'], 1, 3)} | {fmt(cols['rerec'], 100, 2)}% |")
