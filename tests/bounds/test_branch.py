r"""Branch and bound with proofs (netopt.bounds.branch) against independent references.

* the exact answer of every small instance: brute force over activation patterns, one scipy LP
  per pattern giving :math:`\min_x \max_i (C f(x) - d)_i` over the box (sat iff it is
  :math:`\le 0`), written here from the weights alone;
* every "sat" point: in the box, and :math:`C f(x) \le d` by a plain numpy forward pass and by
  onnxruntime;
* every "unsat" proof: :func:`netopt.bounds.proof.check_proof`, and sampled points of every
  leaf's domain (its box and split signs), where the leaf's row must be positive;
* the real networks: the VNN-COMP verdicts beside them.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.nets import NETS, make_model, mlp_net, require_nets
from onnx import helper
from scipy.optimize import linprog

import netopt
from netopt.bounds.branch import branch_and_bound
from netopt.bounds.proof import BabProof, check_proof
from netopt.control import Deadline, clear_interrupt, request_interrupt

STATS = ("mode", "nodes", "leaves", "depth", "domains_per_s", "t_bound", "t_check", "t_branch")


# ------------------------------------------------------------------------------ references
def _forward(Ws, bs, alphas, X):
    """The chain's output and its activation inputs z_j, by plain numpy (leaky slope alpha)."""
    a, zs = np.atleast_2d(X), []
    for W, b, al in zip(Ws[:-1], bs[:-1], alphas, strict=True):
        z = a @ W.T + b
        zs.append(z)
        a = np.where(z >= 0, z, al * z)
    return a @ Ws[-1].T + bs[-1], zs


def _exact_min(Ws, bs, alphas, lo, hi, C, d) -> float:
    r""":math:`\min_{x \in [lo, hi]} \max_i (C f(x) - d)_i`: one LP per activation pattern.

    On a pattern's region (each unit's input of the pattern's sign) the chain is affine,
    :math:`f(x) = P x + q`; the LP minimizes ``t`` subject to ``C (P x + q) - d <= t``.
    """
    n_in, k = len(lo), len(d)
    widths = [W.shape[0] for W in Ws[:-1]]
    best = np.inf
    for pattern in itertools.product([0.0, 1.0], repeat=sum(widths)):
        P, q = np.eye(n_in), np.zeros(n_in)
        A, b_ub, j = [], [], 0
        for W, b, al, n in zip(Ws[:-1], bs[:-1], alphas, widths, strict=True):
            zP, zq = W @ P, W @ q + b
            on = np.array(pattern[j : j + n])
            j += n
            sgn = np.where(on > 0, -1.0, 1.0)  # active: -z <= 0; inactive: z <= 0
            A.append(sgn[:, None] * zP)
            b_ub.append(-sgn * zq)
            g = on + al * (1 - on)
            P, q = g[:, None] * zP, g * zq
        yP, yq = Ws[-1] @ P, Ws[-1] @ q + bs[-1]
        A_ub = np.vstack(
            [np.hstack([a, np.zeros((len(a), 1))]) for a in A]
            + [np.hstack([C @ yP, -np.ones((k, 1))])]
        )
        res = linprog(
            np.r_[np.zeros(n_in), 1.0],
            A_ub=A_ub,
            b_ub=np.concatenate([*b_ub, d - C @ yq]),
            bounds=[*zip(lo, hi, strict=True), (None, None)],
            method="highs",
        )
        if res.status == 0:
            best = min(best, res.fun)
    return best


@functools.cache
def _instance(seed: int, margin: tuple = (0.01, 0.05)) -> dict:
    """A random 2-3 input chain of <= 9 (leaky) ReLUs, a box, 1-3 rows C, d; the exact optimum.

    ``d`` is shifted so that the exact optimum is ``-delta`` with ``|delta|`` 1-5% of the
    objective's spread over the box: sat for odd seeds, unsat for even ones, never on the edge.
    """
    rng = np.random.default_rng(seed)
    n_in, n_out, k = (int(v) for v in rng.integers([2, 2, 1], [4, 4, 4]))
    widths = [int(rng.integers(3, 6)), int(rng.integers(3, 5))]
    acts = ["relu" if rng.random() < 0.5 else "leaky_relu:0.1" for _ in widths]
    alphas = [0.0 if a == "relu" else 0.1 for a in acts]
    net, Ws, bs = mlp_net([n_in, *widths, n_out], [*acts, None], seed=seed)
    c, r = rng.uniform(-1, 1, n_in), rng.uniform(0.3, 1.0, n_in)
    lo, hi = c - r, c + r
    C, d = rng.normal(size=(k, n_out)), rng.normal(size=k)
    v = _exact_min(Ws, bs, alphas, lo, hi, C, d)
    y, _ = _forward(Ws, bs, alphas, rng.uniform(lo, hi, (2000, n_in)))
    spread = float(np.max(np.max(y @ C.T - d, axis=1)) - v)
    delta = (1 if seed % 2 else -1) * rng.uniform(*margin) * spread
    d = d + v + delta  # max_i (C f - d)_i drops by v + delta: its minimum is -delta
    return dict(net=net, Ws=Ws, bs=bs, alphas=alphas, lo=lo, hi=hi, C=C, d=d, opt=-delta)


def _depth(nodes: list) -> int:
    """The depth of a pre-order tree (the root alone: 0)."""
    deepest, stack = 0, [0]  # the depths of the nodes still to come
    for nd in nodes:
        dep = stack.pop()
        deepest = max(deepest, dep)
        if nd[0] != "leaf":
            stack += [dep + 1, dep + 1]
    assert not stack
    return deepest


def _leaves(proof: BabProof) -> list:
    """Each leaf's (claim, box, split signs), derived from the tree independently: the claim
    ``(c, d)``, ``c f(x) > d``, its row of C, d or (``"lam"``) their combination."""
    out = []

    def claim(nd):
        lam = proof.params[nd[2]].get("lam") if len(nd) == 3 else None
        if lam is None:
            return proof.C[nd[1]], proof.d[nd[1]]
        lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)  # as the checker clips it
        return lam @ proof.C, lam @ proof.d

    def walk(k, lo, hi, signs):
        nd = proof.nodes[k]
        if nd[0] == "leaf":
            out.append((claim(nd), lo, hi, dict(signs)))
            return k + 1
        if nd[0] == "x":
            i = nd[1]
            cut = min(max(nd[2], lo[i]), hi[i])
            h1, l2 = hi.copy(), lo.copy()
            h1[i], l2[i] = cut, cut
            return walk(walk(k + 1, lo, h1, signs), l2, hi, signs)
        key = (nd[1], nd[2])
        return walk(walk(k + 1, lo, hi, {**signs, key: -1}), lo, hi, {**signs, key: 1})

    walk(0, proof.lo.copy(), proof.hi.copy(), {})
    return out


def _assert_leaves_sound(inst: dict, proof: BabProof, n: int = 300, seed: int = 0) -> None:
    """At sampled points of every leaf's domain, the leaf's claim (its row of C f(x) - d, or
    their combination) is positive."""
    rng = np.random.default_rng(seed)
    for (c, dc), lo, hi, signs in _leaves(proof):
        X = np.concatenate([rng.uniform(lo, hi, (n, len(lo))), lo[None], hi[None]])
        y, zs = _forward(inst["Ws"], inst["bs"], inst["alphas"], X)
        keep = np.ones(len(X), dtype=bool)
        for (j, u), s in signs.items():
            keep &= s * zs[j][:, u] >= 0
        r = y[keep] @ c - dc
        assert np.all(r > 0), f"a leaf claims {c} f > {dc}; a point gives {r.min()}"


