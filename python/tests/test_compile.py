"""The generated module under `torch.compile` (`python -m recspec_torch.bench --compile`, and what a
user of the generated PyTorch path turns on next) trains exactly as the eager module: DUMN's
fixture (python/tests/fixtures/reference, written by bench/reference/fixtures.sh), whose memory
slots are buffers written back after each training pass, the case that failed under compile
until the pass read copies of them (`ops.read_state`)."""

import os
import sys
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from floats import assert_close  # noqa: E402
from recspec_torch import data as data_mod  # noqa: E402
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


if __name__ == "__main__":
    unittest.main()
