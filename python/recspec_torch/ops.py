"""One function per recspec kernel (`src/lower/kernel.rs`), reproducing the burn interpreter
(`src/runtime/exec/{kernels,components}.rs`): the same formulas, epsilons, clamps and order of
operations.

Conventions: values are tensors at their logical shape with the batch on axis 0 (B); floats are
float32 (float64 works too, for gradient checks), ids int64, masks bool. Options are the spec
spellings as strings; anything else raises ValueError. A "dense" argument is `(weight, bias)`
with the weight [In, Out] (`x @ W + b`, not torch's [Out, In]). Where burn converts an operand
to floats (masks to 0/1, ids to their numbers), so do these functions.

Scalars are applied as float32, as burn does (torch's CPU kernels do the same). Softmax is
burn's decomposition, exp(x - detached max) / sum. Randomness that burn takes from the pass's
SplitMix generator (`sample_valid` in training, `sampled_logits`) takes it from the `rng`
argument in the same order, so one `rng.pass_rng(step)` threaded through the steps in program
order reproduces burn's draws.

Row tables: a row-sparse optimizer (`recspec_torch.rows.RowOptimizer`) sets a log on the tables
it trains; every lookup of such a table (`embedding`, `wide`, `sampled_logits`) that gets a
gradient then logs the ids it read, as recspec records its row lookups. The values and gradients
are the same either way. `no_dropout()` turns dropout off (for stepping checks in training mode).

Not reproducible bit for bit: dropout masks (burn draws them from its own generator), the
summation order inside matmuls and reductions, and the last ulp of exp/log/tanh/erf/sigmoid
(each library has its own implementations).
"""

import contextlib
import math

import torch

#: Clamp for logarithms and divisions (`EPS` in exec/mod.rs).
EPS = 1e-7
#: The additive bias that removes a position from a softmax (`NEG_INF` in exec/mod.rs).
NEG_INF = -1e9

#: The spellings of every option of a spec's ops, keyed by the Rust enum that holds them
#: (`options!` in src/ops/options.rs; `tests/it/pytorch.rs` fails when the two tables differ).
OPTIONS = {
    "Activation": ("relu", "sigmoid", "tanh", "gelu", "none"),
    "PoolMode": ("mean", "sum", "max"),
    "Padding": ("exclude", "include"),
    "AttentionNorm": ("softmax", "sum", "none"),
    "AttentionScale": ("sqrt_head", "sqrt_model", "sqrt_len"),
    "PositionMode": ("add", "concat"),
    "GruOutput": ("last", "all"),
    "MemoryOutput": ("read", "both"),
    "Distance": ("cosine", "euclidean"),
}
ACTIVATIONS = OPTIONS["Activation"]
#: Arithmetic, reductions and distribution losses are not spec options: the generator writes
#: them from `lower::kernel`'s enums.
ARITHMETIC = ("add", "sub", "mul", "div")

#: The attribute of a row table that holds its lookup log (a list the lookups append id tensors
#: to once their rows get a gradient); set by `recspec_torch.rows.RowOptimizer`.
ROW_LOG = "_recspec_row_log"

# Set within `no_dropout()`.
_dropout_off = False


# ----------------------------------------------------------------------------------------------
# Helpers


def _check(name, value, allowed):
    """Raises ValueError unless `value` is one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _f(x):
    """x as floats: masks become 0/1 and ids their numbers (float32); floats unchanged."""
    return x if x.is_floating_point() else x.to(torch.float32)


def _m(mask, like):
    """A mask as 0/1 floats of `like`'s dtype."""
    return mask.to(like.dtype)


def _rows(x):
    """[..., D] → [rows, D]: every axis but the last merged (burn's `rows_by_last`/`matrix`)."""
    return x.reshape(-1, x.shape[-1])


def _mean(x, dim, keepdim=False):
    """Mean as burn's `mean_dim`: the sum divided by the axis length."""
    return x.sum(dim, keepdim=keepdim) / x.shape[dim]