def _check_result(inst: dict, r, mode: str) -> None:
    """Everything a result states, against the references."""
    net, lo, hi, C, d = (inst[k] for k in ("net", "lo", "hi", "C", "d"))
    st = r.stats
    assert set(STATS) <= set(st)
    assert st["mode"] == mode
    assert 0 <= st["leaves"] <= st["nodes"] and st["depth"] >= 0 and st["domains_per_s"] > 0
    assert min(st["t_bound"], st["t_check"], st["t_branch"]) >= 0
    if r.verdict == "sat":
        assert r.proof is None and r.stopped is None
        x = np.asarray(r.x, dtype=np.float64).reshape(-1)
        assert np.all(lo <= x) and np.all(x <= hi)
        y, _ = _forward(inst["Ws"], inst["bs"], inst["alphas"], x)
        assert np.all(y @ C.T <= d)
        y_ort = net.run_onnxruntime(r.x).reshape(1, -1)
        assert np.all(y_ort @ C.T <= d + 1e-12 * (1 + np.abs(d)))
    elif r.verdict == "unsat":
        P = r.proof
        assert P is not None and r.x is None and r.stopped is None
        assert np.array_equal(P.lo, lo) and np.array_equal(P.hi, hi) and np.array_equal(P.d, d)
        pc = check_proof(net.graph, BabProof.from_dict(json.loads(json.dumps(P.to_dict()))))
        assert pc.ok, pc.reason
        kinds = [nd[0] for nd in P.nodes]
        assert pc.leaves == kinds.count("leaf") == st["leaves"]
        # input splitting closes a box of few unstable ReLUs by splitting them (its pieces)
        assert set(kinds) <= ({"x", "r", "leaf"} if mode == "input" else {"r", "leaf"})
        if mode == "input" and not st.get("pieces_closed") and not st.get("relu_split_closed"):
            assert "r" not in kinds
        assert _depth(P.nodes) == st["depth"]
        # every bounded domain of a ReLU-split run is a node of the tree, and every node but
        # the middle ones of a two-unit split (MULTI_SPLIT_BELOW) is bounded; input splitting
        # also bounds the halves of the split it does not take
        if mode == "relu":
            assert st["nodes"] <= len(P.nodes) <= 2 * st["nodes"] - 1
        else:
            # (a box's pieces are bounded as leaves; their ReLU split nodes are not domains)
            assert len(P.nodes) - kinds.count("r") <= st["nodes"]
        _assert_leaves_sound(inst, P)
    else:
        assert r.proof is None and r.x is None and r.stopped is not None


# ---------------------------------------------------------------------- random small chains
SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_input_splitting_decides_like_brute_force(seed):
    inst = _instance(seed)
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
    )
    assert r.verdict == ("sat" if inst["opt"] < 0 else "unsat"), (r.stopped, inst["opt"])
    _check_result(inst, r, "input")


@pytest.mark.parametrize("seed", SEEDS[:6])
@pytest.mark.parametrize("engine", ["numpy", "torch", "float64"])
def test_input_splitting_decides_the_same_with_either_engine(seed, engine, monkeypatch):
    """The float32 search in numpy, in torch (the engine a GPU gets) and the float64 one
    alone: same verdicts, every unsat's leaves closed in float64 (the proof check)."""
    import netopt.bounds.branch_input as bi

    monkeypatch.setattr(bi, "FAST_AFTER", float("inf") if engine == "float64" else 0.0)
    if engine == "torch":
        # the torch engine bounds the boxes on a GPU: take its CPU for one
        monkeypatch.setattr(bi, "_on_gpu", lambda engine: True)
        monkeypatch.setattr(bi, "_torch_loaded", lambda: True)
    else:
        monkeypatch.setattr(bi, "_torch_loaded", lambda: False)
    inst = _instance(seed)
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
    )
    assert r.verdict == ("sat" if inst["opt"] < 0 else "unsat"), (r.stopped, inst["opt"])
    device = r.stats["device"]
    assert ("float32" in device) == (engine != "float64")
    assert engine == "float64" or f"{engine} float32 search" in device
    _check_result(inst, r, "input")


@pytest.mark.parametrize("seed", [s for s in SEEDS if _instance(s)["opt"] < 0][:3])
def test_a_float32_bound_that_lies_closes_nothing(seed, monkeypatch):
    """A float32 engine claiming every box closed: the float64 check reopens each one, and the
    search still finds the counterexample that exists."""
    import netopt.bounds.branch_input as bi
    from netopt.bounds.batched import ChainBounds
    from netopt.bounds.chain_numpy import NumpyChainCrown

    monkeypatch.setattr(bi, "FAST_AFTER", 0.0)
    for engine in (ChainBounds, NumpyChainCrown):
        real = engine.crown_rows

        def lying(self, lo, hi, C, d, with_pre=False, dead=None, real=real):
            s, coef, P = real(self, lo, hi, C, d, with_pre=True, dead=dead)
            return s + 1e3, coef, P

        monkeypatch.setattr(engine, "crown_rows", lying)
    inst = _instance(seed)
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
    )
    assert r.verdict == "sat"
    assert r.stats["float64_reopened"] > 0
    _check_result(inst, r, "input")


@pytest.mark.parametrize("engine", ["numpy", "torch", "float64"])
def test_input_splitting_on_an_affine_network(engine, monkeypatch):
    """No activation layer (the activation bounds are empty): decided at the root by every
    engine, unsat with a proof the checker accepts, sat with a point."""
    import netopt.bounds.branch_input as bi

    monkeypatch.setattr(bi, "FAST_AFTER", float("inf") if engine == "float64" else 0.0)
    monkeypatch.setattr(bi, "_torch_loaded", lambda: engine == "torch")
    if engine == "torch":
        monkeypatch.setattr(bi, "_on_gpu", lambda engine: True)
    W = np.array([[1.0, -2.0], [0.5, 1.0]])
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)]
    net = netopt.load(make_model(nodes, [1, 2], [1, 2], {"W": W, "b": np.zeros(2)}))
    lo, hi = np.array([[-1.0, -1.0]]), np.array([[1.0, 1.0]])
    C = np.array([[1.0, 0.0]])  # y_0 = x_0 - 2 x_1 ranges over [-3, 3]
    r = branch_and_bound(net, lo, hi, C, np.array([-3.5]), mode="input", time_limit=10)
    assert r.verdict == "unsat"
    assert engine == "float64" or f"{engine} float32" in r.stats["device"]
    assert check_proof(net.graph, r.proof).ok
    r = branch_and_bound(net, lo, hi, C, np.array([-2.5]), mode="input", time_limit=10)
    assert r.verdict == "sat" and (W @ np.ravel(r.x))[0] <= -2.5 + 1e-9


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_activation_bounds_that_lie_decide_nothing_wrong(seed, monkeypatch):
    """A float32 engine whose activation bounds say every unit is inactive (what the children's
    dead units, the pieces and alpha-CROWN take from it): the verdicts are still the brute
    force's and every proof re-checks."""
    import netopt.bounds.branch_input as bi
    from netopt.bounds.batched import ChainBounds
    from netopt.bounds.chain_numpy import NumpyChainCrown

    monkeypatch.setattr(bi, "FAST_AFTER", 0.0)
    monkeypatch.setattr(bi, "ALPHA_AFTER_NODES", 0)
    monkeypatch.setattr(bi, "ALPHA_MIN_BOXES", 1)
    for engine in (ChainBounds, NumpyChainCrown):
        real = engine.crown_rows

        def lying(self, lo, hi, C, d, with_pre=False, dead=None, real=real):
            s, coef, P = real(self, lo, hi, C, d, with_pre=True, dead=dead)
            P = P.copy()
            P[:, 1] = -1.0
            P[:, 0] = np.minimum(P[:, 0], -2.0)
            return s, coef, P

        monkeypatch.setattr(engine, "crown_rows", lying)
    inst = _instance(seed)
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
    )
    assert r.verdict == ("sat" if inst["opt"] < 0 else "unsat"), (r.stopped, inst["opt"])
    _check_result(inst, r, "input")


@pytest.mark.parametrize("seed", [s for s in SEEDS if _instance(s)["opt"] < 0][:3])
def test_optimized_slopes_that_lie_close_nothing(seed, monkeypatch):
    """alpha-CROWN claiming every box it is given closed: the float64 check with its slopes
    reopens each one, and the search still finds the counterexample that exists."""
    import netopt.bounds.branch_input as bi

    monkeypatch.setattr(bi, "FAST_AFTER", 0.0)
    monkeypatch.setattr(bi, "PIECES_MAX_UNSTABLE", 0)
    monkeypatch.setattr(bi, "ALPHA_MIN_BOXES", 1)
    monkeypatch.setattr(bi, "ALPHA_AFTER_NODES", 0)
    monkeypatch.setattr(bi, "RELU_SPLIT", False)
    _lying_alpha(monkeypatch, lambda kw: True)
    inst = _instance(seed)
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
    )
    assert r.verdict == "sat"
    # every box given to it was claimed closed; only the float64-confirmed ones are
    st = r.stats
    assert st["float64_reopened"] >= st["alpha_tried"] - st["alpha_closed"] > 0
    _check_result(inst, r, "input")


def _lying_alpha(monkeypatch, when) -> None:
    """alpha-CROWN claiming 1e3 more than it proved, on the calls whose keywords ``when``
    accepts (both engines': torch's, and numpy's that input splitting uses on a CPU)."""
    from netopt.bounds.batched import ChainBounds
    from netopt.bounds.chain_numpy import NumpyChainCrown

    for engine in (ChainBounds, NumpyChainCrown):

        def lying(self, *args, real=engine.alpha_crown, **kw):
            sb = real(self, *args, **kw)
            if when(kw):
                sb.lower = sb.lower + 1e3
            return sb

        monkeypatch.setattr(engine, "alpha_crown", lying)


