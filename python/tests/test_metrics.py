"""Metrics against hand-computed values and the cases of src/metrics.rs's tests."""

import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from recspec_torch.metrics import auc, gauc, logloss, stream_metrics  # noqa: E402


class AucTest(unittest.TestCase):
    def test_perfect_reversed_tied_and_one_inversion(self):
        self.assertEqual(auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]), 1.0)
        self.assertEqual(auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]), 0.0)
        self.assertEqual(auc([0.5] * 4, [0, 1, 0, 1]), 0.5)
        # One inversion out of four pairs.
        self.assertEqual(auc([0.1, 0.6, 0.5, 0.9], [0, 0, 1, 1]), 0.75)

    def test_ties_get_half_credit(self):
        # Positives 0.5 and 0.9; negatives 0.5 and 0.1. Pairs: (0.5+, 0.5-) tie = 1/2,
        # (0.5+, 0.1-) = 1, (0.9+, 0.5-) = 1, (0.9+, 0.1-) = 1 → 3.5 / 4.
        self.assertEqual(auc([0.5, 0.9, 0.5, 0.1], [1, 1, 0, 0]), 0.875)
        # Rank-sum view: sorted 0.1(-) 0.5(+) 0.5(-) 0.9(+): ranks 1, 2.5, 2.5, 4; positives 6.5;
        # (6.5 - 3) / 4 = 0.875.

    def test_one_class_is_none(self):
        self.assertIsNone(auc([0.1, 0.2], [1, 1]))
        self.assertIsNone(auc([0.1, 0.2], [0, 0]))
        self.assertIsNone(auc([], []))

    def test_scores_compare_as_float32(self):
        # 0.1 and 0.1 + 1e-9 are one float32: a tie, as in Rust.
        self.assertEqual(auc([0.1 + 1e-9, 0.1], [1, 0]), 0.5)


class GaucTest(unittest.TestCase):
    def test_users_weighted_by_examples_and_one_class_users_skipped(self):
        scores = [0.9, 0.1, 0.2, 0.8, 0.7, 0.3]
        labels = [1, 0, 1, 0, 1, 1]
        users = [1, 1, 2, 2, 3, 3]
        g, n = gauc(scores, labels, users)
        self.assertEqual(n, 2)
        self.assertAlmostEqual(g, 0.5, places=12)

    def test_weights_are_example_counts(self):
        # User 7: 3 rows, AUC 1 (0.9+ over 0.2-, 0.3-). User 5: 2 rows, AUC 0.
        scores = [0.9, 0.2, 0.3, 0.1, 0.6]
        labels = [1, 0, 0, 1, 0]
        users = [7, 7, 7, 5, 5]
        g, n = gauc(scores, labels, users)
        self.assertEqual(n, 2)
        self.assertEqual(g, (0.0 * 2 + 1.0 * 3) / 5)

    def test_no_user_with_both_classes(self):
        self.assertIsNone(gauc([0.1, 0.2], [1, 0], [1, 2]))


class LoglossTest(unittest.TestCase):
    def test_values_and_clamp(self):
        self.assertAlmostEqual(logloss([0.5, 0.5], [1, 0]), math.log(2), places=12)
        # p = 0.8 (float32) for a positive, 0.25 for a negative.
        p = float.fromhex("0x1.99999ap-1")  # float32(0.8)
        want = (-math.log(p) - math.log(1.0 - 0.25)) / 2
        self.assertEqual(logloss([0.8, 0.25], [1, 0]), want)
        # Clamped to [1e-7, 1 - 1e-7]: p = 0 for a positive costs -ln(1e-7).
        self.assertEqual(logloss([0.0], [1]), -math.log(1e-7))
        self.assertEqual(logloss([1.0], [0]), -math.log(1.0 - (1.0 - 1e-7)))
        self.assertIsNone(logloss([], []))

    def test_stream_metrics(self):
        m = stream_metrics([0.9, 0.1, 0.2, 0.8], [1, 0, 1, 0], [1, 1, 2, 2], scored_by="probability")
        self.assertEqual((m["examples"], m["positives"], m["gauc_users"]), (4, 2, 2))
        self.assertEqual(m["auc"], 0.75)  # 3 of 4 pairs ordered
        self.assertAlmostEqual(m["gauc"], 0.5)
        self.assertEqual(m["scored_by"], "probability")


if __name__ == "__main__":
    unittest.main()
