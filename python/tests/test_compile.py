"""The generated module under `torch.compile` (`python -m recspec_torch.bench --compile` and
`python -m recspec_torch.train --compile`) trains exactly as the eager module: DUMN's
fixture (python/tests/fixtures/reference, written by bench/reference/fixtures.sh), whose memory
slots are buffers written back after each training pass, the case that failed under compile
until the pass read copies of them (`ops.read_state`); and DIN's through the trainer itself,
whose embedding tables are updated row-sparse from ids logged by hooks inside the compiled
forward."""

import os
import shutil
import sys
import tempfile
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from floats import assert_close  # noqa: E402
from recspec_torch import data as data_mod  # noqa: E402
from recspec_torch import train as train_mod  # noqa: E402
from recspec_torch.weights import load_safetensors  # noqa: E402
from recspec_torch.check import load_module  # noqa: E402
from recspec_torch.train import OPTIMIZER_EPS, Objective  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures", "reference")
STEPS = 3


def train(module, cls, batches, compiled):
    """Three Adam steps from seed 1, the module compiled or not: after each step, every
    parameter and buffer (cloned), by name."""
    torch.manual_seed(1)
    model = cls(seed=1)
    if compiled:
        model.compile()
    model.train()
    objective = Objective(model, {})
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01, eps=OPTIMIZER_EPS)
    states = []
    for step, batch in enumerate(batches):
        total, means = objective(batch.inputs, batch.labels, step)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        states.append({name: t.detach().clone() for name, t in list(model.named_parameters()) + list(model.named_buffers())})
    return states


_INDUCTOR_CACHE = {}


def setUpModule():
    # torch.compile's generated code goes to a folder removed after these tests, not to
    # /tmp/torchinductor_<user> (about 500 MB left behind otherwise): TORCHINDUCTOR_CACHE_DIR
    # for its caches, and tempfile's default folder for its precompiled headers, which inductor
    # places under tempfile.gettempdir() whatever the variable says.
    _INDUCTOR_CACHE["dir"] = tempfile.TemporaryDirectory(prefix="recspec-inductor-")
    _INDUCTOR_CACHE["before"] = (os.environ.get("TORCHINDUCTOR_CACHE_DIR"), tempfile.tempdir)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = _INDUCTOR_CACHE["dir"].name
    tempfile.tempdir = _INDUCTOR_CACHE["dir"].name


def tearDownModule():
    variable, tempdir = _INDUCTOR_CACHE["before"]
    if variable is None:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = variable
    tempfile.tempdir = tempdir
    _INDUCTOR_CACHE["dir"].cleanup()


class CompiledModuleTest(unittest.TestCase):
    def test_dumn_trains_the_same_steps_compiled(self):
        module, cls = load_module(os.path.join(FIXTURES, "dumn.py"))
        schema = data_mod.Schema.from_module(module)
        batches = list(data_mod.iterate(os.path.join(FIXTURES, "data", "train.jsonl"), schema, 16))[:STEPS]
        self.assertEqual(len(batches), STEPS)
        eager = train(module, cls, batches, compiled=False)
        compiled = train(module, cls, batches, compiled=True)
        buffers = [name for name, _ in cls(seed=1).named_buffers()]
        self.assertTrue(buffers, "DUMN keeps its memory slots in buffers")
        for step, (e, c) in enumerate(zip(eager, compiled)):
            self.assertEqual(sorted(e), sorted(c))
            for name in e:
                assert_close(self, c[name], e[name], atol=1e-5, rtol=1e-4, what=f"step {step + 1}: {name}")
        # The slots moved: the write-back ran in both.
        first = cls(seed=1)
        for name in buffers:
            self.assertFalse(torch.equal(eager[-1][name], dict(first.named_buffers())[name]), name)

    def test_the_trainer_compiled_takes_the_eager_steps(self):
        """`recspec_torch.train --compile` on DIN, 3 steps with the default lazy row optimizer:
        every weight as the eager run's, and the item table moved (its rows' updates ran)."""
        module, cls = load_module(os.path.join(FIXTURES, "din.py"))
        initial = cls(seed=1).recspec_state_dict()
        runs = {}
        for flags in ([], ["--compile"]):
            run_dir = tempfile.mkdtemp(prefix="recspec-compile-")
            self.addCleanup(shutil.rmtree, run_dir, True)
            shutil.copy(os.path.join(FIXTURES, "din.py"), os.path.join(run_dir, "model.py"))
            argv = [run_dir, "--data", os.path.join(FIXTURES, "data"), "--epochs", "1", "--max-steps", "3"]
            argv += ["--batch-size", "16", "--seed", "1", "--device", "cpu", *flags]
            torch._dynamo.utils.counters.clear()
            self.assertEqual(train_mod.main(argv), 0, flags)
            # Dynamo compiled frames in the compiled run only.
            self.assertEqual(bool(torch._dynamo.utils.counters["frames"]["ok"]), bool(flags), flags)
            runs[bool(flags)] = load_safetensors(os.path.join(run_dir, "model.safetensors"))
        eager, compiled = runs[False], runs[True]
        self.assertEqual(sorted(eager), sorted(compiled))
        for name in eager:
            assert_close(self, compiled[name], eager[name], atol=1e-6, rtol=1e-5, what=name)
        self.assertFalse(torch.equal(compiled["items/table"], initial["items/table"]), "the item table moved")

    def test_compile_refuses_table_sharding(self):
        run_dir = tempfile.mkdtemp(prefix="recspec-compile-")
        self.addCleanup(shutil.rmtree, run_dir, True)
        shutil.copy(os.path.join(FIXTURES, "din.py"), os.path.join(run_dir, "model.py"))
        argv = [run_dir, "--data", os.path.join(FIXTURES, "data"), "--compile", "--table-sharding", "table_wise"]
        self.assertEqual(train_mod.main(argv), 2)


if __name__ == "__main__":
    unittest.main()
