"""Sequential retrieval with the not-to-recommend loss (Wang et al., RecSys 2023) as
specs/retrieval_ntr.recspec defines it at its defaults (`encoder: gru`, `corpus: full`),
hand-written in PyTorch.

Every history item is its embedding (size D) with its dwell and dislike features, projected by a
Linear(D); an nn.GRU(D, D) runs over the history and the user state s is its state after the last
valid item (zeros for an empty history). s scores the whole corpus through the item table,
p = softmax(s · v), and the losses of eq. 1 are -engaged log p(item) (weight 1),
-dislike log(1 - p(item)) (weight 1) and -skip log(1 - p(item)) (weight 0.5), probabilities
clamped at 1e-7.

recspec's GRU keeps its state over padded positions; the loader's masks are prefixes (the valid
items first), so the state after the last valid item is torch's output at position len - 1 of the
padded sequence. The spec's other switches (the attention encoder, the sampled softmax) are not
written here.
"""

import torch
from torch import nn

from .layers import EPS, embedding

DIMS = {"T": 30, "D": 64, "V": 100000}
LABELS = ("engaged", "dislike", "skip")
LOSS_WEIGHTS = {"engaged": 1.0, "dislike": 1.0, "skip": 0.5}
#: Loss terms that depend on random draws in training (none with the full softmax).
SAMPLED_LOSSES = ()


def inputs(dims):
    """The inputs, in a generated module's `INPUTS` format."""
    t = dims["T"]
    return {
        "item": ("id", "feature", (None,), dims["V"]),
        "history": ("id", "sequence", (None, t), dims["V"]),
        "history.mask": ("mask", "mask", (None, t), None),
        "history.dwell": ("float", "side", (None, t), None),
        "history.disliked": ("float", "side", (None, t), None),
    }


class Model(nn.Module):
    def __init__(self, dims):
        super().__init__()
        d = dims["D"]
        self.items = embedding(dims["V"], d)
        self.steps = nn.Linear(d + 2, d)
        self.gru = nn.GRU(d, d, batch_first=True)

    def forward(self, x, labels):
        history = torch.cat(
            [self.items(x["history"]), x["history.dwell"].unsqueeze(-1), x["history.disliked"].unsqueeze(-1)], -1
        )
        states, _ = self.gru(self.steps(history))
        lengths = x["history.mask"].sum(1)
        rows = torch.arange(states.shape[0], device=states.device)
        s = states[rows, (lengths - 1).clamp_min(0)] * (lengths > 0).unsqueeze(-1)
        scores = s @ self.items.weight.t()
        p = torch.softmax(scores, -1).gather(1, x["item"].unsqueeze(1)).squeeze(1)
        keep = (1 - p).clamp_min(EPS).log()
        losses = {
            "engaged": (-p.clamp_min(EPS).log() * labels["engaged"]).mean(),
            "dislike": (-keep * labels["dislike"]).mean(),
            "skip": (-keep * labels["skip"]).mean(),
        }
        return {"scores": scores}, losses

    def recspec_layout(self, w):
        w.copy("items.weight", "items/table")
        w.linear("steps", "steps/weight", "steps/bias")
        # recspec's GRU stores (W [In, 3H], b [3H]) for the input and the hidden state, gates in
        # torch's order (reset, update, candidate).
        w.put("gru.weight_ih_l0", w.take("s/input.weight").t())
        w.put("gru.bias_ih_l0", w.take("s/input.bias"))
        w.put("gru.weight_hh_l0", w.take("s/hidden.weight").t())
        w.put("gru.bias_hh_l0", w.take("s/hidden.bias"))
