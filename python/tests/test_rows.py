"""Row-sparse training of embedding tables (`recspec_torch.rows`) against an independent float64
reference written here with plain loops: lazy Adam, lazy Adagrad, row-wise Adagrad and dense
tables, through the stepping mode of `recspec_torch.check` on a hand-written module that follows
the generated contract (PARAMS, ROW_TABLES, INPUTS, ...); the run-config key and flag of train.py;
two ranks under torchrun ending every step identical."""

import contextlib
import copy
import io
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, PYTHON_DIR)

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from floats import assert_close  # noqa: E402

from recspec_torch import check, ops, train  # noqa: E402
from recspec_torch.rows import Optimizers, RowOptimizer  # noqa: E402
from recspec_torch.rng import SplitMix  # noqa: E402

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")

# The fixed projection of the model below (a constant, not a parameter).
U_VEC = [0.5, -1.0, 0.25]

# `items/table` is read by two lookups on the loss path (a masked sequence, padding id 0, and an
# item) and by one off every loss path (`probe`, an output only); `wide/weight` by ops.wide;
# `other/table` only for an output, so it never gets a gradient. A dropout at rate 0.5 sits on the
# loss path: the stepping mode must turn it off. The memory slot is written in training.
MODEL_PY = '''"""A small model written like a generated one, with row tables."""

import torch
from torch import nn

from recspec_torch import ops
from recspec_torch.rng import init_values, pass_rng

MODEL = "rows"

PARAMS = {
    "items/table": ("items_table", (10, 3), False, ("normal", 0.3)),
    "wide/weight": ("wide_weight", (6, 1), False, ("normal", 0.3)),
    "wide/bias": ("wide_bias", (2,), False, ("constant", 0.1)),
    "head/bias": ("head_bias", (1,), False, ("constant", 0.2)),
    "other/table": ("other_table", (5, 3), False, ("normal", 0.3)),
    "mem/slots": ("mem_slots", (3,), True, ("constant", 0.0)),
}

ROW_TABLES = ("items/table", "wide/weight", "other/table", )

INPUTS = {
    "seq": ("id", "sequence", (None, 3), 10),
    "seq.mask": ("mask", "mask", (None, 3), None),
    "item": ("id", "feature", (None,), 10),
    "fields": ("id", "feature", (None, 2), 6),
    "probe": ("id", "feature", (None,), 10),
    "other": ("id", "feature", (None,), 5),
}

LABELS = ["y"]

OUTPUTS = ["z", "extra", "oth"]

SCORES = {
    "y": "logit",
}

LOSSES = {
    "fit": 2.0,
}

U_VEC = %(u)r


class Rows(nn.Module):
    def __init__(self, seed=None):
        super().__init__()
        for index, (key, (attr, shape, is_state, rule)) in enumerate(PARAMS.items()):
            value = torch.zeros(shape) if seed is None else init_values(rule, shape, seed, index)
            if is_state:
                self.register_buffer(attr, value)
            else:
                setattr(self, attr, nn.Parameter(value))

    def recspec_state_dict(self):
        return {key: getattr(self, attr).detach() for key, (attr, _, _, _) in PARAMS.items()}

    def load_recspec_state_dict(self, tensors):
        with torch.no_grad():
            for key, (attr, _, _, _) in PARAMS.items():
                getattr(self, attr).copy_(tensors[key])

    def forward(self, inputs, labels=None, step=0):
        train = self.training
        rng = pass_rng(step)
        pooled = ops.pool(ops.embedding(inputs["seq"], self.items_table), inputs["seq.mask"], "sum", False)
        h = ops.binary("add", pooled, ops.embedding(inputs["item"], self.items_table))
        h = ops.dropout(h, 0.5, train)
        u = torch.tensor(U_VEC, dtype=h.dtype)
        z = (h * u).sum(1) + self.head_bias + ops.wide(inputs["fields"], self.wide_weight, self.wide_bias).sum(1)
        extra = ops.embedding(inputs["probe"], self.items_table)
        oth = ops.embedding(inputs["other"], self.other_table)
        if train:
            with torch.no_grad():
                self.mem_slots.copy_(self.mem_slots * 0.5 + h.detach().mean(0) * 0.5)
        losses = {}
        if labels is not None:
            r = z - labels["y"]
            losses = {"fit": (2.0, (r * r * 0.5).mean())}
        return {"z": z, "extra": extra, "oth": oth}, losses, {"y": torch.sigmoid(z)}
''' % {"u": U_VEC}

