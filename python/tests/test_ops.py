"""recspec_torch.ops: small hand-computed cases per kernel family, and float64 gradient checks of
the weighted ops."""

import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402

from recspec_torch import ops  # noqa: E402
from recspec_torch.rng import SplitMix  # noqa: E402
from floats import assert_close  # noqa: E402


def t(data, dtype=torch.float32):
    """A tensor from nested lists."""
    return torch.tensor(data, dtype=dtype)


def mask(data):
    """A bool mask from nested lists of 0/1."""
    return torch.tensor(data, dtype=torch.bool)


class Case(unittest.TestCase):
    def close(self, got, want, tol=1e-6):
        """Asserts equal shapes and values within `tol` (absolute and relative); NaN or
        infinity on either side fails (`floats.assert_close`)."""
        want = want if isinstance(want, torch.Tensor) else torch.tensor(want, dtype=got.dtype)
        self.assertEqual(tuple(got.shape), tuple(want.shape))
        assert_close(self, got, want.to(got.dtype), tol, tol, f"\n{got}\n!=\n{want}")


class ArithmeticAndLayout(Case):
    def test_binary_and_scalar(self):
        a, b = t([1.0, 2.0, 4.0]), t([2.0, 2.0, 2.0])
        self.close(ops.binary("add", a, b), [3.0, 4.0, 6.0])
        self.close(ops.binary("sub", a, b), [-1.0, 0.0, 2.0])
        self.close(ops.binary("mul", a, b), [2.0, 4.0, 8.0])
        self.close(ops.binary("div", a, b), [0.5, 1.0, 2.0])
        self.close(ops.scalar("sub", a, 10.0, left=True), [9.0, 8.0, 6.0])
        self.close(ops.scalar("sub", a, 10.0, left=False), [-9.0, -8.0, -6.0])
        self.close(ops.scalar("div", a, 2.0, left=True), [2.0, 1.0, 0.5])
        self.close(ops.scalar("div", a, 2.0, left=False), [0.5, 1.0, 2.0])
        self.close(ops.scalar("mul", a, 3.0, left=True), [3.0, 6.0, 12.0])
        self.close(ops.neg(a), [-1.0, -2.0, -4.0])
        # Masks and ids read as floats.
        self.close(ops.binary("add", mask([1, 0]), torch.tensor([3, 4])), [4.0, 4.0])
        with self.assertRaises(ValueError):
            ops.binary("pow", a, b)

    def test_layout(self):
        x = torch.arange(6.0).reshape(2, 3)
        self.close(ops.concat([x, x], 1), torch.cat([x, x], 1))
        self.assertEqual(tuple(ops.stack([x, x, x], 1).shape), (2, 3, 3))
        self.close(ops.stack([x, x + 10], 2)[:, :, 1], x + 10)
        self.close(ops.slice_(x, 1, 1, 2), [[1.0, 2.0], [4.0, 5.0]])
        self.close(ops.index(x, 1, 2), [2.0, 5.0])
        r = ops.repeat(x, 1, 4)
        self.assertEqual(tuple(r.shape), (2, 4, 3))
        self.close(r[:, 3], x)
        self.close(ops.reshape(x, (3, 2)), [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
        # Masks and ids keep their dtype through layout ops.
        self.assertEqual(ops.concat([mask([[1]]), mask([[0]])], 1).dtype, torch.bool)
        self.assertEqual(ops.index(torch.tensor([[1, 2]]), 1, 0).dtype, torch.int64)

    def test_masks(self):
        x = torch.zeros(2, 3, 4)
        m = ops.full_mask(x)
        self.assertEqual((m.dtype, tuple(m.shape)), (torch.bool, (2, 3)))
        self.assertTrue(bool(m.all()))
        self.close(ops.to_float(mask([1, 0])), [1.0, 0.0])
        self.assertEqual(ops.to_float(torch.tensor([7])).dtype, torch.float32)
        kept = ops.keep(mask([[1, 1, 0]]), t([[0.9, 0.2, 1.0]]))
        self.assertEqual(kept.tolist(), [[True, False, False]])
        self.close(ops.nonempty(mask([[1, 1, 0], [0, 0, 0]])), [1.0, 0.0])

    def test_sample_valid_eval_takes_last_valid(self):
        x = torch.arange(12.0).reshape(2, 3, 2)
        m = mask([[1, 1, 0], [0, 0, 0]])
        self.close(ops.sample_valid(x, m, False, None), [[2.0, 3.0], [0.0, 0.0]])

    def test_sample_valid_train_follows_the_generator(self):
        """Scores 1 + unit (f32) per element; SplitMix(3) gives 1.113, 1.700, 1.613."""
        x = t([[[10.0], [20.0], [30.0]]])
        self.close(ops.sample_valid(x, mask([[1, 1, 1]]), True, SplitMix(3)), [[20.0]])
        self.close(ops.sample_valid(x, mask([[1, 0, 1]]), True, SplitMix(3)), [[30.0]])
        rng = SplitMix(3)
        ops.sample_valid(x, mask([[1, 1, 1]]), True, rng)
        self.assertEqual(rng.state, (3 + 3 * 0x9E3779B97F4A7C15) % 2**64)  # three draws


class ActivationAndPooling(Case):
    def test_activations(self):
        x = t([-1.0, 0.0, 2.0])
        self.close(ops.activation(x, "relu"), [0.0, 0.0, 2.0])
        self.close(ops.activation(x, "sigmoid"), [1 / (1 + math.e), 0.5, 1 / (1 + math.exp(-2))])
        self.close(ops.activation(x, "tanh"), [math.tanh(-1), 0.0, math.tanh(2)])
        gelu = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in (-1.0, 0.0, 2.0)]
        self.close(ops.activation(x, "gelu"), gelu)
        self.close(ops.activation(x, "none"), x)
        with self.assertRaises(ValueError):
            ops.activation(x, "identity")

    def test_softmax(self):
        x = t([[1.0, 2.0], [3.0, 5.0]])
        self.close(ops.softmax(x, 0), torch.softmax(x, 0))
        self.close(ops.softmax(x, 1), torch.softmax(x, 1))

    def test_masked_softmax_padding_gets_zero(self):
        x = t([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
        m = mask([[1, 1, 0], [0, 0, 0]])
        e = math.e
        self.close(ops.masked_softmax(x, m), [[1 / (1 + e), e / (1 + e), 0.0], [0.0, 0.0, 0.0]])
        # Temperature 2: softmax of [0.5, 1.0].
        w = 1 / (1 + math.exp(0.5))
        self.close(ops.masked_softmax(x, m, 2.0), [[w, 1 - w, 0.0], [0.0, 0.0, 0.0]])

    def test_dropout(self):
        x = torch.ones(1000)
        self.assertTrue(torch.equal(ops.dropout(x, 0.5, False), x))
        y = ops.dropout(x, 0.5, True)
        self.assertTrue(bool(((y == 0) | (y == 2)).all()))
        self.assertTrue(200 < int((y == 0).sum()) < 800)

    def test_pool_modes(self):
        x = t([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[-5.0, 1.0], [-3.0, 2.0], [9.0, 9.0]]])
        m = mask([[1, 1, 0], [1, 0, 0]])
        self.close(ops.pool(x, m, "mean", False), [[2.0, 3.0], [-5.0, 1.0]])
        self.close(ops.pool(x, m, "mean", True), [[3.0, 4.0], [1 / 3, 4.0]])
        self.close(ops.pool(x, m, "sum", False), [[4.0, 6.0], [-5.0, 1.0]])
        self.close(ops.pool(x, m, "sum", True), [[9.0, 12.0], [1.0, 12.0]])
        self.close(ops.pool(x, m, "max", False), [[3.0, 4.0], [-5.0, 1.0]])
        self.close(ops.pool(x, m, "max", True), [[3.0, 4.0], [-5.0, 1.0]])
        # A row without valid positions pools to zeros.
        empty = mask([[0, 0, 0], [0, 0, 0]])
        self.close(ops.pool(x, empty, "mean", False), torch.zeros(2, 2))
        self.close(ops.pool(x, empty, "max", False), torch.zeros(2, 2))
        # Max pooling sends the gradient of tied maxima to the first one only, as burn does.
        ties = torch.zeros(1, 3, 1, requires_grad=True)
        ops.pool(ties, mask([[1, 1, 1]]), "max", False).sum().backward()
        self.assertEqual(ties.grad.flatten().tolist(), [1.0, 0.0, 0.0])
        # Trailing axes are kept.
        self.assertEqual(tuple(ops.pool(torch.ones(2, 3, 4, 5), m, "sum", False).shape), (2, 4, 5))

    def test_attention_pool(self):
        v = t([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
        s = t([[1.0, 3.0, 100.0]])
        m = mask([[1, 1, 0]])
        self.close(ops.attention_pool(v, s, m, "sum", 1.0), [[0.25, 0.75]])
        self.close(ops.attention_pool(v, s, m, "none", 1.0), [[1.0, 3.0]])
        w = 1 / (1 + math.exp(2.0))
        self.close(ops.attention_pool(v, s, m, "softmax", 1.0), [[w, 1 - w]])

    def test_reduce(self):
        x = torch.arange(6.0).reshape(2, 3)
        self.close(ops.reduce(x, 1, "sum"), [3.0, 12.0])
        self.close(ops.reduce(x, 0, "mean"), [1.5, 2.5, 3.5])


class Geometry(Case):
    def test_dot_and_cosine(self):
        a, b = t([[1.0, 0.0], [0.0, 0.0]]), t([[1.0, 1.0], [1.0, 1.0]])
        self.close(ops.dot(a, b), [1.0, 0.0])
        self.close(ops.cosine(a, b), [1 / math.sqrt(2), 0.0])
        self.close(ops.cosine(t([[[3.0, 4.0]]]), t([[[6.0, 8.0]]])), [[1.0]])

    def test_project(self):
        a, onto = t([[1.0, 1.0]]), t([[2.0, 0.0]])
        self.close(ops.project(a, onto, along=True), [[1.0, 0.0]])
        self.close(ops.project(a, onto, along=False), [[0.0, 1.0]])

    def test_fm(self):
        x = t([[[1.0, 2.0], [3.0, 4.0]]])
        self.close(ops.fm(x, False), [[3.0, 8.0]])
        self.close(ops.fm(x, True), [11.0])

    def test_item_logits(self):
        s, table = t([[1.0, 2.0]]), t([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        self.close(ops.item_logits(s, table), [[1.0, 2.0, 3.0]])

    def test_sampled_logits_masks_a_sampled_target(self):
        """SplitMix(42).below(10) draws 3, 1, 8: row 0's target 3 is sampled in column 1."""
        table = torch.arange(20.0).reshape(10, 2) / 10
        s = t([[1.0, 2.0], [0.5, -1.0]])
        target = torch.tensor([3, 5])
        out = ops.sampled_logits(s, target, table, 3, False, SplitMix(42))
        plain = s @ table[[3, 1, 8]].T
        self.assertEqual(tuple(out.shape), (2, 4))
        self.close(out[:, 0], (s * table[target]).sum(1))
        self.close(out[1, 1:], plain[1])
        self.close(out[0, 2:], plain[0, 1:])
        self.close(out[0, 1:2], plain[0, 0:1] + ops.NEG_INF, tol=1e-3)
        # logQ subtracts ln(samples / vocab); [B, 1] targets are accepted.
        corrected = ops.sampled_logits(s, target.reshape(2, 1), table, 3, True, SplitMix(42))
        self.close(corrected[1, 1:], plain[1] - math.log(3 / 10), tol=1e-5)


class Layers(Case):
    def test_embedding_and_wide(self):
        table = t([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        ids = torch.tensor([[2, 0]])
        self.close(ops.embedding(ids, table), [[[5.0, 6.0], [1.0, 2.0]]])
        self.close(ops.wide(ids, t([[1.0], [2.0], [3.0]]), t([10.0, 20.0])), [[13.0, 21.0]])

    def test_position_embedding(self):
        x = torch.zeros(2, 3, 2)
        table = torch.arange(6.0).reshape(3, 2)
        self.close(ops.position_embedding(x, table, "add"), table.expand(2, 3, 2))
        self.assertEqual(tuple(ops.position_embedding(x, table, "concat").shape), (2, 3, 4))
        self.close(ops.position_embedding(x, table, "concat")[1, :, 2:], table)

    def test_linear_and_mlp(self):
        x = t([[[1.0, 2.0]]])
        w, b = t([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]), t([0.0, 0.0, -10.0])
        self.close(ops.linear(x, w, b), [[[1.0, 2.0, -7.0]]])
        self.close(ops.linear(x, w, None), [[[1.0, 2.0, 3.0]]])
        w2, b2 = t([[1.0], [1.0], [1.0]]), t([0.5])
        # relu between the layers zeroes -7; sigmoid after the last.
        self.close(ops.mlp(x, [(w, b), (w2, b2)], "relu", "none", 0.0, False), [[[3.5]]])
        self.close(ops.mlp(x, [(w, b), (w2, b2)], "relu", "sigmoid", 0.5, False), [[[1 / (1 + math.exp(-3.5))]]])

    def test_layer_norm(self):
        x = t([[1.0, 2.0, 3.0, 4.0]])
        z = [(v - 2.5) / math.sqrt(1.25 + 1e-5) for v in (1.0, 2.0, 3.0, 4.0)]
        self.close(ops.layer_norm(x, torch.ones(4), torch.zeros(4), 1e-5), [z])
        self.close(ops.layer_norm(x, torch.full((4,), 2.0), torch.ones(4), 1e-5), [[2 * v + 1 for v in z]])

    def test_self_attention_uniform_over_valid_keys(self):
        """Zero query/key weights: every query attends uniformly to the valid keys."""
        d = 2
        zero = (torch.zeros(d, d), torch.zeros(d))
        eye = (torch.eye(d), torch.zeros(d))
        x = t([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]]])
        m = mask([[1, 1, 0]])
        y = ops.self_attention(x, m, 2, "sqrt_head", False, 0.0, False, zero, zero, eye, eye, None)
        self.close(y, t([[[2.0, 4.0]] * 3]))
        y = ops.self_attention(x, m, 1, "sqrt_model", True, 0.0, False, zero, zero, eye, eye, None)
        self.close(y, x + 2 * t([[[1.0, 2.0]] * 3]))

    def test_self_attention_matches_torch(self):
        torch.manual_seed(0)
        b, n, d, heads = 2, 4, 6, 3
        x = torch.randn(b, n, d)
        m = mask([[1, 1, 1, 0], [1, 0, 1, 1]])
        dense = [(torch.randn(d, d), torch.randn(d)) for _ in range(4)]
        gamma, beta = torch.randn(d), torch.randn(d)
        y = ops.self_attention(x, m, heads, "sqrt_head", True, 0.0, False, *dense, (gamma, beta))
        (wq, bq), (wk, bk), (wv, bv), (wo, bo) = dense

        def split(z):
            return z.reshape(b, n, heads, d // heads).transpose(1, 2)

        q, k, v = split(x @ wq + bq), split(x @ wk + bk), split(x @ wv + bv)
        ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m[:, None, None, :])
        want = ctx.transpose(1, 2).reshape(b, n, d) @ wo + bo + x
        want = torch.nn.functional.layer_norm(want, (d,), gamma, beta, 1e-5)
        self.close(y, want, tol=1e-4)

    def test_gru_by_hand_and_padding_keeps_state(self):
        """W_hh = 0 and only the candidate reads x: r = z = ½, h' = ½ tanh(x + 0) + ½ h."""
        w_in, b_in = t([[0.0, 0.0, 1.0]]), torch.zeros(3)
        w_hh, b_hh = torch.zeros(1, 3), torch.zeros(3)
        x = t([[[2.0], [5.0], [1.0]]])
        h1 = 0.5 * math.tanh(2.0)
        h3 = 0.5 * math.tanh(1.0) + 0.5 * h1
        all_ = ops.gru(x, mask([[1, 0, 1]]), (w_in, b_in), (w_hh, b_hh), "all")
        self.close(all_, [[[h1], [h1], [h3]]])
        last = ops.gru(x, mask([[1, 0, 1]]), (w_in, b_in), (w_hh, b_hh), "last")
        self.close(last, [[h3]])
        self.close(ops.gru(x, mask([[1, 0, 0]]), (w_in, b_in), (w_hh, b_hh), "last"), [[h1]])

    def test_gru_matches_torch(self):
        torch.manual_seed(1)
        din, h = 3, 4
        ref = torch.nn.GRU(din, h, batch_first=True)
        x = torch.randn(2, 5, din)
        want, _ = ref(x)
        p = dict(ref.named_parameters())
        got = ops.gru(
            x,
            torch.ones(2, 5, dtype=torch.bool),
            (p["weight_ih_l0"].T, p["bias_ih_l0"]),
            (p["weight_hh_l0"].T, p["bias_hh_l0"]),
            "all",
        )
        self.close(got, want.detach(), tol=1e-5)

    def test_mmoe(self):
        """Two experts x and 2x, gates of zeros: every task mixes them ½ / ½ → 1.5x."""
        x = t([[2.0], [-1.0]])
        layers = [(t([[[1.0]], [[2.0]]]), torch.zeros(2, 1))]
        gates = (torch.zeros(3, 1, 2), torch.zeros(3, 2))
        y = ops.mmoe(x, 2, 3, layers, gates, "none")
        self.close(y, t([[[3.0]] * 3, [[-1.5]] * 3]))
        # The activation follows every expert layer, the last too.
        self.close(ops.mmoe(x, 2, 3, layers, gates, "relu")[1], torch.zeros(3, 1))

    def test_memory_reads_before_writing(self):
        """Slots [[2, 0], [0, 3]] normalise to the identity; key [1, 0] reads 0.731 / 0.269."""
        slots = t([[2.0, 0.0], [0.0, 3.0]])
        eye = (torch.eye(2), torch.zeros(2))
        zero = (torch.zeros(2, 2), torch.zeros(2))
        key, write = t([[1.0, 0.0]]), t([[0.0, 1.0]])
        a = 1 / (1 + math.exp(-1.0))
        y, new = ops.memory(key, write, slots, eye, eye, zero, zero, True, "read", False)
        self.close(y, [[2 * a, 3 * (1 - a)]])
        self.assertIsNone(new)
        # Training with persist writes: erase ½ weighted by w_write = [1 - a, a], add tanh(0) = 0.
        y2, new = ops.memory(key, write, slots, eye, eye, zero, zero, True, "both", True)
        want_new = t([[2 * (1 - 0.5 * (1 - a)), 0.0], [0.0, 3 * (1 - 0.5 * a)]])
        self.close(new, want_new)
        self.assertFalse(new.requires_grad)
        self.close(y2[:, 0], y)  # the read used the slots before the write
        self.close(y2[:, 1], t([[1 - a, a]]) @ want_new)
        # No write when evaluating or when not persistent.
        self.assertIsNone(ops.memory(key, write, slots, eye, eye, zero, zero, False, "read", True)[1])

    def test_memory_slots_are_detached(self):
        slots = torch.randn(3, 2, requires_grad=True)
        dense = (torch.randn(2, 2, requires_grad=True), torch.zeros(2))
        y, _ = ops.memory(torch.randn(4, 2), torch.randn(4, 2), slots, dense, dense, dense, dense, True, "both", True)
        y.sum().backward()
        self.assertIsNone(slots.grad)
        self.assertIsNotNone(dense[0].grad)

    def test_memory_slots_can_be_written_back_before_the_backward(self):
        """What a generated module does in training: copy new_slots into the slots buffer, then
        backward (a view of the buffer saved for the backward would fail the version check)."""
        slots = torch.randn(3, 2)
        dense = (torch.randn(2, 2, requires_grad=True), torch.zeros(2))
        y, new = ops.memory(torch.randn(4, 2), torch.randn(4, 2), slots, dense, dense, dense, dense, True, "both", True)
        with torch.no_grad():
            slots.copy_(new)
        y.sum().backward()
        self.assertIsNotNone(dense[0].grad)


class Losses(Case):
    def test_probability_loss(self):
        p, y = t([[0.8], [0.8], [0.0]]), t([1.0, 0.0, 1.0])
        want = [-math.log(0.8), -math.log(0.2), -math.log(1e-7)]
        self.close(ops.probability_loss(p, y, None, False), want, tol=1e-4)
        self.close(ops.probability_loss(p, y, None, True), [want[0], 0.0, want[2]], tol=1e-4)
        self.close(ops.probability_loss(p[:2, 0], y[:2], t([2.0, 0.5]), False), [2 * want[0], 0.5 * want[1]])

    def test_bce_logits(self):
        z, y = t([0.0, 2.0, -30.0]), t([1.0, 0.0, 1.0])
        self.close(ops.bce_logits(z, y, None), [math.log(2), 2 + math.log1p(math.exp(-2)), 30.0], tol=1e-5)
        self.close(ops.bce_logits(z.reshape(3, 1), y, t([[1.0], [0.0], [1.0]]))[1], torch.tensor(0.0))

    def test_distribution_loss(self):
        p = t([[0.7, 0.2, 0.1], [0.5, 0.0, 0.5]])
        target = torch.tensor([1, 1])
        self.close(ops.distribution_loss(p, target, None, None, "cross_entropy"), [-math.log(0.2), -math.log(1e-7)])
        self.close(ops.distribution_loss(p, target, None, None, "not_to_recommend"), [-math.log(0.8), 0.0])
        self.close(ops.distribution_loss(p, None, t([1.0, 0.0]), None, "cross_entropy"), [-math.log(0.7), 0.0])
        self.close(ops.distribution_loss(p, None, None, t([2.0, 1.0]), "cross_entropy"), [-2 * math.log(0.7), -math.log(0.5)])

    def test_triplet(self):
        a, pos, negv = t([[0.0, 0.0]]), t([[3.0, 4.0]]), t([[6.0, 8.0]])
        self.close(ops.triplet(a, pos, negv, 1.0, "euclidean", None), [0.0])
        self.close(ops.triplet(a, pos, negv, 6.0, "euclidean", None), [1.0], tol=1e-5)
        self.close(ops.triplet(a, pos, negv, 6.0, "euclidean", t([[3.0]])), [3.0], tol=1e-5)
        u = t([[1.0, 0.0]])
        # 1 - cos(u, u) = 0, 1 - cos(u, -u) = 2.
        self.close(ops.triplet(u, -u, u, 0.5, "cosine", None), [2.5], tol=1e-5)


def double(*xs):
    """Float64 leaf copies that require gradients."""
    return [x.detach().double().requires_grad_(True) for x in xs]


class Gradients(unittest.TestCase):
    """torch.autograd.gradcheck of the weighted ops in float64."""

    def check(self, fn, *inputs):
        self.assertTrue(torch.autograd.gradcheck(fn, tuple(inputs), eps=1e-6, atol=1e-5))

    def setUp(self):
        torch.manual_seed(0)

    def test_linear_mlp_layer_norm(self):
        x, w, b, w2, b2, g, beta = double(
            torch.randn(2, 3, 4), torch.randn(4, 5), torch.randn(5), torch.randn(5, 2), torch.randn(2),
            torch.randn(4), torch.randn(4),
        )
        self.check(lambda x, w, b: ops.linear(x, w, b), x, w, b)
        self.check(lambda x, w, b, w2, b2: ops.mlp(x, [(w, b), (w2, b2)], "tanh", "sigmoid", 0.0, False), x, w, b, w2, b2)
        self.check(lambda x, w, b: ops.mlp(x, [(w, b)], "relu", "gelu", 0.0, False), x, w, b)
        self.check(lambda x, g, beta: ops.layer_norm(x, g, beta, 1e-5), x, g, beta)

    def test_embeddings(self):
        ids = torch.tensor([[0, 2, 2], [1, 0, 3]])
        table, w, bias, x, pos = double(torch.randn(4, 3), torch.randn(4, 1), torch.randn(3), torch.randn(2, 3, 3), torch.randn(3, 3))
        self.check(lambda table: ops.embedding(ids, table), table)
        self.check(lambda w, bias: ops.wide(ids, w, bias), w, bias)
        self.check(lambda x, pos: ops.position_embedding(x, pos, "add"), x, pos)
        self.check(lambda x, pos: ops.position_embedding(x, pos, "concat"), x, pos)

    def test_self_attention(self):
        d = 4
        m = mask([[1, 1, 0], [1, 1, 1]])
        x, wq, bq, wk, bk, wv, bv, wo, bo, g, beta = double(
            torch.randn(2, 3, d), *[z for _ in range(4) for z in (torch.randn(d, d), torch.randn(d))], torch.randn(d), torch.randn(d)
        )

        def fn(x, wq, bq, wk, bk, wv, bv, wo, bo, g, beta):
            return ops.self_attention(x, m, 2, "sqrt_len", True, 0.0, False, (wq, bq), (wk, bk), (wv, bv), (wo, bo), (g, beta))

        self.check(fn, x, wq, bq, wk, bk, wv, bv, wo, bo, g, beta)

    def test_gru(self):
        m = mask([[1, 0, 1, 1], [1, 1, 0, 0]])
        x, wi, bi, wh, bh = double(torch.randn(2, 4, 3), torch.randn(3, 6), torch.randn(6), torch.randn(2, 6), torch.randn(6))
        self.check(lambda x, wi, bi, wh, bh: ops.gru(x, m, (wi, bi), (wh, bh), "all"), x, wi, bi, wh, bh)
        self.check(lambda x, wi, bi, wh, bh: ops.gru(x, m, (wi, bi), (wh, bh), "last"), x, wi, bi, wh, bh)

    def test_mmoe(self):
        x, w1, b1, w2, b2, gw, gb = double(
            torch.randn(3, 4), torch.randn(2, 4, 5), torch.randn(2, 5), torch.randn(2, 5, 3), torch.randn(2, 3),
            torch.randn(2, 4, 2), torch.randn(2, 2),
        )
        self.check(lambda *a: ops.mmoe(a[0], 2, 2, [(a[1], a[2]), (a[3], a[4])], (a[5], a[6]), "tanh"), x, w1, b1, w2, b2, gw, gb)

    def test_memory(self):
        slots = torch.randn(3, 2).double()
        key, write, *params = double(torch.randn(4, 3), torch.randn(4, 2), *[z for _ in range(4) for z in (torch.randn(3 if _ == 0 else 2, 2), torch.randn(2))])

        def fn(key, write, rw, rb, ww, wb, ew, eb, aw, ab):
            return ops.memory(key, write, slots, (rw, rb), (ww, wb), (ew, eb), (aw, ab), True, "both", True)[0]

        self.check(fn, key, write, *params)

    def test_geometry_and_pooling(self):
        m = mask([[1, 1, 0], [0, 1, 1]])
        a, b, x, s, table, sv = double(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3, 4), torch.randn(2, 3), torch.randn(5, 3), torch.randn(2, 3))
        self.check(ops.cosine, a, b)
        self.check(lambda a, b: ops.project(a, b, along=False), a, b)
        self.check(lambda x: ops.fm(x, True), x)
        self.check(lambda x: ops.masked_softmax(x, m, 0.7), s)
        for mode in ("mean", "sum", "max"):
            self.check(lambda x, mode=mode: ops.pool(x, m, mode, False), x)
        self.check(lambda x, s: ops.attention_pool(x, s, m, "softmax", 2.0), x, s)
        self.check(lambda sv, table: ops.item_logits(sv, table), sv, table)
        # A fresh generator per call draws the same items; the targets avoid them, because finite
        # differences lose their precision next to -1e9 (the masking is tested above).
        draw = SplitMix(7)
        drawn = {draw.below(table.shape[0]) for _ in range(4)}
        free = [i for i in range(table.shape[0]) if i not in drawn]
        target = torch.tensor((free * sv.shape[0])[: sv.shape[0]])
        self.check(lambda sv, table: ops.sampled_logits(sv, target, table, 4, True, SplitMix(7)), sv, table)

    def test_losses(self):
        p, y, z, w = double(torch.rand(4) * 0.8 + 0.1, torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.randn(4), torch.rand(4))
        y = y.detach()
        self.check(lambda p, w: ops.probability_loss(p, y, w, False), p, w)
        self.check(lambda z, w: ops.bce_logits(z, y, w), z, w)
        dist, = double(torch.softmax(torch.randn(4, 3), 1))
        self.check(lambda d: ops.distribution_loss(d, torch.tensor([0, 2, 1, 1]), y, None, "not_to_recommend"), dist)
        a, pos, negv = double(torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3))
        self.check(lambda a, p, n: ops.triplet(a, p, n, 10.0, "euclidean", None), a, pos, negv)
        self.check(lambda a, p, n: ops.triplet(a, p, n, 3.0, "cosine", None), a, pos, negv)


class Options(unittest.TestCase):
    def test_bad_spellings_raise(self):
        x, m = torch.zeros(1, 2, 2), mask([[1, 1]])
        with self.assertRaises(ValueError):
            ops.pool(x, m, "avg", False)
        with self.assertRaises(ValueError):
            ops.attention_pool(x, torch.zeros(1, 2), m, "raw", 1.0)
        with self.assertRaises(ValueError):
            ops.reduce(x, 1, "max")
        with self.assertRaises(ValueError):
            ops.gru(x, m, (torch.zeros(2, 3), torch.zeros(3)), (torch.zeros(1, 3), torch.zeros(3)), "first")
        with self.assertRaises(ValueError):
            ops.triplet(x[0], x[0], x[0], 1.0, "manhattan", None)
        with self.assertRaises(ValueError):
            ops.distribution_loss(x[0], None, None, None, "ce")


if __name__ == "__main__":
    unittest.main()
