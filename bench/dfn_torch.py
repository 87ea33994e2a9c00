"""PyTorch reference of specs/dfn.recspec, for the speed comparison in README.md.

Same architecture and sizes as the spec compiled against the simulator's default data
(V=1000 items, F=8 fields, FV from data.toml, T=30, D=64, 4 heads), batch 256, Adam,
on the CPU with a fixed thread count. Run only by hand (never by CI):

    python3 bench/dfn_torch.py --data data --threads 2 [--recspec-train SAMPLES_PER_SEC]
"""
import argparse
import math
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F


class FeedbackTransformer(nn.Module):
    """Target prepended, position embedding concatenated and projected, MHA scaled by sqrt(D),
    masked mean pooling (padding excluded)."""

    def __init__(self, d, t, heads):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(t + 1, d) * 0.05)
        self.joint = nn.Linear(2 * d, d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.heads, self.d = heads, d

    def forward(self, target, items, mask):
        b, n, d = items.shape
        x = torch.cat([target.unsqueeze(1), items], 1)
        valid = torch.cat([torch.ones(b, 1, dtype=torch.bool), mask], 1)
        x = self.joint(torch.cat([x, self.pos.unsqueeze(0).expand(b, -1, -1)], 2))
        h, dh = self.heads, d // self.heads
        q = self.q(x).view(b, n + 1, h, dh).transpose(1, 2)
        k = self.k(x).view(b, n + 1, h, dh).transpose(1, 2)
        v = self.v(x).view(b, n + 1, h, dh).transpose(1, 2)
        s = q @ k.transpose(2, 3) / math.sqrt(d)
        s = s + (~valid).float().view(b, 1, 1, n + 1) * -1e9
        ctx = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, n + 1, d)
        y = self.o(ctx)
        m = valid.float().unsqueeze(2)
        return (y * m).sum(1) / m.sum(1).clamp(min=1)


class TargetAttention(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * d, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, query, keys, mask):
        q = query.unsqueeze(1).expand_as(keys)
        s = self.mlp(torch.cat([q, keys, q - keys, q * keys], -1)).squeeze(-1)
        s = s + (~mask).float() * -1e9
        w = s.softmax(1) * mask.float()
        return (w.unsqueeze(2) * keys).sum(1)


class DFN(nn.Module):
    def __init__(self, v, fv, f, t, d, heads):
        super().__init__()
        self.items = nn.Embedding(v, d)
        self.tf = nn.ModuleList(FeedbackTransformer(d, t, heads) for _ in range(3))
        self.ext = nn.ModuleList(TargetAttention(d, d) for _ in range(2))
        self.fields = nn.Embedding(fv, d)
        self.wide_w = nn.Embedding(fv, 1)
        self.wide_b = nn.Parameter(torch.zeros(f))
        self.deep = nn.Sequential(nn.Linear((f + 5) * d, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
        self.out = nn.Linear(f + d + 16, 1, bias=False)

    def forward(self, item, fields, seqs, masks):
        t = self.items(item)
        c, u, dl = (self.items(s) for s in seqs)
        f_c = self.tf[0](t, c, masks[0])
        f_u = self.tf[1](t, u, masks[1])
        f_d = self.tf[2](t, dl, masks[2])
        f_ud = self.ext[0](f_d, u, masks[1])
        f_uc = self.ext[1](f_c, u, masks[1])
        feats = torch.cat([self.fields(fields), torch.stack([f_c, f_d, f_u, f_uc, f_ud], 1)], 1)
        wide = self.wide_w(fields).squeeze(-1) + self.wide_b
        s = feats.sum(1)
        bi = 0.5 * (s * s - (feats * feats).sum(1))
        deep = self.deep(feats.flatten(1))
        return torch.sigmoid(self.out(torch.cat([wide, bi, deep], -1)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--recspec-train", type=float, help="recspec train samples/s, to print the ratio")
    ap.add_argument("--recspec-infer-us", type=float, help="recspec inference us/example, to print the ratio")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(f"{a.data}/data.toml", "rb") as fh:
        hp = tomllib.load(fh)["hparams"]
    v, fv, f, t, d, heads, b = hp["V"], hp["FV"], hp["F"], hp["T"], 64, 4, a.batch
    model = DFN(v, fv, f, t, d, heads)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    item = torch.randint(0, v, (b,))
    fields = torch.randint(0, fv, (b, f))
    seqs = [torch.randint(0, v, (b, t)) for _ in range(3)]
    masks = [torch.arange(t).unsqueeze(0) < torch.randint(0, t + 1, (b, 1)) for _ in range(3)]
    labels = [torch.randint(0, 2, (b, 1)).float() for _ in range(3)]

    def step():
        p = model(item, fields, seqs, masks).clamp(1e-7, 1 - 1e-7)
        loss = -(labels[0] * p.log()).mean() - (labels[1] * (1 - p).log()).mean() - 10 * (labels[2] * (1 - p).log()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    train_sps = a.steps * b / (time.perf_counter() - start)
    with torch.no_grad():
        for _ in range(3):
            model(item, fields, seqs, masks)
        start = time.perf_counter()
        for _ in range(a.steps):
            model(item, fields, seqs, masks)
        infer_us = (time.perf_counter() - start) / (a.steps * b) * 1e6
    params = sum(p.numel() for p in model.parameters())
    print(f"pytorch {torch.__version__} threads={a.threads} params={params}")
    print(f"pytorch train: {train_sps:.0f} samples/s; inference: {infer_us:.1f} us/example")
    if a.recspec_train:
        print(f"ratio recspec/pytorch train samples/s: {a.recspec_train / train_sps:.3f}")
    if a.recspec_infer_us:
        print(f"ratio recspec/pytorch inference latency: {a.recspec_infer_us / infer_us:.3f}")


if __name__ == "__main__":
    main()
