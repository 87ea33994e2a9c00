"""DIN (Zhou et al., KDD 2018) as specs/din.recspec defines it, hand-written in PyTorch.

The target item attends over the click sequence with DIN's activation unit (MLP [36, 1] over
concat(q, k, q - k, q * k)), its weights not normalised; the unclick and dislike sequences are
mean-pooled over their valid positions. An MLP [200, 80] with ReLU after both layers reads the F
field embeddings, the target, the interest and the two pooled vectors; p = sigmoid(Linear(1)).
Loss: binary cross-entropy of p against `click`.
"""

import torch
from torch import nn

from .layers import TargetAttention, bce, embedding, masked_mean, mlp

DIMS = {"T": 30, "D": 64, "F": 47, "V": 100000, "FV": 100000}
LABELS = ("click",)
LOSS_WEIGHTS = {"click": 1.0}
#: Loss terms that depend on random draws in training (none).
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


class Model(nn.Module):
    def __init__(self, dims):
        super().__init__()
        d = dims["D"]
        self.items = embedding(dims["V"], d)
        self.interest = TargetAttention(d, 36, softmax=False)
        self.fields = embedding(dims["FV"], d)
        self.deep = mlp([(dims["F"] + 4) * d, 200, 80], relu_last=True)
        self.head = nn.Linear(80, 1)

    def forward(self, x, labels):
        t = self.items(x["item"])
        interest = self.interest(t, self.items(x["clicks"]), x["clicks.mask"])
        pooled_u = masked_mean(self.items(x["unclicks"]), x["unclicks.mask"])
        pooled_d = masked_mean(self.items(x["dislikes"]), x["dislikes.mask"])
        features = torch.cat([self.fields(x["fields"]), torch.stack([t, interest, pooled_u, pooled_d], 1)], 1)
        p = torch.sigmoid(self.head(self.deep(features.flatten(1))))
        return {"p": p}, {"click": bce(p, labels["click"]).mean()}

    def recspec_layout(self, w):
        w.copy("items.weight", "items/table")
        w.target_attention("interest", self.interest, "interest")
        w.copy("fields.weight", "field_emb/table")
        w.mlp("deep", self.deep, "deep")
        w.linear("head", "p/Linear/weight", "p/Linear/bias")
