"""Networks with skip connections in ReLU splitting: their chain form (netopt.ir.chain_form).

References: onnxruntime and the network's own float64 interpreter for the rewrite; a brute
force over the activation patterns of the residual network, written out in numpy, for the
verdicts; the proof checker, re-run on JSON, for every unsat.
"""

from __future__ import annotations

import functools
import itertools
import json

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper
from scipy.optimize import linprog

import netopt
from netopt.bounds.branch import ChainView, branch_and_bound, chain_view
from netopt.bounds.proof import check_proof
from netopt.bounds.proof_format import BabProof
from netopt.errors import InputError
from netopt.ir.chain import chain_refusals
from netopt.ir.chain_form import chain_form, exact_form
from netopt.ir.interpret import as_batch, interpret


# ------------------------------------------------------------------------ the networks
def _weights(seed: int, n: int, n1: int, n2: int, m: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.normal(size=(n1, n)),
        "b1": rng.normal(size=n1) * 0.5,
        "W2": rng.normal(size=(n2, n1)),
        "b2": rng.normal(size=n2) * 0.5,
        "S": rng.normal(size=(n2, n)),  # the input's skip into the second layer
        "W3": rng.normal(size=(m, n2)),
        "b3": rng.normal(size=m) * 0.5,
        "R": rng.normal(size=(m, n1)),  # the first layer's skip to the output
    }


def _residual_model(w: dict, leaky: float | None = None):
    """``h1 = relu(W1 x + b1)``, ``h2 = relu(W2 h1 + b2 + S x)``, ``y = W3 h2 + b3 + R h1``:
    the input is carried through layer 1, ``h1`` through layer 2. ``leaky``: h1 is a leaky
    ReLU (its carried output has no chain form)."""
    act1 = (
        helper.make_node("LeakyRelu", ["z1"], ["h1"], alpha=leaky)
        if leaky is not None
        else helper.make_node("Relu", ["z1"], ["h1"])
    )
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["z1"], transB=1),
        act1,
        helper.make_node("Gemm", ["h1", "W2", "b2"], ["a2"], transB=1),
        helper.make_node("MatMul", ["x", "St"], ["s2"]),
        helper.make_node("Add", ["a2", "s2"], ["z2"]),
        helper.make_node("Relu", ["z2"], ["h2"]),
        helper.make_node("Gemm", ["h2", "W3", "b3"], ["a3"], transB=1),
        helper.make_node("MatMul", ["h1", "Rt"], ["r3"]),
        helper.make_node("Add", ["a3", "r3"], ["y"]),
    ]
    inits = {k: v for k, v in w.items() if k not in ("S", "R")}
    inits.update(St=w["S"].T, Rt=w["R"].T)
    n, m = w["W1"].shape[1], w["W3"].shape[0]
    return make_model(nodes, [1, n], [1, m], inits)


def _concat_model(seed: int):
    """Two branches of different depths concatenated: ``[relu(A x); relu(B relu(C x))]``,
    then a Gemm; and the input added to the output through a third branch."""
    rng = np.random.default_rng(seed)
    inits = {
        "A": rng.normal(size=(3, 4)),
        "a": rng.normal(size=3),
        "C": rng.normal(size=(5, 4)),
        "c": rng.normal(size=5),
        "B": rng.normal(size=(3, 5)),
        "b": rng.normal(size=3),
        "W": rng.normal(size=(4, 6)),
        "w": rng.normal(size=4),
    }
    nodes = [
        helper.make_node("Gemm", ["x", "A", "a"], ["za"], transB=1),
        helper.make_node("Relu", ["za"], ["ha"]),
        helper.make_node("Gemm", ["x", "C", "c"], ["zc"], transB=1),
        helper.make_node("Relu", ["zc"], ["hc"]),
        helper.make_node("Gemm", ["hc", "B", "b"], ["zb"], transB=1),
        helper.make_node("Relu", ["zb"], ["hb"]),
        helper.make_node("Concat", ["ha", "hb"], ["h"], axis=1),
        helper.make_node("Gemm", ["h", "W", "w"], ["o"], transB=1),
        helper.make_node("Add", ["o", "x"], ["y"]),
    ]
    return make_model(nodes, [1, 4], [1, 4], inits)


