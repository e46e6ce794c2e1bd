"""alpha- and beta-CROWN in numpy (netopt.bounds.chain_numpy_alpha): the same Adam trajectory as
the torch engine's autograd (both float64), the written-out gradient against finite differences,
and the bounds against sampled points that respect the splits."""

from __future__ import annotations

import numpy as np
import pytest
from test_batched import _boxes, _feasible_splits, _mlp, _sampled

from netopt.bounds.branching import babsr_scores
from netopt.bounds.chain_numpy import NumpyChainCrown

SIZES = [4, 14, 12, 10, 3]


def _case(seed: int, leak: float | None, B: int = 8, torch_engine: bool = True):
    """A random chain, rows, boxes; the torch and numpy engines (float64; torch's None without
    ``torch_engine``) and the boxes' CROWN activation bounds."""
    rng = np.random.default_rng(seed)
    net = _mlp(rng, SIZES, leak)
    C = rng.normal(size=(3, 3))
    d = rng.normal(size=3) - 1.0
    lo, hi = _boxes(rng, 4, B, 0.4)
    tb = None
    if torch_engine:
        torch = pytest.importorskip("torch")
        from netopt.bounds.batched import ChainBounds

        tb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    nb = NumpyChainCrown(net.graph, np.float64)
    _, _, P = nb.crown_rows(lo, hi, C, d, with_pre=True)
    offs = np.cumsum([0, *SIZES[1:-1]])
    pre = [(P[:, 0, a:b], P[:, 1, a:b]) for a, b in zip(offs[:-1], offs[1:], strict=True)]
    return rng, net, C, d, lo, hi, tb, nb, pre


def _np(x):
    return x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)


