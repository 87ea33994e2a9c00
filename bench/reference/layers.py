"""Building blocks the hand-written references share, and the map from recspec's weights.

The numerics follow the spec's definitions, which recspec's kernels implement: padded positions
are excluded from softmaxes by a -1e9 score (so a row without valid positions weights nothing
rather than becoming NaN), masked means divide by the valid count clamped to at least 1, and
probabilities are clamped to [1e-7, 1 - 1e-7] before a log. Initialisation is PyTorch's default
for nn.Linear and nn.GRU, and N(0, 0.05²) for embedding tables (PyTorch's N(0, 1) default is not
what a recommendation model uses; recspec uses 0.05 too); it only matters for the benchmark's
trajectory, never for the equivalence check, which copies recspec's weights in.
"""

import torch
import torch.nn.functional as F
from torch import nn

#: Clamp of probabilities before a log.
EPS = 1e-7
#: The score of a padded position under a softmax.
NEG_INF = -1e9


def embedding(vocab, dim):
    """An nn.Embedding [vocab, dim] initialised N(0, 0.05²)."""
    table = nn.Embedding(vocab, dim)
    nn.init.normal_(table.weight, std=0.05)
    return table


def sparse_tables(model):
    """Switches every nn.Embedding of `model` to sparse gradients (`sparse=True`, which
    nn.Embedding reads at each forward): a lookup's backward then yields the looked-up rows only,
    for torch.optim.SparseAdam. The modules are built dense (`embedding`), so the default stays
    PyTorch's; a table also read whole (retrieval_ntr's scores against `items.weight`) still gets
    a dense gradient. Returns the tables' weights."""
    tables = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    for table in tables:
        table.sparse = True
    return [t.weight for t in tables]


def mlp(sizes, relu_last):
    """nn.Linear layers sizes[0] → sizes[1] → ... with ReLU between them, and after the last one
    when `relu_last`."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if relu_last or i + 2 < len(sizes):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def masked_softmax(scores, mask):
    """Softmax over the last axis of `scores` [.., N] among the positions where `mask` [.., N] is
    true; padded positions (and every position of a row without valid ones) get weight 0."""
    return torch.softmax(scores.masked_fill(~mask, NEG_INF), -1) * mask


def masked_mean(x, mask):
    """Mean of x [B, N, D] over the valid positions of mask [B, N] → [B, D]; zeros for a row
    without valid positions."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def bce(p, y):
    """Binary cross-entropy of probabilities p [B] or [B, 1] against labels y [B] → [B]."""
    return F.binary_cross_entropy(p.reshape(-1).clamp(EPS, 1.0 - EPS), y, reduction="none")


