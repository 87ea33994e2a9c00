"""The parts of TorchRec sharding (`recspec_torch.sharded`) that run without ranks: which
tables TorchRec takes, the fused optimizer each `--embedding-optimizer` maps to, and the rows a
rank initialises for its shard. Training on two ranks is tested in tests/it/pytorch.rs
(`torchrec_shards_din_tables_on_two_ranks`)."""

import os
import sys
import types
import unittest

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from recspec_torch import ops, sharded  # noqa: E402
from recspec_torch.rng import init_rows, init_values  # noqa: E402


class Sharded(unittest.TestCase):
    def test_a_shard_initialises_exactly_its_rows_of_the_table(self):
        for rule in (("normal", 0.05), ("uniform", 0.1), ("constant", 0.5)):
            whole = init_values(rule, (37, 12), 7, 3)
            for first, count in ((0, 37), (0, 1), (5, 9), (36, 1), (20, 0)):
                part = init_rows(rule, (37, 12), 7, 3, first, count)
                self.assertTrue(torch.equal(part, whole[first:first + count]), (rule, first, count))
        with self.assertRaises(ValueError):
            init_rows(("normal", 0.05), (37, 12), 7, 3, 30, 8)

    def test_only_tables_looked_up_by_inputs_with_a_width_of_4k_are_taken(self):
        module = types.SimpleNamespace(
            PARAMS={
                "items/table": ("a", (100, 16), False, ("normal", 0.05)),
                "wide/weight": ("b", (50, 1), False, ("constant", 0.0)),
                "head/table": ("c", (100, 8), False, ("normal", 0.05)),
                "mlp/weight": ("d", (16, 1), False, ("normal", 0.05)),
            },
            ROW_TABLES=("items/table", "wide/weight", "head/table"),
            TABLE_LOOKUPS={"items/table": ("item", "clicks"), "wide/weight": ("fields",)},
        )
        take, skip = sharded.shardable_tables(module)
        self.assertEqual(take, {"items/table": ("item", "clicks")})
        self.assertEqual(set(skip), {"wide/weight", "head/table"})
        self.assertIn("not a multiple of 4", skip["wide/weight"])
        self.assertIn("computed ids or with sampled rows", skip["head/table"])

    def test_each_embedding_optimizer_maps_to_fbgemms_rule_with_recspecs_constants(self):
        from fbgemm_gpu.split_embedding_configs import EmbOptimType

        from recspec_torch.rows import EPSILON, ROWWISE_EPSILON

        p = sharded.fused_params("adam", "rowwise_adagrad", 0.01, "cpu")
        self.assertEqual(p, {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.01, "eps": ROWWISE_EPSILON})
        p = sharded.fused_params("adagrad", "lazy", 0.02, "cpu")
        self.assertEqual(p, {"optimizer": EmbOptimType.EXACT_ADAGRAD, "learning_rate": 0.02, "eps": EPSILON})
        self.assertEqual(sharded.fused_params("adam", "lazy", 0.01, "cuda")["optimizer"], EmbOptimType.ADAM)
        with self.assertRaisesRegex(ValueError, "needs CUDA devices: fbgemm's CPU kernels have no Adam"):
            sharded.fused_params("adam", "lazy", 0.01, "cpu")
        with self.assertRaisesRegex(ValueError, "needs a row-sparse embedding optimizer"):
            sharded.fused_params("adam", "dense", 0.01, "cuda")

    def test_ops_read_a_sharded_table_through_its_bound_rows(self):
        table = sharded.ShardedTable("items/table", (10, 4))
        ids = torch.tensor([[1, 2], [3, 4]])
        rows = torch.arange(16, dtype=torch.float32).reshape(2, 2, 4)
        table.bound = [(ids, rows)]
        self.assertTrue(torch.equal(ops.embedding(ids, table), rows))
        with self.assertRaisesRegex(RuntimeError, "not one of its inputs"):
            ops.embedding(ids.clone(), table)


if __name__ == "__main__":
    unittest.main()