def _softmax(x, dim):
    """burn's `softmax` ([.., N, ..] → same): exp(x - detached max) / sum of exp."""
    e = (x - x.detach().amax(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)


def _affine(x, weight, bias):
    """x [N, In] @ weight [In, Out] (+ bias [Out]) → [N, Out]."""
    y = x.matmul(_rows(weight))
    return y if bias is None else y + bias.reshape(1, -1)


def _dense(x, dense):
    """x [N, In] through a `(weight [In, Out], bias [Out])` pair → [N, Out]."""
    weight, bias = dense
    return _affine(x, weight, bias)


def _l2(x):
    """Row norms x [N, D] → [N, 1]: sqrt(sum x² + 1e-12)."""
    return ((x * x).sum(1, keepdim=True) + 1e-12).sqrt()


def _cosine(a, b):
    """Row cosines a, b [N, D] → [N, 1]: dot / clamp_min(|a| |b|, 1e-8)."""
    return (a * b).sum(1, keepdim=True) / (_l2(a) * _l2(b)).clamp_min(1e-8)


def _lookup(table, ids):
    """Rows `ids` [N] of `table` (every axis but the last merged) → [N, D]. When a row optimizer
    watches the table (`ROW_LOG`), a hook logs the ids once the backward reaches these rows, so
    only lookups on a loss path count (as recspec's `RowLookup`s that get a gradient)."""
    rows = _rows(table).index_select(0, ids)
    log = getattr(table, ROW_LOG, None)
    if log is not None and rows.requires_grad:
        ids = ids.detach()

        def record(grad):
            log.append(ids)

        rows.register_hook(record)
    return rows


def _weighted(loss, weight):
    """loss [B] times a weight stream [B] or [B, 1] when there is one."""
    return loss if weight is None else loss * _f(weight).reshape(-1)


# ----------------------------------------------------------------------------------------------
# Arithmetic and layout


def binary(op, a, b):
    """a op b for same-shaped a, b → same shape."""
    _check("op", op, ARITHMETIC)
    a, b = _f(a), _f(b)
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    return a / b


def scalar(op, x, s, left):
    """`s op x` (left) or `x op s` (right) for a Python float s, x any shape → same shape."""
    _check("op", op, ARITHMETIC)
    x, s = _f(x), float(s)
    if op == "add":
        return x + s
    if op == "mul":
        return x * s
    if op == "sub":
        return (-x) + s if left else x - s
    return x.reciprocal() * s if left else x / s


def neg(x):
    """-x, any shape → same shape."""
    return -_f(x)


def concat(xs, axis):
    """Joins same-dtype xs along `axis` (all other axes agree)."""
    return torch.cat(list(xs), axis)


def stack(xs, axis):
    """Stacks same-shaped xs along a new axis `axis` of the output."""
    return torch.stack(list(xs), axis)


def slice_(x, axis, start, length):
    """x[start : start + length] along `axis`."""
    return x.narrow(axis, int(start), int(length))


def index(x, axis, i):
    """x[i] along `axis`, removing the axis."""
    return x.select(axis, int(i))


def repeat(x, axis, times):
    """Inserts a new axis `axis` of size `times` (copies of x)."""
    reps = [1] * (x.dim() + 1)
    reps[axis] = int(times)
    return x.unsqueeze(axis).repeat(*reps)


def reshape(x, shape):
    """The same elements (row-major) at `shape`."""
    # A dim that is a tensor (the batch size while torch.onnx traces) stays one, so the traced
    # graph keeps a dynamic batch.
    return x.reshape(tuple(d if torch.is_tensor(d) else int(d) for d in shape))


def full_mask(x):
    """An all-valid bool mask shaped like x without its last axis."""
    return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)


def to_float(x):
    """Ids or a mask as floats (float32), same shape; floats unchanged."""
    return _f(x)


def keep(mask, where):
    """mask [B, N] and where [B, N] > 0.5 → bool [B, N]."""
    return mask & (_f(where) > 0.5)


def nonempty(mask):
    """mask [.., N] → float [..]: 1.0 where a row has a valid position (sum clamped to ≤ 1)."""
    return mask.to(torch.float32).sum(-1).clamp_max(1.0)