ROW_KEYS = ("items/table", "wide/weight", "other/table")
DENSE_KEYS = ("wide/bias", "head/bias")

# Hand-chosen batches (B = 2): rows touched in one step and not the next, repeated ids in a step,
# padding id 0 under a false mask, two lookups of items/table per step, probe ids (items/table
# read off the loss path) that must not count as touched.
BATCHES = [
    dict(seq=[[1, 1, 2], [3, 0, 0]], mask=[[1, 1, 1], [1, 0, 0]], item=[2, 4], fields=[[0, 1], [1, 1]],
         probe=[7, 8], other=[0, 1], y=[1.0, 0.0]),
    dict(seq=[[5, 6, 0], [5, 5, 5]], mask=[[1, 1, 0], [1, 1, 1]], item=[6, 9], fields=[[2, 3], [3, 3]],
         probe=[1, 2], other=[2, 3], y=[0.0, 2.0]),
    dict(seq=[[1, 8, 8], [0, 0, 0]], mask=[[1, 1, 1], [0, 0, 0]], item=[1, 3], fields=[[0, 5], [4, 0]],
         probe=[6, 7], other=[4, 4], y=[1.0, 1.0]),
    dict(seq=[[9, 2, 7], [4, 4, 0]], mask=[[1, 0, 1], [1, 1, 0]], item=[2, 2], fields=[[5, 5], [2, 0]],
         probe=[3, 3], other=[1, 1], y=[0.5, 1.5]),
    dict(seq=[[8, 8, 8], [6, 1, 0]], mask=[[1, 1, 1], [1, 1, 0]], item=[0, 5], fields=[[4, 4], [0, 2]],
         probe=[9, 9], other=[3, 2], y=[-0.5, 1.0]),
    dict(seq=[[3, 3, 0], [7, 0, 0]], mask=[[1, 1, 0], [1, 0, 0]], item=[8, 7], fields=[[1, 5], [5, 3]],
         probe=[0, 4], other=[0, 4], y=[2.0, 0.0]),
]

LR = 0.05


def initial_weights():
    """Float32 weights drawn once (seeded numpy), not by the code under test."""
    rng = np.random.default_rng(7)
    shapes = {"items/table": (10, 3), "wide/weight": (6, 1), "wide/bias": (2,), "head/bias": (1,),
              "other/table": (5, 3), "mem/slots": (3,)}
    out = {k: rng.normal(0.0, 0.3, s).astype(np.float32) for k, s in shapes.items()}
    out["mem/slots"][:] = 0.0
    return out


def batch_tensors(b):
    inputs = {
        "seq": torch.tensor(b["seq"], dtype=torch.int64),
        "seq.mask": torch.tensor(b["mask"], dtype=torch.bool),
        "item": torch.tensor(b["item"], dtype=torch.int64),
        "fields": torch.tensor(b["fields"], dtype=torch.int64),
        "probe": torch.tensor(b["probe"], dtype=torch.int64),
        "other": torch.tensor(b["other"], dtype=torch.int64),
    }
    return inputs, {"y": torch.tensor(b["y"], dtype=torch.float32)}


def batches_file(batches, path):
    tensors = {}
    for k, b in enumerate(batches, 1):
        inputs, labels = batch_tensors(b)
        tensors.update({f"{k}/input:{n}": v for n, v in inputs.items()})
        tensors.update({f"{k}/label:{n}": v for n, v in labels.items()})
    save_file(tensors, path)


def concat(a, b):
    """Two batches as one (rank 0's rows, then rank 1's)."""
    return {key: a[key] + b[key] for key in a}


# ----------------------------------------------------------------------------------------------
# The reference: float64, loops, nothing from recspec_torch


def touched(batch):
    """The rows each row table's lookups on the loss path read: seq (padding included) and item
    for items/table, fields for wide/weight; none for other/table (no gradient)."""
    items = sorted({i for row in batch["seq"] for i in row} | set(batch["item"]))
    wide = sorted({i for row in batch["fields"] for i in row})
    return {"items/table": items, "wide/weight": wide}


