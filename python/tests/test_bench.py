"""The speed benchmark: `recspec_torch.bench` on the tiny module of test_train, and the arithmetic
of bench/speed_table.py (the table of bench/speed.sh: recspec, the generated module and the
hand-written reference) on hand-written results."""

import contextlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import unittest

import torch

PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, PYTHON_DIR)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from recspec_torch import bench  # noqa: E402
from test_train import MODEL_PY, make_rows  # noqa: E402

TABLE_PY = os.path.join(PYTHON_DIR, "..", "bench", "speed_table.py")


def load_table():
    spec = importlib.util.spec_from_file_location("speed_table", TABLE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BenchTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.run_dir = os.path.join(self.tmp.name, "run")
        self.data_dir = os.path.join(self.tmp.name, "data")
        os.makedirs(self.run_dir)
        os.makedirs(self.data_dir)
        with open(os.path.join(self.run_dir, "model.py"), "w") as fh:
            fh.write(MODEL_PY)
        with open(os.path.join(self.data_dir, "train.jsonl"), "w") as fh:
            fh.write(make_rows(41, 1))

    def tearDown(self):
        self.tmp.cleanup()

    def main(self, *flags):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = bench.main([self.run_dir, "--data", self.data_dir, *flags])
        return status, out.getvalue(), err.getvalue()

    def test_prints_one_json_line(self):
        """41 rows in batches of 10: 5 batches; 7 timed steps cycle over them."""
        status, out, err = self.main("--batch-size", "10", "--steps", "7", "--warmup", "2", "--threads", "1")
        self.assertEqual(status, 0, err)
        lines = out.splitlines()
        self.assertEqual(len(lines), 1)
        r = json.loads(lines[0])
        self.assertEqual(
            list(r),
            ["program", "spec", "device", "batch", "threads", "params", "steps", "train_samples_per_s",
             "infer_us_per_example", "loader_rows_per_s", "peak_rss_mb", "seconds"],
        )
        self.assertEqual((r["program"], r["spec"], r["batch"], r["threads"], r["steps"]), ("pytorch", "tiny", 10, 1, 7))
        self.assertEqual(r["device"], "cpu")
        self.assertEqual(r["params"], 20 * 4 + 9 + 1 + 4 * 2)  # the memory buffer is not counted
        for key in ("train_samples_per_s", "infer_us_per_example", "loader_rows_per_s", "peak_rss_mb"):
            self.assertGreater(r[key], 0, key)

    def test_min_seconds_times_more_steps(self):
        """One step asked for, but the timed steps must fill 0.3 s: more of them run, cycling over
        the batches, and `seconds` reports the window."""
        status, out, err = self.main("--batch-size", "10", "--steps", "1", "--warmup", "1", "--min-seconds", "0.3")
        self.assertEqual(status, 0, err)
        r = json.loads(out)
        self.assertGreater(r["steps"], 1)
        self.assertGreaterEqual(r["seconds"], 0.3)
        self.assertLess(r["seconds"], 30)

    def test_bad_min_seconds_is_a_usage_error(self):
        for bad in ("nan", "-1", "inf"):
            with self.assertRaises(SystemExit) as caught, contextlib.redirect_stderr(io.StringIO()) as err:
                bench.main([self.run_dir, "--data", self.data_dir, "--min-seconds", bad])
            self.assertEqual(caught.exception.code, 2, bad)
            self.assertIn("--min-seconds must be a finite number of seconds", err.getvalue())

    @unittest.skipIf(torch.cuda.is_available(), "this machine has CUDA")
    def test_cuda_without_a_gpu_is_an_error(self):
        status, out, err = self.main("--device", "cuda")
        self.assertEqual((status, out), (2, ""))
        self.assertEqual(err, "error: --device cuda: CUDA is not available\n")

    def test_errors_are_one_line(self):
        os.remove(os.path.join(self.data_dir, "train.jsonl"))
        status, out, err = self.main()
        self.assertEqual((status, out), (2, ""))
        self.assertRegex(err, r"^error: .*train\.jsonl not found")


def row(spec, program, train, infer, loader, rss, params=100):
    return {"program": program, "spec": spec, "batch": 256, "threads": 2, "params": params, "steps": 20,
            "train_samples_per_s": train, "infer_us_per_example": infer, "loader_rows_per_s": loader,
            "peak_rss_mb": rss}


class TableTest(unittest.TestCase):
    def setUp(self):
        self.t = load_table()
        self.rows = [
            row("dfn", "recspec", 1000.0, 300.0, 50000.0, 300.0),
            row("dfn", "pytorch", 2000.0, 150.0, 20000.0, 800.0),
            row("dfn", "recspec", 1200.0, 280.0, 60000.0, 310.0),
            row("dfn", "pytorch", 1800.0, 160.0, 25000.0, 820.0),
            row("dfn", "recspec", 1100.0, 320.0, 55000.0, 305.0),
            row("dfn", "pytorch", 2200.0, 140.0, 30000.0, 810.0),
            row("din", "recspec", 500.0, 10.0, 1000.0, 100.0, params=7),
            row("dfn", "reference", 4000.0, 100.0, 20000.0, 700.0),
            row("dfn", "reference", 4400.0, 120.0, 22000.0, 750.0),
        ]

    def test_min_median_max(self):
        s = self.t.summarize(self.rows)
        self.assertEqual(list(s), ["dfn", "din"])
        rs, pt = s["dfn"]["recspec"], s["dfn"]["pytorch"]
        self.assertEqual(rs["runs"], 3)
        self.assertEqual((rs["train_min"], rs["train_median"]), (1000.0, 1100.0))
        self.assertEqual((rs["infer_min"], rs["infer_median"]), (280.0, 300.0))
        self.assertEqual((rs["loader_median"], rs["rss_max"], rs["params"]), (55000.0, 310.0, [100]))
        self.assertEqual((pt["train_min"], pt["train_median"], pt["infer_median"], pt["rss_max"]), (1800.0, 2000.0, 150.0, 820.0))
        # An even number of runs: the median is the mean of the middle two.
        two = self.t.summarize(self.rows[:4])["dfn"]["recspec"]
        self.assertEqual(two["train_median"], 1100.0)

    def test_ratios_are_taken_round_by_round(self):
        """The k-th run of each program is round k; a ratio is the median of the rounds' ratios,
        with their min and max, > 1 when recspec is faster."""
        s = self.t.summarize(self.rows)
        r = self.t.ratios(s["dfn"], "pytorch")
        self.assertEqual(r["rounds"], 3)
        expect = {
            "train": (1000 / 2000, 1200 / 1800, 1100 / 2200),
            "infer": (150 / 300, 160 / 280, 140 / 320),
            "loader": (50000 / 20000, 60000 / 25000, 55000 / 30000),
            "rss": (300 / 800, 310 / 820, 305 / 810),
        }
        for metric, rounds in expect.items():
            ordered = sorted(rounds)
            for got, want in zip(r[metric], (ordered[1], ordered[0], ordered[2])):
                self.assertAlmostEqual(got, want, msg=metric)
        # Two reference runs pair with recspec's first two rounds.
        r = self.t.ratios(s["dfn"], "reference")
        self.assertEqual(r["rounds"], 2)
        for got, want in zip(r["train"], ((0.25 + 1200 / 4400) / 2, 0.25, 1200 / 4400)):
            self.assertAlmostEqual(got, want)
        self.assertIsNone(self.t.ratios(s["din"], "pytorch"))
        self.assertIsNone(self.t.ratios(s["din"], "reference"))

    def test_render_and_param_check(self):
        text = self.t.render(self.t.summarize(self.rows))
        self.assertIn("| dfn | recspec | 3 | - | 1,000 / 1,100 | - | 280.0 / 300.0 | 55,000 | 310.0 | 100 |", text)
        self.assertIn("| dfn | PyTorch generated | 3 | - | 1,800 / 2,000 | - | 140.0 / 150.0 | 25,000 | 820.0 | 100 |", text)
        self.assertIn("| dfn | PyTorch reference | 2 | - | 4,000 / 4,200 | - | 100.0 / 110.0 | 21,000 | 750.0 | 100 |", text)
        self.assertIn(
            "| dfn | recspec / generated | 3 | | **0.50×** (0.50–0.67) | | **0.50×** (0.44–0.57) "
            "| **2.40×** (1.83–2.50) | **0.38×** (0.38–0.38) | |",
            text,
        )
        self.assertIn(
            "| dfn | recspec / reference | 2 | | **0.26×** (0.25–0.27) | | **0.38×** (0.33–0.43) "
            "| **2.61×** (2.50–2.73) | **0.42×** (0.41–0.43) | |",
            text,
        )
        # Program rows in the order recspec, generated, reference, then the ratio rows.
        dfn_rows = [line.split(" | ")[1] for line in text.splitlines() if line.startswith("| dfn |")]
        self.assertEqual(
            dfn_rows, ["recspec", "PyTorch generated", "PyTorch reference", "recspec / generated", "recspec / reference"]
        )
        self.assertNotIn("| din | recspec /", text)
        self.assertEqual(self.t.param_mismatches(self.t.summarize(self.rows)), [])
        bad = self.rows + [row("din", "pytorch", 1.0, 1.0, 1.0, 1.0, params=8)]
        self.assertEqual(self.t.param_mismatches(self.t.summarize(bad)), [("din", {"recspec": [7], "pytorch": [8]})])
        bad = self.rows + [row("dfn", "reference", 1.0, 1.0, 1.0, 1.0, params=101)]
        self.assertEqual(
            self.t.param_mismatches(self.t.summarize(bad)),
            [("dfn", {"recspec": [100], "pytorch": [100], "reference": [100, 101]})],
        )

    def test_compiled_programs_and_windows(self):
        rows = [dict(r, seconds=2.5) for r in self.rows[:2]] + [
            dict(row("dfn", "reference_compiled", 500.0, 200.0, 20000.0, 900.0), seconds=2.1)
        ]
        text = self.t.render(self.t.summarize(rows))
        self.assertIn("| dfn | PyTorch reference, compiled | 1 | 2.1 | 500 / 500 |", text)
        self.assertIn("| dfn | recspec / reference compiled | 1 | | **2.00×** (2.00–2.00) |", text)

    def test_gflops_use_recspecs_operation_count_for_every_program(self):
        """recspec reports 1e6 operations per example: 1,100 samples/s is 1.1 GFLOP/s, and the
        generated module's 2,000 samples/s of the same model 2.0."""
        rows = [dict(r, train_flops_per_example=1_000_000) if r["program"] == "recspec" else r for r in self.rows]
        text = self.t.render(self.t.summarize(rows))
        self.assertIn("| dfn | recspec | 3 | - | 1,000 / 1,100 | 1.10 |", text)
        self.assertIn("| dfn | PyTorch generated | 3 | - | 1,800 / 2,000 | 2.00 |", text)

    def test_main_exits_1_on_a_param_mismatch(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "results.jsonl")
            with open(path, "w") as fh:
                for r in self.rows + [row("din", "pytorch", 1.0, 1.0, 1.0, 1.0, params=8)]:
                    fh.write(json.dumps(r) + "\n")
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = self.t.main([path])
        self.assertEqual(status, 1)
        self.assertIn("| din | PyTorch generated | 1 |", out.getvalue())
        self.assertIn("error: din: the programs disagree on the parameter count", err.getvalue())


if __name__ == "__main__":
    unittest.main()
