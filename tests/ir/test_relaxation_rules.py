"""One relaxation rule for numpy float64 and batched torch: the same lines, and sound lines."""

from __future__ import annotations

import numpy as np
import pytest

from netopt.ir.ops.activations import relu_relaxation

torch = pytest.importorskip("torch")


def _boxes(rng, n=2000):
    c = rng.normal(size=n) * 3
    r = np.abs(rng.normal(size=n)) * 2
    r[:50] = 0.0  # degenerate boxes
    return c - r, c + r


@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.5, 1.0])
def test_numpy_and_torch_give_the_same_lines(alpha):
    rng = np.random.default_rng(0)
    lo, hi = _boxes(rng)
    lower = rng.uniform(-0.5, 1.5, size=lo.shape)  # clipped to [alpha, 1] by the rule
    for lw in (None, lower):
        a = relu_relaxation(lo, hi, alpha, lw)
        b = relu_relaxation(
            torch.tensor(lo), torch.tensor(hi), alpha, None if lw is None else torch.tensor(lw)
        )
        for x, y in zip(a, b, strict=True):
            assert y.dtype == torch.float64
            np.testing.assert_array_equal(x, y.numpy())


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("kind", ["numpy", "torch32"])
def test_lines_hold_on_the_box_whatever_the_lower_slope(alpha, kind):
    """Sampled points of each box lie between the lines, for slopes given far out of range."""
    rng = np.random.default_rng(1)
    lo, hi = _boxes(rng)
    lower = rng.uniform(-3, 3, size=lo.shape)
    if kind == "numpy":
        lo_s, lo_b, up_s, up_b = relu_relaxation(lo, hi, alpha, lower)
    else:
        out = relu_relaxation(
            torch.tensor(lo, dtype=torch.float32),
            torch.tensor(hi, dtype=torch.float32),
            alpha,
            torch.tensor(lower, dtype=torch.float32),
        )
        lo_s, lo_b, up_s, up_b = (v.double().numpy() for v in out)
        lo, hi = (torch.tensor(v, dtype=torch.float32).double().numpy() for v in (lo, hi))
    # in float32 the slope alpha itself is the float32 number nearest to it: the rule relaxes the
    # float32 function the search runs (the float64 re-check relaxes the float64 one)
    a = alpha if kind == "numpy" else float(np.float32(alpha))
    t = rng.uniform(size=(16, lo.size))
    x = lo + t * (hi - lo)
    f = np.maximum(x, a * x)
    assert np.all(lo_s * x + lo_b <= f + 1e-12)
    assert np.all(f <= up_s * x + up_b + 1e-12)
    unstable = (lo < 0) & (hi > 0)
    assert np.all((lo_s[unstable] >= a) & (lo_s[unstable] <= 1))
