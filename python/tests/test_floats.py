"""`floats.assert_close`, the tests' one float comparison, fails on NaN and infinity in either
argument and on a difference past its tolerance, and passes within it."""

import math
import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.dirname(__file__))

from floats import assert_close  # noqa: E402


class AssertClose(unittest.TestCase):
    def test_passes_within_the_tolerance(self):
        assert_close(self, torch.tensor([1.0, 2.0]), [1.0 + 1e-7, 2.0], 1e-6, 0.0)
        assert_close(self, [100.0], [100.05], 0.0, 1e-3)

    def test_fails_past_the_tolerance_and_on_shape(self):
        for actual, expected in (([1.0, 2.0], [1.0, 2.1]), ([1.0], [1.0, 1.0])):
            with self.assertRaises(AssertionError):
                assert_close(self, actual, expected, 1e-6, 1e-6)

    def test_fails_on_nan_and_infinity_in_either_argument(self):
        for bad in (math.nan, math.inf, -math.inf):
            for actual, expected in (([bad, 1.0], [0.0, 1.0]), ([0.0, 1.0], [bad, 1.0]), ([bad], [bad])):
                with self.subTest(bad=bad, actual=actual, expected=expected):
                    with self.assertRaises(AssertionError):
                        assert_close(self, torch.tensor(actual), torch.tensor(expected), 1e30, 1e30)


if __name__ == "__main__":
    unittest.main()