def sample_valid(x, mask, train, rng):
    """x [B, N, D], mask [B, N] → [B, D]: a random valid position (train), the last valid one
    (eval); zeros where a row has none. Draws B·N `rng.unit()` in training."""
    b, n = mask.shape[0], mask.shape[1]
    if train:
        # `1.0 + unit as f32`: each unit rounds to f32, then the sum is taken in f32.
        units = torch.from_numpy(rng.units(b * n)).to(torch.float32)
        scores = (units + 1.0).reshape(b, n)
    else:
        scores = torch.tensor([1.0 + (i % n) for i in range(b * n)], dtype=torch.float32).reshape(b, n)
    scores = scores.to(mask.device)
    m = mask.to(torch.float32)
    masked = scores * m - ((-m) + 1.0)
    pick = masked.argmax(1)  # the first maximum, as burn's argmax
    any_valid = m.sum(1, keepdim=True).clamp_max(1.0)
    x = _f(x)
    idx = pick.reshape(b, 1, 1).expand(b, 1, x.shape[2])
    return x.gather(1, idx).reshape(b, x.shape[2]) * any_valid.to(x.dtype)


# ----------------------------------------------------------------------------------------------
# Activations, softmaxes, dropout, pooling, reductions


def activation(x, act):
    """act(x) element-wise, any shape; gelu is the exact erf form 0.5 x (1 + erf(x / √2))."""
    _check("act", act, ACTIVATIONS)
    x = _f(x)
    if act == "relu":
        return torch.relu(x)
    if act == "sigmoid":
        return torch.sigmoid(x)
    if act == "tanh":
        return torch.tanh(x)
    if act == "gelu":
        # burn-flex's gelu, term for term; the same function as F.gelu(approximate="none").
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return x


def softmax(x, axis):
    """Softmax of x along `axis` → same shape."""
    return _softmax(_f(x), axis)


def masked_softmax(x, mask, temperature=1.0):
    """x [.., N], mask [.., N] → [.., N]: softmax of x / temperature over valid positions;
    padding gets 0. burn's kernel (`runtime::fused::masked_softmax`) clamps the shifted scores at
    -30 before `exp`; this one does not, so a masked position weighs 0 here and e^-30 there
    before normalising: the two differ by less than N·e^-30 ≈ N·9.4e-14 relative."""
    x = _f(x)
    m = _m(mask, x)
    z = x / max(float(temperature), EPS) + ((-m) + 1.0) * NEG_INF
    return _softmax(z, -1) * m


@torch.compiler.disable
def read_state(module, attrs):
    """{key: attribute} → {key: a detached copy of that buffer of `module`}: the state (memory
    slots) a forward pass reads. A copy made outside `torch.compile`'s graph, so that what a
    compiled backward pass saved is never the buffer that `write_state` then overwrites (inside
    the graph the copy was optimised away and the backward failed on the overwritten buffer)."""
    return {key: getattr(module, attr).detach().clone() for key, attr in attrs.items()}


@torch.compiler.disable
def write_state(module, values):
    """Writes a training pass's new state (memory slots) into `module`'s buffers, {attribute:
    tensor}, outside autograd and outside `torch.compile`'s graph."""
    with torch.no_grad():
        for attr, value in values.items():
            getattr(module, attr).copy_(value.detach())


def dropout(x, rate, train):
    """Inverted dropout (x · keep / (1 - rate)) in training, the identity otherwise; same shape."""
    return _dropout(x, rate, train)


@contextlib.contextmanager
def no_dropout():
    """Within: every dropout (`dropout`, `mlp`, `self_attention`) is the identity, as at rate 0,
    in training too."""
    global _dropout_off
    before = _dropout_off
    _dropout_off = True
    try:
        yield
    finally:
        _dropout_off = before


def _dropout(x, rate, train):
    """`dropout`, under a name that the `dropout` arguments of `mlp`/`self_attention` leave free."""
    x = _f(x)
    rate = float(rate)
    if not train or rate <= 0.0 or _dropout_off:
        return x
    keep_ = torch.bernoulli(torch.full_like(x, 1.0 - rate))
    return x * keep_ / (1.0 - rate)