def _relu_under_boxes(monkeypatch) -> None:
    """Input splitting whose open boxes go to ReLU splits at once: float32 search from the
    start, no pieces, alpha-CROWN with no steps (so it closes only what CROWN closes) on any
    number of boxes."""
    import netopt.bounds.branch_input as bi

    monkeypatch.setattr(bi, "FAST_AFTER", 0.0)
    monkeypatch.setattr(bi, "PIECES_MAX_UNSTABLE", 0)
    monkeypatch.setattr(bi, "ALPHA_MIN_BOXES", 1)
    monkeypatch.setattr(bi, "ALPHA_AFTER_NODES", 0)
    monkeypatch.setattr(bi, "ALPHA_ITERS", 0)


def test_relu_splits_under_input_boxes_decide_like_brute_force(monkeypatch):
    """Boxes closed by a few ReLU splits each (beta-CROWN halves, filtered branching): every
    verdict the brute force's, every proof re-checked with its subtrees of ReLU splits
    (``"alphas"`` and ``"betas"`` on their leaves) and sound at sampled points."""
    _relu_under_boxes(monkeypatch)
    closed, with_betas = 0, 0
    for seed in SEEDS:
        inst = _instance(seed)
        r = branch_and_bound(
            inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
        )
        assert r.verdict == ("sat" if inst["opt"] < 0 else "unsat"), (seed, r.stopped)
        _check_result(inst, r, "input")
        st = r.stats
        assert st["relu_split_closed"] <= st["relu_split_tried"]
        closed += st["relu_split_closed"]
        if r.verdict == "unsat" and st["relu_split_closed"]:
            kinds = [nd[0] for nd in r.proof.nodes]
            assert "r" in kinds
            # a subtree's leaves carry their splits' multipliers where they are positive
            with_betas += any("betas" in p for p in r.proof.params)
    assert closed > 0 and with_betas > 0


def test_relu_splits_under_input_boxes_on_the_torch_engine(monkeypatch):
    """The same search with torch's engine bounding the boxes and optimizing them (as on a GPU:
    its results copied to numpy for the search): the brute force's verdicts, proofs re-checked,
    and some boxes closed by ReLU splits."""
    pytest.importorskip("torch")
    import netopt.bounds.branch_input as bi

    _relu_under_boxes(monkeypatch)
    monkeypatch.setattr(bi, "_on_gpu", lambda engine: True)
    # as on a fresh process of a CUDA machine: torch not yet imported, a GPU likely
    monkeypatch.setattr(bi, "_torch_loaded", lambda: False)
    monkeypatch.setattr(bi, "_gpu_likely", lambda: True)
    closed = 0
    for seed in SEEDS:
        inst = _instance(seed)
        r = branch_and_bound(
            inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
        )
        assert r.verdict == ("sat" if inst["opt"] < 0 else "unsat"), (seed, r.stopped)
        assert "torch" in r.stats["device"]
        _check_result(inst, r, "input")
        closed += r.stats["relu_split_closed"]
    assert closed > 0


def test_optimized_bounds_under_input_boxes_import_no_torch():
    """On a CPU input splitting's alpha-CROWN and its ReLU splits are numpy's: a fresh process
    that uses both imports no torch."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import netopt.bounds.branch_input as bi\n"
        "from netopt.bounds.branch import branch_and_bound\n"
        "from test_branch import SEEDS, _instance\n"
        "bi.FAST_AFTER, bi.PIECES_MAX_UNSTABLE, bi.ALPHA_MIN_BOXES = 0.0, 0, 1\n"
        "bi.ALPHA_AFTER_NODES = 0\n"
        "tried = split = 0\n"
        "for seed in SEEDS:\n"
        "    i = _instance(seed)\n"
        "    r = branch_and_bound(i['net'], i['lo'], i['hi'], i['C'], i['d'], mode='input',\n"
        "                         time_limit=30)\n"
        "    tried += r.stats['alpha_tried']; split += r.stats['relu_split_tried']\n"
        "print(tried, split, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr
    tried, split, torch_loaded = out.stdout.split()
    assert int(tried) > 0 and int(split) > 0
    assert torch_loaded == "False"


@pytest.mark.parametrize("seed", [s for s in SEEDS if _instance(s)["opt"] < 0][:3])
def test_relu_split_halves_that_lie_close_nothing(seed, monkeypatch):
    """beta-CROWN claiming every half closed: the float64 check with the recorded slopes and
    multipliers reopens the boxes, and the search still finds the counterexample."""
    _relu_under_boxes(monkeypatch)
    # the halves of a ReLU split
    _lying_alpha(monkeypatch, lambda kw: kw.get("splits") is not None and kw.get("iters", 1) > 0)
    inst = _instance(seed)
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
    )
    assert r.verdict == "sat"
    st = r.stats
    assert st["relu_split_tried"] > 0 and st["float64_reopened"] > 0
    _check_result(inst, r, "input")


@functools.cache
def _group_instance(seed: int) -> dict:
    """Two or three disjuncts over one box of a random small chain, each of 1-2 rows with its
    own limits; each disjunct's exact minimum of ``max_i (C_g f - d_g)_i`` by brute force."""
    base = _instance(seed)
    rng = np.random.default_rng(100 + seed)
    G = int(rng.integers(2, 4))
    n_out = base["Ws"][-1].shape[0]
    Cs, ds, opts = [], [], []
    for _ in range(G):
        C = rng.normal(size=(int(rng.integers(1, 3)), n_out))
        v = _exact_min(
            base["Ws"], base["bs"], base["alphas"], base["lo"], base["hi"], C, 0 * C[:, 0]
        )
        # the limit a little below or above the exact minimum (mostly unsat, as in a property)
        delta = rng.choice([-1.0, 1.0], p=[0.25, 0.75]) * rng.uniform(0.02, 0.2) * (1 + abs(v))
        Cs.append(C)
        ds.append(np.full(len(C), v - delta))
        opts.append(delta)  # > 0: this disjunct is empty
    return dict(base, Cs=Cs, ds=ds, opts=opts)


@pytest.mark.parametrize("mode", ["input", "relu"])
@pytest.mark.parametrize("seed", SEEDS[:8])
def test_disjuncts_searched_at_once_decide_like_brute_force(seed, mode, monkeypatch):
    """Several disjuncts over one box searched at once (``groups``: one input-splitting tree,
    or ReLU-splitting trees in lockstep): "sat" exactly when some disjunct has a point, with a
    point of that disjunct; otherwise one proof per disjunct, each re-checked on its own rows
    and sound at sampled points of its leaves."""
    import netopt.bounds.branch_input as bi

    monkeypatch.setattr(bi, "FAST_AFTER", 0.0)
    gi = _group_instance(seed)
    C, d = np.concatenate(gi["Cs"]), np.concatenate(gi["ds"])
    groups = np.concatenate([[g] * len(c) for g, c in enumerate(gi["Cs"])])
    r = branch_and_bound(
        gi["net"], gi["lo"], gi["hi"], C, d, mode=mode, time_limit=30, groups=groups
    )
    assert r.stats["mode"] == mode
    if any(o < 0 for o in gi["opts"]):
        assert r.verdict == "sat" and r.parts is None
        g = r.group
        x = np.asarray(r.x, dtype=np.float64).reshape(-1)
        y, _ = _forward(gi["Ws"], gi["bs"], gi["alphas"], x)
        assert np.all(y @ gi["Cs"][g].T <= gi["ds"][g]) and gi["opts"][g] < 0
        assert np.all(gi["lo"] <= x) and np.all(x <= gi["hi"])
        return
    assert r.verdict == "unsat" and r.proof is None and len(r.parts) == len(gi["Cs"])
    leaves = 0
    for g, part in enumerate(r.parts):
        P = part.proof
        assert part.verdict == "unsat"
        assert np.array_equal(P.C, gi["Cs"][g]) and np.array_equal(P.d, gi["ds"][g])
        pc = check_proof(gi["net"].graph, BabProof.from_dict(json.loads(json.dumps(P.to_dict()))))
        assert pc.ok, pc.reason
        leaves += pc.leaves
        _assert_leaves_sound(gi, P)
    assert leaves == r.stats["leaves"]


def test_a_search_of_several_disjuncts_stopped_early_keeps_the_decided_ones(monkeypatch):
    """Stopped after its first split, a search of two disjuncts answers "unknown" but keeps
    the proof of the one the root's bounds already closed."""
    import netopt.bounds.branch_input as bi

    # the float64 bounds alone (the float32 search's pieces would close this root at once)
    monkeypatch.setattr(bi, "FAST_AFTER", float("inf"))
    monkeypatch.setattr(bi, "_torch_loaded", lambda: False)
    inst = _instance(0)
    n_out = inst["Ws"][-1].shape[0]
    C0 = np.eye(n_out)[:1]
    far = np.array([-1e6])  # y_0 <= -1e6: no point of the box, closed at the root
    C = np.concatenate([C0, inst["C"]])
    d = np.concatenate([far, inst["d"]])  # the second: empty by 1-5 %, far from the root
    groups = np.array([0] + [1] * len(inst["C"]))
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], C, d, mode="input", max_domains=1, groups=groups
    )
    assert r.verdict == "unknown" and r.stopped == "domain limit"
    assert r.parts[0].verdict == "unsat" and r.parts[1].verdict == "unknown"
    assert check_proof(inst["net"].graph, r.parts[0].proof).ok
    assert r.parts[0].proof.nodes == [["leaf", 0]]


