"""The second layer's bounds updated for first-layer splits (ReLU splitting), and their use.

References: CROWN's own pass over the split domain (:meth:`ChainBounds._unit_rows` on the
domain's lines), points sampled from the split domains, and the float64 proof check.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from helpers.nets import mlp_net

from netopt.bounds.bab import BatchCrown
from netopt.bounds.proof import BabProof, check_proof

torch = pytest.importorskip("torch")


def _chain(seed: int):
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(2, 6))
    widths = [int(rng.integers(4, 9)), int(rng.integers(3, 7))]
    acts = ["relu" if seed % 3 else "leaky_relu:0.1", "relu", None]
    net, Ws, bs = mlp_net([n_in, *widths, 2], acts, seed=seed)
    c, r = rng.uniform(-1, 1, n_in), rng.uniform(0.5, 1.5, n_in)
    return net, Ws, bs, (0.1 if seed % 3 == 0 else 0.0), (c - r)[None], (c + r)[None]


def _splits(rng, l0: np.ndarray, u0: np.ndarray, B: int) -> np.ndarray:
    """``B`` random sign fixings of the first layer's unstable units (the first none)."""
    unstable = np.nonzero((l0 < 0) & (u0 > 0))[0]
    sp = np.zeros((B, len(l0)), dtype=np.int8)
    for b in range(1, B):
        k = rng.choice(unstable, size=rng.integers(0, len(unstable) + 1), replace=False)
        sp[b, k] = rng.choice([-1, 1], size=len(k))
    return sp


def _full_tree(units: list[int]) -> list:
    """The pre-order tree splitting first-layer ``units`` in turn, every leaf row 0."""
    if not units:
        return [["leaf", 0]]
    sub = _full_tree(units[1:])
    return [["r", 0, units[0]], *sub, *sub]


@pytest.mark.parametrize("seed", range(9))
def test_the_update_is_crowns_pass_over_the_split_domain(seed):
    from netopt.bounds.batched import ChainBounds
    from netopt.bounds.split_update import SecondLayerUpdate

    net, Ws, bs, leak, lo, hi = _chain(seed)
    cb = ChainBounds(net.graph, device="cpu", dtype=torch.float64)
    pre, _ = cb.pre_bounds(lo, hi)
    l0, u0 = (a[0].numpy() for a in pre[0])
    rng = np.random.default_rng(seed)
    sp = _splits(rng, l0, u0, 12)
    B = len(sp)
    low, up = SecondLayerUpdate(cb, lo, hi, pre[0]).bounds(torch.as_tensor(sp))
    # the reference: CROWN's back-substitution from the second layer on each domain, its
    # first layer's lines drawn on the root's bounds clipped by the domain's splits
    s = torch.as_tensor(sp, dtype=torch.float64)
    L0 = torch.where(s > 0, pre[0][0].clamp(min=0), pre[0][0])
    U0 = torch.where(s < 0, pre[0][1].clamp(max=0), pre[0][1])
    ref_lo, ref_up = cb._unit_rows(
        1,
        torch.as_tensor(np.repeat(lo, B, 0)),
        torch.as_tensor(np.repeat(hi, B, 0)),
        [cb._lines(0, L0, U0)],
        None,
    )
    np.testing.assert_allclose(low.numpy(), ref_lo.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(up.numpy(), ref_up.numpy(), rtol=1e-12, atol=1e-12)
    # and they hold at points of each domain (its first layer's signs as split)
    X = rng.uniform(lo, hi, (4000, lo.shape[1]))
    z0 = X @ Ws[0].T + bs[0]
    a0 = np.where(z0 >= 0, z0, leak * z0)
    z1 = a0 @ Ws[1].T + bs[1]
    for b in range(B):
        inside = np.all(sp[b] * z0 >= 0, axis=1)
        if inside.any():
            assert np.all(z1[inside] >= low[b].numpy() - 1e-9)
            assert np.all(z1[inside] <= up[b].numpy() + 1e-9)


def test_a_leaf_the_root_bounds_leave_open_closes_with_recomputed_ones():
    """A proof whose leaves split the first layer fully, with ``d`` between what the root's
    activation bounds give a leaf and what its bounds recomputed with its splits give: the
    check accepts it (its second attempt), and every leaf's claim holds at sampled points."""
    found = 0
    for seed in range(40):
        net, Ws, bs, leak, lo, hi = _chain(seed)
        bc = BatchCrown(net.graph)
        C = np.array([[1.0, -1.0]])
        _, _, root = bc.bound(lo, hi, C)
        fixed = {v: (a[0], b[0]) for v, (a, b) in root.items()}
        z = bc.relu_inputs[0]
        unstable = np.nonzero((fixed[z][0] < 0) & (fixed[z][1] > 0))[0][:3]
        if len(unstable) < 2:
            continue
        sides = np.array(list(itertools.product([-1, 1], repeat=len(unstable))))
        B, n0 = len(sides), len(fixed[z][0])
        sp0 = np.zeros((B, n0), dtype=np.int8)
        sp0[:, unstable] = sides
        splits = [sp0, None]
        box = np.repeat(lo, B, 0), np.repeat(hi, B, 0)
        with_root, _, _ = bc.bound(*box, C, splits=splits, fixed=fixed)
        recomputed, _, _ = bc.bound(*box, C, prev=fixed, splits=splits)
        scratch, _, _ = bc.bound(*box, C, splits=splits)
        d = float(np.min(np.maximum(recomputed[:, 0], with_root[:, 0]))) - 1e-6
        if not np.any(np.maximum(with_root[:, 0], scratch[:, 0]) <= d):
            continue  # a leaf that neither the root's bounds nor a fresh pass close
        nodes = _full_tree([int(u) for u in unstable])
        proof = BabProof(lo[0], hi[0], C, np.array([d]), nodes)
        pc = check_proof(net.graph, BabProof.from_dict(json.loads(json.dumps(proof.to_dict()))))
        assert pc.ok, pc.reason
        # the claim, at sampled points: no x of the box has f_0 - f_1 <= d
        X = np.random.default_rng(seed).uniform(lo, hi, (20000, lo.shape[1]))
        h = X
        for j, (W, b) in enumerate(zip(Ws, bs, strict=True)):
            h = h @ W.T + b
            if j < 2:
                h = np.where(h >= 0, h, (leak if j == 0 else 0.0) * h)
        assert np.min(h @ C[0]) > d
        # the search's float64 confirmation: the search with the update retries a domain so
        # (and confirms them all), the plain one does not
        for updating in (False, True):
            srch = _search(net, lo, hi, C, np.array([d]))
            srch.updating = updating
            n1 = Ws[1].shape[0]
            ok = srch._confirm(
                np.zeros(B, dtype=np.int64), [sp0, np.zeros((B, n1), np.int8)], None, None
            )
            assert ok.all() == updating
            assert (srch.stats["float64_recomputed"] > 0) == updating
        found += 1
    assert found >= 2  # the check's second attempt was needed on that many nets


def _search(net, lo, hi, C, d):
    """A ReLU-splitting search's state on the box (nothing run)."""
    from netopt.bounds.batched import ChainBounds
    from netopt.bounds.branch_relu import _ReluSearch
    from netopt.control import Deadline

    cb = ChainBounds(net.graph, device="cpu")
    args = (net, cb, lo, hi, C, d, Deadline(60), "relu", 64, None, 1000, None, "cpu")
    return _ReluSearch(*args)


def _run_all(seeds, monkeypatch, turn: int, share: float) -> list:
    """ReLU splitting on the random instances ``seeds`` with the given turns, every result
    checked against brute force (``_check_result``: proofs re-checked, points confirmed)."""
    from test_branch import _check_result, _exact_min, _instance

    import netopt.bounds.relu_turns as rt
    from netopt.bounds.branch import branch_and_bound

    monkeypatch.setattr(rt, "SPLIT_UPDATE_TURN", turn)
    monkeypatch.setattr(rt, "SPLIT_UPDATE_SHARE", share)
    out = []
    for seed in seeds:
        inst = _instance(seed)
        r = branch_and_bound(
            inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], time_limit=20, mode="relu"
        )
        _check_result(inst, r, "relu")
        v = _exact_min(*(inst[k] for k in ("Ws", "bs", "alphas", "lo", "hi", "C", "d")))
        assert r.verdict == ("unsat" if v > 0 else "sat")
        out.append(r)
    return out