def pool(x, mask, mode, include_padding):
    """x [B, N, ..], mask [B, N] → [B, ..], pooling axis 1. Max ignores `include_padding` and
    gives zeros for a row without valid positions."""
    _check("mode", mode, OPTIONS["PoolMode"])
    x = _f(x)
    b, n, rest = x.shape[0], x.shape[1], x.shape[2:]
    x3 = x.reshape(b, n, -1)
    m = _m(mask, x).reshape(b, n, 1)
    if mode == "mean" and not include_padding:
        y = (x3 * m).sum(1) / m.sum(1).clamp_min(1.0)
    elif mode == "mean":
        y = _mean(x3, 1)
    elif mode == "sum" and not include_padding:
        y = (x3 * m).sum(1)
    elif mode == "sum":
        y = x3.sum(1)
    else:
        masked = x3 * m + ((-m) + 1.0) * NEG_INF
        # `max` (not `amax`): on ties the gradient goes to the first maximum only, as in burn.
        y = masked.max(1).values * m.sum(1).clamp_max(1.0)
    return y.reshape(b, *rest)


def attention_pool(values, scores, mask, norm, temperature):
    """values [B, N, D], scores [B, N], mask [B, N] → [B, D]: values weighted by the normalised
    scores (softmax, sum-normalised, or raw), padding weighted 0."""
    _check("norm", norm, OPTIONS["AttentionNorm"])
    v = _f(values)
    b, n = v.shape[0], v.shape[1]
    s = _f(scores).reshape(b, n)
    m = _m(mask, s).reshape(b, n)
    if norm == "softmax":
        w = masked_softmax(s, mask.reshape(b, n), temperature)
    elif norm == "sum":
        sm = s * m
        w = sm / sm.sum(1, keepdim=True).clamp_min(EPS)
    else:
        w = s * m
    return (w.unsqueeze(2) * v).sum(1)


def reduce(x, axis, reduction):
    """Sum or mean of x along `axis`, removing it."""
    _check("reduction", reduction, ("sum", "mean"))
    x = _f(x)
    return x.sum(axis) if reduction == "sum" else _mean(x, axis)


# ----------------------------------------------------------------------------------------------
# Vector geometry


def dot(a, b):
    """a, b [.., D] → [..]: sum of products over the last axis."""
    return (_f(a) * _f(b)).sum(-1)


def cosine(a, b):
    """a, b [.., D] → [..]: dot / clamp_min(|a| |b|, 1e-8), |x| = sqrt(sum x² + 1e-12)."""
    a, b = _f(a), _f(b)
    return _cosine(_rows(a), _rows(b)).reshape(a.shape[:-1])


def project(a, onto, along):
    """a, onto [.., D] → [.., D]: the component of a along `onto` (along) or a minus it."""
    a, onto = _f(a), _f(onto)
    a2, o2 = _rows(a), _rows(onto)
    coef = (a2 * o2).sum(1, keepdim=True) / ((o2 * o2).sum(1, keepdim=True) + 1e-8)
    comp = o2 * coef
    return (comp if along else a2 - comp).reshape(a.shape)


def fm(x, reduce):
    """x [B, F, D] → [B, D] (or [B] when `reduce`): the FM pairwise term ½((Σx)² - Σx²)."""
    x = _f(x)
    total = x.sum(1)
    total_sq = (x * x).sum(1)
    bi = (total * total - total_sq) * 0.5
    return bi.sum(1) if reduce else bi


def item_logits(s, table):
    """s [.., D], table [V, D] → [.., V]: scores of every item."""
    s = _f(s)
    t = _rows(table)
    return _rows(s).matmul(t.t()).reshape(*s.shape[:-1], t.shape[0])


def sampled_logits(s, target, table, samples, logq, rng):
    """s [B, D], target ids [B] or [B, 1], table [V, D] → [B, 1 + samples], the target's logit in
    column 0 then `samples` items drawn uniformly with `rng.below(V)` (logQ-corrected when
    `logq`); a sampled item equal to the row's target gets NEG_INF added.
    """
    s = _rows(_f(s))
    vocab = _rows(table).shape[0]
    b = s.shape[0]
    tgt = target.reshape(b).to(torch.int64)
    pos = (s * _lookup(table, tgt)).sum(1, keepdim=True)
    ids = [rng.below(vocab) for _ in range(int(samples))]
    ids_t = torch.tensor(ids, dtype=torch.int64, device=table.device)
    neg_ = s.matmul(_lookup(table, ids_t).t())
    if logq:
        neg_ = neg_ - math.log(int(samples) / vocab)
    hits = (tgt.reshape(b, 1) == ids_t.reshape(1, -1)).to(neg_.dtype)
    if bool(hits.any()):
        neg_ = neg_ + hits * NEG_INF
    return torch.cat([pos, neg_], 1)