def test_a_relu_search_of_several_disjuncts_stopped_early_keeps_the_decided_ones():
    """ReLU splitting in lockstep: stopped at the domain limit after the root, the search
    answers "unknown" but keeps the proof of the disjunct the root's bounds closed."""
    inst = _instance(10, RELU_MARGIN)  # (alone, 39 domains)
    n_out = inst["Ws"][-1].shape[0]
    C = np.concatenate([np.eye(n_out)[:1], inst["C"]])
    d = np.concatenate([[-1e6], inst["d"]])  # y_0 <= -1e6: closed at the root
    groups = np.array([0] + [1] * len(inst["C"]))
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], C, d, mode="relu", max_domains=1, groups=groups
    )
    assert r.verdict == "unknown" and r.stopped == "domain limit"
    assert r.parts[0].verdict == "unsat" and r.parts[1].verdict == "unknown"
    assert r.parts[0].proof.nodes[0][0] == "leaf" and len(r.parts[0].proof.nodes) == 1
    assert check_proof(inst["net"].graph, r.parts[0].proof).ok


@pytest.mark.parametrize("mode", ["input", "relu"])
def test_groups_must_name_each_row_s_disjunct(mode):
    inst = _instance(0)
    args = (inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"])
    for bad in (np.zeros(len(inst["C"]) + 1, dtype=int), np.full(len(inst["C"]), 1)):
        with pytest.raises(netopt.InputError, match="groups"):
            branch_and_bound(*args, mode=mode, groups=bad)


#: ReLU splitting gets wider margins (10-30% of the spread): see below
RELU_MARGIN = (0.1, 0.3)


@functools.cache
def _relu_run(seed: int) -> tuple:
    inst = _instance(seed, RELU_MARGIN)
    args = (inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"])
    return inst, branch_and_bound(*args, mode="relu", device="cpu", time_limit=30)


@pytest.mark.parametrize("seed", SEEDS)
def test_relu_splitting_agrees_with_brute_force(seed):
    """ReLU splitting decides each: a domain with no unstable unit left that no row closes is
    closed by an LP's combination of the rows, or holds the LP's point satisfying them all."""
    inst, r = _relu_run(seed)
    assert r.verdict == ("sat" if inst["opt"] < 0 else "unsat"), r.stopped
    _check_result(inst, r, "relu")
    if r.verdict == "unsat":
        # the closed leaves' 2^-depth summed as the search went (rows', LPs' and double
        # splits' leaves alike): the whole box's sign patterns
        assert r.stats["closed_share"] == pytest.approx(1.0, abs=1e-12)


def test_relu_splitting_decides_most_instances_with_split_proofs():
    runs = [_relu_run(seed) for seed in SEEDS]
    assert all(r.verdict != "unknown" for _, r in runs)
    split = [r.proof for _, r in runs if r.verdict == "unsat" and len(r.proof.nodes) > 1]
    assert len(split) >= 2
    # some leaves needed a combination of the rows (each domain affine, no row alone closing):
    # the LPs' combinations, not only the bounds' (MIX_ROWS)
    assert sum("lam" in p for P in split for p in P.params) > 0
    assert sum(r.stats["affine_closed"] for _, r in runs if r.verdict == "unsat") > 0
    for proof in split:
        assert any(nd[0] == "r" for nd in proof.nodes)
        # every leaf carries the search's slopes (and multipliers): what closed it
        assert proof.params and all(len(nd) == 3 for nd in proof.nodes if nd[0] == "leaf")


def _tree_share(tree) -> float:
    """The closed leaves' :math:`2^{-depth}` summed, the depths read off the tree's splits."""
    total, stack = 0.0, [(0, 0)]
    while stack:
        node, depth = stack.pop()
        if node in tree.leaves:
            total += 2.0**-depth
        elif node in tree.splits:
            stack += [(c, depth + 1) for c in tree.splits[node][3:5]]
    return total


@pytest.mark.parametrize("limit", [4, 8])
def test_a_relu_search_reports_the_share_its_closed_leaves_cover(limit, monkeypatch):
    """Stopped at a domain limit, the closed share a search reports is what its tree's closed
    leaves cover (their depths read off the tree: double splits, two levels at once,
    included), and less than 1; the rule that may end it is asked each round with the time
    it was given and the seconds since it began."""
    import netopt.bounds.branch_relu as br

    inst = _instance(10, RELU_MARGIN)
    asked, searches = [], []
    rule = br._ReluSearch._unpromising

    def spy(self, elapsed, given):
        searches.append(self)
        asked.append((elapsed, given))
        return rule(self, elapsed, given)

    monkeypatch.setattr(br._ReluSearch, "_unpromising", spy)
    args = (inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"])
    r = branch_and_bound(
        *args, mode="relu", device="cpu", time_limit=30, max_domains=limit, split_update=False
    )
    assert (r.verdict, r.stopped) == ("unknown", "domain limit")
    (search,) = set(searches)
    assert 0 < r.stats["closed_share"] < 1
    assert r.stats["closed_share"] == pytest.approx(_tree_share(search.tree), abs=1e-15)
    elapsed = [e for e, _ in asked]
    assert len(asked) > 1 and elapsed == sorted(elapsed)
    assert all(25 < g <= 30 for _, g in asked)


@pytest.mark.parametrize("seed", [16, 48, 68])
def test_a_combination_of_the_rows_closes_what_single_rows_split(seed, monkeypatch):
    """Rows that no point meets together though each alone is met: the combination bounded
    with the slopes closes the box at the root (a leaf with its weights, re-checked), where
    single rows need splits down to affine domains. Brute force agrees."""
    import netopt.bounds.branch_relu as br

    inst = _instance(seed, RELU_MARGIN)
    assert inst["C"].shape[0] >= 2 and inst["opt"] > 0
    args = (inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"])
    r = branch_and_bound(*args, mode="relu", device="cpu", time_limit=30)
    assert r.verdict == "unsat" and r.stats["nodes"] == 1
    assert ["lam" in (p or {}) for p in r.proof.params] == [True]
    _check_result(inst, r, "relu")
    monkeypatch.setattr(br, "MIX_ROWS", False)
    single = branch_and_bound(*args, mode="relu", device="cpu", time_limit=30)
    assert single.verdict == "unsat" and single.stats["nodes"] > 1


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_filtered_branching_children_fix_one_candidate_each(kind):
    """The children that filtered smart branching bounds: per candidate, the parent's splits
    with the candidate unit set to -1 (first) and +1, nothing else changed (ReLU splitting's
    tensors, and input splitting's numpy arrays)."""
    rng = np.random.default_rng(0)
    sp_np = [rng.integers(-1, 2, (3, n)).astype(np.int8) for n in (4, 5)]
    layer_np = np.array([[0, 1], [1, 1], [0, 0]])
    unit_np = np.array([[2, 4], [0, 3], [1, 3]])
    from netopt.bounds.fsb import children_splits

    if kind == "torch":
        torch = pytest.importorskip("torch")
        sp = [torch.as_tensor(s) for s in sp_np]
        layer, unit = torch.as_tensor(layer_np), torch.as_tensor(unit_np)
        out = [o.numpy() for o in children_splits(sp, layer, unit)]
    else:
        out = children_splits(sp_np, layer_np, unit_np)
        assert all(isinstance(o, np.ndarray) and o.dtype == np.int8 for o in out)
    sp = sp_np
    n, K = layer_np.shape
    assert [o.shape for o in out] == [(2 * K * n, 4), (2 * K * n, 5)]
    for q in range(K):
        for side, sign in enumerate((-1, 1)):
            for b in range(n):
                j, u = int(layer_np[b, q]), int(unit_np[b, q])
                for jj in range(2):
                    want = sp[jj][b].copy()
                    if jj == j:
                        want[u] = sign
                    np.testing.assert_array_equal(out[jj][(2 * q + side) * n + b], want)


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_relu_splitting_decides_the_same_with_plain_babsr(seed, monkeypatch):
    """Filtered smart branching against BaBSR's first choice alone: the verdicts agree where
    both decide (each "unsat" proof re-checked)."""
    import netopt.bounds.branch_relu as br

    inst, r = _relu_run(seed)
    monkeypatch.setattr(br, "FSB_CANDIDATES", 1)
    _, r1 = _relu_run(seed)
    if "unknown" not in (r.verdict, r1.verdict):
        assert r.verdict == r1.verdict
    _check_result(inst, r1, "relu")


def test_input_lookahead_does_not_descend_along_a_sliver():
    """Regression: the look-ahead once kept trying (and taking) the split of an input already
    cut to a sliver, whose unchanged halves can bound better than a real split's (CROWN is not
    monotone in the box): on this instance it went 800 levels deep into the domain limit.
    With such candidates left out it needs under 2000 boxes."""
    inst = _instance(242)
    assert inst["opt"] > 0.1
    r = branch_and_bound(
        inst["net"],
        inst["lo"],
        inst["hi"],
        inst["C"],
        inst["d"],
        mode="input",
        max_domains=3000,
        time_limit=30,
    )
    assert r.verdict == "unsat", r.stopped
    assert r.stats["depth"] < 30
    _check_result(inst, r, "input")


# ---------------------------------------------------------------------------- on the edge
@pytest.fixture(scope="module")
def edge():
    """A 3-5-4-1 chain (leaky second layer); min of y over the box by brute force and MILP."""
    net, Ws, bs = mlp_net([3, 5, 4, 1], ["relu", "leaky_relu:0.1", None], seed=21)
    inst = dict(net=net, Ws=Ws, bs=bs, alphas=[0.0, 0.1], lo=-np.ones(3), hi=np.ones(3))
    C = np.array([[1.0]])
    m = _exact_min(Ws, bs, inst["alphas"], inst["lo"], inst["hi"], C, np.zeros(1))
    milp = netopt.OutputObjective(net, np.ones(1), box=(inst["lo"], inst["hi"])).solve("milp")
    assert abs(milp.objective - m) <= 1e-6 * max(1.0, abs(m))
    return inst, C, m


@pytest.mark.parametrize("mode", ["input", "relu"])
@pytest.mark.parametrize("side", [-1, 1])
def test_limit_just_beside_the_exact_optimum(edge, mode, side):
    base, C, m = edge
    inst = {**base, "C": C, "d": np.array([m + side * 1e-3])}
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], C, inst["d"], mode=mode, device="cpu", time_limit=30
    )
    want = "sat" if side > 0 else "unsat"
    if mode == "relu" and side > 0 and r.verdict == "unknown":
        # ReLU splitting tries the box's corners only: an interior minimizer stays unfound
        assert r.stopped == "incomplete"
    else:
        assert r.verdict == want, r.stopped
    _check_result(inst, r, mode)


# ---------------------------------------------------------------------------- stopping
@pytest.fixture(scope="module")
def hard():
    """A 10-input chain of 2 x 48 ReLUs with y <= -3 unsat and not closed at the root.

    The MILP (OutputObjective, 60 s) proves min y >= -2.63 over the box (its incumbent is
    -0.53), and CROWN's root bound is -7.28: no point reaches -3, and neither mode closes it at
    the root.
    """
    net, _, _ = mlp_net([10, 48, 48, 1], ["relu", "relu", None], seed=5)
    return net, -np.ones(10), np.ones(10), np.array([[1.0]]), np.array([-3.0])


class _CountingDeadline(Deadline):
    """A deadline that expires at its ``n``-th question: a stop in mid-search, whatever the
    machine's speed."""

    def __init__(self, n: int) -> None:
        super().__init__(None)
        self.left = n

    def expired(self) -> bool:
        self.left -= 1
        return self.left < 0


@pytest.mark.parametrize("mode", ["input", "relu"])
def test_time_limit_stops_with_unknown_and_no_proof(hard, mode):
    net, lo, hi, C, d = hard
    r = branch_and_bound(net, lo, hi, C, d, mode=mode, device="cpu", time_limit=1e-9)
    assert (r.verdict, r.stopped, r.proof, r.x) == ("unknown", "time limit", None, None)
    assert r.stats["mode"] == mode
    r = branch_and_bound(net, lo, hi, C, d, mode=mode, device="cpu", deadline=_CountingDeadline(3))
    assert (r.verdict, r.stopped, r.proof, r.x) == ("unknown", "time limit", None, None)
    assert r.stats["nodes"] > 1  # stopped in the middle: rounds were run


@pytest.mark.parametrize("mode", ["input", "relu"])
def test_interrupt_stops_with_interrupted(hard, mode):
    net, lo, hi, C, d = hard
    try:
        request_interrupt()
        r = branch_and_bound(net, lo, hi, C, d, mode=mode, device="cpu", time_limit=30)
        assert (r.verdict, r.stopped, r.proof) == ("unknown", "interrupted", None)
        clear_interrupt()
        # a request arriving in mid-search (at the first progress event)
        events: list[dict] = []

        def on_event(ev: dict) -> None:
            events.append(ev)
            request_interrupt()

        r = branch_and_bound(
            net, lo, hi, C, d, mode=mode, device="cpu", time_limit=30, progress=on_event
        )
        assert (r.verdict, r.stopped, r.proof) == ("unknown", "interrupted", None)
        assert events and events[0]["phase"] == "branch and bound"
        assert {"domains", "open", "leaves"} <= set(events[0])
        # it stops at the next round: nothing bounded after the event
        assert len(events) == 1 and r.stats["nodes"] == events[0]["domains"] >= 1
    finally:
        clear_interrupt()


def test_networks_it_does_not_cover_give_none():
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Sigmoid", ["h"], ["s"]),
        helper.make_node("Gemm", ["s", "W2", "b2"], ["y"], transB=1),
    ]
    rng = np.random.default_rng(0)
    inits = {"W1": rng.normal(size=(4, 2)), "b1": np.zeros(4), "W2": rng.normal(size=(1, 4))}
    inits["b2"] = np.zeros(1)
    net = netopt.load(make_model(nodes, [1, 2], [1, 1], inits))
    for mode in ("auto", "input", "relu"):
        assert branch_and_bound(net, -np.ones(2), np.ones(2), [[1.0]], [0.0], mode=mode) is None


# ------------------------------------------------------------------- a ReLU-split proof, mutated
def _relu_split_proof():
    """A ReLU-split proof on a 2-16-16-2 chain (y0 - y1 <= d unsat: the MILP says so)."""
    net, Ws, bs = mlp_net([2, 16, 16, 2], ["relu", "relu", None], seed=0)
    inst = dict(net=net, Ws=Ws, bs=bs, alphas=[0.0, 0.0], lo=-np.ones(2), hi=np.ones(2))
    C = np.array([[1.0, -1.0]])
    g = np.linspace(-1, 1, 201)
    y, _ = _forward(Ws, bs, inst["alphas"], np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))
    d = np.array([(y @ C.T).min() - 0.05])
    inst.update(C=C, d=d)
    r = branch_and_bound(net, inst["lo"], inst["hi"], C, d, mode="relu", device="cpu")
    assert r.verdict == "unsat"
    _check_result(inst, r, "relu")
    milp = netopt.Feasibility(net, C=C, d=d, box=(inst["lo"], inst["hi"])).solve(
        "milp", time_limit=60
    )
    assert milp.verdict == "unsat"
    assert sum(nd[0] == "r" for nd in r.proof.nodes) >= 2 and r.proof.params
    inst["d_sat"] = r.proof.d + 0.2
    return inst, r.proof