@pytest.mark.parametrize("leak", [None, 0.1])
@pytest.mark.parametrize("beta", [False, True])
@pytest.mark.parametrize("iters", [0, 1, 12])
def test_the_same_steps_as_torch(leak, beta, iters) -> None:
    """From the same start (a parent's slopes and multipliers, or CROWN's), both engines give the
    same bounds, slopes, multipliers, coefficients and best rows after ``iters`` Adam steps."""
    rng, net, C, d, lo, hi, tb, nb, pre = _case(3, leak)
    splits = _feasible_splits(rng, net, lo, hi) if beta else None
    kw = dict(iters=iters, lr=0.3, beta=beta, lr_beta=0.07, pre=pre)
    if beta:
        # a warm start: some slopes off CROWN's choice, some multipliers already positive
        kw["init"] = [rng.uniform(-0.2, 1.2, size=p[0].shape) for p in pre]
        kw["init_betas"] = [rng.uniform(-0.1, 0.3, size=(len(lo), 3, p[0].shape[1])) for p in pre]
    # about half the boxes open at the start (a closed box takes no step, in either engine)
    d = d + np.median(nb.alpha_crown(lo, hi, C, d, splits, **{**kw, "iters": 0}).lower.max(1))
    t = tb.alpha_crown(lo, hi, C, d, splits, **kw)
    n = nb.alpha_crown(lo, hi, C, d, splits, **kw)
    np.testing.assert_allclose(n.lower, _np(t.lower), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(n.row, _np(t.row))
    for a, b in zip(n.slopes, t.slopes, strict=True):
        np.testing.assert_allclose(a, _np(b), rtol=1e-8, atol=1e-9)
    for a, b in zip(n.betas, t.betas, strict=True):
        np.testing.assert_allclose(a, _np(b), rtol=1e-8, atol=1e-9)
    assert len(n.betas) == len(t.betas)
    for a, b in zip(n.lams, t.lams, strict=True):
        np.testing.assert_allclose(a, _np(b), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(n.coef, _np(t.coef), rtol=1e-8, atol=1e-9)
    for (a0, a1), (b0, b1) in zip(n.pre, t.pre, strict=True):
        np.testing.assert_array_equal(a0, _np(b0))
        np.testing.assert_array_equal(a1, _np(b1))
    # the branching scores read the same (numpy SpecBound, numpy weights)
    for a, b in zip(babsr_scores(nb, n), babsr_scores(tb, t), strict=True):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-8, atol=1e-12)
    if iters >= 12:
        # the steps did something: some box's best bound rose above its start
        start = nb.alpha_crown(lo, hi, C, d, splits, **{**kw, "iters": 0})
        assert np.any(n.lower.max(1) > start.lower.max(1) + 1e-6)


@pytest.mark.parametrize("leak", [None, 0.1])
def test_gradient_against_finite_differences(leak) -> None:
    """The written-out derivative of each box's best row by a slope and a multiplier against
    central differences of the evaluated bound (away from the kinks)."""
    rng, net, C, d, lo, hi, _, nb, pre = _case(5, leak, B=4, torch_engine=False)
    splits = _feasible_splits(rng, net, lo, hi, p=0.4)
    uns = [(a < 0) & (b > 0) for a, b in pre]
    sl0 = [np.where(u, rng.uniform(max(leak or 0, 0) + 0.1, 0.9, u.shape), 0.5) for u in uns]
    bt0 = [rng.uniform(0.05, 0.3, size=(4, 3, u.shape[1])) for u in uns]

    def bound(sl, bt):
        r = nb.alpha_crown(lo, hi, C, d, splits, pre=pre, iters=0, init=sl, beta=True,
                           init_betas=bt)  # fmt: skip
        return r.lower

    g_a, g_b = _grad_of(nb, lo, hi, C, d, splits, pre, sl0, bt0)
    base = bound(sl0, bt0)
    row = base.argmax(1)
    h = 1e-6
    checked = 0
    for j, u in enumerate(uns):
        for b_, i in zip(*np.nonzero(u), strict=True):
            if splits[j][b_, i] != 0:
                continue  # (a split unit's slope is not used: its bounds are one-signed)
            up = [s.copy() for s in sl0]
            dn = [s.copy() for s in sl0]
            up[j][b_, i] += h
            dn[j][b_, i] -= h
            fd = (bound(up, bt0)[b_, row[b_]] - bound(dn, bt0)[b_, row[b_]]) / (2 * h)
            assert g_a[j][b_, i] == pytest.approx(fd, rel=1e-4, abs=1e-7)
            checked += abs(fd) > 1e-4
    assert checked >= 3
    # the multipliers' derivative
    checked = 0
    for j, s in enumerate(splits):
        for b_, i in zip(*np.nonzero(s), strict=True):
            up = [x.copy() for x in bt0]
            dn = [x.copy() for x in bt0]
            up[j][b_, row[b_], i] += h
            dn[j][b_, row[b_], i] -= h
            fd = (bound(sl0, up)[b_, row[b_]] - bound(sl0, dn)[b_, row[b_]]) / (2 * h)
            assert g_b[j][b_, row[b_], i] == pytest.approx(fd, rel=1e-4, abs=1e-7)
            checked += abs(fd) > 1e-4
    assert checked >= 3


def _grad_of(nb, lo, hi, C, d, splits, pre, sl, bt):
    """The engine's own derivatives at ``sl``, ``bt`` (its ``_gradients`` on one evaluation)."""
    from netopt.ir.ops.activations import relu_relaxation

    pre_c = [
        (np.where(s > 0, np.maximum(a, 0), a), np.where(s < 0, np.minimum(b, 0), b))
        for (a, b), s in zip(pre, splits, strict=True)
    ]
    res = nb.alpha_crown(lo, hi, C, d, splits, pre=pre, iters=0, init=sl, beta=True,
                         init_betas=bt)  # fmt: skip
    lines = [relu_relaxation(a, b, nb.leak[j]) for j, (a, b) in enumerate(pre_c)]
    masks = [(s != 0).astype(float)[:, None, :] for s in splits]
    signs = [s.astype(float) for s in splits]
    ar = np.arange(len(lo))
    return nb._gradients(res.row, ar, lo, hi, res.coefs, res.lams, res.slopes, lines, signs, masks)


@pytest.mark.parametrize("seed", range(3))
def test_bounds_hold_on_sampled_points(seed) -> None:
    """After the steps (float32, the search's dtype), no sampled point of a box that respects its
    splits goes below the box's bound of any row."""
    rng, net, C, d, lo, hi, _, _, pre = _case(10 + seed, None, B=6, torch_engine=False)
    nb = NumpyChainCrown(net.graph)  # float32
    splits = _feasible_splits(rng, net, lo, hi, p=0.3)
    res = nb.alpha_crown(lo, hi, C, d, splits, pre=pre, iters=15, beta=True)
    val, keep = _sampled(rng, net, lo, hi, splits, C, d)
    for b in range(len(lo)):
        if keep[b].any():
            assert np.all(res.lower[b] <= val[b][keep[b]].min(axis=0) + 1e-4)
