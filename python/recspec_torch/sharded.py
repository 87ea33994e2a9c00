"""Embedding tables sharded across the ranks by TorchRec (`python -m recspec_torch.train ...
--table-sharding table_wise|column_wise|row_wise` under torchrun).

Without it every rank holds every table whole (DistributedDataParallel replicates the module),
which is what fails first at scale. With it, the generated module's tables that are looked up
only by the ids of inputs (`TABLE_LOOKUPS`, from `Program::input_lookups`) move into one
TorchRec `EmbeddingBagCollection`, which `DistributedModelParallel` shards as its planner
decides under the chosen sharding type; the rest of the module stays data-parallel (DDP).

How the rows reach the generated code: before the module's forward, `ShardedModel` looks up
every (table, input) pair in one collection call — a `KeyedJaggedTensor` with one feature per
pair and bags of length 1, so a SUM-pooled bag is exactly the id's row — and hands the rows to a
`ShardedTable` standing in for the table's parameter, which `ops.embedding` and `ops.wide` ask
for them (`ops.RowSource`). One call per step means one optimizer update per step, like
recspec's.

Updates. TorchRec updates sharded rows inside the backward (fbgemm's fused table-batched
kernels), with the rule `--embedding-optimizer` names: `rowwise_adagrad` is fbgemm's
EXACT_ROWWISE_ADAGRAD (the rule recspec's `rowwise_adagrad` implements); `lazy` is
EXACT_ADAGRAD with Adagrad (recspec's lazy Adagrad) and fbgemm's ADAM with Adam (CUDA only:
fbgemm's CPU kernels have no Adam); `dense` cannot be fused and is refused. TorchRec averages a table's gradient over the ranks, as
DDP does for every other parameter.

Weights: a rank initialises only its own shards, from recspec's initial values of those rows
(`rng.init_rows`), so the model starts where `recspec train` would; `recspec_state_dict` gathers
every table whole at rank 0 (a collective: every rank calls it), which is what rank 0 writes
to model.safetensors.

Not done: row-wise sharding on CPU (fbgemm has no CPU kernel for it: it needs CUDA devices),
resuming a sharded run, and checkpoints written per shard (rank 0 holds each whole table while
writing).
"""

import torch
from torch import nn

from . import ops
from .rows import BETA_1, BETA_2, EPSILON, ROWWISE_EPSILON
from .rng import init_rows, init_values

#: The sharding types `--table-sharding` takes (TorchRec's `ShardingType` values).
SHARDINGS = ("table_wise", "column_wise", "row_wise")


class ShardedTable(ops.RowSource):
    """Stands in for a sharded table's parameter in the generated module: the rows of the
    step's lookups, bound by `ShardedModel.forward` to the input tensors they belong to."""

    def __init__(self, key, shape):
        self.key = key
        self.shape = tuple(shape)
        self.bound = []

    def lookup(self, ids):
        for tensor, rows in self.bound:
            if tensor is ids:
                return rows
        raise RuntimeError(
            f"table `{self.key}` is looked up by ids that are not one of its inputs "
            "(TABLE_LOOKUPS); regenerate model.py"
        )