def _forward(w: dict, X: np.ndarray, leaky: float = 0.0) -> np.ndarray:
    """The residual network by plain numpy."""
    z1 = X @ w["W1"].T + w["b1"]
    h1 = np.where(z1 >= 0, z1, leaky * z1)
    h2 = np.maximum(h1 @ w["W2"].T + w["b2"] + X @ w["S"].T, 0)
    return h2 @ w["W3"].T + w["b3"] + h1 @ w["R"].T


def _exact_min(w: dict, lo, hi, C, d) -> float:
    r""":math:`\min_{x \in [lo, hi]} \max_i (C f(x) - d)_i` over every activation pattern of
    the residual network (one LP each, on the region where the pattern holds)."""
    n, n1, n2 = w["W1"].shape[1], len(w["b1"]), len(w["b2"])
    best = np.inf
    for pat in itertools.product([0.0, 1.0], repeat=n1 + n2):
        g1, g2 = np.array(pat[:n1]), np.array(pat[n1:])
        z1P, z1q = w["W1"], w["b1"]
        h1P, h1q = g1[:, None] * z1P, g1 * z1q
        z2P, z2q = w["W2"] @ h1P + w["S"], w["W2"] @ h1q + w["b2"]
        h2P, h2q = g2[:, None] * z2P, g2 * z2q
        yP, yq = w["W3"] @ h2P + w["R"] @ h1P, w["W3"] @ h2q + w["b3"] + w["R"] @ h1q
        s1, s2 = np.where(g1 > 0, -1.0, 1.0), np.where(g2 > 0, -1.0, 1.0)
        A = np.vstack([s1[:, None] * z1P, s2[:, None] * z2P, C @ yP])
        t = np.r_[np.zeros(n1 + n2), -np.ones(len(d))][:, None]
        res = linprog(
            np.r_[np.zeros(n), 1.0],
            A_ub=np.hstack([A, t]),
            b_ub=np.concatenate([-s1 * z1q, -s2 * z2q, d - C @ yq]),
            bounds=[*zip(lo, hi, strict=True), (None, None)],
            method="highs",
        )
        if res.status == 0:
            best = min(best, res.fun)
    return best


@functools.cache
def _instance(seed: int) -> dict:
    """A residual 3-input network of 4 + 4 ReLUs, a box, 1-2 rows; ``d`` set so that the exact
    optimum is ``-delta``, 2-6 % of the spread: sat for odd seeds, unsat for even ones."""
    rng = np.random.default_rng(100 + seed)
    w = _weights(seed, 3, 4, 4, 3)
    net = netopt.load(_residual_model(w))
    c, r = rng.uniform(-1, 1, 3), rng.uniform(0.4, 1.0, 3)
    lo, hi = c - r, c + r
    k = int(rng.integers(1, 3))
    C, d = rng.normal(size=(k, 3)), rng.normal(size=k)
    v = _exact_min(w, lo, hi, C, d)
    y = _forward(w, rng.uniform(lo, hi, (4000, 3)))
    spread = float(np.max(np.max(y @ C.T - d, axis=1)) - v)
    delta = (1 if seed % 2 else -1) * rng.uniform(0.02, 0.06) * spread
    return dict(w=w, net=net, lo=lo, hi=hi, C=C, d=d + v + delta, opt=-delta)


def _chain_out(graph, X: np.ndarray) -> np.ndarray:
    feeds, _ = as_batch(graph, X)
    return interpret(graph, feeds)[graph.outputs[0]].reshape(len(X), -1)


# ------------------------------------------------------------------------ the rewrite
def _acts(g) -> list:
    """The activation ops' input sizes, in order: the units a proof counts."""
    return [(o.op, g.value(o.inputs[0]).size) for o in g.ops if o.op in ("relu", "leaky_relu")]


def _assert_form(net, lo: np.ndarray, X: np.ndarray) -> None:
    """Both graphs of the chain form are the network on ``X`` (points >= lo), the chain is a
    chain, and both count the same units."""
    form = chain_form(net.graph, lo)
    assert form is not None and not chain_refusals(form.chain, ("relu", "leaky_relu"))
    assert _acts(form.chain) == _acts(form.exact)
    # unit for unit: every activation's input is the same in both graphs (a proof's unit
    # index means one unit)
    zs = []
    for g in (form.chain, form.exact):
        feeds, _ = as_batch(g, X)
        env = interpret(g, feeds, keep=True)
        zs.append([env[o.inputs[0]] for o in g.ops if o.op in ("relu", "leaky_relu")])
    for zc, ze in zip(*zs, strict=True):
        assert np.all(np.abs(zc - ze) <= 1e-11 * (1 + np.abs(ze)))
    ref = net.forward(X).reshape(len(X), -1)
    scale = 1 + np.abs(ref)
    assert np.all(np.abs(_chain_out(form.chain, X) - ref) <= 1e-11 * scale)
    # the exact form computes the network op for op (BLAS may round a product of a strided
    # copy differently: the last bits only)
    assert np.all(np.abs(_chain_out(form.exact, X) - ref) <= 1e-13 * scale)


