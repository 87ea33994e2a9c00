"""Writes a synthetic event log for bench/features.sh: EVENTS events of USERS users on ITEMS
items, with a user table and an item table, in the shape a shop would log (an action, a dwell
time, a price, a device, multi-valued genres). Deterministic for a seed; nothing is downloaded.

Usage: python3 make_events.py OUT_DIR [EVENTS] [SEED]
"""
import os
import random
import sys

out = sys.argv[1]
events = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
users, items = max(events // 20, 10), max(events // 50, 10)
os.makedirs(out, exist_ok=True)
genres = ["action", "comedy", "drama", "horror", "romance", "thriller", "kids", "docs", "music", "sport"]
with open(os.path.join(out, "users.csv"), "w") as f:
    f.write("user_id,age,gender,city\n")
    for u in range(users):
        age = "" if rng.random() < 0.02 else str(rng.randint(14, 80))
        f.write(f"u{u},{age},{rng.choice('MF')},c{rng.randint(0, 499)}\n")
with open(os.path.join(out, "items.csv"), "w") as f:
    f.write("item_id,genres,category,price\n")
    for i in range(items):
        g = "|".join(rng.sample(genres, rng.randint(0, 4)))
        f.write(f"i{i},{g},k{rng.randint(0, 59)},{rng.lognormvariate(3, 1):.2f}\n")
actions = ["impression"] * 6 + ["click"] * 3 + ["like", "dislike"]
with open(os.path.join(out, "events.csv"), "w") as f:
    f.write("user_id,item_id,ts,action,dwell,device\n")
    t = 1_700_000_000
    for _ in range(events):
        t += rng.randint(0, 3)
        a = rng.choice(actions)
        dwell = f"{rng.expovariate(1 / 40):.1f}" if a != "impression" else ""
        user = min(int(rng.paretovariate(1.2)) - 1, users - 1)
        item = min(int(rng.paretovariate(1.1)) - 1, items - 1)
        f.write(f"u{rng.randrange(users) if rng.random() < 0.5 else user},i{rng.randrange(items) if rng.random() < 0.5 else item},{t},{a},{dwell},{rng.choice(['web', 'ios', 'android'])}\n")
