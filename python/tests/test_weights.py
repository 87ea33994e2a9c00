"""recspec_torch.weights: safetensors files keyed by recspec parameter keys."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

from recspec_torch.weights import load_safetensors, save_safetensors  # noqa: E402


class WeightsTest(unittest.TestCase):
    def test_round_trip_keeps_keys_shapes_and_values(self):
        tensors = {
            "f_c/attended/query.weight": torch.randn(4, 3),
            "memory/slots": torch.randn(5, 2).t(),  # non-contiguous views are saved too
            "wide/bias": torch.randn(7, requires_grad=True),
        }
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "weights.safetensors")
            save_safetensors(tensors, path)
            back = load_safetensors(path)
        self.assertEqual(sorted(back), sorted(tensors))
        for key, value in tensors.items():
            self.assertTrue(torch.equal(back[key], value.detach()), key)


if __name__ == "__main__":
    unittest.main()
