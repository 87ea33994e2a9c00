"""Training/serving parity on a real event log (issue 37, item 4), as tests/it/serve/raw.rs
proves it on the import fixture: a fresh `recspec serve --data` is given the events of the
training and validation splits (`--load-events`); then every test event, in time order, is
scored by a raw request ({"user", "items": [item], "context": the event's other columns}) and
posted to /events. Every score must equal `recspec eval --predictions` on that event's test row
within 1e-6 (NaN and infinity fail).

Usage: python3 serve_parity.py RECSPEC RUN DATA SET EVENTS USER_COL ITEM_COL TIME_COL WORK
(EVENTS: the log the data set was imported from, CSV or tab-separated by its extension, as
`recspec import` reads it.)
"""
import csv
import http.client
import json
import math
import os
import subprocess
import sys
import time

recspec, run, data, feature_set, events_path, user_col, item_col, time_col, work = sys.argv[1:10]
os.makedirs(work, exist_ok=True)
tab = not events_path.endswith(".csv")
with open(events_path, newline="") as f:
    reader = csv.reader(f, delimiter="\t" if tab else ",", quoting=csv.QUOTE_NONE if tab else csv.QUOTE_MINIMAL)
    header = next(reader)
    rows = list(reader)
t = header.index(time_col)
order = sorted(range(len(rows)), key=lambda i: (float(rows[i][t]), i))
events = [dict(zip(header, rows[i])) for i in order]


def count(split):
    with open(os.path.join(data, f"{split}.jsonl")) as f:
        return sum(1 for _ in f)


earlier = count("train") + count("valid")
predictions_path = os.path.join(work, "predictions.jsonl")
subprocess.run([recspec, "eval", run, "--data", data, "--predictions", predictions_path], check=True,
               stdout=subprocess.DEVNULL)
with open(predictions_path) as f:
    predictions = [json.loads(line)["scores"] for line in f]
assert len(predictions) == len(events) - earlier, (len(predictions), len(events), earlier)

before = os.path.join(work, "before" + os.path.splitext(events_path)[1])
with open(before, "w", newline="") as f:
    w = csv.writer(f, delimiter="\t" if tab else ",", quoting=csv.QUOTE_NONE if tab else csv.QUOTE_MINIMAL,
                   lineterminator="\n")
    w.writerow(header)
    for e in events[:earlier]:
        w.writerow([e[h] for h in header])
state = os.path.join(work, "state.redb")
if os.path.exists(state):
    os.remove(state)
log = open(os.path.join(work, "serve.log"), "w+")
server = subprocess.Popen([recspec, "serve", run, "--port", "0", "--data", data, "--features", feature_set,
                           "--state", state, "--load-events", before], stderr=log)
try:
    address = None
    for _ in range(1200):
        log.seek(0)
        text = log.read()
        if "http://" in text:
            address = text.split("http://")[1].split()[0]
            break
        if server.poll() is not None:
            sys.exit(f"recspec serve stopped:\n{text}")
        time.sleep(0.1)
    host, port = address.split(":")
    con = http.client.HTTPConnection(host, int(port), timeout=60)

    def post(path, body):
        con.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        r = con.getresponse()
        answer = json.loads(r.read())
        if r.status != 200:
            sys.exit(f"{path}: {r.status} {answer}")
        return answer

    con.request("GET", "/health")
    columns = set(json.loads(con.getresponse().read())["raw"]["columns"])
    worst, compared, started = 0.0, 0, time.perf_counter()
    for n, (event, expected) in enumerate(zip(events[earlier:], predictions)):
        # The columns the features read (the server refuses others).
        event = {k: v for k, v in event.items() if k in columns}
        context = {k: v for k, v in event.items() if k not in (user_col, item_col)}
        answer = post("/score", {"user": event[user_col], "items": [event[item_col]], "context": context})
        for stream, served in zip(answer["streams"], answer["scores"][0]):
            d = abs(served - expected[stream])
            if not math.isfinite(d) or d > 1e-6:
                sys.exit(f"test event {n}, stream {stream}: served {served}, recspec eval {expected[stream]}")
            worst = max(worst, d)
            compared += 1
        post("/events", {"events": [event]})
    elapsed = time.perf_counter() - started
    print(f"{len(predictions)} test events replayed ({compared} stream scores compared) in {elapsed:.1f} s: "
          f"every score equals recspec eval --predictions; largest difference {worst:.3g}")
finally:
    server.terminate()
    server.wait()