def _pieces_proof():
    """An input-splitting proof (the float32 search from the start) in which boxes of few
    unstable ReLUs closed through their pieces: ReLU splits under input splits, their leaves
    with the pieces' multipliers."""
    import netopt.bounds.branch_input as bi

    inst = dict(_instance(8))
    old = bi.FAST_AFTER
    bi.FAST_AFTER = 0.0
    try:
        r = branch_and_bound(
            inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
        )
    finally:
        bi.FAST_AFTER = old
    assert r.verdict == "unsat" and r.stats["pieces_closed"] > 0
    _check_result(inst, r, "input")
    kinds = [nd[0] for nd in r.proof.nodes]
    assert {"x", "r"} <= set(kinds) and r.proof.params
    inst["d_sat"] = inst["d"] + 2 * inst["opt"]  # the exact minimum moves to -opt < 0
    return inst, r.proof


def _combined_pieces_proof():
    """An input-splitting proof whose boxes' pieces closed by a combination of the property's
    rows (``"lam"`` with two or more weights): where the rows cross in a box, no single row
    is positive on a piece though no point of it satisfies them all (seed 16: 17 nodes; with
    the box's best row alone, 407)."""
    import netopt.bounds.branch_input as bi

    inst = dict(_instance(16))
    assert len(inst["d"]) == 3
    with pytest.MonkeyPatch.context() as m:
        m.setattr(bi, "FAST_AFTER", 0.0)
        m.setattr(bi, "ROW_MIX", False)  # (it closes these boxes before their pieces)
        r = branch_and_bound(
            inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
        )
    assert r.verdict == "unsat" and r.stats["pieces_closed"] > 0
    _check_result(inst, r, "input")
    mixed = [p for p in r.proof.params if p and np.sum(np.asarray(p.get("lam", [])) > 0) >= 2]
    assert mixed and all(len(p["lam"]) == 3 for p in mixed)
    inst["d_sat"] = inst["d"] + 2 * inst["opt"]
    return inst, r.proof