def forward_and_grads(w, batch):
    """The loss (LOSSES weight 2 times the mean of ½ r²), the pooled h per row, and the gradient
    of every parameter on the loss path."""
    u = U_VEC
    rows = len(batch["y"])
    d = len(u)
    h = []
    z = []
    for b in range(rows):
        hb = [0.0] * d
        for n, i in enumerate(batch["seq"][b]):
            if batch["mask"][b][n]:
                for c in range(d):
                    hb[c] += w["items/table"][i][c]
        for c in range(d):
            hb[c] += w["items/table"][batch["item"][b]][c]
        zb = sum(hb[c] * u[c] for c in range(d)) + w["head/bias"][0]
        for f, i in enumerate(batch["fields"][b]):
            zb += w["wide/weight"][i][0] + w["wide/bias"][f]
        h.append(hb)
        z.append(zb)
    r = [z[b] - batch["y"][b] for b in range(rows)]
    loss = 2.0 * sum(0.5 * rb * rb for rb in r) / rows
    coef = [2.0 * r[b] / rows for b in range(rows)]  # d loss / d z_b
    g = {
        "items/table": np.zeros((10, 3)),
        "wide/weight": np.zeros((6, 1)),
        "wide/bias": np.zeros(2),
        "head/bias": np.zeros(1),
    }
    for b in range(rows):
        for n, i in enumerate(batch["seq"][b]):
            if batch["mask"][b][n]:
                for c in range(d):
                    g["items/table"][i][c] += coef[b] * u[c]
        for c in range(d):
            g["items/table"][batch["item"][b]][c] += coef[b] * u[c]
        for f, i in enumerate(batch["fields"][b]):
            g["wide/weight"][i][0] += coef[b]
            g["wide/bias"][f] += coef[b]
        g["head/bias"][0] += coef[b]
    return loss, h, g


def reference(batches, lr, optimizer, embedding):
    """Per step: {"loss", "w": {key: array}, "state": {name: {key: array}}} after the step."""
    b1, b2, eps = 0.9, 0.999, 1e-5
    # recspec's row Adam holds its betas as float32 (0.9f32 = 0.899999976, 0.999f32 = 0.999000013):
    # 1 - β2 is then 0.00099998713, 1.3e-5 below 0.001, which shows in v. The reference takes
    # those values for the row rule (in float64 from there on); torch's dense Adam is as torch has it.
    rb1, rb2 = float(np.float32(b1)), float(np.float32(b2))
    w = {k: v.astype(np.float64) for k, v in initial_weights().items()}
    tables = () if embedding == "dense" else ("items/table", "wide/weight", "other/table")
    dense_state = {}  # key -> (t, m, v) or (t, sum)
    row_state = {k: {} for k in tables}
    row_steps = {k: 0 for k in tables}
    out = []
    for batch in batches:
        loss, h, grads = forward_and_grads(w, batch)
        rows = len(h)
        w["mem/slots"] = np.array([w["mem/slots"][c] * 0.5 + sum(h[b][c] for b in range(rows)) / rows * 0.5
                                   for c in range(3)])
        for key, g in grads.items():
            flat_w = w[key].reshape(-1)
            flat_g = g.reshape(-1)
            if key in tables:
                t = row_steps[key] = row_steps[key] + 1
                width = w[key].shape[1]
                st = row_state[key]
                for r in touched(batch)[key]:
                    if embedding == "rowwise_adagrad":
                        acc = st.setdefault("acc", np.zeros(w[key].shape[0]))
                        acc[r] += sum(g[r][c] ** 2 for c in range(width)) / width
                        for c in range(width):
                            w[key][r][c] -= lr * g[r][c] / (np.sqrt(acc[r]) + 1e-8)
                    elif optimizer == "adam":
                        m = st.setdefault("m", np.zeros(w[key].shape))
                        v = st.setdefault("v", np.zeros(w[key].shape))
                        c2 = np.sqrt(1.0 - rb2 ** t)
                        f = c2 / (1.0 - rb1 ** t)
                        for c in range(width):
                            m[r][c] = rb1 * m[r][c] + (1.0 - rb1) * g[r][c]
                            v[r][c] = rb2 * v[r][c] + (1.0 - rb2) * g[r][c] ** 2
                            w[key][r][c] -= lr * (m[r][c] * f / (np.sqrt(v[r][c]) + eps * c2))
                    else:
                        s = st.setdefault("sum", np.zeros(w[key].shape))
                        for c in range(width):
                            s[r][c] += g[r][c] ** 2
                            w[key][r][c] -= lr * g[r][c] / (np.sqrt(s[r][c]) + eps)
            elif optimizer == "adam":  # torch.optim.Adam, every element
                t, m, v = dense_state.get(key, (0, np.zeros(flat_g.shape), np.zeros(flat_g.shape)))
                t += 1
                for i in range(len(flat_g)):
                    m[i] = b1 * m[i] + (1.0 - b1) * flat_g[i]
                    v[i] = b2 * v[i] + (1.0 - b2) * flat_g[i] ** 2
                    flat_w[i] -= lr / (1.0 - b1 ** t) * m[i] / (np.sqrt(v[i]) / np.sqrt(1.0 - b2 ** t) + eps)
                dense_state[key] = (t, m, v)
                w[key] = flat_w.reshape(w[key].shape)
            else:  # torch.optim.Adagrad
                t, s = dense_state.get(key, (0, np.zeros(flat_g.shape)))
                for i in range(len(flat_g)):
                    s[i] += flat_g[i] ** 2
                    flat_w[i] -= lr * flat_g[i] / (np.sqrt(s[i]) + eps)
                dense_state[key] = (t + 1, s)
                w[key] = flat_w.reshape(w[key].shape)
        names = {"dense": (), "rowwise_adagrad": ("acc",)}.get(embedding, ("m", "v") if optimizer == "adam" else ("sum",))
        state = {}
        for name in names:
            state[name] = {}
            for key in tables:
                shape = (w[key].shape[0],) if name == "acc" else w[key].shape
                state[name][key] = row_state[key].get(name, np.zeros(shape)).copy()
        out.append({"loss": loss, "w": {k: v.copy() for k, v in w.items()}, "state": state, "steps": dict(row_steps)})
    return out


