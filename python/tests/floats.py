"""The one float comparison of the Python tests: NaN and infinity fail, whichever side holds
them (`torch.allclose` passes inf against inf, numpy's `assert_allclose` passes NaN against NaN
by default)."""

import numpy as np


def assert_close(test, actual, expected, atol, rtol, what=""):
    """Every element |a - e| <= atol + rtol |e|, shapes equal; any NaN or infinity in either
    is a failure. Takes tensors, arrays, lists or numbers."""
    a = np.asarray(_host(actual), dtype=np.float64)
    e = np.asarray(_host(expected), dtype=np.float64)
    test.assertEqual(a.shape, e.shape, what)
    test.assertTrue(np.all(np.isfinite(a)), f"{what}: non-finite values in the result: {a}")
    test.assertTrue(np.all(np.isfinite(e)), f"{what}: non-finite values in the reference: {e}")
    bad = np.abs(a - e) > atol + rtol * np.abs(e)
    test.assertFalse(
        bool(bad.any()),
        f"{what}: {int(bad.sum())} elements differ beyond {atol} + {rtol}·|expected|; "
        f"worst |a - e| {float(np.max(np.abs(a - e))):.3g}\nactual {a}\nexpected {e}",
    )


def _host(x):
    detach = getattr(x, "detach", None)
    return detach().cpu().numpy() if detach is not None else x
