"""SplitMix64 against values of the Rust code in src/runtime/weights.rs.

The expected numbers were printed by that code (the `SplitMix` impl and the seed mixing of
`Weights::init`, copied verbatim into a standalone program); seed 0's first output is also
SplitMix64's published reference value 0xE220A8397B1DCDAF.
"""

import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

from recspec_torch.rng import SplitMix, init_values, pass_rng, slot_rng  # noqa: E402


class SplitMixTest(unittest.TestCase):
    def test_raw_outputs(self):
        """Seed 0 gives SplitMix64's reference sequence."""
        r = SplitMix(0)
        self.assertEqual([r.next_u64() for _ in range(3)], [16294208416658607535, 7960286522194355700, 487617019471545679])
        self.assertEqual(16294208416658607535, 0xE220A8397B1DCDAF)

    def test_unit(self):
        """unit() is (x >> 11) / 2**53, bit for bit."""
        r = SplitMix(42)
        self.assertEqual([r.unit() for _ in range(3)], [0.7415648787718233, 0.1599103928769201, 0.27860113025513866])

    def test_units_are_unit_calls_at_once(self):
        for seed in (0, 7, (1 << 64) - 5):
            one, many = SplitMix(seed), SplitMix(seed)
            one.unit()
            many.unit()
            expected = [one.unit() for _ in range(1000)]
            self.assertEqual(many.units(1000).tolist(), expected)
            self.assertEqual(many.state, one.state)
            self.assertEqual(many.next_u64(), one.next_u64())
        self.assertEqual(SplitMix(3).units(0).tolist(), [])

    def test_normal(self):
        """Box-Muller with two units per draw."""
        r = SplitMix(42)
        got = [r.normal() for _ in range(3)]
        want = [0.4147197504315306, -0.8918862136277563, 1.7295930879374024]
        for g, w in zip(got, want):
            # libm's log/cos could differ in the last ulp on another platform.
            self.assertTrue(math.isclose(g, w, rel_tol=1e-15, abs_tol=1e-15), (g, w))
        # Hand-check the first draw from the two units.
        u = SplitMix(42)
        u1, u2 = u.unit(), u.unit()
        self.assertEqual(got[0], math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2))

    def test_below(self):
        """below(n) is the raw output modulo n; below(0) behaves as below(1)."""
        r = SplitMix(42)
        self.assertEqual([r.below(10) for _ in range(8)], [3, 1, 8, 4, 0, 2, 5, 8])
        self.assertEqual(SplitMix(5).below(0), 0)

    def test_pass_rng(self):
        """The interpreter's generator for step 7."""
        r = pass_rng(7)
        self.assertEqual(r.state, 7 ^ 0xA5A5_5A5A_0F0F_F0F0)
        self.assertEqual([r.below(1000) for _ in range(4)], [419, 422, 662, 445])

    def test_state_wraps_to_64_bits(self):
        """Seeds and sums are taken modulo 2**64."""
        r = SplitMix(2**64 - 1)
        r.next_u64()
        self.assertEqual(r.state, (2**64 - 1 + 0x9E3779B97F4A7C15) % 2**64)
        self.assertLess(r.next_u64(), 2**64)


class InitTest(unittest.TestCase):
    def test_slot_seed(self):
        """Slot i's generator is seeded with seed ^ (golden · (i + 1)) mod 2**64."""
        self.assertEqual(slot_rng(1234, 2).state, 1234 ^ ((0x9E3779B97F4A7C15 * 3) % 2**64))

    def test_normal_rule(self):
        """(normal · std) in f64, then rounded to f32, row-major."""
        got = init_values(("normal", 0.1), (2, 2), 1234, 2)
        want = torch.tensor([[0.1304708, 0.14271961], [-0.104637586, -0.019009424]], dtype=torch.float32)
        self.assertEqual(got.dtype, torch.float32)
        self.assertTrue(torch.equal(got, want))

    def test_uniform_rule(self):
        """uniform(-bound, bound) rounded to f32; every value within the bound."""
        got = init_values(("uniform", 0.5), (4,), 1234, 0)
        want = torch.tensor([0.49015644, -0.2753131, -0.26244256, -0.4722371], dtype=torch.float32)
        self.assertTrue(torch.equal(got, want))
        many = init_values(("uniform", 0.05), (50, 40), 9, 3)
        self.assertEqual(tuple(many.shape), (50, 40))
        self.assertTrue(bool((many.abs() <= 0.05).all()))
        self.assertGreater(float(many.std()), 0.02)

    def test_constant_rule(self):
        """Constants fill the shape without drawing."""
        got = init_values(("constant", 1.0), (3, 2), 5, 0)
        self.assertTrue(torch.equal(got, torch.ones(3, 2)))

    def test_vectorised_draws_equal_the_scalar_generator(self):
        """init_values (vectorised, counter-based) equals drawing one value at a time from
        slot_rng, bit for bit, across chunk boundaries and for a seed near 2**64."""
        import recspec_torch.rng as rng_module

        saved = rng_module.INIT_CHUNK
        rng_module.INIT_CHUNK = 777
        try:
            for rule, seed, index in [(("normal", 0.1), 3, 0), (("normal", 1.0), 2**64 - 5, 11),
                                      (("uniform", 0.05), 2**63 + 1, 4)]:
                n = 5000
                got = init_values(rule, (n,), seed, index)
                r = slot_rng(seed, index)
                if rule[0] == "normal":
                    want = [r.normal() * rule[1] for _ in range(n)]
                else:
                    want = [r.uniform(-rule[1], rule[1]) for _ in range(n)]
                self.assertTrue(torch.equal(got, torch.tensor(want, dtype=torch.float32)), (rule, seed, index))
        finally:
            rng_module.INIT_CHUNK = saved

    def test_raw_draws_are_the_stream(self):
        """raw_draws(state, start, n) is outputs start.. of SplitMix(state)."""
        from recspec_torch.rng import raw_draws

        r = SplitMix(99)
        stream = [r.next_u64() for _ in range(10)]
        self.assertEqual([int(x) for x in raw_draws(99, 3, 5)], stream[3:8])

    def test_unknown_rule(self):
        with self.assertRaises(ValueError):
            init_values(("xavier", 1.0), (2,), 0, 0)


if __name__ == "__main__":
    unittest.main()