# Tolerances against the float64 reference: weights, Adam's m, Adagrad sums and accumulators
# within 1e-6 + 1e-5·|expected| per element; Adam's v (≈ 1e-3 g², small) within 1e-10 + 1e-5·|expected|.
ATOL = {"w": 1e-6, "m": 1e-6, "v": 1e-10, "sum": 1e-6, "acc": 1e-6}
RTOL = 1e-5


class Files:
    """model.py, weights and batches in a temporary directory."""

    def __init__(self, tmp, batches):
        self.model = os.path.join(tmp, "model.py")
        self.weights = os.path.join(tmp, "weights.safetensors")
        self.batches = os.path.join(tmp, "batches.safetensors")
        with open(self.model, "w") as fh:
            fh.write(MODEL_PY)
        save_file({k: torch.from_numpy(v) for k, v in initial_weights().items()}, self.weights)
        batches_file(batches, self.batches)


class SteppingTest(unittest.TestCase):
    """`python -m recspec_torch.check --batches` against the reference, per rule."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.files = Files(self.tmp.name, BATCHES)

    def tearDown(self):
        self.tmp.cleanup()

    def run_check(self, optimizer, embedding, steps=len(BATCHES)):
        out = os.path.join(self.tmp.name, f"out-{optimizer}-{embedding}.safetensors")
        status = check.main([
            "--model", self.files.model, "--weights", self.files.weights, "--batches", self.files.batches,
            "--steps", str(steps), "--lr", str(LR), "--optimizer", optimizer,
            "--embedding-optimizer", embedding, "--out", out,
        ])
        self.assertEqual(status, 0)
        return {k: v.numpy() for k, v in load_file(out).items()}

    def check_rule(self, optimizer, embedding):
        got = self.run_check(optimizer, embedding)
        want = reference(BATCHES, LR, optimizer, embedding)
        names = {"dense": (), "rowwise_adagrad": ("acc",)}.get(embedding, ("m", "v") if optimizer == "adam" else ("sum",))
        keys = set()
        for k in range(1, len(BATCHES) + 1):
            keys |= {f"{k}/loss"} | {f"{k}/w/{key}" for key in (*ROW_KEYS, *DENSE_KEYS, "mem/slots")}
            if embedding != "dense":
                keys |= {f"{k}/{name}/{key}" for name in names for key in ROW_KEYS}
        self.assertEqual(set(got), keys)
        before = {f"w/{k}": v for k, v in initial_weights().items()}
        before.update({f"{name}/{key}": np.zeros(got[f"1/{name}/{key}"].shape, np.float32)
                       for name in names for key in ROW_KEYS})
        for k in range(1, len(BATCHES) + 1):
            ref = want[k - 1]
            with self.subTest(step=k):
                self.assertEqual(got[f"{k}/loss"].shape, (1,))
                assert_close(self, got[f"{k}/loss"][0], ref["loss"], 1e-6, RTOL, f"step {k} loss")
                for key, value in ref["w"].items():
                    self.assertEqual(got[f"{k}/w/{key}"].dtype, np.float32)
                    assert_close(self, got[f"{k}/w/{key}"], value, ATOL["w"], RTOL, f"step {k} {key}")
                for name, tables in ref["state"].items():
                    for key, value in tables.items():
                        assert_close(self, got[f"{k}/{name}/{key}"], value, ATOL[name], RTOL, f"step {k} {name} {key}")
                if embedding != "dense":
                    # Rows the step did not touch, their state, and the table without a gradient
                    # are bit for bit what they were.
                    for key in ROW_KEYS:
                        rows = touched(BATCHES[k - 1]).get(key, [])
                        untouched = [r for r in range(before[f"w/{key}"].shape[0]) if r not in rows]
                        for prefix in ["w", *names]:
                            now = got[f"{k}/{prefix}/{key}"]
                            then = before[f"{prefix}/{key}"]
                            self.assertTrue(np.array_equal(now[untouched], then[untouched]), f"step {k} {prefix}/{key}")
                            if rows:
                                self.assertFalse(np.array_equal(now[rows], then[rows]), f"step {k} {prefix}/{key}")
                    self.assertTrue(np.array_equal(got[f"{k}/w/other/table"], initial_weights()["other/table"]))
                before = {name[len(f"{k}/"):]: v for name, v in got.items() if name.startswith(f"{k}/")}

    def test_lazy_adam(self):
        self.check_rule("adam", "lazy")

    def test_lazy_adagrad(self):
        self.check_rule("adagrad", "lazy")

    def test_rowwise_adagrad_with_adam(self):
        self.check_rule("adam", "rowwise_adagrad")

    def test_rowwise_adagrad_with_adagrad(self):
        self.check_rule("adagrad", "rowwise_adagrad")

    def test_dense_adam(self):
        self.check_rule("adam", "dense")

    def test_dense_adagrad(self):
        self.check_rule("adagrad", "dense")

    def test_lazy_adam_moves_a_padding_row_by_its_momentum(self):
        """Row 0 of items/table gets a gradient in step 5 (an item) and is read only as padding
        (mask 0, a zero gradient) in step 6: touched, so Adam decays its moments and moves it;
        row 1 is read in step 5 and not in step 6: it stays, bit for bit."""
        got = self.run_check("adam", "lazy")
        self.assertIn(0, BATCHES[4]["item"])
        self.assertEqual([i for row in BATCHES[5]["seq"] for i in row].count(0), 3)
        self.assertNotIn(0, BATCHES[5]["item"])
        m5, m6 = got["5/m/items/table"][0], got["6/m/items/table"][0]
        self.assertTrue(np.all(m5 != 0.0))
        self.assertTrue(np.array_equal(m6, m5 * np.float32(0.9)))  # β1 m + (1 - β1) 0
        self.assertFalse(np.array_equal(got["6/w/items/table"][0], got["5/w/items/table"][0]))
        self.assertNotIn(1, touched(BATCHES[5])["items/table"])
        for name in ("w", "m", "v"):
            self.assertTrue(np.array_equal(got[f"6/{name}/items/table"][1], got[f"5/{name}/items/table"][1]))

    def test_the_single_batch_mode_still_works(self):
        batch = os.path.join(self.tmp.name, "batch.safetensors")
        inputs, labels = batch_tensors(BATCHES[0])
        save_file({**{f"input:{k}": v for k, v in inputs.items()}, **{f"label:{k}": v for k, v in labels.items()}}, batch)
        out = os.path.join(self.tmp.name, "one.safetensors")
        check.main(["--model", self.files.model, "--weights", self.files.weights, "--batch", batch, "--out", out])
        got = load_file(out)
        _, _, grads = forward_and_grads({k: v.astype(np.float64) for k, v in initial_weights().items()}, BATCHES[0])
        for key, g in grads.items():
            assert_close(self, got[f"grad:{key}"].numpy(), g, 1e-6, RTOL, key)
        self.assertNotIn("grad:other/table", got)

    def test_missing_batches_are_an_error(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = check.main([
                "--model", self.files.model, "--weights", self.files.weights, "--batches", self.files.batches,
                "--steps", str(len(BATCHES) + 1), "--lr", "0.1", "--out", os.path.join(self.tmp.name, "x.safetensors"),
            ])
        self.assertEqual(status, 2)
        self.assertIn(f"has no batch {len(BATCHES) + 1}", err.getvalue())


class LookupLogTest(unittest.TestCase):
    """Which lookups count: those that get a gradient, every id they read."""

    def test_sampled_logits_logs_the_target_and_the_samples(self):
        table = torch.nn.Parameter(torch.randn(7, 2))
        opt = RowOptimizer([table], 0.1, "lazy_adam")
        s = torch.randn(2, 2)
        out = ops.sampled_logits(s, torch.tensor([1, 4]), table, 3, False, SplitMix(5))
        self.assertEqual(len(getattr(table, ops.ROW_LOG)), 0)  # nothing until the backward
        out.sum().backward()
        logged = sorted(torch.cat(getattr(table, ops.ROW_LOG)).tolist())
        rng = SplitMix(5)
        expected = sorted([1, 4] + [rng.below(7) for _ in range(3)])
        self.assertEqual(logged, expected)
        opt.step()
        self.assertEqual(getattr(table, ops.ROW_LOG), [])

    def test_lookups_without_a_gradient_are_not_logged(self):
        table = torch.nn.Parameter(torch.randn(4, 2))
        RowOptimizer([table], 0.1, "rowwise_adagrad")
        with torch.no_grad():
            ops.embedding(torch.tensor([1]), table)
        used = ops.embedding(torch.tensor([2, 2]), table)
        ops.embedding(torch.tensor([3]), table)  # off the loss path
        ops.wide(torch.tensor([[0, 1]]), table[:, :1], torch.zeros(2))  # a slice: not the table
        used.sum().backward()
        self.assertEqual([t.tolist() for t in getattr(table, ops.ROW_LOG)], [[2, 2]])

    def test_state_dict_round_trip(self):
        """A RowOptimizer's state_dict restores step counts and state: the same next step."""
        files_dir = tempfile.TemporaryDirectory()
        self.addCleanup(files_dir.cleanup)
        module, cls = check.load_module(Files(files_dir.name, BATCHES).model)

        def fresh():
            model = cls()
            model.load_recspec_state_dict({k: torch.from_numpy(v) for k, v in initial_weights().items()})
            model.train()
            return model, Optimizers(model, module, "adam", LR, "lazy")

        def step(model, opt, k):
            inputs, labels = batch_tensors(BATCHES[k])
            with ops.no_dropout():
                total, _ = train.Objective(model, {})(inputs, labels, k)
            opt.zero_grad()
            total.backward()
            opt.step()

        a, opt_a = fresh()
        for k in range(2):
            step(a, opt_a, k)
        b, opt_b = fresh()
        b.load_recspec_state_dict(a.recspec_state_dict())
        opt_b.dense.load_state_dict(copy.deepcopy(opt_a.dense.state_dict()))
        opt_b.rows.load_state_dict(copy.deepcopy(opt_a.rows.state_dict()))
        self.assertEqual(opt_b.row_state("items/table")[0], 2)
        self.assertEqual(opt_b.row_state("other/table")[0], 0)
        step(a, opt_a, 2)
        step(b, opt_b, 2)
        for key, value in a.recspec_state_dict().items():
            self.assertTrue(torch.equal(value, b.recspec_state_dict()[key]), key)


