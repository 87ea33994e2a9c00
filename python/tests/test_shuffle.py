"""The training order's shuffle buffer (`data.shuffled`, `iterate(..., shuffle_buffer, seed)`)
against a plain reimplementation of recspec's algorithm (src/data/loader.rs `Shuffle`) and
fixed orders: the buffer is filled with the first K rows; then each row out is `buffer[j]` for
`j = below(len(buffer))` drawn before the next row is read, replaced by that row, or
swap-removed once the rows are done."""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from recspec_torch import data  # noqa: E402
from recspec_torch.data import DataError, Schema, iterate, shuffle_seed, shuffled  # noqa: E402
from recspec_torch.rng import SplitMix  # noqa: E402

INPUTS = {"x": ("float", "feature", (None,), None)}
LABELS = ["click"]


def schema():
    return Schema.from_inputs(INPUTS, LABELS)


def reference_order(stream, k, seed):
    """recspec's shuffle buffer, written out plainly: the items of `stream` in emission order."""
    rng, rest, out = SplitMix(seed), list(stream), []
    buffer, rest = rest[:k], rest[k:]
    while buffer:
        j = rng.next_u64() % len(buffer)  # the draw comes first,
        out.append(buffer[j])
        if rest:  # then the read: the next row takes the emitted row's place,
            buffer[j] = rest.pop(0)
        else:  # or, with none left, the last row does (Vec::swap_remove).
            buffer[j] = buffer[-1]
            buffer.pop()
    return out


def row(i, x=None):
    return json.dumps({"user": i, "x": i * 0.5 if x is None else x, "labels": {"click": i % 2}})


class ShuffleTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, lines):
        path = os.path.join(self.dir.name, "train.jsonl")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        return path

    def rows_file(self, n):
        """`n` rows (`user` = the row's index) with blank lines among them; returns
        (path, {index: line number})."""
        lines, line_of = [], {}
        for i in range(n):
            if i % 4 == 1:
                lines.append("   " if i % 8 == 1 else "")
            lines.append(row(i))
            line_of[i] = len(lines)
        return self.write(lines), line_of

    def emitted(self, path, k, seed, batch=3, rank=0, world=1):
        """(indices, lines, users) in emission order, and the batch sizes."""
        indices, lines, users, sizes = [], [], [], []
        for b in iterate(path, schema(), batch, rank, world, shuffle_buffer=k, seed=seed):
            indices.extend(b.indices)
            lines.extend(b.lines)
            users.extend(b.users)
            sizes.append(len(b.users))
            self.assertEqual(b.inputs["x"].tolist(), [u * 0.5 for u in b.users])
        return indices, lines, users, sizes

    def test_shuffle_seed(self):
        self.assertEqual(shuffle_seed(0, 1, 0), 0xD1B54A32D192ED03)
        self.assertEqual(shuffle_seed(0, 0, 1), 0x8CB92BA72F3D8DD7)
        self.assertEqual(shuffle_seed(7, 1, 0), 15111065706836454660)
        self.assertEqual(shuffle_seed(7, 2, 0), 11775387339963357697)  # 2 * 0xD1B5... wraps
        self.assertEqual(shuffle_seed(5, 3, 2), 7813052481491164322)
        self.assertEqual(shuffle_seed((1 << 64) - 1, 1 << 64, 0), (1 << 64) - 1)
        self.assertEqual(shuffle_seed(5, 3), shuffle_seed(5, 3, 0))

    def test_zero_is_file_order(self):
        path, line_of = self.rows_file(13)
        for seed in (0, 7, shuffle_seed(7, 1, 0)):
            indices, lines, users, sizes = self.emitted(path, 0, seed)
            self.assertEqual(indices, list(range(13)))
            self.assertEqual(lines, [line_of[i] for i in range(13)])
            self.assertEqual(users, indices)
            self.assertEqual(sizes, [3, 3, 3, 3, 1])
        plain = [i for b in iterate(path, schema(), 3) for i in b.indices]
        self.assertEqual(plain, list(range(13)))
        self.assertEqual(list(shuffled(iter("abc"), 0, 5)), ["a", "b", "c"])
        for rank in range(2):
            indices, _, _, _ = self.emitted(path, 0, 3, rank=rank, world=2)
            self.assertEqual(indices, list(range(rank, 13, 2)))

    def test_every_row_once_per_epoch(self):
        """K below, at and above the row count; each rank of two gets exactly its shard."""
        path, line_of = self.rows_file(13)
        for k in (1, 2, 4, 12, 13, 14, 10000):
            for epoch in (1, 2):
                with self.subTest(k=k, epoch=epoch):
                    indices, lines, users, sizes = self.emitted(path, k, shuffle_seed(7, epoch, 0))
                    self.assertEqual(sorted(indices), list(range(13)))
                    self.assertEqual(users, indices)  # each row's own data...
                    self.assertEqual(lines, [line_of[i] for i in indices])  # ...and its own line
                    self.assertEqual(sizes, [3, 3, 3, 3, 1])
                    for rank in range(2):
                        got, lines, users, _ = self.emitted(path, k, shuffle_seed(7, epoch, rank), 2, rank, 2)
                        self.assertEqual(sorted(got), list(range(rank, 13, 2)))
                        self.assertEqual(users, got)
                        self.assertEqual(lines, [line_of[i] for i in got])

    def test_same_seed_same_order_other_epochs_differ(self):
        path, _ = self.rows_file(40)
        orders = {}
        for epoch in (1, 2, 3):
            for rank in (0,):
                seed = shuffle_seed(11, epoch, rank)
                first = self.emitted(path, 8, seed, batch=7)[0]
                self.assertEqual(self.emitted(path, 8, seed, batch=5)[0], first)  # batching does not matter
                orders[epoch] = first
        self.assertEqual(len({tuple(o) for o in orders.values()}), 3)
        self.assertNotEqual(orders[1], list(range(40)))
        self.assertNotEqual(self.emitted(path, 8, shuffle_seed(12, 1, 0))[0], orders[1])  # another run seed
        rank0 = self.emitted(path, 8, shuffle_seed(11, 1, 0), rank=0, world=2)[0]
        rank1 = self.emitted(path, 8, shuffle_seed(11, 1, 1), rank=1, world=2)[0]
        self.assertEqual(rank0, reference_order(range(0, 40, 2), 8, shuffle_seed(11, 1, 0)))
        self.assertEqual(rank1, reference_order(range(1, 40, 2), 8, shuffle_seed(11, 1, 1)))

    def test_exact_order_of_a_small_case(self):
        """13 rows, K = 4, run seed 7: fixed orders, and those of the plain reimplementation."""
        path, _ = self.rows_file(13)
        expected = {
            (1, 0, 1): [3, 2, 4, 5, 1, 6, 7, 9, 10, 0, 8, 12, 11],
            (2, 0, 1): [2, 4, 3, 0, 7, 6, 9, 1, 11, 5, 10, 8, 12],
            (1, 0, 2): [6, 4, 8, 10, 2, 12, 0],
            (1, 1, 2): [3, 5, 1, 11, 9, 7],
        }
        for (epoch, rank, world), order in expected.items():
            with self.subTest(epoch=epoch, rank=rank, world=world):
                seed = shuffle_seed(7, epoch, rank)
                self.assertEqual(reference_order(range(rank, 13, world), 4, seed), order)
                self.assertEqual(self.emitted(path, 4, seed, 3, rank, world)[0], order)
                self.assertEqual(list(shuffled(range(rank, 13, world), 4, seed)), order)
        for k in (1, 3, 5, 12, 13, 14, 50):
            for epoch in (1, 2, 3):
                for rank, world in ((0, 1), (0, 2), (1, 2), (2, 3)):
                    with self.subTest(k=k, epoch=epoch, rank=rank, world=world):
                        seed = shuffle_seed(7, epoch, rank)
                        self.assertEqual(
                            self.emitted(path, k, seed, 4, rank, world)[0],
                            reference_order(range(rank, 13, world), k, seed),
                        )

    def test_a_bad_row_fails_when_it_leaves_the_buffer(self):
        """Row 6 (line 9) is bad: the rows emitted before it come out, then its own line fails."""
        for bad in (row(6, x="oops"), "not json", '{"user": 6'):
            with self.subTest(bad=bad):
                lines = [row(i) if i != 6 else bad for i in range(12)]
                lines.insert(1, "")
                lines.insert(3, "  ")
                path = self.write(lines)
                line_of = {i: i + 1 + (i >= 1) + (i >= 2) for i in range(12)}
                self.assertEqual(lines[line_of[6] - 1], bad)
                seed = shuffle_seed(3, 1, 0)
                order = reference_order(range(12), 5, seed)
                self.assertGreater(order.index(6), 0)
                got = []
                with self.assertRaises(DataError) as cm:
                    for b in iterate(path, schema(), 1, shuffle_buffer=5, seed=seed):
                        got.extend(zip(b.indices, b.lines))
                self.assertEqual(got, [(i, line_of[i]) for i in order[: order.index(6)]])
                self.assertEqual(cm.exception.row, 9, str(cm.exception))
                self.assertTrue(str(cm.exception).startswith(f"{path}:9: "), str(cm.exception))
                # Rows of another shard are never parsed, shuffled or not.
                odd = [i for b in iterate(path, schema(), 2, 1, 2, shuffle_buffer=5, seed=seed) for i in b.indices]
                self.assertEqual(sorted(odd), list(range(1, 12, 2)))

    def test_bad_arguments(self):
        path, _ = self.rows_file(3)
        for k in (-1, 1.5, True, "4"):
            with self.subTest(k=k), self.assertRaises(ValueError):
                list(iterate(path, schema(), 2, shuffle_buffer=k, seed=1))
        with self.assertRaises(DataError):
            list(iterate(path, schema(), 0, shuffle_buffer=4))
        self.assertEqual(sorted(self.emitted(path, (1 << 64) - 1, 9)[0]), [0, 1, 2])

    def test_snippet_for_the_rust_comparison(self):
        """The snippet the Rust integration test runs: row indices in emission order."""
        path, _ = self.rows_file(13)
        seed = shuffle_seed(7, 1, 0)
        got = json.loads(json.dumps([
            i for b in iterate(path, Schema.from_inputs({}, []), 1 << 20, shuffle_buffer=4, seed=seed)
            for i in b.indices
        ]))
        self.assertEqual(got, [3, 2, 4, 5, 1, 6, 7, 9, 10, 0, 8, 12, 11])
        self.assertEqual(data.count_rows(path), 13)


if __name__ == "__main__":
    unittest.main()