def _row_mix_proof():
    """An input-splitting proof whose boxes closed by a combination of two of the property's
    rows (``"lam"`` with two weights, no ReLU split): where the rows cross in a box, neither
    alone is positive on it (seed 16: 9 nodes; with the best row alone and the pieces off, 37,
    the proof checked either way)."""
    import netopt.bounds.branch_input as bi

    inst = dict(_instance(16))
    args = (inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"])
    with pytest.MonkeyPatch.context() as m:
        m.setattr(bi, "PIECES_MAX_UNSTABLE", 0)
        r = branch_and_bound(*args, mode="input", time_limit=30)
        m.setattr(bi, "ROW_MIX", False)
        single = branch_and_bound(*args, mode="input", time_limit=30)
    assert r.verdict == single.verdict == "unsat"
    assert r.stats["mix_closed"] > 0 and single.stats["mix_closed"] == 0
    assert r.stats["nodes"] < single.stats["nodes"]
    _check_result(inst, r, "input")
    _check_result(inst, single, "input")
    mixed = [p for p in r.proof.params if p and np.sum(np.asarray(p.get("lam", [])) > 0) == 2]
    assert len(mixed) == r.stats["mix_closed"]
    assert "r" not in [nd[0] for nd in r.proof.nodes]
    inst["d_sat"] = inst["d"] + 2 * inst["opt"]
    return inst, r.proof


@pytest.mark.parametrize("seed", range(4))
def test_best_mix_is_the_best_pair_on_a_fine_grid(seed):
    """:func:`best_mix`'s weights against a grid of 2001 weights per pair of rows, the
    combination's minimum over each box taken at every corner (exact for an affine function);
    its value is what its weights give, never below the best row's."""
    from netopt.bounds.row_mix import best_mix

    rng = np.random.default_rng(seed)
    B, k, n = 40, 3 + seed % 2, 2 + seed
    A = rng.normal(size=(B, k, n))
    lo = rng.uniform(-1, 0, (B, n))
    hi = lo + rng.uniform(0.1, 1, (B, n))
    corners = np.array(list(itertools.product([0, 1], repeat=n)), dtype=bool)
    X = np.where(corners[None], hi[:, None], lo[:, None])  # (B, 2^n, n)
    c = rng.normal(size=(B, k))
    vals = np.einsum("bkn,bvn->bkv", A, X) + c[:, :, None]  # each row at each corner
    s = vals.min(axis=2)
    lam, value = best_mix(s, A, lo, hi)
    assert np.all(lam >= 0) and np.allclose(lam.sum(axis=1), 1) and np.all((lam > 0).sum(1) <= 2)
    assert np.allclose(value, np.einsum("bk,bkv->bv", lam, vals).min(axis=1), atol=1e-12)
    assert np.all(value >= s.max(axis=1))
    t = np.linspace(0, 1, 2001)
    grid = np.full(B, -np.inf)
    for i, j in itertools.combinations(range(k), 2):
        mix = t[None, :, None] * vals[:, i, None] + (1 - t[None, :, None]) * vals[:, j, None]
        grid = np.maximum(grid, mix.min(axis=2).max(axis=1))
    assert np.all(value >= grid - 1e-12)
    assert np.any(value > s.max(axis=1) + 1e-3)  # some boxes gain: the rows cross in them


def test_best_mix_pairs_only_the_highest_rows():
    """Many rows: only the :data:`MIX_MAX_ROWS` of the highest bounds are paired (the pairs
    grow with the square of the rows), the weights stay on them, and the value is what they
    give. NaN bounds are never chosen."""
    from netopt.bounds.row_mix import MIX_MAX_ROWS, best_mix

    rng = np.random.default_rng(0)
    B, k, n = 256, 40, 16
    s, A = rng.normal(size=(B, k)), rng.normal(size=(B, k, n))
    lam, value = best_mix(s, A, -np.ones((B, n)), np.ones((B, n)))
    top = np.argsort(-s, axis=1)[:, :MIX_MAX_ROWS]
    on_top = np.zeros((B, k), dtype=bool)
    on_top[np.arange(B)[:, None], top] = True
    assert np.all(lam[~on_top] == 0) and np.all(value >= s.max(axis=1))
    assert np.any((lam > 0).sum(axis=1) == 2)
    # each row l_i(x) = a_i x + c_i has minimum s_i over [-1, 1]^n, so c_i = s_i + |a_i|_1,
    # and the combination's minimum is -|sum_i lam_i a_i|_1 + sum_i lam_i c_i
    c = s + np.abs(A).sum(axis=2)
    mixed = np.einsum("bk,bkn->bn", lam, A)
    assert np.allclose(value, -np.abs(mixed).sum(axis=1) + (lam * c).sum(axis=1), atol=1e-12)
    # a box of NaN (and -inf) bounds gets no combination
    lam, value = best_mix(
        np.array([[np.nan, np.nan, np.nan], [np.nan, -np.inf, -np.inf]]),
        np.ones((2, 3, 2)),
        -np.ones((2, 2)),
        np.ones((2, 2)),
    )
    assert np.all(lam.max(axis=1) == 1) and np.all(value == -np.inf)


@pytest.mark.parametrize("seed", [16, 3, 7])
def test_combination_over_is_sound_and_as_the_check_takes_it(seed):
    """The rigorous margin of a combination of the rows on sub-boxes: below the combination
    at sampled points, and equal (to rounding) to what the proof check's two passes give."""
    from netopt.bounds.bab import BatchCrown
    from netopt.bounds.proof import combination_claim
    from netopt.bounds.row_mix import combination_over

    inst = _instance(seed)
    C, d, lo, hi = inst["C"], inst["d"], inst["lo"], inst["hi"]
    bc = BatchCrown(inst["net"].graph)
    rng = np.random.default_rng(seed)
    B = 16
    a = rng.uniform(lo, hi, (B, len(lo)))
    b = rng.uniform(lo, hi, (B, len(lo)))
    blo, bhi = np.minimum(a, b), np.maximum(a, b)
    lams = rng.dirichlet(np.ones(len(d)), B)
    margin = 1e-9 * (1 + np.abs(d))
    seen = []
    real_bound = bc.bound

    def spy(lo, hi, rows, *a, **k):
        seen.append(np.array(rows))
        return real_bound(lo, hi, rows, *a, **k)

    bc.bound = spy
    over = combination_over(bc, C, d, margin, blo, bhi, lams)
    bc.bound = real_bound
    # the combined row is the checker's, bit for bit (its weights clipped at 0, after JSON)
    ref = np.stack(
        [np.maximum(np.asarray(json.loads(json.dumps(w.tolist()))), 0) @ C for w in lams]
    )
    assert np.array_equal(seen[0][:, 0, :], ref)
    assert combination_over(bc, C, d, margin, blo[:0], bhi[:0], lams[:0]).shape == (0,)
    C3, need = combination_claim(bc, C, d, margin, blo, bhi, None, lams)
    low, _, _ = bc.bound(blo, bhi, C3)
    m = C.shape[1]
    out, _, _ = bc.bound(blo, bhi, np.vstack([np.eye(m), -np.eye(m)]))
    F = np.maximum(np.abs(out[:, :m]), np.abs(out[:, m:]))
    # the check's margin, and a share of the outputs' scale on top
    scale = 1e-9 * ((lams @ np.abs(C)) * F).sum(axis=1)
    assert np.all(scale > 0)
    assert np.allclose(over, low[:, 0] - need - scale, rtol=0, atol=1e-12)
    for i in range(B):
        X = rng.uniform(blo[i], bhi[i], (500, len(lo)))
        y, _ = _forward(inst["Ws"], inst["bs"], inst["alphas"], X)
        assert np.all((y @ C.T - d - margin) @ lams[i] >= over[i])


@pytest.mark.parametrize("seed", [6, 16, 48])
def test_combined_rows_are_the_disjuncts_own_when_searched_at_once(seed):
    """A combination of rows is of its own disjunct's rows when several disjuncts share the
    tree (``groups``): a disjunct of one row no point meets put first, each disjunct's proof
    re-checked on its own rows."""
    inst = _instance(seed)
    k, m = inst["C"].shape
    C = np.vstack([np.eye(m)[:1], inst["C"]])
    d = np.concatenate([[-1e6], inst["d"]])
    groups = np.array([0] + [1] * k)
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], C, d, mode="input", time_limit=30, groups=groups
    )
    assert r.verdict == "unsat" and r.stats["mix_closed"] > 0
    for g, part in enumerate(r.parts):
        P = part.proof
        assert np.array_equal(P.C, C[groups == g]) and np.array_equal(P.d, d[groups == g])
        pc = check_proof(inst["net"].graph, BabProof.from_dict(json.loads(json.dumps(P.to_dict()))))
        assert pc.ok, pc.reason
    P = r.parts[1].proof
    assert any(np.count_nonzero(p.get("lam", [])) == 2 for p in P.params if p)
    _assert_leaves_sound(inst, P)