class SettingsTest(unittest.TestCase):
    """train.py's `[train] embedding_optimizer` and `--embedding-optimizer`."""

    def test_run_config_accepts_and_checks_the_key(self):
        for value in ("lazy", "rowwise_adagrad", "dense"):
            settings, _ = train.parse_run_config("run.toml", f'[train]\noptimizer = "adam"\nembedding_optimizer = "{value}"\n')
            self.assertEqual(settings["embedding_optimizer"], value)
        with self.assertRaises(train.UserError) as e:
            train.parse_run_config("run.toml", '[train]\nembedding_optimizer = "sparse"\n')
        self.assertEqual(
            str(e.exception),
            'run.toml: [train] embedding_optimizer must be "lazy", "rowwise_adagrad" or "dense", found "sparse"',
        )
        with self.assertRaises(train.UserError) as e:
            train.parse_run_config("run.toml", "[train]\nembedding_optimizer = 1\n")
        self.assertEqual(str(e.exception), "run.toml:2: [train] embedding_optimizer must be a string, found integer")

    def test_describe_settings_names_a_non_lazy_rule(self):
        args = train.parse_args(["run", "--data", "d", "--lr", "0.005", "--epochs", "3"])
        self.assertEqual(train.merge_settings({}, args)["embedding_optimizer"], "lazy")
        self.assertEqual(train.describe_settings(train.merge_settings({}, args)), "adam, lr 0.005, batch 256, 3 epochs, seed 1")
        s = train.merge_settings({"embedding_optimizer": "dense"}, args)
        self.assertEqual(train.describe_settings(s), "adam, lr 0.005, batch 256, 3 epochs, seed 1, dense embedding updates")
        args = train.parse_args(["run", "--data", "d", "--embedding-optimizer", "rowwise_adagrad", "--max-steps", "4"])
        s = train.merge_settings({"embedding_optimizer": "dense"}, args)
        self.assertEqual(
            train.describe_settings(s),
            "adam, lr 0.001, batch 256, 2 epochs, seed 1, at most 4 steps per epoch, rowwise_adagrad embedding updates",
        )

    def test_train_runs_with_each_rule(self):
        """train.py with each rule on test_train's module (items/table a row table), with a module
        generated before ROW_TABLES existed (every parameter dense), and one whose ROW_TABLES
        names an unknown key."""
        import test_train

        old_module = test_train.MODEL_PY.replace('ROW_TABLES = ("items/table", )\n', "")
        self.assertNotIn("ROW_TABLES", old_module)
        bad_module = test_train.MODEL_PY.replace('ROW_TABLES = ("items/table", )', 'ROW_TABLES = ("items/tabel", )')
        cases = [(v, test_train.MODEL_PY) for v in ("lazy", "rowwise_adagrad", "dense")] + [("lazy", old_module)]
        for value, source in cases + [("lazy", bad_module)]:
            with self.subTest(value=value, rows="ROW_TABLES" in source), tempfile.TemporaryDirectory() as tmp:
                run_dir, data_dir = os.path.join(tmp, "run"), os.path.join(tmp, "data")
                os.makedirs(run_dir)
                os.makedirs(data_dir)
                with open(os.path.join(run_dir, "model.py"), "w") as fh:
                    fh.write(source)
                with open(os.path.join(run_dir, "run.toml"), "w") as fh:
                    fh.write(f'[train]\noptimizer = "adagrad"\nlr = 0.05\nembedding_optimizer = "{value}"\n')
                for split, seed in (("train", 1), ("valid", 2)):
                    with open(os.path.join(data_dir, f"{split}.jsonl"), "w") as fh:
                        fh.write(test_train.make_rows(20, seed))
                err = io.StringIO()
                env = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE") if k in os.environ}
                try:
                    with contextlib.redirect_stderr(err):
                        status = train.main([run_dir, "--data", data_dir, "--device", "cpu", "--epochs", "1",
                                             "--batch-size", "8"])
                finally:
                    os.environ.update(env)
                if source is bad_module:
                    self.assertEqual(status, 2)
                    self.assertIn("ROW_TABLES names `items/tabel`, which is not in PARAMS", err.getvalue())
                    continue
                self.assertEqual(status, 0, err.getvalue())
                suffix = "" if value == "lazy" else f", {value} embedding updates"
                self.assertIn(f"adagrad, lr 0.05, batch 8, 1 epoch, seed 1{suffix};", err.getvalue())
                module, cls = check.load_module(os.path.join(run_dir, "model.py"))
                opt = Optimizers(cls(), module, "adagrad", 0.05, value)
                self.assertEqual(list(opt.tables), ["items/table"] if value != "dense" and source is not old_module else [])
                self.assertEqual(len(opt.dense.param_groups[0]["params"]), 4 - len(opt.tables))


