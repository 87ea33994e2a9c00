"""`recspec serve` beside onnxruntime on the same rows (issue 26): rows scored per second.

    python bench/serve_vs_onnx.py [--spec specs/din.recspec] [--rounds 5] [--seconds 3]

Prepares a simulated data set and a DIN run (`recspec pytorch` + one epoch of
`recspec_torch.train`, so the run has `model.py` for the row layout and `model.safetensors`),
exports it with `recspec export --format onnx`, then alternates, round by round, timed windows of:

- serve: `recspec serve RUN` on 127.0.0.1, `--clients` threads posting /score requests of
  `--rows` test rows each (JSON in, JSON out, batched by the server), on keep-alive connections;
- onnxruntime: one InferenceSession (2 intra-op threads) scoring the same rows, already as
  tensors, `--rows` per call, in one thread: the model's compute without HTTP and JSON.

Prints rows/s per window and the median (min–max) of each and of their ratio. Client and server
share the machine's cores, as they would on one host. Environment: RECSPEC_BIN
(target/release/recspec), run with the test command's .venv python.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))


def sh(*args, **kw):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default="specs/din.recspec")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rows", type=int, default=64, help="rows per request and per onnxruntime call")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    binary = os.environ.get("RECSPEC_BIN", os.path.join(ROOT, "target/release/recspec"))
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), RECSPEC_PYTHON=sys.executable, OMP_NUM_THREADS="1")
    tmp = tempfile.mkdtemp(prefix="recspec-serve-bench-")
    data, run, onnx_path = f"{tmp}/data", f"{tmp}/run", f"{tmp}/model.onnx"
    sh(binary, "simulate", "--out", data, "--users", "500", "--impressions", "30")
    sh(binary, "pytorch", os.path.join(ROOT, args.spec), "--data", data, "--out", run, "--epochs", "1", cwd=ROOT)
    sh(sys.executable, "-m", "recspec_torch.train", run, "--data", data, env=env)
    sh(binary, "export", run, "--format", "onnx", "--out", onnx_path, env=env)

    import numpy as np
    import onnxruntime
    import torch  # noqa: F401 - recspec_torch.data builds torch tensors

    from recspec_torch.check import load_module
    from recspec_torch.data import Batcher, Schema

    module, _ = load_module(f"{run}/model.py")
    rows = [json.loads(l) for l in open(f"{data}/test.jsonl") if l.strip()]
    chunks = [rows[i:i + args.rows] for i in range(0, len(rows) - args.rows + 1, args.rows)]
    schema = Schema.from_module(module)
    batcher = Batcher(schema)
    feeds = []
    for chunk in chunks:
        inputs, _, _ = batcher.collate([batcher.encode(r) for r in chunk])[:3]
        feeds.append({n: inputs[n].numpy() for n in module.INFER_INPUTS})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    bodies = [json.dumps({"rows": c}) for c in chunks]

    server = subprocess.Popen([binary, "serve", run, "--port", "0"], stderr=subprocess.PIPE, text=True)
    line = server.stderr.readline()
    host, port = line.split("http://")[1].split()[0].split(":")

    def serve_window():
        done = [0] * args.clients
        stop = time.monotonic() + args.seconds

        def client(c):
            conn = http.client.HTTPConnection(host, int(port))
            i = c
            while time.monotonic() < stop:
                conn.request("POST", "/score", bodies[i % len(bodies)], {"Content-Type": "application/json"})
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise SystemExit(f"serve answered {response.status}: {body[:200]}")
                done[c] += args.rows
                i += args.clients
            conn.close()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(done) / (time.monotonic() - started)

    def onnx_window():
        done, i = 0, 0
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            session.run(None, feeds[i % len(feeds)])
            done += args.rows
            i += 1
        return done / (time.monotonic() - started)

    try:
        serve_window()  # warm-up
        onnx_window()
        results = {"serve": [], "onnxruntime": []}
        for r in range(args.rounds):
            results["serve"].append(serve_window())
            results["onnxruntime"].append(onnx_window())
            print(f"round {r + 1}: serve {results['serve'][-1]:,.0f} rows/s, onnxruntime {results['onnxruntime'][-1]:,.0f} rows/s", flush=True)
    finally:
        server.terminate()
        server.wait()
    ratio = [s / o for s, o in zip(results["serve"], results["onnxruntime"])]

    def cell(xs):
        return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}–{max(xs):,.0f})"

    print(f"\n{args.spec}, {args.rows} rows per request/call, {args.clients} HTTP clients, {args.rounds} rounds of {args.seconds:g} s windows")
    print("| program | rows/s median (min–max) |")
    print("|---|---|")
    print(f"| recspec serve (HTTP + JSON, batched) | {cell(results['serve'])} |")
    print(f"| onnxruntime in-process (tensors ready) | {cell(results['onnxruntime'])} |")
    print(f"| serve / onnxruntime | {statistics.median(ratio):.2f}× ({min(ratio):.2f}–{max(ratio):.2f}) |")


if __name__ == "__main__":
    main()
