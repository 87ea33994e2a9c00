"""Row-sparse training of embedding tables, the twin of recspec's `runtime::rows`: the optimizer
updates only the rows a step looked up, with their optimizer state.

A generated module's `ROW_TABLES` names its embedding tables (recspec keys): trained parameters
every use of which is a row lookup by ids (`ops.embedding`'s table, `ops.wide`'s weight,
`ops.sampled_logits`' table). `[train] embedding_optimizer` picks how they are updated:

* `lazy` with Adam (β1 0.9, β2 0.999, ε 1e-5), at the touched rows U, with t the steps that
  updated the table (the first is 1):
  m_U ← β1 m_U + (1 - β1) g_U;  v_U ← β2 v_U + (1 - β2) g_U²;  c2 = sqrt(1 - β2^t);
  f = c2 / (1 - β1^t);  w_U ← w_U - lr · m_U f / (sqrt(v_U) + ε c2)
  (torch's Adam restricted to U; not `torch.optim.SparseAdam`, whose ε lacks the c2).
* `lazy` with Adagrad (ε 1e-5): s_U ← s_U + g_U²;  w_U ← w_U - lr · g_U / (sqrt(s_U) + ε)
  (the same as dense Adagrad).
* `rowwise_adagrad` (whatever the optimizer; fbgemm's EXACT_ROWWISE_ADAGRAD, ε 1e-8): one
  accumulator per row, a_U ← a_U + mean over the row of g_U²;  w_U ← w_U - lr · g_U / (sqrt(a_U) + ε).
* `dense`: tables are ordinary parameters of the dense optimizer.

U is the sorted distinct ids of the step's lookups of the table that got a gradient (every lookup
on a loss path, padding ids included; several lookups of one table count together); g_U is the
table's gradient at those rows (autograd sums a row's lookups). A table that got no gradient is
left as it is and its step count does not advance. Rows outside U and their state never change.
The scalars (1 - β, β^t, c2, f, ε c2, lr) are computed in float32 as recspec does.

How U is known: the optimizer sets a log on each table (`ops.ROW_LOG`); every lookup of the table
registers a hook on the rows it read, which logs the ids when the backward reaches them. The
table's gradient stays the ordinary dense one, so DistributedDataParallel averages it as any
other; under torch.distributed the step all-gathers the logged ids, so every rank updates the
union of the ranks' rows and ranks stay identical. The step reads and writes only rows U of the
table, its gradient and its state.

The call order is free between the forward and the step: `zero_grad` clears gradients only,
`step` consumes the logs (`forget` drops them, for a forward that no step follows).
"""

import numpy as np
import torch

from . import ops

#: `[train] embedding_optimizer` values.
EMBEDDING_OPTIMIZERS = ("lazy", "rowwise_adagrad", "dense")
#: Adam's betas and the epsilon of Adam and Adagrad (burn's defaults, as the dense optimizer).
BETA_1 = 0.9
BETA_2 = 0.999
EPSILON = 1e-5
#: fbgemm's epsilon of EXACT_ROWWISE_ADAGRAD.
ROWWISE_EPSILON = 1e-8
#: The state tensors of a table per rule: `m`, `v`, `sum` are [V, D], `acc` is [V].
STATE_NAMES = {"lazy_adam": ("m", "v"), "lazy_adagrad": ("sum",), "rowwise_adagrad": ("acc",)}


def row_rule(embedding_optimizer, optimizer):
    """The rule (`lazy_adam`, `lazy_adagrad`, `rowwise_adagrad`) for the settings, or None for
    `dense`."""
    if embedding_optimizer == "dense":
        return None
    if embedding_optimizer == "rowwise_adagrad":
        return "rowwise_adagrad"
    if embedding_optimizer == "lazy":
        if optimizer not in ("adam", "adagrad"):
            raise ValueError(f'optimizer must be "adam" or "adagrad", found "{optimizer}"')
        return "lazy_adam" if optimizer == "adam" else "lazy_adagrad"
    raise ValueError(
        f'embedding_optimizer must be "lazy", "rowwise_adagrad" or "dense", found "{embedding_optimizer}"'
    )


