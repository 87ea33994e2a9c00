"""DUMN (Bian et al., RecSys 2021) as specs/dumn.recspec defines it, hand-written in PyTorch.

e_user flattens the P profile-field embeddings (size E), e_item the target item (size D, the
item table every sequence shares) and the F impression-field embeddings (size E). For each of the
click, unclick, like and dislike sequences: multi-head interaction attention (eqs. 1-5; 4-head
self-attention scaled by sqrt(T), then target attention with scores ReLU(Linear(1)(concat(e_user,
e_item, o_j))), softmax over the valid positions); clicks are purified by dislikes and unclicks by
likes (orthogonal mapping, eqs. 6-7); a user memory (eqs. 8-12, 18: a controller Linear(512) +
ReLU over concat(f, e_user), 256 slots of size D addressed by the cosine softmax, read before a
batch-averaged erase/add write) gives the read r and the write-addressed summary q; PAIR gates
(eq. 13) x * sigmoid(W x) on f and r. An MLP [200, 80, 1] over concat(e_user, e_item, the gated
vectors) gives p (eq. 15).

Losses: binary cross-entropy of p against `click` (eq. 16), and per feedback type a cosine
triplet loss (eqs. 17-20, margin 0.5) pulling q towards an item of its own sequence and away from
one of the contrasting sequence, weighted 0 for rows lacking either sequence.

Where it necessarily differs from recspec: the triplet items are drawn, in training, uniformly
among each row's valid positions from torch's generator (recspec draws them from its SplitMix
pass generator), so the triplet losses of a training step differ; in eval mode both take the last
valid position, and everything else (memory writes included) is deterministic.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .layers import SelfAttention, bce, embedding, masked_softmax, mlp

DIMS = {"T": 30, "D": 64, "E": 16, "F": 47, "P": 4, "V": 100000, "FV": 100000, "PV": 100000}
HEADS = 4
SLOTS = 256
FFN = 512
MARGIN = 0.5
LABELS = ("click",)
LOSS_WEIGHTS = {
    "click": 1.0,
    "triplet_click": 1.0,
    "triplet_unclick": 1.0,
    "triplet_like": 1.0,
    "triplet_dislike": 1.0,
}
#: Loss terms that depend on random draws in training: the sampled triplet items.
SAMPLED_LOSSES = ("triplet_click", "triplet_unclick", "triplet_like", "triplet_dislike")
#: Triplet loss -> (the memory's own sequence, the contrasting one).
TRIPLETS = {
    "triplet_click": ("clicks", "unclicks"),
    "triplet_unclick": ("unclicks", "clicks"),
    "triplet_like": ("likes", "dislikes"),
    "triplet_dislike": ("dislikes", "likes"),
}
#: Sequence, and its recspec prefix letter (f_c, m_c, u_c...).
SEQUENCES = {"clicks": "c", "unclicks": "u", "likes": "l", "dislikes": "d"}


def inputs(dims):
    """The inputs, in a generated module's `INPUTS` format."""
    t, v = dims["T"], dims["V"]
    out = {
        "item": ("id", "feature", (None,), v),
        "fields": ("id", "feature", (None, dims["F"]), dims["FV"]),
        "profile": ("id", "feature", (None, dims["P"]), dims["PV"]),
    }
    for name in SEQUENCES:
        out[name] = ("id", "sequence", (None, t), v)
        out[f"{name}.mask"] = ("mask", "mask", (None, t), None)
    return out


class InteractionAttention(nn.Module):
    """Eqs. 1-5: user [B, U], target [B, I], items [B, T, D], mask [B, T] → [B, D]."""

    def __init__(self, user_dim, target_dim, dim, heads):
        super().__init__()
        self.attention = SelfAttention(dim, heads, scale="len")
        self.score = nn.Linear(user_dim + target_dim + dim, 1)

    def forward(self, user, target, items, mask):
        o = self.attention(items, mask)
        n = items.shape[1]
        context = torch.cat([user.unsqueeze(1).expand(-1, n, -1), target.unsqueeze(1).expand(-1, n, -1), o], -1)
        weights = masked_softmax(torch.relu(self.score(context).squeeze(-1)), mask)
        return (weights.unsqueeze(1) @ o).squeeze(1)


class UserMemory(nn.Module):
    """Eqs. 8-12, 18: short [B, D], user [B, U] → (r, q), each [B, D]. The slots are a buffer,
    overwritten with the batch's write after every training forward (detached)."""

    def __init__(self, in_dim, ffn, slots, dim):
        super().__init__()
        self.controller = nn.Sequential(nn.Linear(in_dim, ffn), nn.ReLU())
        self.read_key = nn.Linear(ffn, dim)
        self.write_key = nn.Linear(ffn, dim)
        self.erase = nn.Linear(ffn, dim)
        self.add = nn.Linear(ffn, dim)
        self.register_buffer("slots", 0.1 * torch.randn(slots, dim))

    def forward(self, short, user):
        h = self.controller(torch.cat([short, user], -1))
        memory = self.slots
        keys = F.normalize(memory, dim=-1)

        def address(k):
            """Slot weights [B, S]: softmax of the cosine of k with every slot."""
            return torch.softmax(F.normalize(k, dim=-1) @ keys.t(), -1)

        w_read = address(self.read_key(h))
        w_write = address(self.write_key(h))
        average = w_write.t() / h.shape[0]  # [S, B]: the batch's writes averaged
        new = memory * (1 - average @ torch.sigmoid(self.erase(h))) + average @ torch.tanh(self.add(h))
        if self.training:
            self.slots = new.detach()
        return w_read @ memory, w_write @ new


