"""Offline metrics exactly as recspec computes them (`src/metrics.rs`): AUC by the rank-sum
formula with tied scores sharing their mean rank, GAUC over users that have both classes
weighted by their example counts, and mean log loss with probabilities clamped to
[1e-7, 1 - 1e-7].

Scores are taken as float32 (as Rust holds them) and every sum is an f64 sum in Rust's order,
so the results are equal to the Rust ones bit for bit. A label counts as positive when > 0.5.
"""

import math

import numpy as np

LOGLOSS_CLAMP = 1e-7


def _f32(xs):
    return np.asarray(xs, dtype=np.float32).reshape(-1)


def auc(scores, labels):
    """Area under the ROC curve; None when the labels hold only one class."""
    s = _f32(scores)
    pos = _f32(labels) > 0.5
    p = int(pos.sum())
    n = len(s) - p
    if p == 0 or n == 0:
        return None
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    # Tie groups: runs of equal scores (NaN equals nothing, so each NaN is its own group).
    starts = np.flatnonzero(np.concatenate(([True], sorted_s[1:] != sorted_s[:-1])))
    ends = np.concatenate((starts[1:], [len(s)])) - 1
    mean_rank = (starts + ends).astype(np.float64) / 2.0 + 1.0
    group = np.repeat(np.arange(len(starts)), ends - starts + 1)
    # Every rank is a multiple of 1/2 and the sum stays far below 2**52: the sum is exact in any
    # order, hence equal to Rust's sequential one.
    rank_sum = float(mean_rank[group][pos[order]].sum())
    p, n = float(p), float(n)
    return (rank_sum - p * (p + 1.0) / 2.0) / (p * n)


def gauc(scores, labels, users):
    """Per-user AUC averaged with each user's example count as weight, over users with both
    classes: `(gauc, users counted)`, or None when no user has both."""
    s, y = _f32(scores), _f32(labels)
    u = np.asarray(users, dtype=np.uint64).reshape(-1)
    order = np.argsort(u, kind="stable")
    su = u[order]
    starts = np.flatnonzero(np.concatenate(([True], su[1:] != su[:-1]))) if len(su) else np.array([], dtype=int)
    ends = np.concatenate((starts[1:], [len(su)]))
    total = weight = 0.0
    counted = 0
    for a, b in zip(starts, ends):  # users in ascending order, as Rust's BTreeMap
        idx = order[a:b]
        value = auc(s[idx], y[idx])
        if value is not None:
            total += value * float(b - a)
            weight += float(b - a)
            counted += 1
    if weight > 0.0:
        return total / weight, counted
    return None


def logloss(probs, labels):
    """Mean binary log loss of probabilities clamped to [1e-7, 1 - 1e-7]; None when empty."""
    p32, y32 = _f32(probs), _f32(labels)
    if len(p32) == 0:
        return None
    lo, hi = LOGLOSS_CLAMP, 1.0 - LOGLOSS_CLAMP
    total = 0.0
    # math.log is libm's log, as Rust's f64::ln; numpy's differs in the last ulp.
    for p, y in zip(p32.tolist(), y32.tolist()):
        p = lo if p < lo else (hi if p > hi else p)
        total += -(y * math.log(p) + (1.0 - y) * math.log(1.0 - p))
    return total / len(p32)


def stream_metrics(scores, labels, users, scored_by=None):
    """The metrics recspec reports for one label stream (`StreamMetrics` in
    `src/runtime/eval.rs`)."""
    g = gauc(scores, labels, users)
    y = _f32(labels)
    return {
        "scored_by": scored_by,
        "examples": int(len(y)),
        "positives": int((y > 0.5).sum()),
        "auc": auc(scores, labels),
        "gauc": None if g is None else g[0],
        "gauc_users": 0 if g is None else g[1],
        "logloss": logloss(scores, labels),
    }
