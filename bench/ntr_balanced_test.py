"""Issue 12 NTR investigation (docs/ntr.md): a responsiveness data dir for MovieLens whose
test.jsonl interleaves users round-robin (each user's rows shuffled, seed 1), so that
`recspec responsiveness --start test --users 500` (the first 500 rows with a history) and its
re-recommendation rate (the first 5,000 rows with a dislike) cover every test user instead of
the first few in time order; items.jsonl gains creator = item (MovieLens has no creators).
Usage: python3 bench/ntr_balanced_test.py SRC_DIR DST_DIR
"""
import json, os, random, sys

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
by_user = {}
for line in open(os.path.join(src, "test.jsonl")):
    by_user.setdefault(json.loads(line)["user"], []).append(line)
rng = random.Random(1)
for rows in by_user.values():
    rng.shuffle(rows)
with open(os.path.join(dst, "test.jsonl"), "w") as f:
    for i in range(max(map(len, by_user.values()))):
        for rows in by_user.values():
            if i < len(rows):
                f.write(rows[i])
with open(os.path.join(dst, "items.jsonl"), "w") as f:
    for line in open(os.path.join(src, "items.jsonl")):
        r = json.loads(line)
        r["creator"] = r["item"]
        f.write(json.dumps(r) + "\n")
for name in ("data.toml", "train.jsonl", "valid.jsonl"):
    p = os.path.join(dst, name)
    if not os.path.lexists(p):
        os.symlink(os.path.abspath(os.path.join(src, name)), p)
