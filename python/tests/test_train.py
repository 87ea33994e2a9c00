"""The training entry point on a hand-written module that follows the generated contract (INPUTS,
LABELS, SCORES, PARAMS, forward → (outputs, losses, scores)) and a tiny data set: one process,
then two under torchrun (disjoint shards covering every row, checkpoint from rank 0)."""

import contextlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, PYTHON_DIR)

import torch  # noqa: E402

from recspec_torch import train  # noqa: E402
from recspec_torch.data import shuffle_seed, shuffled  # noqa: E402
from recspec_torch.check import load_module  # noqa: E402
from recspec_torch.weights import load_safetensors  # noqa: E402

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")

MODEL_PY = '''"""A tiny model written like a generated one."""

import torch
from torch import nn

from recspec_torch import ops
from recspec_torch.rng import init_values, pass_rng

MODEL = "tiny"

PARAMS = {
    "items/table": ("items_table", (20, 4), False, ("normal", 0.1)),
    "head/weight": ("head_weight", (9, 1), False, ("uniform", 0.3)),
    "head/bias": ("head_bias", (1,), False, ("constant", 0.0)),
    "aux/weight": ("aux_weight", (4, 2), False, ("normal", 0.1)),
    "mem/slots": ("mem_slots", (4,), True, ("constant", 0.0)),
}

ROW_TABLES = ("items/table", )

INPUTS = {
    "item": ("id", "feature", (None,), 20),
    "clicks": ("id", "sequence", (None, 3), 20),
    "clicks.mask": ("mask", "mask", (None, 3), None),
    "clicks.dwell": ("float", "side", (None, 3), None),
    "w": ("float", "weight", (None,), None),
}

LABELS = ["click"]

OUTPUTS = ["p", "aux"]

SCORES = {
    "click": "probability",
}

LOSSES = {
    "click": 1.0,
    "reg": 0.5,
}


class Tiny(nn.Module):
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
        item = ops.embedding(inputs["item"], self.items_table)
        hist = ops.pool(ops.embedding(inputs["clicks"], self.items_table), inputs["clicks.mask"], "mean", False)
        dwell = ops.pool(inputs["clicks.dwell"].unsqueeze(2), inputs["clicks.mask"], "sum", False)
        x = ops.concat([item, hist, dwell], -1)
        p = ops.activation(ops.linear(x, self.head_weight, self.head_bias), "sigmoid")
        aux = ops.linear(hist, self.aux_weight, None)
        new_slots = self.mem_slots * 0.9 + hist.detach().mean(0) * 0.1
        if train:
            with torch.no_grad():
                self.mem_slots.copy_(new_slots)
        losses = {}
        if labels is not None:
            click = ops.probability_loss(p, labels["click"], inputs["w"], False)
            reg = dwell.reshape(-1) * 0.0
            losses = {"click": (1.0, click.mean()), "reg": (0.5, reg.mean())}
        return {"p": p, "aux": aux}, losses, {"click": p.reshape(-1)}
'''


def make_rows(n, seed, bad_line=None):
    """Rows whose click follows the item (items < 10 clicked), 5 users."""
    r = random.Random(seed)
    rows = []
    for i in range(n):
        item = r.randrange(20)
        hist = [r.randrange(20) for _ in range(r.randrange(4))]
        click = 1 if (item < 10) != (r.random() < 0.1) else 0
        rows.append(json.dumps({
            "user": i % 5, "item": item, "clicks": hist,
            "clicks.dwell": [round(r.random(), 3) for _ in hist],
            "labels": {"click": click}, "weights": {"w": 1.0},
        }))
    if bad_line is not None:
        rows[bad_line - 1] = rows[bad_line - 1].replace('"item": ', '"item": 99, "x": ')
    return "\n".join(rows) + "\n"


class TrainTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.run_dir = os.path.join(self.tmp.name, "run")
        self.data_dir = os.path.join(self.tmp.name, "data")
        os.makedirs(self.run_dir)
        os.makedirs(self.data_dir)
        self.write("run/model.py", MODEL_PY)
        self.write("data/train.jsonl", make_rows(41, 1))
        self.write("data/valid.jsonl", make_rows(30, 2))

    def tearDown(self):
        self.tmp.cleanup()

    def read_json(self, name):
        with open(os.path.join(self.run_dir, name)) as fh:
            return json.load(fh)

    def read_lines(self, name):
        with open(os.path.join(self.run_dir, name)) as fh:
            return [json.loads(line) for line in fh]

    def write(self, rel, text):
        with open(os.path.join(self.tmp.name, rel), "w") as fh:
            fh.write(text)

    def main(self, *flags):
        """Runs train.main single-process; returns (status, stderr)."""
        err = io.StringIO()
        env = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE") if k in os.environ}
        try:
            with contextlib.redirect_stderr(err):
                status = train.main([self.run_dir, "--data", self.data_dir, "--device", "cpu", *flags])
        finally:
            os.environ.update(env)
        return status, err.getvalue()

    def test_single_process_learns_and_writes_a_loadable_checkpoint(self):
        self.write("run/run.toml", "[hparams]\nD = 4\n\n[train]\noptimizer = \"adam\"\nlr = 0.05\nbatch_size = 8\n"
                   "epochs = 9\nseed = 3\n\n[loss_weights]\nclick = 1.0\nreg = 0.5\n")
        status, err = self.main("--epochs", "4")
        self.assertEqual(status, 0, err)
        lines = self.read_lines("torch_metrics.jsonl")
        self.assertEqual([l["epoch"] for l in lines], [1, 2, 3, 4])
        self.assertEqual([l["steps"] for l in lines], [6, 12, 18, 24])  # ceil(41 / 8) per epoch
        self.assertEqual(lines[0]["world_size"], 1)
        self.assertLess(lines[-1]["train_loss"], lines[0]["train_loss"] - 0.05, err)
        click = lines[-1]["valid"]["streams"]["click"]
        self.assertEqual((click["examples"], click["scored_by"]), (30, "probability"))
        self.assertGreater(click["auc"], 0.7, err)
        self.assertIn("epoch 1: train loss ", err)
        self.assertIn("valid click AUC ", err)
        self.assertRegex(err, r"done: 4 epochs, 24 steps, loss [0-9.]+ -> [0-9.]+, \d+ samples/s")
        module, cls = load_module(os.path.join(self.run_dir, "model.py"))
        weights = load_safetensors(os.path.join(self.run_dir, "model.safetensors"))
        self.assertEqual(set(weights), set(module.PARAMS))
        model = cls()
        model.load_recspec_state_dict(weights)
        self.assertFalse(torch.equal(weights["head/weight"], cls(seed=3).head_weight.detach()))
        self.assertGreater(float(weights["mem/slots"].abs().sum()), 0.0)  # the memory buffer was written
        rows = self.read_json("rows.rank0.json")
        self.assertEqual(rows, list(range(41)))

    def test_max_steps_and_flags_override_run_toml(self):
        self.write("run/run.toml", "[train]\noptimizer = \"adagrad\"\nbatch_size = 4\nepochs = 5\nshuffle_buffer = 0\n")
        status, err = self.main("--epochs", "1", "--max-steps", "2", "--batch-size", "5", "--lr", "0.01")
        self.assertEqual(status, 0, err)
        self.assertIn("adagrad, lr 0.01, batch 5, 1 epoch, seed 1, at most 2 steps per epoch, file order;", err)
        self.assertEqual(self.read_json("rows.rank0.json"), list(range(10)))  # file order: a prefix
        status, err = self.main("--epochs", "1", "--max-steps", "2", "--batch-size", "5", "--shuffle-buffer", "16")
        self.assertEqual(status, 0, err)
        self.assertIn("adagrad, lr 0.001, batch 5, 1 epoch, seed 1, at most 2 steps per epoch;", err)
        expected = sorted(list(shuffled(range(41), 16, shuffle_seed(1, 1, 0)))[:10])
        self.assertNotEqual(expected, list(range(10)))
        self.assertEqual(self.read_json("rows.rank0.json"), expected)

    def test_rows_trained_on_under_a_shuffle_and_max_steps(self):
        """Each epoch steps on its first 2 batches of 4 of its own order: the rows file holds the
        union over the epochs, sorted, not a prefix of the file."""
        self.write("run/run.toml", "[train]\nseed = 9\nshuffle_buffer = 6\nepochs = 3\n")
        status, err = self.main("--max-steps", "2", "--batch-size", "4")
        self.assertEqual(status, 0, err)
        self.assertIn("adam, lr 0.001, batch 4, 3 epochs, seed 9, at most 2 steps per epoch;", err)
        orders = [list(shuffled(range(41), 6, shuffle_seed(9, epoch, 0))) for epoch in (1, 2, 3)]
        self.assertEqual(len({tuple(o[:8]) for o in orders}), 3)
        expected = sorted(set().union(*(o[:8] for o in orders)))
        self.assertGreater(len(expected), 8)
        self.assertEqual(self.read_json("rows.rank0.json"), expected)

    def test_shuffle_buffer_setting(self):
        """`[train] shuffle_buffer` and `--shuffle-buffer`: a non-negative integer, 10000 by
        default, `, file order` in the settings line when 0."""
        settings, _ = train.parse_run_config("run.toml", "[train]\nshuffle_buffer = 0\n")
        self.assertEqual(settings, {"shuffle_buffer": 0})
        settings, _ = train.parse_run_config("run.toml", "[train]\nseed = 3\nshuffle_buffer = 123\n")
        self.assertEqual(settings["shuffle_buffer"], 123)
        bad = [
            ("-1", "run.toml:2: [train] shuffle_buffer must be a non-negative integer, found -1"),
            ("1.5", "run.toml:2: [train] shuffle_buffer must be a non-negative integer, found float"),
            ('"big"', "run.toml:2: [train] shuffle_buffer must be a non-negative integer, found string"),
            ("true", "run.toml:2: [train] shuffle_buffer must be a non-negative integer, found boolean"),
        ]
        for value, message in bad:
            with self.subTest(value=value), self.assertRaises(train.UserError) as cm:
                train.parse_run_config("run.toml", f"[train]\nshuffle_buffer = {value}\n")
            self.assertEqual(str(cm.exception), message)
        with self.assertRaises(train.UserError) as cm:
            train.parse_run_config("run.toml", "[train]\nshuffle = 1\n")
        self.assertIn("`embedding_optimizer`, `shuffle_buffer`", str(cm.exception))

        args = train.parse_args(["run", "--data", "d"])
        self.assertEqual(train.merge_settings({}, args)["shuffle_buffer"], 10000)
        self.assertEqual(train.merge_settings({"shuffle_buffer": 7}, args)["shuffle_buffer"], 7)
        args = train.parse_args(["run", "--data", "d", "--shuffle-buffer", "0"])
        self.assertEqual(train.merge_settings({"shuffle_buffer": 7}, args)["shuffle_buffer"], 0)
        with self.assertRaises(train.UserError) as cm:
            train.merge_settings({}, train.parse_args(["run", "--data", "d", "--shuffle-buffer", "-1"]))
        self.assertEqual(str(cm.exception), "--shuffle-buffer must be a non-negative integer, found -1")

        s = dict(train.DEFAULTS, lr=0.005, epochs=3)
        self.assertEqual(train.describe_settings(s), "adam, lr 0.005, batch 256, 3 epochs, seed 1")
        s.update(shuffle_buffer=0)
        self.assertEqual(train.describe_settings(s), "adam, lr 0.005, batch 256, 3 epochs, seed 1, file order")
        s.update(max_steps=4, embedding_optimizer="dense")
        self.assertEqual(
            train.describe_settings(s),
            "adam, lr 0.005, batch 256, 3 epochs, seed 1, at most 4 steps per epoch, file order, dense embedding updates",
        )
        s.update(shuffle_buffer=1)
        self.assertNotIn("file order", train.describe_settings(s))

    def test_user_errors_are_one_line(self):
        cases = [
            ("run/run.toml", "[train]\noptimizer = \"sgd\"\n", 'run.toml: [train] optimizer must be "adam" or "adagrad", found "sgd"'),
            ("run/run.toml", "[train]\nlearning_rate = 0.1\n", "run.toml:2: unknown field `learning_rate`"),
            ("run/run.toml", "[trian]\nx = 1\n", "run.toml:1: unknown field `trian`"),
            ("run/run.toml", "[train\n", "run.toml:1: "),
            ("run/run.toml", "[train]\nepochs = 0\n", "run.toml: [train] epochs must be at least 1"),
            ("run/run.toml", "[loss_weights]\nclik = 2.0\n", "[loss_weights] names `clik`, but the model's losses are click, reg"),
            ("run/run.toml", "[loss_weights]\nclick = -1\n", "[loss_weights] click must be a non-negative number, found -1"),
            ("data/train.jsonl", make_rows(41, 1, bad_line=7), "train.jsonl:7: `item`: id 99 is out of vocabulary"),
        ]
        for rel, text, fragment in cases:
            with self.subTest(fragment=fragment):
                self.tearDown()
                self.setUp()
                self.write(rel, text)
                status, err = self.main("--epochs", "1")
                self.assertEqual(status, 2, err)
                self.assertIn(fragment, err)
                self.assertTrue(err.startswith("error: ") or "\nerror: " in err, err)
                self.assertNotIn("Traceback", err)
        self.tearDown()
        self.setUp()
        os.remove(os.path.join(self.data_dir, "valid.jsonl"))
        status, err = self.main()
        self.assertIn("valid.jsonl not found", err)
        status, err = self.main("--lr", "0")
        self.assertIn("--lr must be a positive number, found 0", err)
        os.remove(os.path.join(self.run_dir, "model.py"))
        status, err = self.main()
        self.assertEqual(status, 2)
        self.assertIn("model.py not found", err)

    def test_a_non_finite_loss_stops_naming_the_term(self):
        rows = make_rows(41, 1).splitlines()
        row = json.loads(rows[20])
        row["clicks"], row["clicks.dwell"] = [1, 2], [3e38, 3e38]  # float32 sum overflows: reg = inf * 0
        rows[20] = json.dumps(row)
        self.write("data/train.jsonl", "\n".join(rows) + "\n")
        status, err = self.main("--batch-size", "8", "--shuffle-buffer", "0")
        self.assertEqual(status, 2, err)
        self.assertIn("loss term `reg` became NaN at epoch 1, step 3 (batch of rows ending at ", err)
        self.assertIn("train.jsonl:24)", err)
        # Shuffled (the default), the step and the batch's last line follow the epoch's order.
        order = list(shuffled(range(41), 10000, shuffle_seed(1, 1, 0)))
        step = order.index(20) // 8
        last = order[min(step * 8 + 7, 40)]
        status, err = self.main("--batch-size", "8")
        self.assertEqual(status, 2, err)
        self.assertIn(f"loss term `reg` became NaN at epoch 1, step {step + 1} (batch of rows ending at ", err)
        self.assertIn(f"train.jsonl:{last + 1})", err)

    def torchrun(self, *flags):
        # TMPDIR: torchrun's own scratch folders (torchelastic_*) go with the test's.
        env = dict(os.environ, PYTHONPATH=PYTHON_DIR, OMP_NUM_THREADS="1", TMPDIR=self.tmp.name)
        for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(k, None)
        cmd = [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "recspec_torch.train", self.run_dir,
               "--data", self.data_dir, "--device", "cpu", *flags]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

    def test_two_processes_under_torchrun(self):
        """41 rows, batch 10: rank 0 has 21 rows (3 batches), rank 1 has 20 (2 batches and a
        zero-gradient step); the shards are disjoint and cover every row."""
        p = self.torchrun("--epochs", "2", "--batch-size", "10", "--lr", "0.05")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        rows = [set(self.read_json(f"rows.rank{r}.json")) for r in range(2)]
        self.assertEqual(rows[0] & rows[1], set())
        self.assertEqual(rows[0] | rows[1], set(range(41)))
        self.assertEqual(rows[0], set(range(0, 41, 2)))
        lines = self.read_lines("torch_metrics.jsonl")
        self.assertEqual([(l["epoch"], l["steps"], l["world_size"]) for l in lines], [(1, 3, 2), (2, 6, 2)])
        self.assertEqual(lines[-1]["valid"]["streams"]["click"]["examples"], 30)  # gathered from both ranks
        self.assertEqual(p.stderr.count("done: 2 epochs, 6 steps"), 1, p.stderr)  # rank 0 only
        _, cls = load_module(os.path.join(self.run_dir, "model.py"))
        cls().load_recspec_state_dict(load_safetensors(os.path.join(self.run_dir, "model.safetensors")))


    def test_two_processes_shuffle_their_own_shards(self):
        """Each rank shuffles its shard with its own seed; with max_steps its rows file holds the
        rows of the batches it stepped on."""
        p = self.torchrun("--epochs", "2", "--batch-size", "4", "--max-steps", "2", "--shuffle-buffer", "5",
                          "--seed", "9")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for rank in range(2):
            expected = set()
            for epoch in (1, 2):
                expected.update(list(shuffled(range(rank, 41, 2), 5, shuffle_seed(9, epoch, rank)))[:8])
            self.assertEqual(self.read_json(f"rows.rank{rank}.json"), sorted(expected))

    def test_a_bad_row_in_one_shard_stops_every_rank(self):
        """Line 8 is row 7, rank 1's: it names the row, rank 0 stops too, nobody hangs."""
        self.write("data/train.jsonl", make_rows(41, 1, bad_line=8))
        p = self.torchrun("--epochs", "1", "--batch-size", "10")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("train.jsonl:8: `item`: id 99 is out of vocabulary", p.stderr)
        self.assertIn("error: rank 0 stopped: another rank failed", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.run_dir, "model.safetensors")))


if __name__ == "__main__":
    unittest.main()
