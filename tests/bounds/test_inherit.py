"""Bounds that start from the activation signs a parent box proves (``BatchCrown.bound``'s
``known`` with ``unstable_only``), and proofs that use them (``BabProof.inherit``): sound on
sampled points, fewer rows back-substituted, and the checker's signs derived again from the tree
equal to a direct recomputation, against the optimization search's own proofs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from helpers.nets import mlp_net

from netopt.bounds import crown
from netopt.bounds.bab import BatchCrown
from netopt.bounds.optimize import minimize
from netopt.bounds.proof import check_proof, inherited_signs
from netopt.bounds.proof_format import BabProof
from netopt.errors import InputError
from netopt.problems import Inversion


@pytest.fixture(scope="module")
def deep():
    net, Ws, bs = mlp_net([4, 24, 24, 24, 3], ["relu", "relu", "relu", None], seed=11)
    return net, BatchCrown(net.graph), Ws, bs


def _acts(Ws, bs, X):
    """Each ReLU layer's input at the points ``X``, concatenated (the units' order)."""
    out, a = [], X
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        z = a @ W.T + b
        out.append(z)
        a = np.maximum(z, 0)
    return np.concatenate(out, axis=1)


def test_signs_are_what_the_bounds_prove(deep):
    _, bc, _, _ = deep
    pre = {
        v: (np.array([[0.0, -1.0, -2.0, np.nan]]), np.array([[1.0, 0.0, 3.0, 1.0]]))
        for v in bc.relu_inputs
    }
    s = bc.signs(pre, 1)
    assert s.dtype == np.int8 and s.shape == (1, 4 * len(bc.relu_inputs))
    assert s[0, :4].tolist() == [1, -1, 0, 0]  # NaN proves nothing


def test_known_signs_give_sound_bounds_from_fewer_rows(deep, monkeypatch):
    net, bc, Ws, bs = deep
    rng = np.random.default_rng(0)
    # boxes as a search meets them: parents a tenth of the root's width, each split in two
    c = rng.uniform(-0.9, 0.9, (6, 4))
    P_lo, P_hi = c - 0.1, c + 0.1
    _, _, ppre = bc.bound(P_lo, P_hi, np.zeros((1, 3)))
    known = bc.signs(ppre, 6)
    K_lo, K_hi = P_lo.copy(), P_hi.copy()
    K_hi[:, 0] = c[:, 0]
    C = rng.normal(size=(5, 3))
    rows = []
    real = crown.backsub

    def spy(graph, vid, start, *a, **k):
        rows.append(start.shape[0] * start.shape[1])
        return real(graph, vid, start, *a, **k)

    monkeypatch.setattr("netopt.bounds.bab.backsub", spy)
    full, _, _ = bc.bound(K_lo, K_hi, C)
    n_full = sum(rows[:-1])  # the units' rows (the last call bounds C)
    rows.clear()
    bc.bound(K_lo, K_hi, C, unstable_only=True)
    n_open = sum(rows[:-1])  # the units the children's intervals leave open
    rows.clear()
    low, _, pre = bc.bound(K_lo, K_hi, C, unstable_only=True, known=known)
    n_inh = sum(rows[:-1])  # and those their parents' bounds leave open too
    assert n_inh < n_open < n_full, (n_inh, n_open, n_full)
    # the known signs hold in the returned bounds, and every bound is sound on samples
    s = bc.signs(pre, 6)
    assert np.all(s[known != 0] == known[known != 0])
    L = np.concatenate([pre[v][0] for v in bc.relu_inputs], axis=1)
    H = np.concatenate([pre[v][1] for v in bc.relu_inputs], axis=1)
    for b in range(6):
        X = rng.uniform(K_lo[b], K_hi[b], (4000, 4))
        y = net.forward(X)
        assert np.all(low[b] <= (y @ C.T).min(axis=0) + 1e-9)
        assert np.all(full[b] <= (y @ C.T).min(axis=0) + 1e-9)
        Z = _acts(Ws, bs, X)
        assert np.all(L[b] <= Z.min(axis=0) + 1e-9) and np.all(Z.max(axis=0) <= H[b] + 1e-9)


def test_a_boxs_bounds_do_not_depend_on_its_batch(deep, monkeypatch):
    """With ``unstable_only`` only a box's open units take back-substituted bounds (not the
    padding of its group, nor the dense pass's where most of the batch is open): each box bounded
    alone equals it bounded among others, and the dense pass the open rows', to rounding."""
    _, bc, _, _ = deep
    rng = np.random.default_rng(5)
    # boxes of many widths: a mix of open-unit counts, hence of groups and paddings
    c = rng.uniform(-0.9, 0.9, (40, 4))
    w = np.exp(rng.uniform(np.log(0.01), np.log(1.0), (40, 1)))
    lo, hi = c - w, c + w
    C = rng.normal(size=(2, 3))
    _, _, ppre = bc.bound(lo, hi, np.zeros((1, 3)))
    kn = np.where(rng.uniform(size=(40, 1)) < 0.5, bc.signs(ppre, 40), 0).astype(np.int8)
    low, _, pre = bc.bound(lo, hi, C, unstable_only=True, known=kn)
    # the whole batch through the dense pass, then through the open rows only: the same
    for share in (0.0, 1.0):
        monkeypatch.setattr("netopt.bounds.bab.SPARSE_MAX_OPEN", share)
        other, _, _ = bc.bound(lo, hi, C, unstable_only=True, known=kn)
        assert np.allclose(other, low, rtol=1e-12, atol=1e-12), share
    monkeypatch.undo()
    for b in range(40):
        one, _, pre1 = bc.bound(
            lo[b : b + 1], hi[b : b + 1], C, unstable_only=True, known=kn[b : b + 1]
        )
        assert np.allclose(one[0], low[b], rtol=1e-12, atol=1e-12), b
        for v in bc.relu_inputs:
            assert np.allclose(pre1[v][0][0], pre[v][0][b], rtol=1e-12, atol=1e-12)
            assert np.allclose(pre1[v][1][0], pre[v][1][b], rtol=1e-12, atol=1e-12)