@pytest.mark.parametrize("seed", [6, 16, 48, 23, 63, 73])
def test_a_combined_row_that_lies_closes_nothing(seed, monkeypatch):
    """A float32 engine claiming every combination of the rows closes its box: the float64
    bound of the combination reopens what it does not close, and the verdicts (sat or unsat)
    are still the brute force's, every proof checked and sound at sampled points."""
    from netopt.bounds.chain_numpy import NumpyChainCrown

    real = NumpyChainCrown.final_rows

    def lying(self, lo, hi, P, C):
        return real(self, lo, hi, P, C) + 1e3

    monkeypatch.setattr(NumpyChainCrown, "final_rows", lying)
    inst = _instance(seed)
    assert len(inst["d"]) >= 2
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
    )
    assert r.verdict == ("sat" if inst["opt"] < 0 else "unsat")
    assert r.stats["mix_tried"] > r.stats["mix_closed"]
    assert r.stats["float64_reopened"] > 0
    _check_result(inst, r, "input")


@pytest.mark.parametrize("seed", [29, 45])
def test_a_pieces_lp_point_is_a_checked_counterexample(seed, monkeypatch):
    """Where a piece's LP finds a point satisfying every row, input splitting tries it: on
    these sat instances the counterexample returned is such a point, and it satisfies the
    rows in the independent forward pass (a point the LP's tolerance put outside a row would
    not be returned)."""
    import netopt.bounds.branch_input as bi
    import netopt.bounds.input_relu as ir

    inst = _instance(seed)
    assert inst["opt"] < 0  # (sat)
    monkeypatch.setattr(bi, "FAST_AFTER", 0.0)
    seen: list = []

    def spy(search, *a, **k):
        n = len(search.lp_points)
        out = ir.close_by_pieces(search, *a, **k)
        seen.extend(search.lp_points[n:])
        return out

    monkeypatch.setattr(bi, "close_by_pieces", spy)
    r = branch_and_bound(
        inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
    )
    assert r.verdict == "sat"
    _check_result(inst, r, "input")
    x = np.asarray(r.x, dtype=np.float64).reshape(-1)
    assert any(np.array_equal(x, p) for p in seen)


def _face_instance():
    """Seed 12's network and rows over a box cut so that the exact minimum of ``max(C f - d)``
    is +1e-9, on the face ``x_2 = hi_2``: unsat, with points satisfying every row just past
    that face."""
    inst = _instance(12)
    lo = np.array([-1.4663340684134645, -0.5597998568131668, -1.071820158283739])
    hi = np.array([0.20301574245443293, 1.2415828279043055, -0.467862313222471])
    d = np.array([1.003715689087881, -0.003488756671122043, 0.667228480109941])
    return inst["net"], inst["C"], lo, hi, d


def test_no_counterexample_outside_the_box_from_an_lp_point(monkeypatch):
    """A piece's LP may leave its point a hair past the box (HiGHS's bound tolerance); on an
    unsat property whose minimum (+1e-9, by the exact LPs) sits on the box's face, such a
    point satisfies every row just outside: it must not become a "sat"."""
    import netopt.bounds.branch_input as bi
    from netopt.bounds.opt_tighten import chain64

    monkeypatch.setattr(bi, "FAST_AFTER", 0.0)
    net, C, lo, hi, d = _face_instance()
    Ws, bs, leaks = chain64(net)
    assert 0 < _exact_min(Ws, bs, list(leaks[:-1]), lo, hi, C, d) < 1e-8
    r = branch_and_bound(net, lo, hi, C, d, mode="input", time_limit=10)
    assert r.verdict != "sat"


def test_a_candidate_past_the_box_is_never_taken(monkeypatch):
    """The searches' own guard, alone: on the unsat instance above, pieces' LP points on a face
    of the box are pushed 1e-6 past it (as a solver's tolerance could leave them, were they
    not put back), where they satisfy every row; they are refused."""
    import netopt.bounds.branch_input as bi
    import netopt.bounds.pieces as pieces

    monkeypatch.setattr(bi, "FAST_AFTER", 0.0)
    net, C, lo, hi, d = _face_instance()
    real = pieces.affine_rows
    pushed: list = []

    def outside(C_, d_, chain, lo_, hi_, split, active):
        res = real(C_, d_, chain, lo_, hi_, split, active)
        if res is not None and res[2] is not None:
            x = res[2].copy()
            x = np.where(x >= hi, hi + 1e-6, np.where(x <= lo, lo - 1e-6, x))
            pushed.append(x)
            return None, None, x
        return res

    monkeypatch.setattr(pieces, "affine_rows", outside)
    r = branch_and_bound(net, lo, hi, C, d, mode="input", time_limit=5)
    past = [x for x in pushed if np.any((x < lo) | (x > hi))]
    assert past and np.any(np.max(net.forward(np.stack(past)) @ C.T - d, axis=1) <= 0)
    assert r.verdict != "sat"


def _combined_rows_proof():
    """A ReLU-split proof with leaves closed by a combination of the rows (``"lam"``)."""
    inst, r = _relu_run(10)
    assert r.verdict == "unsat" and r.stats["affine_closed"] > 0
    _check_result(inst, r, "relu")
    assert sum("lam" in p for p in r.proof.params) == r.stats["affine_closed"]
    inst = dict(inst, d_sat=inst["d"] + 2 * inst["opt"])
    return inst, r.proof


def _mixed_rows_proof():
    """A ReLU-split proof with a leaf closed by the rows' combination that the search bounded
    with its slopes and multipliers (no affine domain)."""
    inst, r = _relu_run(98)
    assert r.verdict == "unsat" and r.stats["affine_closed"] == 0
    assert any(nd[0] == "r" for nd in r.proof.nodes)
    assert any("lam" in (p or {}) for p in r.proof.params)
    _check_result(inst, r, "relu")
    return dict(inst, d_sat=inst["d"] + 2 * inst["opt"]), r.proof


def _relu_under_boxes_proof():
    """An input-splitting proof with boxes closed by subtrees of ReLU splits (leaves with
    slopes and multipliers)."""
    inst = dict(_instance(10))
    with pytest.MonkeyPatch.context() as m:
        _relu_under_boxes(m)
        r = branch_and_bound(
            inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
        )
    assert r.verdict == "unsat" and r.stats["relu_split_closed"] > 0
    _check_result(inst, r, "input")
    assert any("betas" in p and "alphas" in p for p in r.proof.params)
    inst["d_sat"] = inst["d"] + 2 * inst["opt"]
    return inst, r.proof


def _slopes_proof():
    """An input-splitting proof whose boxes of a few unstable ReLUs closed by alpha-CROWN:
    leaves with the optimized slopes (the pieces turned off)."""
    import netopt.bounds.branch_input as bi

    inst = dict(_instance(10))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(bi, "FAST_AFTER", 0.0)
        m.setattr(bi, "PIECES_MAX_UNSTABLE", 0)
        m.setattr(bi, "RELU_SPLIT", False)
        m.setattr(bi, "ALPHA_MIN_BOXES", 1)
        m.setattr(bi, "ALPHA_AFTER_NODES", 0)
        r = branch_and_bound(
            inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"], mode="input", time_limit=30
        )
    assert r.verdict == "unsat" and r.stats["alpha_closed"] > 0
    assert r.stats["pieces_closed"] == 0
    _check_result(inst, r, "input")
    assert sum("alphas" in p for p in r.proof.params) == r.stats["alpha_closed"]
    inst["d_sat"] = inst["d"] + 2 * inst["opt"]
    return inst, r.proof


@pytest.fixture(
    scope="module",
    params=[
        "relu-splits",
        "relu-splits-with-combined-rows",
        "relu-splits-with-mixed-rows",
        "input-splits-with-pieces",
        "input-splits-with-combined-pieces",
        "input-splits-with-row-mix",
        "input-splits-with-slopes",
        "input-splits-with-relu-splits",
    ],
)
def relu_proof(request):
    return {
        "relu-splits": _relu_split_proof,
        "relu-splits-with-combined-rows": _combined_rows_proof,
        "relu-splits-with-mixed-rows": _mixed_rows_proof,
        "input-splits-with-pieces": _pieces_proof,
        "input-splits-with-combined-pieces": _combined_pieces_proof,
        "input-splits-with-row-mix": _row_mix_proof,
        "input-splits-with-slopes": _slopes_proof,
        "input-splits-with-relu-splits": _relu_under_boxes_proof,
    }[request.param]()


