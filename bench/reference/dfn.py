"""DFN (Xie et al., IJCAI 2020) as specs/dfn.recspec defines it, hand-written in PyTorch.

One item table embeds the target and the click, unclick and dislike sequences. Per feedback type
a transformer (eqs. 1-5) prepends the target to the sequence, concatenates a learned position
embedding and projects to D, runs 4-head self-attention scaled by sqrt(D) over the n + 1
behaviours, and mean-pools the valid ones. Strong feedback attends over the unclicks (eqs. 6-8,
DIN-style target attention, softmax-normalised). Wide (per-id weight plus a field bias), FM
(second-order term per dimension) and a Deep MLP [32, 16] read the F field embeddings, the target
and the five feedback vectors (F + 6 fields); p = sigmoid(w · [wide, fm, deep]) without a bias.
Losses (eq. 15): -click log p, -unclick log(1 - p), -dislike log(1 - p), weights 1 : 1 : 10.
"""

import torch
from torch import nn

from .layers import SelfAttention, TargetAttention, embedding, masked_mean, mlp, nll

DIMS = {"T": 30, "D": 64, "F": 47, "V": 100000, "FV": 100000}
HEADS = 4
LABELS = ("click", "unclick", "dislike")
LOSS_WEIGHTS = {"click": 1.0, "unclick": 1.0, "dislike": 10.0}
#: Loss terms that depend on random draws in training (none: DFN has no dropout or sampling).
SAMPLED_LOSSES = ()
SEQUENCES = ("clicks", "unclicks", "dislikes")


def inputs(dims):
    """The inputs, in a generated module's `INPUTS` format."""
    t, v = dims["T"], dims["V"]
    out = {"item": ("id", "feature", (None,), v), "fields": ("id", "feature", (None, dims["F"]), dims["FV"])}
    for name in SEQUENCES:
        out[name] = ("id", "sequence", (None, t), v)
        out[f"{name}.mask"] = ("mask", "mask", (None, t), None)
    return out


class FeedbackTransformer(nn.Module):
    """Internal feedback interaction (eqs. 1-5): target [B, D], items [B, T, D], mask [B, T] →
    [B, D]."""

    def __init__(self, dim, length, heads):
        super().__init__()
        self.position = nn.Parameter(torch.empty(length, dim))
        nn.init.normal_(self.position, std=0.05)
        self.joint = nn.Linear(2 * dim, dim)
        self.attention = SelfAttention(dim, heads, scale="model")

    def forward(self, target, items, mask):
        b = items.shape[0]
        behaviours = torch.cat([target.unsqueeze(1), items], 1)
        valid = torch.cat([mask.new_ones(b, 1), mask], 1)
        joint = self.joint(torch.cat([behaviours, self.position.expand(b, -1, -1)], -1))
        return masked_mean(self.attention(joint, valid), valid)


class Model(nn.Module):
    def __init__(self, dims):
        super().__init__()
        d, f = dims["D"], dims["F"]
        self.items = embedding(dims["V"], d)
        self.transformers = nn.ModuleDict(
            {name: FeedbackTransformer(d, dims["T"] + 1, HEADS) for name in SEQUENCES}
        )
        self.dislike_unclick = TargetAttention(d, d, softmax=True)
        self.click_unclick = TargetAttention(d, d, softmax=True)
        self.fields = embedding(dims["FV"], d)
        self.wide = nn.Embedding(dims["FV"], 1)
        nn.init.zeros_(self.wide.weight)
        self.wide_bias = nn.Parameter(torch.zeros(f))
        self.deep = mlp([(f + 6) * d, 32, 16], relu_last=True)
        self.head = nn.Linear(f + d + 16, 1, bias=False)

    def forward(self, x, labels):
        t = self.items(x["item"])
        u = self.items(x["unclicks"])
        seqs = {"clicks": self.items(x["clicks"]), "unclicks": u, "dislikes": self.items(x["dislikes"])}
        f_c, f_u, f_d = (self.transformers[n](t, seqs[n], x[f"{n}.mask"]) for n in SEQUENCES)
        f_ud = self.dislike_unclick(f_d, u, x["unclicks.mask"])
        f_uc = self.click_unclick(f_c, u, x["unclicks.mask"])
        features = torch.cat(
            [self.fields(x["fields"]), t.unsqueeze(1), torch.stack([f_c, f_d, f_u, f_uc, f_ud], 1)], 1
        )
        wide = self.wide(x["fields"]).squeeze(-1) + self.wide_bias
        total = features.sum(1)
        fm = 0.5 * (total * total - (features * features).sum(1))
        deep = self.deep(features.flatten(1))
        p = torch.sigmoid(self.head(torch.cat([wide, fm, deep], -1)))
        losses = {
            "click": nll(p, labels["click"]).mean(),
            "unclick": nll(1 - p, labels["unclick"]).mean(),
            "dislike": nll(1 - p, labels["dislike"]).mean(),
        }
        return {"p": p, "p_dislike": 1 - p}, losses

    def recspec_layout(self, w):
        w.copy("items.weight", "items/table")
        for name, prefix in zip(SEQUENCES, ("f_c", "f_u", "f_d")):
            w.copy(f"transformers.{name}.position", f"{prefix}/positioned/table")
            w.linear(f"transformers.{name}.joint", f"{prefix}/joint/weight", f"{prefix}/joint/bias")
            w.attention(f"transformers.{name}.attention", f"{prefix}/attended")
        w.target_attention("dislike_unclick", self.dislike_unclick, "f_ud")
        w.target_attention("click_unclick", self.click_unclick, "f_uc")
        w.copy("fields.weight", "field_emb/table")
        w.copy("wide.weight", "wide/weight")
        w.copy("wide_bias", "wide/bias")
        w.mlp("deep", self.deep, "deep")
        w.linear("head", "p/Linear/weight")