def _f32(x):
    return np.float32(x)


def _powi(a, n):
    """a^n in float32 by repeated squaring (compiler-rt's `__powisf2`, Rust's `f32::powi`)."""
    a, r = _f32(a), _f32(1.0)
    while True:
        if n & 1:
            r = _f32(r * a)
        n //= 2
        if n == 0:
            return r
        a = _f32(a * a)


def _matrix(t):
    """A table as rows: every axis but the last merged (`ops._rows`), a view."""
    return t.view(-1, t.shape[-1])


class RowOptimizer(torch.optim.Optimizer):
    """Updates row tables by `rule` (`row_rule`) at the rows their lookups read.

    State per table (`self.state[p]`): `step` (the steps that updated it) and the rule's tensors
    (`STATE_NAMES`), created at its first update. `group` is the process group whose ranks'
    lookups are united (default: the default group when torch.distributed is initialized).
    """

    def __init__(self, params, lr, rule, group=None):
        if rule not in STATE_NAMES:
            raise ValueError(f"unknown row rule {rule!r}; expected one of {', '.join(STATE_NAMES)}")
        if not (lr > 0.0):
            raise ValueError(f"lr must be positive, found {lr}")
        super().__init__(params, dict(lr=float(lr), rule=rule))
        self.rule = rule
        self.group = group
        for p in self._params():
            if p.dim() == 0:
                raise ValueError("a row table has at least one axis")
            setattr(p, ops.ROW_LOG, [])

    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def forget(self):
        """Drops the ids logged since the last step."""
        for p in self._params():
            getattr(p, ops.ROW_LOG).clear()

    def table_state(self, p):
        """`(steps, {name: tensor})` of table p; zeros before its first update."""
        state = self.state.get(p)
        if not state:
            rows = _matrix(p)
            return 0, {name: self._zeros(name, rows) for name in STATE_NAMES[self.rule]}
        return state["step"], {name: state[name] for name in STATE_NAMES[self.rule]}

    @staticmethod
    def _zeros(name, rows):
        shape = rows.shape[:1] if name == "acc" else rows.shape
        return torch.zeros(shape, dtype=rows.dtype, device=rows.device)

    def _local_rows(self, p):
        log = getattr(p, ops.ROW_LOG)
        ids = torch.cat([i.reshape(-1) for i in log]) if log else torch.zeros(0, dtype=torch.int64)
        log.clear()
        return torch.unique(ids.to(device=p.device, dtype=torch.int64), sorted=True)

    def _distributed(self):
        dist = torch.distributed
        return dist.is_available() and dist.is_initialized() and dist.get_world_size(self.group) > 1

    def _union(self, local):
        """Per table, the sorted union over the ranks of `local` (sorted distinct ids)."""
        if not local or not self._distributed():
            return local
        dist = torch.distributed
        world = dist.get_world_size(self.group)
        device = local[0].device
        counts = torch.tensor([len(u) for u in local], dtype=torch.int64, device=device)
        all_counts = [torch.empty_like(counts) for _ in range(world)]
        dist.all_gather(all_counts, counts, group=self.group)
        all_counts = [c.tolist() for c in all_counts]
        longest = max(sum(c) for c in all_counts)
        if longest == 0:
            return local
        mine = torch.cat(local + [torch.zeros(longest - int(counts.sum()), dtype=torch.int64, device=device)])
        gathered = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine, group=self.group)
        parts = [list(torch.split(g[: sum(c)], c)) for g, c in zip(gathered, all_counts)]
        return [
            torch.unique(torch.cat([rank_parts[i] for rank_parts in parts]).to(u.device), sorted=True)
            for i, u in enumerate(local)
        ]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        touched = self._union([self._local_rows(p) for p in params])
        rows_of = {id(p): u for p, u in zip(params, touched)}
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError("RowOptimizer takes dense gradients (it finds the rows from the lookups)")
                self._update(p, rows_of[id(p)], group["lr"])
        return loss

    def _update(self, p, rows, lr):
        w = _matrix(p)
        state = self.state[p]
        if not state:
            state["step"] = 0
            for name in STATE_NAMES[self.rule]:
                state[name] = self._zeros(name, w)
        state["step"] += 1
        t = state["step"]
        g = p.grad.reshape(w.shape).index_select(0, rows)
        lr = float(_f32(lr))
        if self.rule == "lazy_adam":
            b1, b2, eps = _f32(BETA_1), _f32(BETA_2), _f32(EPSILON)
            m = state["m"].index_select(0, rows).mul(float(b1)).add(g.mul(float(_f32(1.0) - b1)))
            v = state["v"].index_select(0, rows).mul(float(b2)).add((g * g).mul(float(_f32(1.0) - b2)))
            c2 = np.sqrt(_f32(1.0) - _powi(b2, t))
            f = _f32(c2 / (_f32(1.0) - _powi(b1, t)))
            step = m.mul(float(f)).div(v.sqrt().add(float(_f32(eps * c2))))
            state["m"].index_copy_(0, rows, m)
            state["v"].index_copy_(0, rows, v)
        elif self.rule == "lazy_adagrad":
            s = state["sum"].index_select(0, rows).add(g * g)
            step = g.div(s.sqrt().add(float(_f32(EPSILON))))
            state["sum"].index_copy_(0, rows, s)
        else:
            a = state["acc"].index_select(0, rows).add((g * g).sum(1).div(float(g.shape[1])))
            step = g.div(a.sqrt().add(float(_f32(ROWWISE_EPSILON))).unsqueeze(1))
            state["acc"].index_copy_(0, rows, a)
        w.index_copy_(0, rows, w.index_select(0, rows).sub(step.mul(lr)))


