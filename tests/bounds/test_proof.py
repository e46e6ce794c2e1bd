"""Branch-and-bound proofs (netopt.bounds.proof): the format, and a checker that accepts only
sound trees.

Every accepted tree is confronted with an independent reference: a dense grid of the 2-D box
through a plain numpy forward pass (the property holds on every grid point), and, per leaf,
sampled points of the leaf's domain (its box and split constraints), where the claimed row must
be positive.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.nets import NETS, mlp_net, require_nets

import netopt
from netopt.bounds.bab import BatchCrown
from netopt.bounds.branch import LOOKAHEAD, branch_and_bound
from netopt.bounds.proof import BabProof, check_proof
from netopt.bounds.proof_format import VERSION
from netopt.errors import InputError

LO, HI = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
C1 = np.array([[1.0, -1.0]])


@pytest.fixture(scope="module")
def chain():
    """A seeded 2-16-16-2 ReLU chain, its weights, and the margin y0 - y1 on a dense grid."""
    net, Ws, bs = mlp_net([2, 16, 16, 2], ["relu", "relu", None], seed=0)
    g = np.linspace(-1, 1, 401)
    X = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    y, _ = _forward(Ws, bs, X)
    assert np.allclose(y, net.forward(X), atol=1e-9)
    return net, Ws, bs, X, y @ C1[0]


def _forward(Ws, bs, X):
    """The chain's output and its activation inputs z_j, by plain numpy."""
    a, zs = X, []
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        z = a @ W.T + b
        zs.append(z)
        a = np.maximum(z, 0)
    return a @ Ws[-1].T + bs[-1], zs


def _unsat_d(margin: np.ndarray, gap: float = 0.05) -> np.ndarray:
    """A limit below every grid margin: C f(x) <= d has no solution (the grid says so)."""
    return np.array([margin.min() - gap])


def _build(bc: BatchCrown, lo, hi, C, d, splits=None, depth=0) -> list:
    """A tree by input bisection of the widest side until CROWN closes a piece (pre-order).

    Written here, independent of branch_and_bound: the smallest tree that the test's own
    bisection finds, with ``splits`` (a dict (layer, unit) -> sign) fixed on every piece.
    """
    sp = None
    if splits:
        sp = [np.zeros((1, 16), dtype=np.int8) for _ in range(2)]
        for (j, u), s in splits.items():
            sp[j][0, u] = s
    low, _, _ = bc.bound(lo[None], hi[None], C, splits=sp)
    if np.any(low[0] > d):
        return [["leaf", int(np.argmax(low[0] - d))]]
    assert depth < 30, "the bisection does not close"
    i = int(np.argmax(hi - lo))
    cut = float((lo[i] + hi[i]) / 2)
    h1, l2 = hi.copy(), lo.copy()
    h1[i], l2[i] = cut, cut
    return (
        [["x", i, cut]]
        + _build(bc, lo, h1, C, d, splits, depth + 1)
        + _build(bc, l2, hi, C, d, splits, depth + 1)
    )


def _leaves(proof: BabProof):
    """Each leaf's (node index, box, split signs), derived independently (recursively)."""
    out = []

    def walk(k, lo, hi, signs):
        nd = proof.nodes[k]
        if nd[0] == "leaf":
            out.append((k, lo, hi, dict(signs)))
            return k + 1
        if nd[0] == "x":
            i = nd[1]
            cut = min(max(nd[2], lo[i]), hi[i])
            h1, l2 = hi.copy(), lo.copy()
            h1[i], l2[i] = cut, cut
            k = walk(k + 1, lo, h1, signs)
            return walk(k, l2, hi, signs)
        key = (nd[1], nd[2])
        k = walk(k + 1, lo, hi, {**signs, key: -1})
        return walk(k, lo, hi, {**signs, key: 1})

    walk(0, proof.lo.copy(), proof.hi.copy(), {})
    return out


def _subtree_end(nodes: list, k: int) -> int:
    """The index just past the subtree that starts at node ``k`` (pre-order)."""
    need = 1
    while need:
        need += 1 if nodes[k][0] in ("x", "r") else -1
        k += 1
    return k