@pytest.mark.parametrize("make", ["residual", "concat"])
def test_the_chain_form_is_the_network_on_the_box(make):
    """On points of the box (and beyond it above lo) both forms give the network's float64
    output, and onnxruntime's to float32."""
    model = _residual_model(_weights(0, 3, 4, 4, 3)) if make == "residual" else _concat_model(1)
    net = netopt.load(model)
    n = int(np.prod(net.input_shape))
    assert chain_refusals(net.graph, ("relu",))  # not a chain as given
    lo = np.full(n, -1.0)
    X = np.random.default_rng(0).uniform(-1.0, 3.0, (500, n))  # x >= lo, some beyond hi = 1
    _assert_form(net, lo, X)
    ort = np.concatenate([net.run_onnxruntime(x).reshape(1, -1) for x in X[:50]])
    assert np.allclose(ort, net.forward(X[:50]).reshape(50, -1), rtol=1e-5, atol=1e-5)
    f1, f2 = chain_form(net.graph, lo), chain_form(net.graph, lo)  # cached per box
    assert f1.chain is f2.chain and f1.exact is f2.exact


def _random_dag(seed: int):
    """A random network of Gemm, Add, Concat and (leaky) ReLUs whose values read any earlier
    ones (skips from the input, across layers, to the output)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    vals, nodes, inits = [("x", n)], [], {}
    leaky = float(rng.choice([0.0, 0.2])) if rng.random() < 0.3 else None

    def gemm(src: str, width: int, m: int) -> str:
        k = len(inits)
        inits[f"W{k}"], inits[f"b{k}"] = rng.normal(size=(m, width)), rng.normal(size=m)
        nodes.append(helper.make_node("Gemm", [src, f"W{k}", f"b{k}"], [f"t{k}"], transB=1))
        return f"t{k}"

    def add_all(terms: list, out: str) -> None:
        acc = terms[0]
        for i, t in enumerate(terms[1:]):
            name = out if i == len(terms) - 2 else f"s{len(nodes)}"
            nodes.append(helper.make_node("Add", [acc, t], [name]))
            acc = name
        if acc != out:
            nodes.append(helper.make_node("Identity", [acc], [out]))

    for layer in range(int(rng.integers(1, 4))):
        for _ in range(int(rng.integers(1, 3))):
            picks = rng.choice(
                len(vals), size=int(rng.integers(1, min(3, len(vals)) + 1)), replace=False
            )
            m = int(rng.integers(1, 4))
            if rng.random() < 0.4 and len(picks) > 1:
                cat = f"c{len(nodes)}"
                nodes.append(helper.make_node("Concat", [vals[p][0] for p in picks], [cat], axis=1))
                terms = [gemm(cat, sum(vals[p][1] for p in picks), m)]
            else:
                terms = [gemm(vals[p][0], vals[p][1], m) for p in picks]
            z, h = f"z{len(nodes)}", f"h{len(nodes)}"
            add_all(terms, z)
            if leaky is not None and layer == 0:
                nodes.append(helper.make_node("LeakyRelu", [z], [h], alpha=leaky))
            else:
                nodes.append(helper.make_node("Relu", [z], [h]))
            vals.append((h, m))
    picks = set(
        rng.choice(len(vals), size=int(rng.integers(1, len(vals) + 1)), replace=False).tolist()
    )
    mo = int(rng.integers(1, 3))
    add_all([gemm(vals[p][0], vals[p][1], mo) for p in sorted(picks | {len(vals) - 1})], "y")
    return netopt.load(make_model(nodes, [1, n], [1, mo], inits)), n


def test_random_networks_with_skips_keep_their_function():
    """Random graphs: every chain form found is the network above its lo (both graphs), and a
    graph refused is one with a carried leaky ReLU's output (the only refusal they can hit)."""
    found = refused = 0
    for seed in range(60):
        net, n = _random_dag(seed)
        rng = np.random.default_rng(seed + 999)
        lo = rng.uniform(-2, 1, n)
        X = lo + rng.exponential(2.0, (200, n))
        X[0] = lo
        if chain_form(net.graph, lo) is None:
            refused += 1
            assert any(o.op == "leaky_relu" for o in net.graph.ops)
            continue
        found += 1
        _assert_form(net, lo, X)
    assert found >= 40 and refused >= 1