def nll(p, y):
    """-y log p per example (the positives-only log loss of the DFN paper) → [B]."""
    return -(y * p.reshape(-1).clamp(EPS, 1.0 - EPS).log())


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over x [B, N, D] with padded keys masked: one
    fused query/key/value projection, scores divided by sqrt(`scale`) where `scale` is "model"
    (D), "head" (D / heads) or "len" (N), an output projection; no residual, no normalisation."""

    def __init__(self, dim, heads, scale):
        super().__init__()
        if scale not in ("model", "head", "len"):
            raise ValueError(f"scale must be model, head or len; got {scale!r}")
        self.heads, self.scale = heads, scale
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, mask):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        divisor = {"model": d, "head": d // self.heads, "len": n}[self.scale] ** 0.5
        scores = (q @ k.transpose(-1, -2) / divisor).masked_fill(~mask[:, None, None, :], NEG_INF)
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        return self.out(context)


class TargetAttention(nn.Module):
    """DIN's activation unit (std/attention.recspec): an MLP [4D → hidden → 1] scores
    concat(q, k, q - k, q * k) for every key, and the keys are summed weighted by the softmax of
    the scores over the valid positions (`softmax`) or by the raw scores (DIN: no
    normalisation), padding weighted 0. query [B, D], keys [B, N, D], mask [B, N] → [B, D]."""

    def __init__(self, dim, hidden, softmax):
        super().__init__()
        self.softmax = softmax
        self.score = mlp([4 * dim, hidden, 1], relu_last=False)

    def forward(self, query, keys, mask):
        q = query.unsqueeze(1).expand_as(keys)
        scores = self.score(torch.cat([q, keys, q - keys, q * keys], -1)).squeeze(-1)
        weights = masked_softmax(scores, mask) if self.softmax else scores * mask
        return (weights.unsqueeze(1) @ keys).squeeze(1)


class RecspecWeights:
    """Builds a reference module's `state_dict` from recspec's tensors (keyed like recspec's weight
    files: `items/table`, `deep/layer0.weight`...; dense weights stored [In, Out], torch's
    nn.Linear stores [Out, In]). Every recspec tensor must be used exactly once and every entry
    of the module's state_dict filled (`finish`, which `convert` calls).

    The layouts differ by transposes and concatenations only, so the same map carries gradients
    (recspec layout → reference layout) as well as weights."""

    def __init__(self, tensors):
        self._tensors = dict(tensors)
        self._out = {}

    def take(self, key):
        """recspec's tensor `key` (each key once)."""
        return self._tensors.pop(key)

    def put(self, name, value):
        """The state_dict entry `name` (each name once)."""
        if name in self._out:
            raise KeyError(f"{name} mapped twice")
        self._out[name] = value

    def copy(self, name, key):
        """Entry `name` is recspec's `key` as it is (tables, biases, memory slots)."""
        self.put(name, self.take(key))

    def linear(self, name, weight, bias=None):
        """nn.Linear `name` from recspec's dense `weight` [In, Out] (and `bias` [Out])."""
        self.put(f"{name}.weight", self.take(weight).t())
        if bias is not None:
            self.copy(f"{name}.bias", bias)

    def mlp(self, name, sequential, prefix):
        """An `mlp(...)` Sequential `name` from recspec's MLP `prefix` (`prefix/layerI.weight`)."""
        linears = [i for i, m in enumerate(sequential) if isinstance(m, nn.Linear)]
        for layer, index in enumerate(linears):
            self.linear(f"{name}.{index}", f"{prefix}/layer{layer}.weight", f"{prefix}/layer{layer}.bias")

    def attention(self, name, prefix):
        """A SelfAttention `name` from recspec's SelfAttention `prefix` (query, key, value, out)."""
        parts = ("query", "key", "value")
        self.put(f"{name}.qkv.weight", torch.cat([self.take(f"{prefix}/{p}.weight").t() for p in parts], 0))
        self.put(f"{name}.qkv.bias", torch.cat([self.take(f"{prefix}/{p}.bias") for p in parts], 0))
        self.linear(f"{name}.out", f"{prefix}/out.weight", f"{prefix}/out.bias")

    def target_attention(self, name, module, prefix):
        """TargetAttention `module` (entry `name`) from recspec's TargetAttention block instance
        `prefix`, whose scoring MLP is `prefix/scores`."""
        self.mlp(f"{name}.score", module.score, f"{prefix}/scores")

    def finish(self, model):
        """The state_dict entries; KeyError unless every recspec tensor was used and every entry of
        `model.state_dict()` filled, ValueError on a shape that does not fit."""
        expected = model.state_dict()
        missing = [name for name in expected if name not in self._out]
        extra = [name for name in self._out if name not in expected]
        if self._tensors or missing or extra:
            raise KeyError(
                f"recspec keys not mapped: {sorted(self._tensors)}; entries not filled: {missing}; unknown: {extra}"
            )
        for name, value in self._out.items():
            if tuple(value.shape) != tuple(expected[name].shape):
                raise ValueError(
                    f"{name}: recspec gives shape {tuple(value.shape)}, the module has {tuple(expected[name].shape)}"
                )
        return dict(self._out)


def convert(model, tensors):
    """`model`'s state_dict built from recspec's `tensors` by `model.recspec_layout`."""
    w = RecspecWeights(tensors)
    model.recspec_layout(w)
    return w.finish(model)
