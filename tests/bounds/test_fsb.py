"""Filtered smart branching's children bounds from their parent's (``netopt.bounds.fsb``).

The incremental bounds must equal, in float64, a full beta-CROWN pass per child with the
parent's slopes, multipliers and activation bounds (the old way, and the definition of what
FSB compares), on chains of 2 to 4 activation layers, ReLU and leaky ReLU, with one or two
rows and their combination, and with splits and multipliers already on the parents.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import mlp_net

torch = pytest.importorskip("torch")
from netopt.bounds.batched import ChainBounds  # noqa: E402
from netopt.bounds.fsb import children_full, children_lower  # noqa: E402


@pytest.mark.parametrize(
    "sizes,leak,rows,beta,radius",
    [
        ([6, 10, 8, 3], None, 1, False, 1.0),
        ([6, 10, 8, 3], None, 2, True, 1.0),
        ([5, 8, 8, 8, 2], 0.1, 2, True, 1.0),
        ([4, 7, 6, 5, 6, 3], None, 1, True, 1.0),
        ([4, 7, 6, 5, 6, 3], 0.2, 3, False, 1.0),
        # a small box: most first-layer units stable (the second layer's children then pass
        # through the first layer's unstable units only)
        ([6, 24, 10, 3], None, 1, True, 0.15),
        ([6, 24, 10, 8, 3], 0.1, 2, True, 0.15),
        # a different leak in each layer (ReLU, then leaky; and the other way)
        ([6, 24, 10, 3], (None, 0.3), 1, True, 0.15),
        ([6, 24, 10, 3], (0.3, None), 2, True, 0.15),
        ([5, 8, 8, 8, 2], (0.1, 0.3, None), 2, True, 1.0),
    ],
)
def test_children_bounds_equal_a_full_pass_per_child(sizes, leak, rows, beta, radius):
    seed = sum(sizes) + rows
    rng = np.random.default_rng(seed)
    leaks = leak if isinstance(leak, tuple) else (leak,) * (len(sizes) - 2)
    acts = ["relu" if a is None else f"leaky_relu:{a}" for a in leaks]
    net, _, _ = mlp_net(sizes, [*acts, None], seed=seed)
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    n_in = sizes[0]
    mid = rng.uniform(-1, 1, (1, n_in)) * (radius < 1)
    lo, hi = mid - radius, mid + radius
    C, d = rng.normal(size=(rows, sizes[-1])), rng.normal(size=rows)
    widths = sizes[1:-1]
    B = 12
    root = cb.crown(lo, hi, C, d)
    # parents: random splits of units unstable on the box, slopes and multipliers optimized
    sp = []
    for j, w in enumerate(widths):
        unst = ((root.pre[j][0] < 0) & (root.pre[j][1] > 0)).numpy()[0]
        s = np.where(rng.random((B, w)) < 0.3, rng.choice([-1, 1], size=(B, w)), 0) * unst
        sp.append(torch.as_tensor(s, dtype=torch.int8))
    sb = cb.alpha_crown(
        np.repeat(lo, B, 0),
        np.repeat(hi, B, 0),
        C,
        d,
        sp,
        iters=5,
        beta=beta,
        pre=[(a.expand(B, -1), b.expand(B, -1)) for a, b in root.pre],
        mix=rows > 1,
    )
    # candidates: the units unstable and unsplit on each parent, K of them (padded by repeats)
    K = 6
    lay = np.zeros((B, K), dtype=np.int64)
    uni = np.zeros((B, K), dtype=np.int64)
    for i in range(B):
        cand = [
            (j, u)
            for j in range(len(widths))
            for u in range(widths[j])
            if sb.pre[j][0][i, u] < 0 < sb.pre[j][1][i, u] and sp[j][i, u] == 0
        ]
        assert cand, "every parent needs a candidate"
        pick = rng.choice(len(cand), size=K)
        lay[i], uni[i] = np.array([cand[p] for p in pick]).T
    assert len(set(lay.ravel())) == len(widths)  # candidates in every layer
    stable = ((root.pre[0][0] >= 0) | (root.pre[0][1] <= 0)).sum()
    assert (stable >= widths[0] // 2) == (radius < 1)  # the small box's first layer: stable
    part = torch.arange(B)
    lay_t, uni_t = torch.as_tensor(lay), torch.as_tensor(uni)
    lo_t, hi_t = cb._t(lo), cb._t(hi)
    fast = children_lower(cb, sb, lo_t, hi_t, sp, part, lay_t, uni_t)
    full = children_full(cb, lo, hi, C, d, sb, sp, part, lay_t, uni_t)
    assert fast.shape == full.shape == (K, 2, B, rows + (rows > 1))
    scale = float(full.abs().max())
    assert torch.allclose(fast, full, rtol=0, atol=1e-10 * max(1.0, scale))
    assert not torch.allclose(full[:, 0], full[:, 1])  # the two sides differ: a real check
