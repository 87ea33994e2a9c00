"""The hand-written PyTorch references of bench/reference against the generated modules of the same
specs (python/tests/fixtures/reference, written by bench/reference/fixtures.sh from a small
simulated data set): the same inputs, losses and parameter counts, and on the same weights and
batch the same outputs, loss terms and gradients (`reference.equivalence`); the benchmark runner's
JSON line against `recspec_torch.bench`'s."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import reference  # noqa: E402
from recspec_torch import bench as torch_bench  # noqa: E402
from recspec_torch.check import load_module  # noqa: E402
from recspec_torch import data as data_mod  # noqa: E402
from reference import bench, dumn, equivalence, layers  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures", "reference")
DATA = os.path.join(FIXTURES, "data")


def generated(name):
    """The fixture's generated module of family `name`: (module, class)."""
    return load_module(os.path.join(FIXTURES, f"{name}.py"))


class EquivalenceTest(unittest.TestCase):
    def check(self, name):
        module, cls = generated(name)
        family = reference.load(name)
        report = equivalence.compare(family, module, cls, DATA, rows=48)
        self.assertEqual(report.failures, [], equivalence.summary(name, report))
        # The counts compared in the report, explicitly: trainable parameters only (DUMN's memory
        # slots are buffers on both sides).
        dims = reference.dims_for(family, DATA)
        ours = sum(p.numel() for p in family.Model(dims).parameters() if p.requires_grad)
        self.assertEqual(ours, sum(p.numel() for p in cls(seed=None).parameters() if p.requires_grad))
        # Every check group ran.
        for prefix in ("eval output", "eval loss", "gradient", "train output", "train loss"):
            self.assertIsNotNone(report.worst(prefix), prefix)
        return report

    def test_dfn(self):
        self.check("dfn")

    def test_din(self):
        self.check("din")

    def test_dumn(self):
        report = self.check("dumn")
        self.assertIsNotNone(report.worst("buffer"))  # the four memories' writes were compared
        # The sampled triplet losses are compared in eval mode only.
        self.assertNotIn("train loss triplet_click (initial weights)", report.errors)
        self.assertIn("eval loss triplet_click (initial weights)", report.errors)

    def test_dlen(self):
        self.check("dlen")

    def test_retrieval_ntr(self):
        self.check("retrieval_ntr")

    def test_a_wrong_layer_is_found(self):
        """The check fails when the reference departs from the spec: DIN's unclick and dislike
        histories pooled over padding too."""
        module, cls = generated("din")
        family = reference.load("din")
        with mock.patch.object(family, "masked_mean", lambda x, mask: x.mean(1)):
            report = equivalence.compare(family, module, cls, DATA, rows=48)
        self.assertTrue(any(f.startswith("eval output p") for f in report.failures), report.failures)

    def test_a_wrong_loss_weight_is_found(self):
        module, cls = generated("dfn")
        family = reference.load("dfn")
        with mock.patch.dict(family.LOSS_WEIGHTS, {"dislike": 1.0}):
            report = equivalence.compare(family, module, cls, DATA, rows=48)
        self.assertEqual(len(report.failures), 1)
        self.assertIn("loss weights", report.failures[0])


class SampleValidTest(unittest.TestCase):
    def test_training_draws_uniformly_among_valid_positions(self):
        x = torch.arange(4 * 5, dtype=torch.float64).reshape(1, 4, 5).repeat(3, 1, 1)
        mask = torch.tensor([[True, True, True, False], [True, False, False, False], [False] * 4])
        torch.manual_seed(0)
        picks = [dumn.sample_valid(x, mask, training=True) for _ in range(600)]
        firsts = torch.stack([p[0, 0] for p in picks])
        counts = torch.bincount((firsts / 5).long(), minlength=4)
        self.assertEqual(counts[3].item(), 0)  # never the padded position
        self.assertTrue(all(150 < c < 250 for c in counts[:3].tolist()), counts)
        self.assertTrue(all(torch.equal(p[1], x[1, 0]) for p in picks))
        self.assertTrue(all(not p[2].any() for p in picks))  # no valid position: zeros
        last = dumn.sample_valid(x, mask, training=False)
        self.assertTrue(torch.equal(last[0], x[0, 2]) and torch.equal(last[1], x[1, 0]) and not last[2].any())