def _assert_leaves_sound(Ws, bs, proof: BabProof, n: int = 400, seed: int = 0) -> None:
    """At sampled points of every leaf's domain, the leaf's row of C f(x) - d is positive."""
    rng = np.random.default_rng(seed)
    for k, lo, hi, signs in _leaves(proof):
        X = rng.uniform(lo, hi, (n, len(lo)))
        X = np.concatenate([X, lo[None], hi[None], ((lo + hi) / 2)[None]])
        y, zs = _forward(Ws, bs, X)
        keep = np.ones(len(X), dtype=bool)
        for (j, u), s in signs.items():
            keep &= s * zs[j][:, u] >= 0
        row = proof.nodes[k][1]
        r = y[keep] @ proof.C[row] - proof.d[row]
        assert np.all(r > 0), f"leaf {k} claims row {row} > 0 but a point gives {r.min()}"


# ------------------------------------------------------------------------------ accepted trees
def test_input_split_tree_is_accepted_and_sound(chain):
    net, Ws, bs, _, margin = chain
    d = _unsat_d(margin)
    assert margin.min() > d[0]  # the grid: no point satisfies C f(x) <= d
    nodes = _build(BatchCrown(net.graph), LO, HI, C1, d)
    assert len(nodes) > 3  # the root alone does not close: a real tree
    proof = BabProof(LO, HI, C1, d, nodes)
    pc = check_proof(net.graph, proof, batch=3)  # leaves in several batches
    assert pc.ok, pc.reason
    assert pc.leaves == pc.closed == sum(n[0] == "leaf" for n in nodes)
    _assert_leaves_sound(Ws, bs, proof)
    # through JSON and back
    again = BabProof.from_dict(json.loads(json.dumps(proof.to_dict())))
    assert check_proof(net.graph, again).ok


def test_input_splitting_records_a_checkable_tree(chain):
    net, Ws, bs, _, margin = chain
    d = _unsat_d(margin)
    r = branch_and_bound(net, LO, HI, C1, d, mode="input", batch=4)
    assert r.verdict == "unsat" and r.proof is not None
    # every piece kept is a node: each closed one a leaf, each split one a node with two
    # children (and the look-ahead's other candidate halves, bounded too, are not in the tree)
    n_leaf = sum(n[0] == "leaf" for n in r.proof.nodes)
    n_split = sum(n[0] == "x" for n in r.proof.nodes)
    assert n_leaf + n_split == len(r.proof.nodes) and n_split == n_leaf - 1
    assert n_leaf == r.stats["leaves"] == r.stats["proof_leaves"]
    assert r.stats["nodes"] == 1 + 2 * min(LOOKAHEAD, len(LO)) * n_split
    pc = check_proof(net.graph, r.proof)
    assert pc.ok, pc.reason
    _assert_leaves_sound(Ws, bs, r.proof)


def test_single_leaf():
    net, *_ = mlp_net([2, 3, 1], ["relu", None], seed=1)
    # f is bounded on the box: a limit far below it is closed at the root
    proof = BabProof.single_leaf(LO, HI, [[1.0]], [-100.0], 0)
    pc = check_proof(net.graph, proof)
    assert pc.ok and pc.leaves == 1
    assert not check_proof(net.graph, BabProof.single_leaf(LO, HI, [[1.0]], [100.0], 0)).ok