def test_the_checker_derives_each_nodes_signs_from_its_parents(deep):
    """``inherited_signs`` on a two-level tree equals the bounds recomputed node by node."""
    _, bc, _, _ = deep
    lo0, hi0 = -np.ones(4), np.ones(4)
    mid = 0.3
    a_hi = hi0.copy()
    a_hi[0] = mid
    b_lo = lo0.copy()
    b_lo[0] = mid
    c_hi = a_hi.copy()
    c_hi[2] = -0.2
    internal = [
        (0, lo0, hi0, {}, -1),
        (1, lo0, a_hi, {}, 0),
        (2, lo0, c_hi, {}, 1),
        (5, b_lo, hi0, {}, 0),
    ]
    sizes = [24, 24, 24]
    got = inherited_signs(bc, internal, sizes, batch=2)

    def direct(lo, hi, kn):
        _, _, pre = bc.bound(
            lo[None], hi[None], np.zeros((1, 3)), unstable_only=True, known=kn[None]
        )
        return bc.signs(pre, 1)[0]

    s0 = direct(lo0, hi0, np.zeros(72, dtype=np.int8))
    s1 = direct(lo0, a_hi, s0)
    assert got[0].tolist() == s0.tolist()
    assert got[1].tolist() == s1.tolist()
    assert got[2].tolist() == direct(lo0, c_hi, s1).tolist()
    assert got[3].tolist() == direct(b_lo, hi0, s0).tolist()
    # deeper nodes know more signs
    assert np.count_nonzero(got[2]) >= np.count_nonzero(got[1]) >= np.count_nonzero(got[0])


@pytest.fixture(scope="module")
def solved():
    net, _, _ = mlp_net([3, 20, 20, 20, 2], ["relu", "relu", "relu", None], seed=2)
    prob = Inversion(net, [4.0, -3.0], norm=1, box=(-1, 1))
    res = minimize(prob, time_limit=60)
    return net, prob, res


def test_search_proofs_inherit_and_recheck(solved):
    net, prob, res = solved
    assert res.stopped is None and res.proof is not None and res.proof.inherit
    assert sum(1 for nd in res.proof.nodes if nd[0] == "x") > 3
    doc = json.loads(json.dumps(res.proof.to_dict()))
    assert doc["inherit"] is True and doc["version"] == 3
    again = BabProof.from_dict(doc)
    assert again.inherit
    # leaves bounded a batch of their own or in any other batch: the same bounds
    for batch in (256, 7, 1):
        pc = check_proof(net.graph, again, batch=batch)
        assert pc.ok, (batch, pc.reason)
    # the bound is below every sampled value
    X = np.random.default_rng(3).uniform(-1, 1, (20000, 3))
    assert res.bound <= prob.evaluate(net.forward(X)).min() + 1e-12


