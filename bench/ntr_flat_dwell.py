"""Issue 12 NTR investigation (docs/ntr.md): a copy of the imported MovieLens set whose
`history.dwell` is log1p(30 s) at every step, the long view `recspec responsiveness` simulates.
On the import, dwell = log1p(rating), so a dislike (rating <= 2) is already visible in the dwell
and the simulated long views (log1p 30 = 3.43) lie outside the trained range (0.69-1.79).
Usage: python3 bench/ntr_flat_dwell.py SRC_DIR DST_DIR
"""
import json, math, os, shutil, sys

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
long_view = math.log1p(30.0)
for name in ("train.jsonl", "valid.jsonl", "test.jsonl"):
    with open(os.path.join(src, name)) as f, open(os.path.join(dst, name), "w") as g:
        for line in f:
            r = json.loads(line)
            r["history.dwell"] = [long_view] * len(r["history"])
            g.write(json.dumps(r) + "\n")
for name in ("data.toml", "items.jsonl"):
    shutil.copy(os.path.join(src, name), os.path.join(dst, name))