def fused_params(optimizer, embedding_optimizer, lr, device_type):
    """fbgemm's fused optimizer for `--embedding-optimizer` (see the module's doc), with the
    constants of recspec's row rules (`recspec_torch.rows`)."""
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    if embedding_optimizer == "lazy" and optimizer == "adam" and device_type != "cuda":
        raise ValueError(
            "--table-sharding with lazy Adam needs CUDA devices: fbgemm's CPU kernels have no Adam "
            "(on CPU use --embedding-optimizer rowwise_adagrad, or the adagrad optimizer)"
        )

    if embedding_optimizer == "rowwise_adagrad":
        return {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": lr, "eps": ROWWISE_EPSILON}
    if embedding_optimizer == "lazy" and optimizer == "adagrad":
        return {"optimizer": EmbOptimType.EXACT_ADAGRAD, "learning_rate": lr, "eps": EPSILON}
    if embedding_optimizer == "lazy" and optimizer == "adam":
        return {
            "optimizer": EmbOptimType.ADAM,
            "learning_rate": lr,
            "eps": EPSILON,
            "beta1": BETA_1,
            "beta2": BETA_2,
        }
    raise ValueError(
        f"--table-sharding needs a row-sparse embedding optimizer (lazy or rowwise_adagrad): TorchRec "
        f"updates sharded tables inside the backward; found `{embedding_optimizer}` with `{optimizer}`"
    )


def shardable_tables(module):
    """{key: inputs} of the tables TorchRec takes, and {key: why not} of the other row tables:
    2-D tables in TABLE_LOOKUPS whose row width is a multiple of 4 (fbgemm's kernels' unit)."""
    take, skip = {}, {}
    lookups = getattr(module, "TABLE_LOOKUPS", {}) or {}
    for key in getattr(module, "ROW_TABLES", ()) or ():
        shape = module.PARAMS[key][1]
        if key not in lookups:
            skip[key] = "looked up by computed ids or with sampled rows"
        elif len(shape) != 2 or shape[1] % 4 != 0:
            skip[key] = f"rows of width {shape[-1]}, not a multiple of 4"
        else:
            take[key] = tuple(lookups[key])
    return take, skip


class ShardedModel(nn.Module):
    """The generated module with its shardable tables in one `EmbeddingBagCollection` (`ebc`,
    built on the meta device: `DistributedModelParallel` allocates only each rank's shards).
    Every other parameter is created with recspec's initial values for `seed`."""

    def __init__(self, module, cls, seed, device, world):
        super().__init__()
        from torchrec import EmbeddingBagCollection, EmbeddingBagConfig
        from torchrec.modules.embedding_configs import PoolingType

        self.world = world
        self.tables, self.skipped = shardable_tables(module)
        if not self.tables:
            raise ValueError("the model has no embedding table TorchRec can shard")
        with torch.device("meta"):
            inner = cls(seed=None)
        configs, self.features, self.handles, self.init = [], [], {}, {}
        for t, (key, inputs) in enumerate(self.tables.items()):
            shape = module.PARAMS[key][1]
            # Tables are named t0, t1, ...: TorchRec keeps them in a ModuleDict, where a recspec
            # key (`items`, with `/` and `.`) could clash with its methods or be refused.
            names = [f"t{t}_{j}" for j in range(len(inputs))]
            self.features.extend((name, key, inp) for name, inp in zip(names, inputs))
            configs.append(
                EmbeddingBagConfig(
                    name=f"t{t}",
                    embedding_dim=int(shape[1]),
                    num_embeddings=int(shape[0]),
                    feature_names=names,
                    pooling=PoolingType.SUM,
                )
            )
        self.table_names = {key: f"t{t}" for t, key in enumerate(self.tables)}
        for index, (key, (attr, shape, is_state, rule)) in enumerate(module.PARAMS.items()):
            delattr(inner, attr)
            if key in self.tables:
                self.handles[key] = ShardedTable(key, shape)
                self.init[key] = (rule, tuple(shape), index)
                object.__setattr__(inner, attr, self.handles[key])
            elif is_state:
                inner.register_buffer(attr, init_values(rule, shape, seed, index).to(device))
            else:
                setattr(inner, attr, nn.Parameter(init_values(rule, shape, seed, index).to(device)))
        self.seed = seed
        self.module_params = module.PARAMS
        self.model = inner
        self.ebc = EmbeddingBagCollection(tables=configs, device=torch.device("meta"))

    def forward(self, inputs, labels=None, step=0):
        from torchrec import KeyedJaggedTensor

        ids = [inputs[inp].reshape(-1) for _, _, inp in self.features]
        stride = max(1, max(len(i) for i in ids))
        # Every feature gets `stride` bags (the KJT's batch); a feature with fewer ids pads with
        # empty bags, whose SUM is zero and which are cut off below.
        lengths = torch.cat(
            [
                torch.cat([torch.ones(len(i), dtype=torch.int64), torch.zeros(stride - len(i), dtype=torch.int64)])
                for i in ids
            ]
        )
        kjt = KeyedJaggedTensor.from_lengths_sync(
            keys=[name for name, _, _ in self.features],
            values=torch.cat(ids).to(torch.int64),
            lengths=lengths.to(ids[0].device),
        )
        pooled = self.ebc(kjt).to_dict()
        for handle in self.handles.values():
            handle.bound = []
        for (name, key, inp), flat in zip(self.features, ids):
            rows = pooled[name][: len(flat)].reshape(*inputs[inp].shape, -1)
            self.handles[key].bound.append((inputs[inp], rows))
        return self.model(inputs, labels, step=step)

    def _table_state(self):
        """{key: ShardedTensor} of the tables (after sharding)."""
        state = self.ebc.state_dict()
        return {key: state[f"embedding_bags.{name}.weight"] for key, name in self.table_names.items()}

    def initialise_shards(self):
        """Writes recspec's initial values into this rank's shards of every table."""
        with torch.no_grad():
            for key, tensor in self._table_state().items():
                rule, shape, index = self.init[key]
                for shard in tensor.local_shards():
                    (row, col), (rows, cols) = shard.metadata.shard_offsets, shard.metadata.shard_sizes
                    values = init_rows(rule, shape, self.seed, index, row, rows)[:, col:col + cols]
                    shard.tensor.copy_(values.to(shard.tensor.device))

    def placements(self):
        """{key: [(rank, rows, columns) of each shard]} of the tables (after sharding)."""
        out = {}
        for key, tensor in self._table_state().items():
            shards = []
            for meta in tensor.metadata().shards_metadata:
                (row, col), (rows, cols) = meta.shard_offsets, meta.shard_sizes
                shards.append({"rank": meta.placement.rank(), "rows": [row, row + rows], "columns": [col, col + cols]})
            out[key] = shards
        return out

    def recspec_state_dict(self, rank):
        """Every parameter and buffer under its recspec key, each table gathered whole at rank
        0; None elsewhere. A collective: every rank must call it."""
        gathered = {}
        for key, tensor in self._table_state().items():
            full = torch.empty(self.init[key][1], dtype=torch.float32) if rank == 0 else None
            tensor.gather(dst=0, out=full)
            gathered[key] = full
        if rank != 0:
            return None
        out = {}
        for key, (attr, _, _, _) in self.module_params.items():
            out[key] = gathered[key] if key in gathered else getattr(self.model, attr).detach().cpu()
        return out


def distribute(ctx, objective, sharded, sharding, fused):
    """`objective` (whose model is `sharded`) under DistributedModelParallel: the tables sharded
    `sharding` with the fused optimizer `fused`, the rest data-parallel; each rank's shards then
    initialised with recspec's values."""
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.model_parallel import DefaultDataParallelWrapper, DistributedModelParallel
    from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
    from torchrec.distributed.planner.types import ParameterConstraints

    if sharding == "row_wise" and ctx.device.type != "cuda":
        raise ValueError(
            "--table-sharding row_wise needs CUDA devices: fbgemm has no CPU kernel for row-wise "
            "shards (use table_wise or column_wise on CPU)"
        )
    sharders = [EmbeddingBagCollectionSharder(fused_params=fused)]
    constraints = {}
    for key, name in sharded.table_names.items():
        # column_wise: shards of D / world columns (a multiple of 4), so that every rank holds
        # a slice of every table; TorchRec's planner would otherwise keep narrow tables whole.
        width = int(sharded.init[key][1][1])
        part = max(4, width // ctx.world // 4 * 4) if sharding == "column_wise" else None
        constraints[name] = ParameterConstraints(sharding_types=[sharding], min_partition=part)
    planner = EmbeddingShardingPlanner(
        topology=Topology(world_size=ctx.world, compute_device=ctx.device.type), constraints=constraints
    )
    plan = planner.collective_plan(objective, sharders, ctx.dist.GroupMember.WORLD)
    model = DistributedModelParallel(
        objective,
        device=ctx.device,
        plan=plan,
        sharders=sharders,
        data_parallel_wrapper=DefaultDataParallelWrapper(static_graph=False, find_unused_parameters=True),
    )
    sharded.initialise_shards()
    return model
