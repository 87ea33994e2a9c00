"""Writes the `recspec import` test fixture (events.csv, users.csv, items.tsv) deterministically.

The event log is small but has what the importer must get right: rows out of time order, ties
in time within a user and across users, a user with a single event (u99, absent from the users
table), items that appear only late in time (n01..n05, out of the training vocabulary under the
time split), an item without a row in the item table (i050), dwell times (a float side feature)
and rows without one (no click). Run from anywhere: python3 make_fixture.py
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(7)

USERS = [f"u{i:02d}" for i in range(1, 31)]
ITEMS = [f"i{i:03d}" for i in range(1, 51)]
LATE = [f"n{i:02d}" for i in range(1, 6)]
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]
BASE = 1_000_000

events = []  # (user, item, ts, action, dwell, device)
for u in USERS:
    device = rng.choice(["phone", "tablet", "web"])
    t = BASE + rng.randrange(0, 500)
    for k in range(rng.randrange(6, 15)):
        t += rng.choice([0, 0, 7, 13, 40, 90])  # 0: a tie with the user's previous event
        late = t > BASE + 500
        pool = ITEMS + (LATE if late and rng.random() < 0.5 else [])
        item = rng.choice(pool)
        r = rng.random()
        if r < 0.45:
            action, dwell = "none", ""
        elif r < 0.75:
            action, dwell = "click", f"{rng.uniform(0.5, 60):.1f}"
        elif r < 0.9:
            action, dwell = "like", f"{rng.uniform(3, 120):.1f}"
        else:
            action, dwell = "dislike", f"{rng.uniform(0.1, 4):.1f}"
        events.append((u, item, t, action, dwell, device))
# Ties across users at one busy second, and the single-event user.
for u in USERS[:6]:
    events.append((u, rng.choice(ITEMS), BASE + 450, "click", "12.0", "web"))
events.append(("u99", "i001", BASE + 300, "like", "30.0", "phone"))
# Late items appear only after the training period.
for i, item in enumerate(LATE):
    events.append((USERS[i], item, BASE + 2000 + i, "click", "8.5", "phone"))
rng.shuffle(events)

with open(os.path.join(HERE, "events.csv"), "w") as f:
    f.write("user_id,item_id,ts,action,dwell,device\n")
    for e in events:
        f.write(",".join(str(x) for x in e) + "\n")

with open(os.path.join(HERE, "users.csv"), "w") as f:
    f.write("user_id,age,gender\n")
    for u in USERS + ["u77"]:  # u77 has no events
        f.write(f"{u},{rng.choice(['18-24', '25-34', '35-44', '45+'])},{rng.choice(['F', 'M'])}\n")

with open(os.path.join(HERE, "items.tsv"), "w") as f:
    f.write("item_id\tgenres\tcreator\n")
    for item in ITEMS[:-1] + LATE:  # i050 has no row
        genres = " ".join(rng.sample(GENRES, rng.randrange(1, 3)))
        f.write(f"{item}\t{genres}\tc{rng.randrange(1, 8)}\n")