# ----------------------------------------------------------------------------------------------
# Weighted layers


class RowSource:
    """A table whose rows live elsewhere (`recspec_torch.sharded.ShardedTable`: sharded by
    TorchRec): `embedding` and `wide` ask it for the rows of an input's ids, `lookup(ids)` →
    [.., D], instead of indexing a tensor."""

    def lookup(self, ids):
        raise NotImplementedError


def embedding(ids, table):
    """ids [..] int64, table [V, D] → [.., D]: rows of the table."""
    if isinstance(table, RowSource):
        return table.lookup(ids)
    return _lookup(table, ids.reshape(-1)).reshape(*ids.shape, table.shape[-1])


def position_embedding(x, table, mode):
    """x [B, N, D], table [N, E] → [B, N, D] (add, E = D) or [B, N, D + E] (concat)."""
    _check("mode", mode, OPTIONS["PositionMode"])
    x = _f(x)
    t = _rows(table).unsqueeze(0)
    if mode == "concat":
        return torch.cat([x, t.repeat(x.shape[0], 1, 1)], 2)
    return x + t


def linear(x, weight, bias):
    """x [.., In], weight [In, Out], bias [Out] or None → [.., Out]."""
    x = _f(x)
    y = _affine(_rows(x), weight, bias)
    return y.reshape(*x.shape[:-1], y.shape[1])


def mlp(x, layers, act, out_act, dropout, train):
    """x [.., In] → [.., Out] through `layers` [(W, b)...]: act and dropout between layers,
    out_act after the last."""
    _check("act", act, ACTIVATIONS)
    _check("out_act", out_act, ACTIVATIONS)
    x = _f(x)
    h = _rows(x)
    for i, layer in enumerate(layers):
        h = _dense(h, layer)
        if i + 1 < len(layers):
            h = _dropout(activation(h, act), dropout, train)
        else:
            h = activation(h, out_act)
    return h.reshape(*x.shape[:-1], h.shape[1])


def _layer_norm_rows(x, gamma, beta, eps):
    """x [N, D] → [N, D]: (x - mean) / sqrt(biased var + eps) · gamma + beta."""
    centered = x - _mean(x, 1, keepdim=True)
    var = _mean(centered * centered, 1, keepdim=True)
    return centered / (var + eps).sqrt() * gamma.reshape(1, -1) + beta.reshape(1, -1)


def layer_norm(x, gamma, beta, eps):
    """x [.., D], gamma and beta [D] → [.., D], normalised over the last axis."""
    x = _f(x)
    return _layer_norm_rows(_rows(x), gamma, beta, float(eps)).reshape(x.shape)


def self_attention(x, mask, heads, scale, residual, dropout, train, query, key, value, out, norm):
    """x [B, N, D], mask [B, N] → [B, N, D]: multi-head scaled dot-product self-attention with
    padded keys masked, an output projection, optional residual and layer norm (eps 1e-5)."""
    _check("scale", scale, OPTIONS["AttentionScale"])
    x = _f(x)
    b, n, d = x.shape
    heads = int(heads)
    dh = d // heads
    x2 = x.reshape(b * n, d)

    def project_(dense):
        """x through `dense`, split into heads: [B, heads, N, Dh]."""
        return _dense(x2, dense).reshape(b, n, heads, dh).transpose(1, 2)

    q, k, v = project_(query), project_(key), project_(value)
    divisor = {"sqrt_model": math.sqrt(d), "sqrt_len": math.sqrt(n), "sqrt_head": math.sqrt(dh)}[scale]
    scores = q.matmul(k.transpose(2, 3)) / divisor
    m = _m(mask, x).reshape(b, 1, 1, n)
    att = _softmax(scores + ((-m) + 1.0) * NEG_INF, 3)
    att = _dropout(att, dropout, train)
    context = att.matmul(v).transpose(1, 2).reshape(b * n, d)
    y = _dense(context, out)
    if residual:
        y = y + x2
    if norm is not None:
        gamma, beta = norm
        y = _layer_norm_rows(y, gamma, beta, 1e-5)
    return y.reshape(b, n, d)