def test_each_leaf_inherits_from_its_nearest_input_split(solved, monkeypatch):
    """The checker's walk: a leaf's signs are those of the input-split node just above it (the
    box it is a half of, or the same box under the pieces' ReLU splits), and that node's from the
    node above it."""
    import netopt.bounds.proof as proof_mod

    net, _, res = solved
    seen = {}
    real_signs, real_leaves = proof_mod.inherited_signs, proof_mod._bound_leaves

    def signs(bc, internal, sizes, batch):
        seen["internal"] = list(internal)
        seen["out"] = real_signs(bc, internal, sizes, batch)
        return seen["out"]

    def leaves(bc, P, pending, sizes, params, root, known=None):
        seen.setdefault("leaves", []).extend(pending)
        seen.setdefault("known", []).append(known)
        return real_leaves(bc, P, pending, sizes, params, root, known)

    monkeypatch.setattr(proof_mod, "inherited_signs", signs)
    monkeypatch.setattr(proof_mod, "_bound_leaves", leaves)
    assert check_proof(net.graph, res.proof).ok
    internal, out = seen["internal"], seen["out"]
    known = np.concatenate(seen["known"])
    nodes = res.proof.nodes

    def half_of(lo, hi, plo, phi, k):
        """The box is one of the halves node k's cut makes of its parent's, or that box."""
        i, cut = nodes[k][1], nodes[k][2]
        if np.array_equal(lo, plo) and np.array_equal(hi, phi):
            return True
        rest = np.arange(lo.size) != i
        same = np.array_equal(lo[rest], plo[rest]) and np.array_equal(hi[rest], phi[rest])
        return same and ((lo[i] == plo[i] and hi[i] == cut) or (lo[i] == cut and hi[i] == phi[i]))

    assert internal[0][4] == -1 and all(e[4] >= 0 for e in internal[1:])
    for k, lo, hi, _, par in internal[1:]:
        pk, plo, phi = internal[par][:3]
        assert nodes[k][0] == nodes[pk][0] == "x" and pk < k and half_of(lo, hi, plo, phi, pk)
    for b, lf in enumerate(seen["leaves"]):
        par = lf[6]
        assert par >= 0  # the root is split
        pk, plo, phi = internal[par][:3]
        assert half_of(lf[1], lf[2], plo, phi, pk)
        assert np.array_equal(known[b], out[par])


def test_a_raised_inheriting_proof_is_rejected(solved):
    net, _, res = solved
    up = copy.deepcopy(res.proof)
    up.d = up.d + 0.5
    pc = check_proof(net.graph, up)
    assert not pc.ok and "open leaf" in pc.reason
    cut = copy.deepcopy(res.proof)
    cut.nodes = cut.nodes[:-1]
    assert not check_proof(net.graph, cut).ok


def test_inherit_must_be_a_boolean():
    base = BabProof.single_leaf(np.zeros(2), np.ones(2), np.eye(1, 2), [0.0], 0).to_dict()
    assert "inherit" not in base
    with pytest.raises(InputError, match="proof.inherit"):
        BabProof.from_dict({**base, "inherit": "yes"})


def test_lower_only_back_substitution_is_the_same_lower_bound(deep, monkeypatch):
    """``backsub(upper=False)``, the final rows' pass of ``BatchCrown.bound``: the lower bounds
    and coefficients bit for bit as with both sides, the upper bounds +inf."""
    _, bc, _, _ = deep
    rng = np.random.default_rng(4)
    c = rng.uniform(-0.8, 0.8, (5, 4))
    lo, hi = c - 0.2, c + 0.2
    C = rng.normal(size=(5, 3, 3))
    captured = {}
    real = crown.backsub

    def both(*a, **k):
        out = real(*a, **k)
        if k.get("upper", True) is False:
            captured["one"] = out
            captured["two"] = real(*a, **{**k, "upper": True})
        return out

    monkeypatch.setattr("netopt.bounds.bab.backsub", both)
    bc.bound(lo, hi, C, slopes=[rng.uniform(0, 1, (5, 24)) for _ in range(3)])
    (l1, u1, c1), (l2, u2, c2) = captured["one"], captured["two"]
    assert np.array_equal(l1, l2) and np.array_equal(c1, c2)
    assert np.all(u1 == np.inf) and np.all(np.isfinite(u2))


def test_a_leaf_the_inherited_signs_leave_open_is_retried_without_them(solved, monkeypatch):
    """Leaves that the bounds from inherited signs leave open (here: right-hand sides raised)
    are bounded once more with every unit's own CROWN bounds and no signs, and only those."""
    net, _, res = solved
    up = copy.deepcopy(res.proof)
    up.d = up.d + 1e-3 * (1 + np.abs(up.d))
    calls = []
    orig = BatchCrown.bound

    def spy(self, lo, hi, C, *a, **k):
        out = orig(self, lo, hi, C, *a, **k)
        if np.ndim(C) == 3:  # the leaves' rows (not an input-split node's zero row)
            calls.append((k.get("unstable_only"), k.get("known") is None, len(lo), out[0][:, 0]))
        return out

    monkeypatch.setattr(BatchCrown, "bound", spy)
    pc = check_proof(net.graph, up, batch=10**6)
    first = [c for c in calls if c[0] and not c[1]]
    retry = [c for c in calls if not c[0] and c[1]]
    assert len(first) == 1 and len(retry) == 1
    rows = [nd[1] for nd in up.nodes if nd[0] == "leaf"]
    n_open = int(np.sum(~(first[0][3] > up.d[rows])))
    assert 0 < n_open < len(rows) and retry[0][2] == n_open
    assert not pc.ok