class Gate(nn.Module):
    """PAIR gate (eq. 13): x * sigmoid(x W)."""

    def __init__(self, dim):
        super().__init__()
        self.linear = nn.Linear(dim, dim, bias=False)

    def forward(self, x):
        return x * torch.sigmoid(self.linear(x))


def orthogonal(a, to):
    """a minus its component along `to` (eqs. 6-7), rows [B, D]."""
    return a - (a * to).sum(-1, keepdim=True) / ((to * to).sum(-1, keepdim=True) + 1e-8) * to


def sample_valid(x, mask, training):
    """One valid position of each row of x [B, T, D] → [B, D]: uniformly at random in training,
    the last valid one in eval; zeros for a row without valid positions."""
    b, n = mask.shape
    if training:
        score = torch.rand(b, n, device=x.device)
    else:
        score = torch.arange(n, device=x.device, dtype=torch.float32).expand(b, n)
    pick = score.masked_fill(~mask, -1.0).argmax(1)
    return x[torch.arange(b, device=x.device), pick] * mask.any(1, keepdim=True)


def triplet(anchor, positive, negative, weight):
    """Cosine triplet loss relu(d(a, p) - d(a, n) + margin), d = 1 - cos, times weight → [B]."""
    d_pos = 1 - F.cosine_similarity(anchor, positive, dim=-1)
    d_neg = 1 - F.cosine_similarity(anchor, negative, dim=-1)
    return torch.relu(d_pos - d_neg + MARGIN) * weight


class Model(nn.Module):
    def __init__(self, dims):
        super().__init__()
        d, e = dims["D"], dims["E"]
        user_dim, item_dim = dims["P"] * e, d + dims["F"] * e
        self.items = embedding(dims["V"], d)
        self.profile = embedding(dims["PV"], e)
        self.fields = embedding(dims["FV"], e)
        self.attention = nn.ModuleDict({s: InteractionAttention(user_dim, item_dim, d, HEADS) for s in SEQUENCES})
        self.memory = nn.ModuleDict({s: UserMemory(d + user_dim, FFN, SLOTS, d) for s in SEQUENCES})
        self.short_gate = nn.ModuleDict({s: Gate(d) for s in SEQUENCES})
        self.long_gate = nn.ModuleDict({s: Gate(d) for s in SEQUENCES})
        self.head = mlp([user_dim + item_dim + 8 * d, 200, 80, 1], relu_last=False)

    def forward(self, x, labels):
        e_user = self.profile(x["profile"]).flatten(1)
        e_item = torch.cat([self.items(x["item"]), self.fields(x["fields"]).flatten(1)], -1)
        seqs = {s: self.items(x[s]) for s in SEQUENCES}
        masks = {s: x[f"{s}.mask"] for s in SEQUENCES}
        f = {s: self.attention[s](e_user, e_item, seqs[s], masks[s]) for s in SEQUENCES}
        f["clicks"] = orthogonal(f["clicks"], to=f["dislikes"])
        f["unclicks"] = orthogonal(f["unclicks"], to=f["likes"])
        read, summary = {}, {}
        for s in SEQUENCES:
            read[s], summary[s] = self.memory[s](f[s], e_user)
        r_cross = torch.cat([g for s in SEQUENCES for g in (self.short_gate[s](f[s]), self.long_gate[s](read[s]))], -1)
        p = torch.sigmoid(self.head(torch.cat([e_user, e_item, r_cross], -1)))

        sampled = {s: sample_valid(seqs[s], masks[s], self.training) for s in SEQUENCES}
        losses = {"click": bce(p, labels["click"]).mean()}
        for name, (own, other) in TRIPLETS.items():
            both = (masks[own].any(1) & masks[other].any(1)).to(p.dtype)  # rows with both sequences
            losses[name] = triplet(summary[own], sampled[own], sampled[other], both).mean()
        return {"p": p}, losses

    def recspec_layout(self, w):
        w.copy("items.weight", "items/table")
        w.copy("profile.weight", "e_user/Embedding/table")
        w.copy("fields.weight", "e_item/Embedding_2/table")
        for s, c in SEQUENCES.items():
            w.attention(f"attention.{s}.attention", f"f_{c}/o")
            w.linear(f"attention.{s}.score", f"f_{c}/scores/Linear/weight", f"f_{c}/scores/Linear/bias")
            w.linear(f"memory.{s}.controller.0", f"m_{c}/controller/layer0.weight", f"m_{c}/controller/layer0.bias")
            w.copy(f"memory.{s}.slots", f"m_{c}/return/slots")
            for part in ("read_key", "write_key", "erase", "add"):
                w.linear(f"memory.{s}.{part}", f"m_{c}/return/{part}.weight", f"m_{c}/return/{part}.bias")
            w.linear(f"short_gate.{s}.linear", f"u_{c}/Gate/Linear/weight")
            w.linear(f"long_gate.{s}.linear", f"u_{c}/Gate_2/Linear/weight")
        w.mlp("head", self.head, "p/MLP")