def test_cancelling_weights_are_never_composed_into_a_claim():
    """``y = (2^54 + 1) x2 - 2^54 x2 + 0.5 relu(x1) = x2 + 0.5 x1``: composing the weights in
    float64 loses the x2 term, which the composed chain shows; the claim "y < 2.5 on [1, 2]^9"
    is false (y = 3 at the top corner), and the search must not call it unsat: its float64
    bounds take the network's own ops."""
    big, n = 2.0**54, 9
    A = np.zeros((3, n))
    A[:, :2] = [[-big, big], [0.0, 1.0], [big, -big]]
    G = np.zeros((n, 1))
    G[0, 0] = 0.5
    nodes = [
        helper.make_node("Relu", ["x"], ["h"]),
        helper.make_node("MatMul", ["x", "At"], ["t"]),
        helper.make_node("MatMul", ["t", "Bt"], ["u"]),
        helper.make_node("MatMul", ["h", "G"], ["g"]),
        helper.make_node("Add", ["u", "g"], ["y"]),
    ]
    net = netopt.load(make_model(nodes, [1, n], [1, 1], dict(At=A.T, Bt=np.ones((3, 1)), G=G)))
    lo, hi = np.ones(n), np.full(n, 2.0)
    assert float(net.forward(hi[None])[0, 0]) == 3.0
    form = chain_form(net.graph, lo)
    assert float(_chain_out(form.chain, hi[None])[0, 0]) == 1.0  # the x2 term lost
    assert float(_chain_out(form.exact, hi[None])[0, 0]) == 3.0
    C, d = np.array([[-1.0]]), np.array([-2.5])
    r = branch_and_bound(net, lo, hi, C, d, mode="relu", device="cpu", time_limit=20)
    assert r.verdict == "sat" and float(net.forward(r.x)[0]) >= 2.5
    # the proof checker's bound of -y over the box holds: -3 at the corner
    from netopt.bounds.bab import BatchCrown

    low, _, _ = BatchCrown(exact_form(net.graph, lo)).bound(lo[None], hi[None], C)
    assert float(low.min()) <= -3.0


def test_a_first_layer_read_through_two_paths_is_bounded_as_one():
    """``relu(x A^T + x B^T + b)``: the rigorous float64 bounds of that layer's input are its
    composition's range (as for one Gemm of A + B), not the sum of the two products' ranges,
    so the float64 confirmation sees the bounds the search's composed chain does."""
    from netopt.bounds.bab import BatchCrown

    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    A[:, 0] += 10.0
    B[:, 0] -= 10.0  # the two paths cancel mostly
    b = rng.normal(size=4)
    two = [
        helper.make_node("MatMul", ["x", "At"], ["p"]),
        helper.make_node("Gemm", ["x", "B", "b"], ["q"], transB=1),
        helper.make_node("Add", ["p", "q"], ["z"]),
        helper.make_node("Relu", ["z"], ["y"]),
    ]
    one = [helper.make_node("Gemm", ["x", "S", "b"], ["z"], transB=1), two[-1]]
    nets = [
        netopt.load(make_model(two, [1, 3], [1, 4], {"At": A.T, "B": B, "b": b})),
        netopt.load(make_model(one, [1, 3], [1, 4], {"S": A + B, "b": b})),
    ]
    lo, hi = -np.ones((1, 3)), np.ones((1, 3))
    bounds = []
    for net in nets:
        bc = BatchCrown(net.graph)
        _, _, pre = bc.bound(lo, hi, np.eye(4))
        bounds.append(next(iter(pre.values())))
    (l2, h2), (l1, h1) = bounds
    assert np.allclose(l2, l1, atol=1e-9) and np.allclose(h2, h1, atol=1e-9)
    # the root's bounds given as fixed (ReLU splitting's leaves, the checker) are taken as
    # they are: the same bound as recomputing them on the root's box
    bc = BatchCrown(nets[0].graph)
    low, _, root = bc.bound(lo, hi, np.eye(4))
    low_f, _, again = bc.bound(np.repeat(lo, 3, 0), np.repeat(hi, 3, 0), np.eye(4), fixed=root)
    assert np.array_equal(low_f, np.repeat(low, 3, 0))
    assert all(np.array_equal(again[v][0], np.repeat(root[v][0], 3, 0)) for v in root)
    X = np.random.default_rng(1).uniform(-1, 1, (2000, 3))
    z = X @ (A + B).T + b
    assert np.all(l2 <= z.min(axis=0)) and np.all(z.max(axis=0) <= h2)