# ---------------------------------------------------------------------------------- mutations
def test_malformed_trees_are_rejected(chain):
    net, _, _, _, margin = chain
    d = _unsat_d(margin)
    nodes = _build(BatchCrown(net.graph), LO, HI, C1, d)
    leaf = next(k for k, n in enumerate(nodes) if n[0] == "leaf")
    for bad in (
        nodes[:leaf] + nodes[leaf + 1 :],  # a leaf dropped
        nodes[:-1],  # the last leaf dropped
        nodes + [["leaf", 0]],  # a node after the end
        [["x", 0, 0.0]] + nodes,  # a split with one child
    ):
        pc = check_proof(net.graph, BabProof(LO, HI, C1, d, bad))
        assert not pc.ok and "malformed" in pc.reason
    for bad_root in ((LO, np.array([1.0, np.inf])), (HI, LO)):
        pc = check_proof(net.graph, BabProof(*bad_root, C1, d, nodes))
        assert not pc.ok and "root box" in pc.reason
    # a unit split twice on one path; an out-of-range unit
    twice = [["r", 0, 3], ["r", 0, 3], ["leaf", 0], ["leaf", 0], ["leaf", 0]]
    assert "twice" in check_proof(net.graph, BabProof(LO, HI, C1, d, twice)).reason
    far = [["r", 2, 0], ["leaf", 0], ["leaf", 0]]
    assert "out of range" in check_proof(net.graph, BabProof(LO, HI, C1, d, far)).reason
    # a slope of a unit the network does not have
    odd = BabProof(LO, HI, C1, d, [["leaf", 0, 0]], [{"alphas": [[0, 99, 0.5]]}])
    pc = check_proof(net.graph, odd)
    assert not pc.ok and "alphas" in pc.reason and "out of range" in pc.reason
    # row weights of the wrong number, or not finite
    for lam in ([1.0, 1.0], [float("inf")]):
        odd = BabProof(LO, HI, C1, d, [["leaf", 0, 0]], [{"lam": lam}])
        pc = check_proof(net.graph, odd)
        assert not pc.ok and "lam" in pc.reason


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"nodes": [["y", 0]]}, "nodes[0]"),
        ({"nodes": [["x", 5, 0.0], ["leaf", 0], ["leaf", 0]]}, "nodes[0]"),
        ({"nodes": [["leaf", 1]]}, "nodes[0]"),
        ({"nodes": [["leaf", 0, 0]]}, "nodes[0]"),
        ({"nodes": [["x", 0, float("nan")], ["leaf", 0], ["leaf", 0]]}, "nodes[0]"),
        ({"lo": [0.0]}, "proof.lo"),
        ({"C": [[1.0, "a"]]}, "proof.C"),
        ({"params": [{"betas": [[0, 1]]}]}, "betas"),
        ({"params": [{"slopes": [[1.0, None]]}]}, "slopes[0]"),
        ({"params": [{"alphas": [[0, -1, 0.5]]}]}, "alphas"),
        ({"params": [{"lam": [1.0, "a"]}]}, "lam"),
        ({"params": [{"alphas": [[0, 1, 0.5]], "slopes": [None]}]}, "both slopes and alphas"),
        ({"d": None}, "proof.d"),
        ({"version": 99}, "newer netopt"),
        ({"version": "2"}, "proof.version"),
        ({"format": "netopt-certificate"}, "proof.format"),
    ],
)
def test_from_dict_names_the_bad_field(bad, field):
    base = BabProof.single_leaf(LO, HI, C1, [0.0], 0).to_dict()
    with pytest.raises(InputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        BabProof.from_dict({**base, **bad})


def test_proofs_of_every_earlier_version_are_read(chain):
    """A proof marked version 1, or one without the header fields, is read and checked as
    written; the version written is the oldest with the proof's fields."""
    net, _, _, _, margin = chain
    d = _unsat_d(margin)
    r = branch_and_bound(net, LO, HI, C1, d, mode="input", batch=4)
    doc = json.loads(json.dumps(r.proof.to_dict()))
    # (version 3 adds "inherit"; a proof without it is written as version 2)
    assert doc["version"] == 2 and VERSION == 3 and doc["format"] == "netopt-bab-proof"
    for old in (
        {**doc, "version": 1},
        {k: v for k, v in doc.items() if k not in ("format", "version")},
    ):
        assert check_proof(net.graph, BabProof.from_dict(old)).ok


def test_swapped_children_and_moved_cuts_stay_sound(chain):
    """A mutated tree is either rejected or sound on every leaf (a cut is clipped, so the
    pieces always cover the parent; the claim is then about other pieces)."""
    net, Ws, bs, _, margin = chain
    d = _unsat_d(margin)
    nodes = _build(BatchCrown(net.graph), LO, HI, C1, d)
    splits = [k for k, n in enumerate(nodes) if n[0] == "x"]
    rng = np.random.default_rng(1)
    seen = {True: 0, False: 0}
    for trial in range(16):
        mut = [list(n) for n in nodes]
        k = splits[trial % len(splits)]
        if trial % 4 == 0:
            mut[k][2] = float(rng.uniform(-2, 2))  # a cut moved (maybe out of the box)
        elif trial % 4 == 1:
            mut[k][1] = 1 - mut[k][1]  # the other coordinate
        elif trial % 4 == 2:
            mut[k][2] = mut[k][2] + 0.3  # the pieces change size
        else:
            # the two children's subtrees swapped
            e1 = _subtree_end(mut, k + 1)
            e2 = _subtree_end(mut, e1)
            mut = mut[: k + 1] + mut[e1:e2] + mut[k + 1 : e1] + mut[e2:]
        proof = BabProof(LO, HI, C1, d, mut)
        pc = check_proof(net.graph, proof)
        seen[pc.ok] += 1
        if pc.ok:
            _assert_leaves_sound(Ws, bs, proof, seed=trial)
        else:
            assert pc.closed < pc.leaves and pc.failed_node is not None
    assert seen[False] > 0  # the mutations do break proofs


def test_wrong_row_claim_is_rejected(chain):
    net, _, _, _, margin = chain
    d = _unsat_d(margin)
    # row 1 (-y0 + y1 <= 1e3) holds everywhere: its C f(x) - d is never > 0
    C = np.vstack([C1, -C1])
    d2 = np.array([d[0], 1e3])
    nodes = _build(BatchCrown(net.graph), LO, HI, C, d2)
    assert check_proof(net.graph, BabProof(LO, HI, C, d2, nodes)).ok
    k = next(k for k, n in enumerate(nodes) if n[0] == "leaf")
    nodes[k] = ["leaf", 1]
    pc = check_proof(net.graph, BabProof(LO, HI, C, d2, nodes))
    assert not pc.ok and pc.failed_node == k and "row 1" in pc.reason


@pytest.mark.parametrize("garbage", [3.7, -5.0, float("nan"), float("inf"), 0.5])
def test_garbage_slopes_are_clipped_and_sound(chain, garbage):
    net, Ws, bs, _, margin = chain
    d = _unsat_d(margin)
    nodes = _build(BatchCrown(net.graph), LO, HI, C1, d)
    nodes = [n + [0] if n[0] == "leaf" else n for n in nodes]
    params = [{"slopes": [[garbage] * 16, None]}]
    proof = BabProof.from_dict(BabProof(LO, HI, C1, d, nodes, params).to_dict())
    pc = check_proof(net.graph, proof)
    if pc.ok:
        _assert_leaves_sound(Ws, bs, proof)
    # slopes 1 and 0 (3.7 and -5 clipped) are valid lines; a NaN is the adaptive one
    if np.isnan(garbage):
        assert pc.ok


def test_sat_property_never_gets_a_proof(chain):
    """Random trees with random rows, splits, slopes and betas over a satisfiable property."""
    net, _, _, X, margin = chain
    C = np.vstack([C1, -C1])
    d = np.array([np.median(margin), 5.0])  # half the grid satisfies both rows
    assert np.any((margin <= d[0]) & (-margin <= d[1]))
    rng = np.random.default_rng(7)

    def tree(depth):
        if depth == 0 or rng.random() < 0.25:
            return [["leaf", int(rng.integers(2)), int(rng.integers(3))]]
        if rng.random() < 0.5:
            head = ["x", int(rng.integers(2)), float(rng.uniform(-1.2, 1.2))]
        else:
            head = ["r", int(rng.integers(2)), int(rng.integers(16))]
        return [head] + tree(depth - 1) + tree(depth - 1)

    def params():
        pick = rng.choice([0.0, 1.0, 0.3, 3.7, -5.0, np.nan, np.inf, -np.inf])
        slopes = [list(rng.uniform(-2, 3, 16)), [float(pick)] * 16]
        betas = [
            [int(rng.integers(2)), int(rng.integers(16)), float(v)] for v in rng.normal(0, 5, 6)
        ]
        if rng.random() < 0.5:
            # the sparse form: a few units' slopes
            alphas = [
                [int(rng.integers(2)), int(rng.integers(16)), float(v)]
                for v in rng.choice([0.0, 1.0, 0.3, 3.7, -5.0, np.inf], 5)
            ]
            return {"alphas": alphas, "betas": betas}
        return {"slopes": slopes, "betas": betas}

    accepted = 0
    for _ in range(25):
        nodes = tree(5)
        proof = BabProof(LO, HI, C, d, nodes, [params() for _ in range(3)])
        try:
            accepted += check_proof(net.graph, proof).ok
        except InputError:
            pass
    assert accepted == 0


# ------------------------------------------------------------------------------ ReLU splits
def test_bound_with_splits_slopes_betas_is_sound_on_the_leaf(chain):
    """BatchCrown.bound with splits, slopes and betas (garbage included) never exceeds the true
    minimum over sampled points of the leaf's domain."""
    net, Ws, bs, _, _ = chain
    bc = BatchCrown(net.graph)
    rng = np.random.default_rng(3)
    B = 40
    lo = rng.uniform(-1, 0, (B, 2))
    hi = lo + rng.uniform(0.2, 1.0, (B, 2))
    # three units per layer split on the side of a point of the box (a non-empty domain),
    # and for a quarter of the boxes a random side (maybe empty)
    _, z0 = _forward(Ws, bs, rng.uniform(lo, hi))
    splits = [np.zeros((B, 16), dtype=np.int8) for _ in range(2)]
    for b in range(B):
        for j in range(2):
            us = rng.choice(16, 3, replace=False)
            side = np.where(z0[j][b, us] >= 0, 1, -1)
            splits[j][b, us] = side if b % 4 else rng.choice([-1, 1], 3)
    slopes = [rng.choice([np.nan, -5, 0.2, 0.8, 3.7], (B, 16)) for _ in range(2)]
    betas = [rng.choice([-3.0, 0.0, 0.5, 2.0, 1e3, np.nan], (B, 16)) for _ in range(2)]
    rows = rng.integers(0, 2, B)
    C = np.array([[1.0, -1.0], [-0.5, 2.0]])
    low = bc.bound(lo, hi, C, rows=rows, splits=splits, slopes=slopes, betas=betas)[0][:, 0]
    checked = 0
    for b in range(B):
        X = rng.uniform(lo[b], hi[b], (4000, 2))
        y, zs = _forward(Ws, bs, X)
        keep = np.ones(len(X), dtype=bool)
        for j in range(2):
            for u in np.nonzero(splits[j][b])[0]:
                keep &= splits[j][b, u] * zs[j][:, u] >= 0
        if keep.any():
            checked += 1
            assert np.min(y[keep] @ C[rows[b]]) >= low[b]
    assert checked > 25


def test_betas_close_a_leaf_that_splits_alone_do_not(chain):
    net, Ws, bs, _, margin = chain
    bc = BatchCrown(net.graph)
    # find a ReLU split whose z >= 0 side CROWN bounds worse than with some beta
    best = None
    grid = np.linspace(0.0, 3.0, 61)
    for u in range(16):
        sp = [None, np.zeros((1, 16), dtype=np.int8)]
        sp[1][0, u] = 1
        base = bc.bound(LO[None], HI[None], C1, splits=sp)[0][0, 0]
        spb = [None, np.repeat(sp[1], len(grid), 0)]
        bt = [None, np.zeros((len(grid), 16))]
        bt[1][:, u] = grid
        v = bc.bound(
            np.repeat(LO[None], len(grid), 0),
            np.repeat(HI[None], len(grid), 0),
            C1,
            splits=spb,
            betas=bt,
        )[0][:, 0]
        if best is None or v.max() - base > best[0]:
            best = (v.max() - base, u, base, v.max(), float(grid[v.argmax()]))
    gain, u, base, with_beta, beta = best
    assert gain > 0.05
    d = np.array([(base + with_beta) / 2])  # between the two bounds
    assert margin.min() > d[0]  # still unsat on the grid
    left = _build(bc, LO.copy(), HI.copy(), C1, d, {(1, u): -1})
    nodes = [["r", 1, u]] + left + [["leaf", 0, 0]]
    params = [{"betas": [[1, u, beta], [0, 5, 1e9]]}]  # (0, 5) is not split: ignored
    proof = BabProof(LO, HI, C1, d, nodes, params)
    pc = check_proof(net.graph, proof)
    assert pc.ok, pc.reason
    _assert_leaves_sound(Ws, bs, proof)
    # without the beta (or with it negated: clipped to 0) the z >= 0 leaf stays open
    for p in ([], [{"betas": [[1, u, -beta]]}]):
        plain = BabProof(LO, HI, C1, d, nodes[:-1] + [["leaf", 0] + ([0] if p else [])], p)
        pc = check_proof(net.graph, plain)
        assert not pc.ok and pc.failed_node == len(nodes) - 1
    # a huge beta loosens the bound: rejected, never a false claim
    huge = BabProof(LO, HI, C1, d, nodes, [{"betas": [[1, u, 1e6]]}])
    assert not check_proof(net.graph, huge).ok


# ---------------------------------------------------------------------------------- ACAS Xu
def test_acasxu_property_1_proof():
    require_nets()
    from netopt.vnnlib.reader import load_vnnlib

    net = netopt.load(NETS / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx")
    (dj,) = load_vnnlib(NETS / "acasxu" / "prop_1.vnnlib", n_inputs=5, n_outputs=5).disjuncts
    r = branch_and_bound(net, dj.lo, dj.hi, dj.C, dj.d, mode="input", time_limit=60)
    assert r.verdict == "unsat", r.stopped
    pc = check_proof(net.graph, BabProof.from_dict(json.loads(json.dumps(r.proof.to_dict()))))
    assert pc.ok and pc.leaves > 1, pc.reason
    # the tree is about this property: another limit breaks it
    other = BabProof(r.proof.lo, r.proof.hi, r.proof.C, r.proof.d + 1e3, r.proof.nodes)
    assert not check_proof(net.graph, other).ok


def test_beta_on_the_bounded_output_itself_cannot_prove_a_false_claim(tmp_path):
    """An output that also feeds a ReLU (dead in the graph) is an activation input: a beta on
    it must add to the bounded row's coefficients, not replace them. f(x) = x_0 reaches -1, so
    "f <= -0.5 nowhere on [-1, 1]^2" is false and no proof of it may pass."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    W = np.array([[1.0, 0.0]], dtype=np.float32)
    b = np.array([0.0], dtype=np.float32)
    g = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W", "b"], ["z"], transB=1),
            helper.make_node("Relu", ["z"], ["r"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 1])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
    )
    path = tmp_path / "dangling.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    net = netopt.load(path)
    lo, hi, C, d = -np.ones(2), np.ones(2), np.array([[1.0]]), np.array([-0.5])
    assert float(net.forward(np.array([[-1.0, 0.0]])).reshape(-1)[0]) <= d[0]  # a witness
    for beta in (0.0, 1e-9, 1.0, 1e6):
        nodes = [["r", 0, 0], ["leaf", 0, 0], ["leaf", 0, 0]]
        assert not check_proof(
            net.graph, BabProof(lo, hi, C, d, nodes, [{"betas": [[0, 0, beta]]}])
        ).ok


def test_integers_beyond_float_range_are_a_clear_error():
    big = 10**400
    with pytest.raises(InputError):
        BabProof.from_dict(
            {
                "lo": [0.0],
                "hi": [1.0],
                "C": [[1.0]],
                "d": [0.0],
                "nodes": [["x", 0, big]],
                "params": [],
            }
        )