def gru(x, mask, input, hidden, output):
    """x [B, N, In], mask [B, N] → [B, H] (last) or [B, N, H] (all). input (W [In, 3H], b [3H]),
    hidden (W [H, 3H], b [3H]), gates reset, update, candidate; padding keeps the state; h0 = 0."""
    _check("output", output, OPTIONS["GruOutput"])
    x = _f(x)
    b, n, din = x.shape
    w_hh, b_hh = hidden
    h_dim = _rows(w_hh).shape[0]
    gi = _dense(x.reshape(b * n, din), input).reshape(b, n, 3 * h_dim)
    m = _m(mask, x).reshape(b, n, 1)
    h = torch.zeros(b, h_dim, dtype=x.dtype, device=x.device)
    states = []
    for t in range(n):
        g = gi[:, t]
        gh = _affine(h, w_hh, b_hh)
        gates = torch.sigmoid(g[:, : 2 * h_dim] + gh[:, : 2 * h_dim])
        r, z = gates[:, :h_dim], gates[:, h_dim:]
        cand = torch.tanh(g[:, 2 * h_dim :] + r * gh[:, 2 * h_dim :])
        new = cand + z * (h - cand)  # (1 - z) cand + z h
        h = h + m[:, t] * (new - h)  # padding (m = 0) keeps h
        states.append(h)
    return torch.stack(states, 1) if output == "all" else h


def wide(ids, weight, bias):
    """ids [B, F] int64, weight [V, 1], bias [F] → [B, F]: per-id weights plus a field bias."""
    if isinstance(weight, RowSource):
        w = weight.lookup(ids).reshape(ids.shape)
    else:
        w = _lookup(weight, ids.reshape(-1)).reshape(ids.shape)
    return w + bias.reshape(1, -1)


def mmoe(x, experts, tasks, layers, gates, act):
    """x [B, In] → [B, T, Out]. Expert layers (W [E, in, out], b [E, out]), act after every
    layer; gates (W [T, In, E], b [T, E]) mixed by a softmax over experts per task."""
    _check("act", act, ACTIVATIONS)
    x = _rows(_f(x))
    b, din = x.shape
    experts, tasks = int(experts), int(tasks)
    h = x.unsqueeze(0).repeat(experts, 1, 1)
    for weight, bias in layers:
        h = activation(h.matmul(weight) + bias.reshape(experts, 1, -1), act)
    gate_w, gate_b = gates
    xg = x.reshape(1, b, din).repeat(tasks, 1, 1)
    mix = _softmax(xg.matmul(gate_w) + gate_b.reshape(tasks, 1, -1), 2)
    return mix.transpose(0, 1).matmul(h.transpose(0, 1))


def memory(key, write, slots, read_key, write_key, erase, add, persist, output, train):
    """key [B, K], write [B, W], slots [S, M] → (y, new_slots): y [B, M] (read) or [B, 2, M]
    (both: the read r and q = w_write · M'); new_slots [S, M] (detached) when `train` and
    `persist`, else None. Reads before writing; the slots are used detached (a copy, so writing
    new_slots back into `slots` in place before the backward is fine).

    Read: w_r = softmax over slots of cosine-like k̂ · M̂ᵀ, r = w_r M. Write (batch-averaged):
    M' = M · (1 - w_wᵀ sigmoid(erase) / B) + w_wᵀ tanh(add) / B.
    """
    _check("output", output, OPTIONS["MemoryOutput"])
    key, write = _rows(_f(key)), _rows(_f(write))
    b = key.shape[0]
    # A copy, not a view: the generated module writes the new slots into the slots buffer in
    # place after the forward, which must not touch what the backward saved.
    mem = _rows(slots).detach().clone()
    normalised = mem / _l2(mem)

    def address(k):
        """Keys [B, M] → slot weights [B, S]: softmax of k / |k| against the normalised slots."""
        return _softmax((k / _l2(k)).matmul(normalised.t()), 1)

    w_read = address(_dense(key, read_key))
    r = w_read.matmul(mem)
    w_write = address(_dense(write, write_key))
    erase_v = torch.sigmoid(_dense(write, erase))
    add_v = torch.tanh(_dense(write, add))
    wt = w_write.t()
    erase_term = wt.matmul(erase_v) / float(b)
    add_term = wt.matmul(add_v) / float(b)
    new_mem = mem * ((-erase_term) + 1.0) + add_term
    new_slots = new_mem.detach().reshape(slots.shape) if (train and persist) else None
    if output == "both":
        q = w_write.matmul(new_mem)
        return torch.stack([r, q], 1), new_slots
    return r, new_slots


