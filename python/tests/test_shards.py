"""Splits that are folders of shards (`data.shards`, `data.SplitPlan`, `iterate` over a
folder): which files are shards, which rank reads which rows, and that the ranks' rows are
disjoint and cover the split for any number of shards and ranks."""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from recspec_torch.data import DataError, Schema, SplitPlan, count_rows, iterate, shards  # noqa: E402

INPUTS = {"x": ("float", "feature", (None,), None)}


def row(i):
    return json.dumps({"user": i, "x": float(i), "labels": {"click": i % 2}}) + "\n"


class Shards(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def folder(self, sizes, name="train"):
        """A folder of shards `part-K.jsonl` holding `sizes[K]` rows, users numbered across them
        in name order (with a blank line in each non-empty shard, which is not a row)."""
        path = os.path.join(self.dir, name)
        os.makedirs(path)
        user = 0
        for k, size in enumerate(sizes):
            with open(os.path.join(path, f"part-{k:05}.jsonl"), "w") as fh:
                for i in range(size):
                    fh.write(row(user) + ("\n" if i == 0 else ""))
                    user += 1
        return path

    def read(self, path, rank=0, world=1, plan=None, **kw):
        schema = Schema.from_inputs(INPUTS, ["click"])
        users, indices = [], []
        for b in iterate(path, schema, 3, rank, world, plan=plan, **kw):
            users.extend(b.users)
            indices.extend(b.indices)
        return users, indices

    def test_shards_are_the_jsonl_files_in_name_order_skipping_metadata(self):
        path = self.folder([2, 3, 1])
        for name in ("_SUCCESS", ".part-00000.jsonl.crc"):
            open(os.path.join(path, name), "w").close()
        self.assertEqual([os.path.basename(s) for s in shards(path)], ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"])
        self.assertEqual(count_rows(path), 6)
        users, indices = self.read(path)
        self.assertEqual(users, list(range(6)))
        self.assertEqual(indices, list(range(6)), "indices count rows across shards in name order")

    def test_a_folder_that_is_not_a_split_is_a_data_error_naming_it(self):
        cases = {
            "no shards": ([], "_SUCCESS", "holds no shards"),
            "stray file": ([2], "notes.txt", "`notes.txt` is not a shard"),
            "nested folder": ([2], "date=2026-12-01/", "is a folder; a split's shards are files"),
        }
        for what, (sizes, extra, fragment) in cases.items():
            with self.subTest(what):
                path = self.folder(sizes, name=what.replace(" ", "-"))
                if extra.endswith("/"):
                    os.makedirs(os.path.join(path, extra))
                else:
                    open(os.path.join(path, extra), "w").close()
                with self.assertRaises(DataError) as e:
                    SplitPlan(path)
                self.assertEqual((e.exception.file, e.exception.row), (path, 0))
                self.assertIn(fragment, str(e.exception))
        parquet = self.folder([1], name="parquet")
        open(os.path.join(parquet, "part-1.parquet"), "w").close()
        with self.assertRaises(DataError) as e:
            shards(parquet)
        self.assertIn("a Parquet shard: the PyTorch trainer reads JSON Lines", str(e.exception))

    def test_a_bad_row_is_named_by_its_shard_and_line(self):
        path = self.folder([2, 2])
        with open(os.path.join(path, "part-00001.jsonl"), "a") as fh:
            fh.write('{"user": 9, "x": "text", "labels": {"click": 0}}\n')
        with self.assertRaises(DataError) as e:
            self.read(path)
        self.assertEqual((os.path.basename(e.exception.file), e.exception.row), ("part-00001.jsonl", 4))

    def test_ranks_read_disjoint_rows_covering_the_split_and_open_only_their_shards(self):
        for sizes in ([7], [3, 0, 5], [4, 4], [1, 2, 3, 4, 5], [6, 1, 1, 9, 2, 3, 8]):
            total = sum(sizes)
            for world in (1, 2, 3, 4):
                with self.subTest(sizes=sizes, world=world):
                    path = self.folder(sizes, name=f"s{len(sizes)}-{total}-w{world}")
                    plans = [SplitPlan(path, r, world) for r in range(world)]
                    counts = {}
                    for p in plans:
                        counts.update(p.local_counts())
                    seen = []
                    for rank, plan in enumerate(plans):
                        plan.set_counts(counts)
                        users, indices = self.read(path, plan=plan)
                        self.assertEqual(users, indices, "a row's index is its position in the split")
                        self.assertEqual(len(indices), plan.rank_rows(rank))
                        self.assertEqual(sorted(plan.local_positions(indices).tolist()), list(range(len(indices))))
                        self.assertEqual(sorted(plan.indices().tolist()), sorted(indices))
                        whole = len(sizes) - len(sizes) % world
                        opened = [i for i, _, _ in plan.parts]
                        self.assertEqual(opened, [i for i in range(len(sizes)) if i >= whole or i % world == rank])
                        seen.extend(indices)
                    self.assertEqual(sorted(seen), list(range(total)), "every row once, by one rank")

    def test_a_shuffled_folder_is_a_permutation_that_changes_with_the_seed(self):
        path = self.folder([5, 4, 7])
        orders = set()
        for seed in range(6):
            users, _ = self.read(path, shuffle_buffer=4, seed=seed)
            self.assertEqual(sorted(users), list(range(16)))
            orders.add(tuple(users))
        self.assertGreater(len(orders), 1)
        # A buffer of 1 keeps rows in shard order but draws the order of the shards.
        firsts = {tuple(u for u in self.read(path, shuffle_buffer=1, seed=s)[0] if u in (0, 5, 9)) for s in range(8)}
        self.assertGreater(len(firsts), 1, firsts)


if __name__ == "__main__":
    unittest.main()
