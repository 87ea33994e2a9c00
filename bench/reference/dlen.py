"""DLEN (Deep Latent Emotion Network) as specs/dlen.recspec defines it, hand-written in PyTorch.

The shared input x concatenates the target item, the F field and P profile embeddings and the
mean-pooled click and like histories (size D each, one item table). MMoE: 5 experts, each an MLP
[256, 128, 64] with ReLU after every layer, mixed per task by a softmax gate over the experts. A
hidden-state network (MLP [256, 128, 64] + ReLU, then sigmoid(Linear(1))) predicts P(UP). Each
task's tower (specs/lib/mtl.recspec `DlenTower`): h = ReLU(Linear(32)), P(k|UP) = sigmoid(W h),
P(k|not UP) = alpha_k sigmoid(W' h), P(k) = P(k|UP) P(UP) + P(k|not UP) (1 - P(UP)). Losses:
binary cross-entropy of P(k) against each task's label, weight 1.
"""

import torch
from torch import nn

from .layers import bce, embedding, masked_mean, mlp

DIMS = {"D": 16, "F": 8, "P": 4, "T": 30, "V": 100000, "FV": 100000, "PV": 100000}
EXPERTS = 5
UNITS = [256, 128, 64]
#: Task -> alpha_k, the bound of P(k|not UP) (the spec's params).
ALPHAS = {"click": 0.13, "like": 0.05, "follow": 0.033, "push": 0.032, "comment": 0.02}
LABELS = tuple(ALPHAS)
LOSS_WEIGHTS = {task: 1.0 for task in ALPHAS}
#: Loss terms that depend on random draws in training (none).
SAMPLED_LOSSES = ()
SEQUENCES = ("clicks", "likes")


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


class MMoE(nn.Module):
    """Multi-gate mixture of experts: x [B, In] → [B, tasks, units[-1]]."""

    def __init__(self, in_dim, units, experts, tasks):
        super().__init__()
        self.experts = nn.ModuleList(mlp([in_dim, *units], relu_last=True) for _ in range(experts))
        self.gates = nn.ModuleList(nn.Linear(in_dim, experts) for _ in range(tasks))

    def forward(self, x):
        experts = torch.stack([expert(x) for expert in self.experts], 1)  # [B, E, H]
        gates = torch.stack([torch.softmax(gate(x), -1) for gate in self.gates], 1)  # [B, tasks, E]
        return gates @ experts


class Tower(nn.Module):
    """A DLEN tower: x [B, H], P(UP) [B, 1] → P(k) [B, 1]."""

    def __init__(self, dim, alpha, hidden=32):
        super().__init__()
        self.alpha = alpha
        self.hidden = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.given_up = nn.Linear(hidden, 1)
        self.given_not = nn.Linear(hidden, 1)

    def forward(self, x, up):
        h = self.hidden(x)
        return torch.sigmoid(self.given_up(h)) * up + self.alpha * torch.sigmoid(self.given_not(h)) * (1 - up)


class Model(nn.Module):
    def __init__(self, dims):
        super().__init__()
        d = dims["D"]
        in_dim = d * (1 + dims["F"] + dims["P"] + len(SEQUENCES))
        self.items = embedding(dims["V"], d)
        self.fields = embedding(dims["FV"], d)
        self.profile = embedding(dims["PV"], d)
        self.mmoe = MMoE(in_dim, UNITS, EXPERTS, len(ALPHAS))
        self.up = nn.Sequential(mlp([in_dim, *UNITS], relu_last=True), nn.Linear(UNITS[-1], 1))
        self.towers = nn.ModuleDict({task: Tower(UNITS[-1], alpha) for task, alpha in ALPHAS.items()})

    def forward(self, x, labels):
        pooled = [masked_mean(self.items(x[s]), x[f"{s}.mask"]) for s in SEQUENCES]
        item, fields, profile = self.items(x["item"]), self.fields(x["fields"]), self.profile(x["profile"])
        shared = torch.cat([item, fields.flatten(1), profile.flatten(1), *pooled], -1)
        tasks = self.mmoe(shared)
        p_up = torch.sigmoid(self.up(shared))
        outputs = {"p_up": p_up}
        for k, task in enumerate(ALPHAS):
            outputs[f"p_{task}"] = self.towers[task](tasks[:, k], p_up)
        losses = {task: bce(outputs[f"p_{task}"], labels[task]).mean() for task in ALPHAS}
        return outputs, losses

    def recspec_layout(self, w):
        w.copy("items.weight", "items/table")
        w.copy("fields.weight", "x/Embedding_2/table")
        w.copy("profile.weight", "x/Embedding_3/table")
        # recspec stacks the experts' layers ([E, In, Out]) and the gates ([tasks, In, E]).
        layers = [
            (w.take(f"tasks/experts.layer{i}.weight"), w.take(f"tasks/experts.layer{i}.bias")) for i in range(len(UNITS))
        ]
        for e in range(EXPERTS):
            for i, (weight, bias) in enumerate(layers):
                w.put(f"mmoe.experts.{e}.{2 * i}.weight", weight[e].t())
                w.put(f"mmoe.experts.{e}.{2 * i}.bias", bias[e])
        gate_w, gate_b = w.take("tasks/gates.weight"), w.take("tasks/gates.bias")
        for t in range(len(ALPHAS)):
            w.put(f"mmoe.gates.{t}.weight", gate_w[t].t())
            w.put(f"mmoe.gates.{t}.bias", gate_b[t])
        w.mlp("up.0", self.up[0], "p_up/MLP")
        w.linear("up.1", "p_up/Linear/weight", "p_up/Linear/bias")
        for task in ALPHAS:
            w.linear(f"towers.{task}.hidden.0", f"p_{task}/h/layer0.weight", f"p_{task}/h/layer0.bias")
            for part in ("given_up", "given_not"):
                w.linear(f"towers.{task}.{part}", f"p_{task}/{part}/Linear/weight", f"p_{task}/{part}/Linear/bias")
