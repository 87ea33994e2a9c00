"""Raw-request serving speed (issue 37, item 7), for bench/serve_raw.sh.

A running `recspec serve --data` is sent raw /score requests of CANDIDATES item keys for one
user each ({"user", "items", "context"}):

- open loop at fixed rates: requests are sent on a schedule (a pool of keep-alive connections,
  so that a slow answer does not delay the next send), and latency is measured from the
  scheduled time (no coordinated omission); p50 and p99 per window;
- closed loop: CLIENTS connections back to back, for the server's rows/s,

interleaved round by round with `recspec bench`'s inference rows/s for the same model and
batch, so that the server's overhead is a ratio measured under the same conditions.

Usage: python3 serve_raw.py URL RECSPEC SPEC DATA USERS_ITEMS_DIR
Environment: RATES [25,50,100] SECONDS [5] ROUNDS [5] CANDIDATES [100] CLIENTS [2]
"""
import concurrent.futures
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

url, recspec, spec, data, tables = sys.argv[1:6]
rates = [float(r) for r in os.environ.get("RATES", "25,50,100").split(",")]
seconds = float(os.environ.get("SECONDS", "5"))
rounds = int(os.environ.get("ROUNDS", "5"))
candidates = int(os.environ.get("CANDIDATES", "100"))
clients = int(os.environ.get("CLIENTS", "2"))
host = urllib.parse.urlparse(url)

with open(os.path.join(data, "vocab", "item.jsonl")) as f:
    items = [json.loads(line)["key"] for line in f]
with open(os.path.join(data, "vocab", "user.jsonl")) as f:
    users = [json.loads(line)["key"] for line in f]
rng = random.Random(1)


def body():
    return json.dumps(
        {"user": rng.choice(users), "items": rng.sample(items, candidates), "context": {"device": "web"}}
    ).encode()


local = threading.local()


def post(payload):
    con = getattr(local, "con", None)
    if con is None:
        con = local.con = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    con.request("POST", "/score", payload, {"content-type": "application/json"})
    response = con.getresponse()
    answer = response.read()
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {answer[:200]!r}")
    return answer


def open_loop(rate):
    """p50, p99 (ms) and failures of one window at `rate` requests/s."""
    n = int(rate * seconds)
    payloads = [body() for _ in range(n)]
    start = time.perf_counter() + 0.05
    latencies, failures = [], []

    def one(i):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        try:
            post(payloads[i])
            latencies.append(time.perf_counter() - due)
        except Exception as e:  # counted, printed
            failures.append(str(e))

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(n)))
    latencies.sort()
    q = lambda p: 1e3 * latencies[min(len(latencies) - 1, int(p * (len(latencies) - 1)))]
    return q(0.5), q(0.99), len(failures)


def closed_loop():
    """Rows/s of CLIENTS back-to-back connections over one window."""
    stop = time.perf_counter() + seconds
    done = [0] * clients

    def client(c):
        payloads = [body() for _ in range(16)]
        k = 0
        while time.perf_counter() < stop:
            post(payloads[k % 16])
            k += 1
        done[c] = k

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    return sum(done) * candidates / (time.perf_counter() - started)


def bench_rows():
    out = subprocess.run(
        [recspec, "bench", spec, "--data", data, "--batch-size", str(candidates), "--min-seconds", str(seconds)],
        capture_output=True, text=True, check=True,
    )
    return 1e6 / json.loads(out.stdout)["infer_us_per_example"]


post(body())  # warm
windows = {rate: [] for rate in rates}
served, benched = [], []
for r in range(rounds):
    for rate in rates:
        windows[rate].append(open_loop(rate))
    served.append(closed_loop())
    benched.append(bench_rows())
    print(f"round {r + 1}: " + ", ".join(f"{rate:g}/s p99 {windows[rate][-1][1]:.1f} ms" for rate in rates)
          + f"; serve {served[-1]:,.0f} rows/s, bench {benched[-1]:,.0f} rows/s", file=sys.stderr)


def spread(xs, fmt):
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


print(f"| requests/s ({candidates} candidates each) | p50 ms | p99 ms | failed |")
print("|---|---|---|---|")
for rate in rates:
    w = windows[rate]
    print(f"| {rate:g} | {spread([x[0] for x in w], '{:.1f}')} | {spread([x[1] for x in w], '{:.1f}')} | {sum(x[2] for x in w)} |")
print()
print("| program | rows/s median (min–max) |")
print("|---|---|")
print(f"| raw /score, {clients} clients back to back | {spread(served, '{:,.0f}')} |")
print(f"| `recspec bench` inference, batch {candidates} | {spread(benched, '{:,.0f}')} |")
print(f"| serve / bench | {spread([s / b for s, b in zip(served, benched)], '{:.2f}')}× |")