DDP_SCRIPT = '''
import gc, os, sys
sys.path.insert(0, %(python)r)
import torch
from safetensors.torch import load_file, save_file
from recspec_torch import ops, train
from recspec_torch.check import load_module, split_batches
from recspec_torch.rows import Optimizers

model_path, weights, batches, out_dir, steps, optimizer, embedding = sys.argv[1:]


def run(ctx):
    # Inside a function so that the DistributedDataParallel wrapper, which holds the process
    # group, is freed before ctx.close() destroys it, as recspec_torch.train frees its own. A
    # module-level wrapper lived until the interpreter's teardown, where gloo's destructor can
    # abort the process (SIGABRT, "terminate called without an active exception"; seen once
    # in CI).
    module, cls = load_module(model_path)
    model = cls()
    model.load_recspec_state_dict(load_file(weights))
    objective = train.Objective(model, {})
    step_fn = train.data_parallel(ctx, objective, train.placeholder_batch(module, ctx.device))
    opt = Optimizers(model, module, optimizer, %(lr)r, embedding, eps=train.OPTIMIZER_EPS)
    data = split_batches(load_file(batches))
    model.train()
    with ops.no_dropout():
        for k in range(int(steps)):
            inputs, labels = data[2 * k + ctx.rank + 1]
            total, _ = step_fn(inputs, labels, k)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
    out = {f"w/{k}": v.contiguous() for k, v in model.recspec_state_dict().items() if k != "mem/slots"}
    for key in opt.tables:
        n, state = opt.row_state(key)
        out.update({f"{name}/{key}": t.contiguous() for name, t in state.items()})
        out[f"steps/{key}"] = torch.tensor([n])
    save_file(out, os.path.join(out_dir, f"rank{ctx.rank}.safetensors"))


ctx = train.Context("cpu")
try:
    run(ctx)
finally:
    gc.collect()  # the wrapper's reference cycles too
    ctx.close()
'''