def test_below_lo_the_carried_input_is_cut_so_the_box_matters():
    """The composed chain is the network on x >= lo only (its carry of x is cut below), so
    the checker rebuilds the form from the proof's own box; the exact form's carries are read
    by nothing, so it is the network everywhere."""
    w = _weights(0, 3, 4, 4, 3)
    net = netopt.load(_residual_model(w))
    form = chain_form(net.graph, np.zeros(3))
    X = np.full((1, 3), -5.0)
    assert not np.allclose(_chain_out(form.chain, X), net.forward(X).reshape(1, -1))
    assert np.allclose(_chain_out(form.exact, X), net.forward(X).reshape(1, -1), rtol=1e-13)


def test_a_chain_is_its_own_chain_form_and_some_graphs_have_none():
    from helpers.nets import mlp_net

    chain, _, _ = mlp_net([3, 4, 2], ["relu", None], seed=0)
    form = chain_form(chain.graph, -np.ones(3))
    assert form.chain is chain.graph and form.exact is chain.graph
    assert chain_view(chain, -np.ones(3)) is chain
    leaky = netopt.load(_residual_model(_weights(0, 3, 4, 4, 3), leaky=0.1))
    assert chain_form(leaky.graph, -np.ones(3)) is None  # a carried leaky ReLU's output
    assert chain_view(leaky, -np.ones(3)) is None
    box = (-np.ones(3), np.ones(3))
    assert branch_and_bound(leaky, *box, np.eye(3)[:1], np.zeros(1), mode="relu") is None
    # a depth holding a ReLU and a leaky ReLU: one activation op per layer cannot be both
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Gemm", ["x", "A", "a"], ["za"], transB=1),
        helper.make_node("Relu", ["za"], ["ha"]),
        helper.make_node("Gemm", ["x", "B", "b"], ["zb"], transB=1),
        helper.make_node("LeakyRelu", ["zb"], ["hb"], alpha=0.1),
        helper.make_node("Add", ["ha", "hb"], ["y"]),
    ]
    inits = {"A": rng.normal(size=(2, 3)), "a": np.zeros(2), "B": rng.normal(size=(2, 3))}
    mixed = netopt.load(make_model(nodes, [1, 3], [1, 2], inits | {"b": np.zeros(2)}))
    assert chain_form(mixed.graph, -np.ones(3)) is None
    # a box without a finite lower bound
    res = netopt.load(_residual_model(_weights(0, 3, 4, 4, 3)))
    assert chain_form(res.graph, np.array([-np.inf, 0.0, 0.0])) is None
    assert chain_view(res, np.array([np.nan, 0.0, 0.0])) is None


def test_the_limit_on_weights_is_part_of_the_cache(monkeypatch):
    import netopt.ir.chain_form as cf

    net = netopt.load(_residual_model(_weights(0, 3, 4, 4, 3)))
    lo = -np.ones(3)
    assert chain_form(net.graph, lo) is not None
    monkeypatch.setattr(cf, "MAX_WEIGHTS", 10)
    assert chain_form(net.graph, lo) is None
    assert exact_form(net.graph, lo) is not None  # what a check needs has no such limit


def test_carried_units_are_stable_and_never_split():
    """Every carried unit's input is bounded >= 1 by the float64 bounds (never a split
    candidate); a proof's splits name only the network's own units."""
    from netopt.bounds.bab import BatchCrown

    inst = _instance(0)
    g = exact_form(inst["net"].graph, inst["lo"])
    bc = BatchCrown(g)
    acts = [o for o in g.ops if o.op == "relu"]
    assert [g.value(o.inputs[0]).size for o in acts] == [4 + 3, 4 + 4]  # units + carries
    _, _, pre = bc.bound(inst["lo"][None], inst["hi"][None], inst["C"])
    lows = [np.asarray(pre[o.inputs[0]][0]).reshape(-1) for o in acts]
    assert np.all(lows[0][4:] >= 1 - 1e-9) and np.all(lows[1][4:] >= 1 - 1e-9)
    args = (inst[k] for k in ("net", "lo", "hi", "C", "d"))
    r = branch_and_bound(*args, mode="relu", device="cpu", time_limit=30)
    assert r.verdict == "unsat"
    assert any(nd[0] == "r" for nd in r.proof.nodes)
    assert all(nd[2] < 4 for nd in r.proof.nodes if nd[0] == "r")