def _subtree_end(nodes: list, k: int) -> int:
    need = 1
    while need:
        need += 1 if nodes[k][0] != "leaf" else -1
        k += 1
    return k


def test_mutated_relu_split_proof_is_rejected_or_sound(relu_proof):
    inst, P = relu_proof
    net = inst["net"]
    rng = np.random.default_rng(2)

    def proof(nodes=None, params=None, d=None) -> BabProof:
        return BabProof(
            P.lo, P.hi, P.C, P.d if d is None else d, P.nodes if nodes is None else nodes,
            P.params if params is None else params,
        )  # fmt: skip

    # one leaf's slopes random in [-3, 3] and its multipliers * 100: any slope is clipped to a
    # valid line, any multiplier >= 0 keeps the bound valid; accepted only if sound
    rejected = 0
    for k in range(len(P.params)):
        params = [dict(p) for p in P.params]
        p = params[k]
        if "slopes" in p:
            p["slopes"] = [list(rng.uniform(-3, 3, len(s))) for s in p["slopes"]]
        if "alphas" in p:
            p["alphas"] = [[j, u, rng.uniform(-3, 3)] for j, u, _ in p["alphas"]]
        if "lam" in p:
            p["lam"] = list(rng.uniform(-1, 1, len(p["lam"])))
        if "betas" in p:
            p["betas"] = [[j, u, b * 100] for j, u, b in p["betas"]]
        mutated = proof(params=params)
        if check_proof(net.graph, mutated).ok:
            _assert_leaves_sound(inst, mutated, seed=k)
        else:
            rejected += 1
    assert rejected > 0  # the leaves need the search's parameters: the check does use them
    # a leaf dropped: malformed
    nodes = [list(nd) for nd in P.nodes]
    leaf = max(i for i, nd in enumerate(nodes) if nd[0] == "leaf")
    pc = check_proof(net.graph, proof(nodes=nodes[:leaf] + nodes[leaf + 1 :]))
    assert not pc.ok and "malformed" in pc.reason
    # a split flipped (its two subtrees swapped: each claim moves to the other sign, or the
    # other half of an input's interval) or moved to another unit or input: rejected, or
    # sound on every leaf (a tree with no ReLU split: its first input splits)
    rejected = 0
    splits = [i for i, nd in enumerate(nodes) if nd[0] == "r"]
    for k in splits or [i for i, nd in enumerate(nodes) if nd[0] == "x"][:20]:
        e1 = _subtree_end(nodes, k + 1)
        e2 = _subtree_end(nodes, e1)
        swapped = nodes[: k + 1] + nodes[e1:e2] + nodes[k + 1 : e1] + nodes[e2:]
        moved = [list(nd) for nd in nodes]
        if nodes[k][0] == "r":
            moved[k][2] = (moved[k][2] + 1) % inst["Ws"][moved[k][1]].shape[0]
        else:
            moved[k][1] = (moved[k][1] + 1) % len(P.lo)
        for mut in (swapped, moved):
            pc = check_proof(net.graph, proof(nodes=mut))
            if pc.ok:
                _assert_leaves_sound(inst, proof(nodes=mut))
            else:
                rejected += 1
    assert rejected > 0
    # the same tree for a limit the exact MILP finds a point under: never accepted
    d_sat = inst["d_sat"]
    sat = netopt.Feasibility(net, C=P.C, d=d_sat, box=(P.lo, P.hi)).solve("milp", time_limit=60)
    assert sat.verdict == "sat"
    assert not check_proof(net.graph, proof(d=d_sat)).ok


# ----------------------------------------------------------------------------- real networks
def _verdict(folder: str, onnx_name: str, prop: str) -> str:
    with open(NETS / folder / "verdicts.csv") as f:
        return next(
            row["verdict"]
            for row in csv.DictReader(f)
            if row["onnx"] == onnx_name and row["vnnlib"] == prop
        )


def _real(folder: str, onnx_name: str, prop: str, k: int, n_in: int, n_out: int):
    from netopt.vnnlib.reader import load_vnnlib

    net = netopt.load(NETS / folder / onnx_name)
    dj = load_vnnlib(NETS / folder / prop, n_inputs=n_in, n_outputs=n_out).disjuncts[k]
    return net, dj


def _check_real(net, dj, r, mode: str) -> BabProof:
    assert r.verdict == "unsat" and r.stats["mode"] == mode
    proof = BabProof.from_dict(json.loads(json.dumps(r.proof.to_dict())))
    pc = check_proof(net.graph, proof)
    assert pc.ok, pc.reason
    assert pc.leaves == r.stats["leaves"] == sum(nd[0] == "leaf" for nd in proof.nodes)
    assert np.array_equal(proof.lo, np.asarray(dj.lo, dtype=np.float64).reshape(-1))
    # the tree is about this property: a limit raised past the outputs' range breaks it
    other = BabProof(proof.lo, proof.hi, proof.C, proof.d + 1e3, proof.nodes, proof.params)
    assert not check_proof(net.graph, other).ok
    return proof


def _acasxu_unsat(net_tag: str, prop: str) -> tuple:
    """An unsat ACAS Xu property's first disjunct by input splitting (the competition's
    verdict checked first), the proof re-checked: the network, disjunct, result and proof."""
    require_nets()
    onnx_name = f"ACASXU_run2a_{net_tag}_batch_2000.onnx"
    assert _verdict("acasxu", onnx_name, f"{prop}.vnnlib") == "unsat"
    net, dj = _real("acasxu", onnx_name, f"{prop}.vnnlib", 0, 5, 5)
    r = branch_and_bound(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=60)
    return net, dj, r, _check_real(net, dj, r, "input")


def test_acasxu_4_5_property_10_input_splits():
    _, _, r, proof = _acasxu_unsat("4_5", "prop_10")
    assert r.stats["leaves"] > 1 and any(nd[0] == "x" for nd in proof.nodes)


def test_acasxu_1_1_property_4_closes_where_two_advisories_cross(monkeypatch):
    """Boxes where two outputs cross, closed by a combination of two rows (``"lam"``
    leaves), the proof re-checked; with the best row alone the same verdict takes more boxes
    (517 against 1423 on a 2-core CPU)."""
    import netopt.bounds.branch_input as bi

    net, dj, r, proof = _acasxu_unsat("1_1", "prop_4")
    assert r.stats["mix_closed"] > 0
    assert sum(np.count_nonzero(p.get("lam", [])) == 2 for p in proof.params if p) > 0
    monkeypatch.setattr(bi, "ROW_MIX", False)
    single = branch_and_bound(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=60)
    _check_real(net, dj, single, "input")
    assert single.stats["nodes"] > r.stats["nodes"]


def test_mnist_256x2_relu_splits():
    require_nets()
    onnx_name = "mnist-net_256x2.onnx"
    assert _verdict("mnistfc", onnx_name, "prop_0_0.03.vnnlib") == "unsat"
    net, dj = _real("mnistfc", onnx_name, "prop_0_0.03.vnnlib", 8, 784, 10)
    r = branch_and_bound(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=60)
    proof = _check_real(net, dj, r, "relu")
    assert any(nd[0] == "r" for nd in proof.nodes)
    # (a two-unit split's middle nodes are the tree's, not bounded domains)
    assert r.stats["nodes"] <= len(proof.nodes) <= 2 * r.stats["nodes"]


# ---------------------------------------------------------------------- in netopt check
def test_check_names_the_branch_and_bound_and_keeps_its_proof():
    """A disjunct CROWN does not close goes to input splitting inside ``check``."""
    from netopt.vnnlib.check import check

    net, Ws, bs = mlp_net([2, 16, 16, 2], ["relu", "relu", None], seed=0)
    g = np.linspace(-1, 1, 201)
    y, _ = _forward(Ws, bs, [0.0, 0.0], np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))
    limit = float((y[:, 0] - y[:, 1]).min() - 0.05)
    text = (
        "(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
        "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
        "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 -1))\n(assert (<= X_1 1))\n"
        f"(assert (<= (- Y_0 Y_1) {limit!r}))\n"
    )
    events: list[dict] = []
    res = check(net, text, time_limit=60, n_samples=64, progress=events.append)
    assert res.verdict == "unsat"
    (info,) = res.details
    assert info["method"] == "BaB (input splits)"
    assert info["bab"]["mode"] == "input" and info["pieces"] == info["bab"]["nodes"]
    assert "branch and bound" in [e["phase"] for e in events]
    assert check_proof(net.graph, info["proof"]).ok