# ----------------------------------------------------------------------------------------------
# Losses: per-example [B]


def probability_loss(p, y, weight, positives_only):
    """p [B] or [B, 1] in [0, 1], labels y [B] → [B]: -(y log p + (1-y) log(1-p)), or -y log p
    when `positives_only`; p clamped to [EPS, 1 - EPS]."""
    p = _f(p).reshape(-1).clamp(EPS, 1.0 - EPS)
    y = _f(y).reshape(-1)
    if positives_only:
        loss = -(y * p.log())
    else:
        loss = -(y * p.log() + ((-y) + 1.0) * ((-p) + 1.0).log())
    return _weighted(loss, weight)


def bce_logits(logit, y, weight):
    """logit [B] or [B, 1], labels y [B] → [B]: relu(z) - z y + log1p(exp(-|z|))."""
    z = _f(logit).reshape(-1)
    y = _f(y).reshape(-1)
    loss = torch.relu(z) - z * y + (-z.abs()).exp().log1p()
    return _weighted(loss, weight)


def distribution_loss(p, target, label, weight, kind):
    """p [B, V] a distribution, target ids [B] / [B, 1] or None (column 0) → [B]:
    -log max(p_t, EPS) (cross_entropy) or -log max(1 - p_t, EPS) (not_to_recommend), times the
    label stream when given."""
    _check("kind", kind, ("cross_entropy", "not_to_recommend"))
    p = _rows(_f(p))
    b = p.shape[0]
    if target is not None:
        picked = p.gather(1, target.reshape(b, 1).to(torch.int64)).reshape(b)
    else:
        picked = p[:, 0]
    if kind == "cross_entropy":
        loss = -picked.clamp_min(EPS).log()
    else:
        loss = -((-picked) + 1.0).clamp_min(EPS).log()
    if label is not None:
        loss = loss * _f(label).reshape(-1)
    return _weighted(loss, weight)


def triplet(anchor, positive, negative, margin, distance, weight):
    """anchor, positive, negative [B, D] → [B]: relu(d(a, p) - d(a, n) + margin), d the
    euclidean distance sqrt(|x - y|² + 1e-12) or 1 - cosine."""
    _check("distance", distance, OPTIONS["Distance"])
    a, pos, negv = _rows(_f(anchor)), _rows(_f(positive)), _rows(_f(negative))

    def dist(u, v):
        """Row distances u, v [B, D] → [B, 1]."""
        return _l2(u - v) if distance == "euclidean" else (-_cosine(u, v)) + 1.0

    loss = torch.relu(dist(a, pos) - dist(a, negv) + float(margin))
    return _weighted(loss.reshape(-1), weight)


__all__ = [
    "EPS",
    "NEG_INF",
    "OPTIONS",
    "read_state",
    "write_state",
    "binary",
    "scalar",
    "neg",
    "concat",
    "stack",
    "slice_",
    "index",
    "repeat",
    "reshape",
    "full_mask",
    "to_float",
    "keep",
    "nonempty",
    "sample_valid",
    "activation",
    "softmax",
    "masked_softmax",
    "dropout",
    "no_dropout",
    "pool",
    "attention_pool",
    "reduce",
    "dot",
    "cosine",
    "project",
    "fm",
    "item_logits",
    "sampled_logits",
    "embedding",
    "position_embedding",
    "linear",
    "mlp",
    "layer_norm",
    "self_attention",
    "gru",
    "wide",
    "mmoe",
    "memory",
    "probability_loss",
    "bce_logits",
    "distribution_loss",
    "triplet",
]