def row_table_keys(module):
    """The module's `ROW_TABLES` (empty for modules generated before it existed)."""
    return tuple(getattr(module, "ROW_TABLES", ()) or ())


class Optimizers:
    """The dense optimizer (torch's Adam or Adagrad, ε `eps`) over every trainable parameter but
    the row tables, and a `RowOptimizer` over the row tables (none when `embedding_optimizer` is
    `dense` or the module has no ROW_TABLES). `tables` maps the row tables' recspec keys to their
    parameters."""

    def __init__(self, model, module, optimizer, lr, embedding_optimizer="lazy", eps=EPSILON, group=None):
        rule = row_rule(embedding_optimizer, optimizer)
        self.tables = {}
        if rule is not None:
            for key in row_table_keys(module):
                if key not in module.PARAMS:
                    raise ValueError(f"ROW_TABLES names `{key}`, which is not in PARAMS")
                p = getattr(model, module.PARAMS[key][0])
                if isinstance(p, torch.nn.Parameter) and p.requires_grad:
                    self.tables[key] = p
        table_ids = {id(p) for p in self.tables.values()}
        dense = [p for p in model.parameters() if p.requires_grad and id(p) not in table_ids]
        if not dense:
            self.dense = None
        elif optimizer == "adam":
            self.dense = torch.optim.Adam(dense, lr=lr, eps=eps)
        elif optimizer == "adagrad":
            self.dense = torch.optim.Adagrad(dense, lr=lr, eps=eps)
        else:
            raise ValueError(f'optimizer must be "adam" or "adagrad", found "{optimizer}"')
        self.rows = RowOptimizer(list(self.tables.values()), lr, rule, group) if self.tables else None

    def zero_grad(self, set_to_none=True):
        for opt in (self.dense, self.rows):
            if opt is not None:
                opt.zero_grad(set_to_none=set_to_none)

    def step(self):
        """The dense step, then the row step (every rank must call it: it may all-gather)."""
        if self.dense is not None:
            self.dense.step()
        if self.rows is not None:
            self.rows.step()

    def forget(self):
        if self.rows is not None:
            self.rows.forget()

    def row_state(self, key):
        """`(steps, {name: tensor})` of the row table `key`."""
        return self.rows.table_state(self.tables[key])


__all__ = [
    "EMBEDDING_OPTIMIZERS",
    "Optimizers",
    "RowOptimizer",
    "STATE_NAMES",
    "row_rule",
    "row_table_keys",
]