def test_update_bounds_that_lie_decide_nothing_wrong(monkeypatch):
    """Second-layer bounds made too tight (both ends moved to the middle) may mislead the
    float32 search, never a verdict: every unsat is still a checked proof."""
    import netopt.bounds.split_update as su

    real = su.SecondLayerUpdate.bounds
    calls = []

    def lying(self, split0, units=None):
        low, up = real(self, split0, units)
        calls.append(len(split0))
        mid = (low + up) / 2
        return mid - 1e-3, mid + 1e-3

    monkeypatch.setattr(su.SecondLayerUpdate, "bounds", lying)
    # the search with the update takes (nearly) every turn from the start
    rs = _run_all(range(32), monkeypatch, 1, 1000.0)
    assert len(calls) >= 10
    assert any(r.stats.get("split_update") for r in rs)


def test_both_searches_in_turns_decide_like_brute_force(monkeypatch):
    """Turns of a few domains each: whichever search decides first answers at once, with its
    own tree and statistics (its proof checked, its counterexample confirmed)."""
    rs = _run_all(range(16), monkeypatch, 1, 8.0)
    took = [r.stats for r in rs if "split_update" in r.stats]
    assert {st["split_update"] for st in took} == {False, True}
    # the search with the update answers only after the plain one's first turn
    assert all(st["other_nodes"] >= 1 for st in took if st["split_update"])


@pytest.mark.parametrize("why", ["domain limit", "incomplete", "unpromising"])
def test_a_search_that_cannot_finish_leaves_it_to_the_other(why, monkeypatch):
    """The plain search stopping "incomplete" or at the domain limit hands over to the one with
    the update, which decides alone; "unpromising" ends both (the MILP comes next)."""
    import netopt.bounds.branch_relu as br
    import netopt.bounds.relu_turns as rt

    real = br._ReluSearch._rounds
    ran = []

    def rounds(self):
        ran.append(self.updating)
        if not self.updating:
            self.stats["nodes"] += 3
            return br.BranchResult("unknown", stopped=why)
            yield  # (a generator)
        return (yield from real(self))

    monkeypatch.setattr(br._ReluSearch, "_rounds", rounds)
    if why == "unpromising":
        from test_branch import _instance

        from netopt.bounds.branch import branch_and_bound

        inst = _instance(0)
        monkeypatch.setattr(rt, "SPLIT_UPDATE_TURN", 1)
        r = branch_and_bound(
            inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], time_limit=20, mode="relu"
        )
        assert (r.verdict, r.stopped, ran) == ("unknown", "unpromising", [False])
        return
    rs = _run_all(range(6), monkeypatch, 1, 1.0)
    for r in rs:
        assert r.stats["split_update"] is True and r.stats["other_nodes"] == 3