# ------------------------------------------------------------------------ decisions
SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_relu_splitting_on_a_residual_network_agrees_with_brute_force(seed):
    inst = _instance(seed)
    net, lo, hi, C, d = (inst[k] for k in ("net", "lo", "hi", "C", "d"))
    r = branch_and_bound(net, lo, hi, C, d, mode="relu", device="cpu", time_limit=30)
    assert r.verdict == ("sat" if inst["opt"] < 0 else "unsat"), r.stopped
    if r.verdict == "sat":
        x = np.asarray(r.x, dtype=np.float64).reshape(-1)
        assert np.all(lo <= x) and np.all(x <= hi)
        assert np.all(_forward(inst["w"], x[None]) @ C.T <= d)
        assert np.all(net.run_onnxruntime(r.x).reshape(1, -1) @ C.T <= d + 1e-5)
        return
    P = BabProof.from_dict(json.loads(json.dumps(r.proof.to_dict())))
    assert P.form == "chain"
    pc = check_proof(net.graph, P)
    assert pc.ok, pc.reason
    # every leaf's claim holds at sampled points of its domain (the network's own output)
    X = np.random.default_rng(seed).uniform(lo, hi, (3000, 3))
    assert np.all(np.max(_forward(inst["w"], X) @ C.T - d, axis=1) > 0)


def test_a_chain_proof_is_checked_on_its_own_box_and_claim():
    """The same tree over a limit the network reaches, or read without its form, or over a
    wider box where the claim is false (the form then rebuilt from the new box), is rejected;
    an unknown form is an input error, a network without a chain form a failed check."""
    inst = _instance(0)
    net, lo, hi, C, d = (inst[k] for k in ("net", "lo", "hi", "C", "d"))
    r = branch_and_bound(net, lo, hi, C, d, mode="relu", device="cpu", time_limit=30)
    assert r.verdict == "unsat"
    good = r.proof.to_dict()
    assert check_proof(net.graph, BabProof.from_dict(good)).ok
    reach = dict(good, d=(d + 2 * abs(inst["opt"]) + 1e-3).tolist())  # f reaches C f <= d
    assert not check_proof(net.graph, BabProof.from_dict(reach)).ok
    plain = {k: v for k, v in good.items() if k != "form"}
    assert not check_proof(net.graph, BabProof.from_dict(plain)).ok
    # a wider box: the claim is false there or the tree no longer closes it; either way no
    # acceptance of a false claim (the exact minimum over the wider box decides which)
    wide_lo = lo - 1.0
    wide = dict(good, lo=wide_lo.tolist())
    assert _exact_min(inst["w"], wide_lo, hi, C, d) <= 0  # some x of the wider box reaches d
    assert not check_proof(net.graph, BabProof.from_dict(wide)).ok
    with pytest.raises(InputError, match="proof.form"):
        BabProof.from_dict(dict(good, form="dag"))
    leaky = netopt.load(_residual_model(inst["w"], leaky=0.1))
    pc = check_proof(leaky.graph, BabProof.from_dict(good))
    assert not pc.ok and "chain form" in pc.reason


def test_the_cache_lets_go_of_its_graphs():
    """The chain forms are cached per graph, weakly: a network dropped frees its forms."""
    import gc
    import weakref

    net = netopt.load(_residual_model(_weights(0, 3, 4, 4, 3)))
    assert chain_form(net.graph, -np.ones(3)) is not None
    ref = weakref.ref(net.graph)
    del net
    gc.collect()
    assert ref() is None


def test_the_view_is_kept_per_box():
    inst = _instance(0)
    net, lo = inst["net"], inst["lo"]
    v1 = chain_view(net, lo)
    assert isinstance(v1, ChainView) and chain_view(net, lo) is v1
    assert v1.input_shape == net.input_shape
    X = np.random.default_rng(1).uniform(inst["lo"], inst["hi"], (5, 3))
    assert np.array_equal(v1.forward(X), net.forward(X))
    v2 = chain_view(net, lo - 1)
    assert v2 is not v1 and v2.graph is not v1.graph
    assert chain_view(net, lo) is v1  # both kept