class BenchTest(unittest.TestCase):
    def run_main(self, main, args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(args)
        self.assertEqual(status, 0, err.getvalue())
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 1)
        return json.loads(lines[0])

    def test_same_json_line_as_the_generated_modules_bench(self):
        flags = ["--data", DATA, "--batch-size", "16", "--steps", "2", "--warmup", "1", "--threads", "1"]
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(FIXTURES, "din.py"), os.path.join(tmp, "model.py"))
            theirs = self.run_main(torch_bench.main, [tmp, *flags])
        ours = self.run_main(bench.main, ["din", *flags])
        self.assertEqual(list(ours), list(theirs))
        self.assertEqual(ours["program"], "reference")
        for key in ("spec", "device", "batch", "threads", "params", "steps"):
            self.assertEqual(ours[key], theirs[key], key)
        for key in ("train_samples_per_s", "infer_us_per_example", "loader_rows_per_s", "peak_rss_mb"):
            self.assertGreater(ours[key], 0, key)

    def test_sparse_tables_and_dims(self):
        """--sparse trains the same parameters, the tables by SparseAdam; --dims V=... grows the
        item table over the same data."""
        flags = ["--data", DATA, "--batch-size", "16", "--steps", "2", "--warmup", "1", "--threads", "1"]
        dense = self.run_main(bench.main, ["dfn", *flags])
        sparse = self.run_main(bench.main, ["dfn", *flags, "--sparse"])
        self.assertEqual(list(sparse), list(dense))
        self.assertEqual(sparse["params"], dense["params"])
        bigger = self.run_main(bench.main, ["dfn", *flags, "--sparse", "--dims", "V=1e4", "FV=3000"])
        dims = reference.dims_for(reference.load("dfn"), DATA)
        grown = (10000 - dims["V"]) * dims["D"] + (3000 - dims["FV"]) * (dims["D"] + 1)  # fields and wide
        self.assertEqual(bigger["params"] - dense["params"], grown)

    def test_split_adam_gives_the_tables_to_sparse_adam(self):
        family = reference.load("din")
        dims = reference.dims_for(family, DATA)
        model = family.Model(dims)
        self.assertFalse(any(m.sparse for m in model.modules() if isinstance(m, torch.nn.Embedding)))
        tables = layers.sparse_tables(model)
        self.assertEqual([tuple(t.shape) for t in tables], [(dims["V"], dims["D"]), (dims["FV"], dims["D"])])
        schema = data_mod.Schema.from_inputs(family.inputs(dims), list(family.LABELS))
        batch = next(data_mod.iterate(os.path.join(DATA, "train.jsonl"), schema, 16))
        optimizer = bench.SplitAdam(model.parameters(), lr=1e-3, eps=1e-5)
        before = [t.detach().clone() for t in tables]
        _, losses = model(batch.inputs, batch.labels)
        reference.total_loss(family, losses).backward()
        optimizer.step()
        kinds = {type(o).__name__: o.param_groups[0]["params"] for o in optimizer.optimizers}
        self.assertEqual(sorted(kinds), ["Adam", "SparseAdam"])
        self.assertEqual([id(p) for p in kinds["SparseAdam"]], [id(t) for t in tables])
        # Only the looked-up rows moved.
        ids = [batch.inputs[k].reshape(-1) for k in ("item", "clicks", "unclicks", "dislikes")]
        looked_up = torch.unique(torch.cat(ids))
        moved = (tables[0] != before[0]).any(1).nonzero().reshape(-1)
        self.assertTrue(set(moved.tolist()) <= set(looked_up.tolist()))
        self.assertGreater(len(moved), 0)

    def test_an_unknown_dim_is_a_usage_error(self):
        for bad in (["--dims", "X=3"], ["--dims", "V=1.5"], ["--dims", "V"], ["--dims", "V=3", "V=4"]):
            with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
                bench.main(["din", "--data", DATA, *bad])

    def test_unknown_family_is_a_usage_error(self):
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            bench.main(["deepfm", "--data", DATA])


def recspec_bin():
    path = os.environ.get("RECSPEC_BIN") or os.path.join(ROOT, "target", "release", "recspec")
    return path if os.access(path, os.X_OK) else None


class FixturesTest(unittest.TestCase):
    def test_fixtures_are_the_current_generated_modules(self):
        """Regenerates every module on the fixture data with the recspec binary: a spec or code
        generator change needs `bash bench/reference/fixtures.sh`. Without a binary this fails
        rather than skips (the test command builds it before the Python tests)."""
        if recspec_bin() is None:
            self.fail("no recspec binary: run `cargo build --release` (the test command builds it) or set RECSPEC_BIN")
        with tempfile.TemporaryDirectory() as tmp:
            for name in reference.FAMILIES:
                out = os.path.join(tmp, name)
                spec = os.path.join(ROOT, "specs", f"{name}.recspec")
                subprocess.run([recspec_bin(), "pytorch", spec, "--data", DATA, "--out", out], check=True, capture_output=True)
                with open(os.path.join(out, "model.py"), encoding="utf-8") as a, \
                        open(os.path.join(FIXTURES, f"{name}.py"), encoding="utf-8") as b:
                    self.assertTrue(a.read() == b.read(), f"{name}.py is stale: run `bash bench/reference/fixtures.sh`")


if __name__ == "__main__":
    unittest.main()