class TwoRanksTest(unittest.TestCase):
    def test_two_ranks_end_every_step_identical(self):
        """Rank r takes batch 2k + r + 1 at step k: the ranks read different rows (rank 1 reads
        rows rank 0 does not), both end with the same weights and row state, which are the
        reference's on the two batches joined (the mean of the ranks' means)."""
        with tempfile.TemporaryDirectory() as tmp:
            files = Files(tmp, BATCHES)
            script = os.path.join(tmp, "ddp.py")
            with open(script, "w") as fh:
                fh.write(DDP_SCRIPT % {"python": os.path.abspath(PYTHON_DIR), "lr": LR})
            # TMPDIR: torchrun's own scratch folders (torchelastic_*) go with the test's.
            env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=tmp)
            for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
                env.pop(k, None)
            for optimizer, embedding in (("adam", "lazy"), ("adagrad", "rowwise_adagrad")):
                with self.subTest(embedding=embedding):
                    p = subprocess.run(
                        [TORCHRUN, "--standalone", "--nproc_per_node", "2", script, files.model, files.weights,
                         files.batches, tmp, "3", optimizer, embedding],
                        env=env, capture_output=True, text=True, timeout=120,
                    )
                    self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                    ranks = [load_file(os.path.join(tmp, f"rank{r}.safetensors")) for r in range(2)]
                    self.assertEqual(set(ranks[0]), set(ranks[1]))
                    for key in ranks[0]:
                        self.assertTrue(torch.equal(ranks[0][key], ranks[1][key]), key)
                    joined = [concat(BATCHES[2 * k], BATCHES[2 * k + 1]) for k in range(3)]
                    ref = reference(joined, LR, optimizer, embedding)[-1]
                    for key, value in ref["w"].items():
                        if key != "mem/slots":
                            assert_close(self, ranks[0][f"w/{key}"].numpy(), value, ATOL["w"], RTOL, key)
                    for name, tables in ref["state"].items():
                        for key, value in tables.items():
                            assert_close(self, ranks[0][f"{name}/{key}"].numpy(), value, ATOL[name], RTOL, f"{name} {key}")
                    self.assertEqual(int(ranks[0]["steps/items/table"]), 3)
                    self.assertEqual(int(ranks[0]["steps/other/table"]), 0)


if __name__ == "__main__":
    unittest.main()