def test_netopt_check_decides_a_residual_network_with_a_certificate(tmp_path):
    """A 12-input residual network (ReLU splitting) and a limit just below the exact minimum
    of an output (the MILP's, on the network as given): "unsat" by branch and bound on the
    chain form, its certificate fully re-checked; just above it, a counterexample."""
    import onnx

    from netopt.certificate import Certificate
    from netopt.problems import OutputObjective
    from netopt.vnnlib.check import check

    w = _weights(3, 12, 10, 10, 2)
    model = _residual_model(w)
    onnx_path = tmp_path / "res.onnx"
    onnx.save(model, onnx_path)
    net = netopt.load(onnx_path)
    lo, hi = np.full(12, -0.4), np.full(12, 0.4)
    opt = OutputObjective(net, np.array([1.0, 0.0]), box=(lo, hi)).solve("milp")
    assert opt.status.name.lower() == "optimal"
    spread = float(np.ptp(_forward(w, np.random.default_rng(0).uniform(lo, hi, (2000, 12)))[:, 0]))
    for t, verdict in (
        (opt.objective - 0.02 * spread, "unsat"),
        (opt.objective + 0.02 * spread, "sat"),
    ):
        lines = [f"(declare-const X_{i} Real)" for i in range(12)]
        lines += ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)"]
        lines += [f"(assert (>= X_{i} {lo[i]}))" for i in range(12)]
        lines += [f"(assert (<= X_{i} {hi[i]}))" for i in range(12)]
        lines.append(f"(assert (<= Y_0 {t!r}))")
        prop_path = tmp_path / f"{verdict}.vnnlib"
        prop_path.write_text("\n".join(lines) + "\n")
        r = check(net, prop_path, time_limit=60)
        assert r.verdict == verdict
        if verdict == "sat":
            assert float(_forward(w, np.asarray(r.x).reshape(1, -1))[0, 0]) <= t
            continue
        assert "relu splits" in r.details[0]["method"]
        assert r.details[0]["proof"].form == "chain"
        cert = Certificate.from_check(r, prop_path, net)
        cert.save(tmp_path / "c.json")
        rep = Certificate.load(tmp_path / "c.json").verify(onnx_path, vnnlib_path=prop_path)
        assert rep["ok"] and rep["fully_checked"] and not rep["unchecked"], rep


@pytest.mark.parametrize("under", [False, True])
def test_input_splitting_on_a_residual_network_agrees_with_brute_force(under, monkeypatch):
    """Input splitting takes the chain form too: its float32 engine bounds the composed chain,
    the float64 bounds (and, with ``under``, the ReLU splits under its open boxes, with their
    slopes and multipliers) the network's own ops; every verdict the brute force's, every
    proof re-checked from JSON with its form."""
    import netopt.bounds.branch_input as bi

    if under:  # open boxes to ReLU splits at once (as tests/bounds/test_branch.py does)
        monkeypatch.setattr(bi, "FAST_AFTER", 0.0)
        monkeypatch.setattr(bi, "PIECES_MAX_UNSTABLE", 0)
        monkeypatch.setattr(bi, "ALPHA_MIN_BOXES", 1)
        monkeypatch.setattr(bi, "ALPHA_AFTER_NODES", 0)
        monkeypatch.setattr(bi, "ALPHA_ITERS", 0)
    split_leaves = 0
    for seed in SEEDS:
        inst = _instance(seed)
        net, lo, hi, C, d = (inst[k] for k in ("net", "lo", "hi", "C", "d"))
        r = branch_and_bound(net, lo, hi, C, d, mode="input", device="cpu", time_limit=30)
        assert r.verdict == ("sat" if inst["opt"] < 0 else "unsat"), (seed, r.stopped)
        assert "float32" in r.stats["device"]  # the composed chain's engine
        if r.verdict == "sat":
            assert np.all(_forward(inst["w"], np.asarray(r.x).reshape(1, -1)) @ C.T <= d)
            continue
        P = BabProof.from_dict(json.loads(json.dumps(r.proof.to_dict())))
        assert P.form == "chain"
        pc = check_proof(net.graph, P)
        assert pc.ok, pc.reason
        split_leaves += r.stats["relu_split_closed"]
    if under:
        assert split_leaves > 0
