"""Bounds hold for the exact network, not only for its float64 evaluation.

Interval and CROWN bounds are computed in float64, and every sum and product there rounds. Bounds
that back a claim ("unsat", a big-M, a proven bound) must hold for the network's exact value (real
arithmetic on its float64 weights), so they are widened by a rigorous a-priori error term. Here
every intermediate value is evaluated exactly (``fractions.Fraction``) at sampled points and at the
corners of the box, for weights of scale 1 to 1e37 (and 1e-160, where products underflow), and
must lie in its bounds with zero tolerance. Before the widening, the bounds missed the exact values
by up to thousands at value scales 1e21 to 1e38.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import netopt
from netopt.bounds import compute_bounds, interval_op, linear_bounds, relu_relaxation
from netopt.bounds.bab import BatchCrown
from netopt.bounds.branch import branch_and_bound
from netopt.errors import InputError
from netopt.ir import Graph, Op, Value
from netopt.ir.ops import is_linear, linear_map, window_index

SCALES = (1.0, 1e5, 1e20, 1e37, 1e-160)
ALPHA = 0.1  # the LeakyReLU slope (a float32 attribute in ONNX)


# ------------------------------------------------------------------ networks
def _model(nodes, inits: dict[str, np.ndarray], x_shape: list, y_shape: list):
    """A float64 ONNX model (weights stored exactly as given)."""
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, y_shape)],
        initializer=[
            numpy_helper.from_array(
                np.asarray(v, dtype=np.float64) if np.asarray(v).dtype.kind == "f" else v, k
            )
            for k, v in inits.items()
        ],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return netopt.load(m)


def _mlp(scale: float, seed: int = 0):
    """x (6) -> Gemm -> Relu -> Gemm -> LeakyRelu -> Gemm -> y (3), all weights ~ scale."""
    rng = np.random.default_rng(seed)
    sizes = (6, 8, 8, 3)
    inits = {}
    for k in range(3):
        inits[f"w{k}"] = scale * rng.normal(size=(sizes[k + 1], sizes[k]))
        inits[f"b{k}"] = scale * rng.normal(size=sizes[k + 1])
    nodes = [
        helper.make_node("Gemm", ["x", "w0", "b0"], ["z0"], transB=1),
        helper.make_node("Relu", ["z0"], ["h0"]),
        helper.make_node("Gemm", ["h0", "w1", "b1"], ["z1"], transB=1),
        helper.make_node("LeakyRelu", ["z1"], ["h1"], alpha=ALPHA),
        helper.make_node("Gemm", ["h1", "w2", "b2"], ["y"], transB=1),
    ]
    return _model(nodes, inits, [1, 6], [1, 3])


def _conv(scale: float, seed: int = 1):
    """x (1,6,6) -> Conv 3x3 -> Relu -> MaxPool 2x2 stride 1 (overlapping) -> Gemm -> Relu -> Gemm."""
    rng = np.random.default_rng(seed)
    inits = {
        "wc": scale * rng.normal(size=(3, 1, 3, 3)),
        "bc": scale * rng.normal(size=3),
        "w1": scale * rng.normal(size=(4, 27)),
        "b1": scale * rng.normal(size=4),
        "w2": scale * rng.normal(size=(2, 4)),
        "b2": scale * rng.normal(size=2),
    }
    nodes = [
        helper.make_node("Conv", ["x", "wc", "bc"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[1, 1]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w1", "b1"], ["z"], transB=1),
        helper.make_node("Relu", ["z"], ["h"]),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["y"], transB=1),
    ]
    return _model(nodes, inits, [1, 1, 6, 6], [1, 2])


def _residual(scale: float, seed: int = 2):
    """x (5) -> Gemm -> Relu -> Add(x) -> Gemm -> Relu -> Gemm: two branches meet at the Add."""
    rng = np.random.default_rng(seed)
    inits = {
        "w0": scale * rng.normal(size=(5, 5)),
        "b0": scale * rng.normal(size=5),
        "w1": scale * rng.normal(size=(6, 5)),
        "b1": scale * rng.normal(size=6),
        "w2": scale * rng.normal(size=(2, 6)),
        "b2": scale * rng.normal(size=2),
    }
    nodes = [
        helper.make_node("Gemm", ["x", "w0", "b0"], ["z0"], transB=1),
        helper.make_node("Relu", ["z0"], ["h0"]),
        helper.make_node("Add", ["h0", "x"], ["s"]),
        helper.make_node("Gemm", ["s", "w1", "b1"], ["z1"], transB=1),
        helper.make_node("Relu", ["z1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "w2", "b2"], ["y"], transB=1),
    ]
    return _model(nodes, inits, [1, 5], [1, 2])


NETS = {"mlp": _mlp, "conv": _conv, "residual": _residual}


# ------------------------------------------------------------------ exact evaluation
def _exact_linear(op: Op, shapes, xs: Sequence[list[Fraction]]) -> list[Fraction]:
    # the matrices hold the op's weights themselves (conv kernels, Gemm weights, 0/1 for
    # reshapes); test_bounds.test_linear_map_equals_forward checks them against the forward
    assert op.op != "avgpool2d", "1/count is rounded in linear_map: no exact reference"
    mats, b = linear_map(op, shapes)
    out = [Fraction(float(t)) for t in b]
    for m, x in zip(mats, xs, strict=True):
        m = m.tocsr()
        for r in range(m.shape[0]):
            for k in range(m.indptr[r], m.indptr[r + 1]):
                out[r] += Fraction(float(m.data[k])) * x[m.indices[k]]
    return out


def _exact_values(graph: Graph, x: np.ndarray) -> dict[str, list[Fraction]]:
    """Every value of the graph at the float64 input ``x``, in exact rational arithmetic."""
    env = {graph.inputs[0]: [Fraction(float(t)) for t in x.reshape(-1)]}
    for op in graph.ops:
        shapes = [graph.value(i).shape for i in op.inputs]
        xs = [env[i] for i in op.inputs]
        if is_linear(op):
            y = _exact_linear(op, shapes, xs)
        elif op.op == "relu":
            y = [max(t, Fraction(0)) for t in xs[0]]
        elif op.op == "leaky_relu":
            a = Fraction(float(op.attrs["alpha"]))
            y = [t if t >= 0 else a * t for t in xs[0]]
        elif op.op == "maxpool2d":
            idx = window_index(shapes[0], op.attrs).reshape(-1, int(np.prod(op.attrs["kernel"])))
            y = [max(xs[0][j] for j in row if j >= 0) for row in idx]
        else:
            raise NotImplementedError(op.op)
        env[op.outputs[0]] = y
    return env


def _points(lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform points, random corners, the two extreme corners and the centre."""
    t = rng.random((n, lo.size))
    inner = np.clip(lo + t * (hi - lo), lo, hi)
    corners = np.where(rng.random((n, lo.size)) < 0.5, lo, hi)
    return np.concatenate([inner, corners, lo[None], hi[None], ((lo + hi) / 2)[None]])


def _inside(lo: float, v: Fraction, hi: float) -> bool:
    """``lo <= v <= hi`` exactly (an infinite end holds everything on its side)."""
    return (lo == -np.inf or Fraction(float(lo)) <= v) and (
        hi == np.inf or v <= Fraction(float(hi))
    )


def _show(e: Fraction) -> str:
    """A rational for a message (beyond the float range: its order of magnitude)."""
    try:
        return repr(float(e))
    except OverflowError:
        return f"{'-' if e < 0 else ''}~2^{e.numerator.bit_length() - e.denominator.bit_length()}"


def _box(net, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(np.prod(net.input_shape))
    lo = rng.uniform(-1, 0.5, n)
    return lo, lo + rng.uniform(0.01, 1, n)


def _outside(graph: Graph, b, exact: dict[str, list[Fraction]]) -> list[str]:
    bad = []
    for v, vals in exact.items():
        for i, e in enumerate(vals):
            if not _inside(b.lo[v][i], e, b.hi[v][i]):
                bad.append(f"{v}[{i}]: exact {_show(e)} not in [{b.lo[v][i]!r}, {b.hi[v][i]!r}]")
    return bad


# ------------------------------------------------------------------ the bounds contain them
@pytest.mark.parametrize("scale", SCALES, ids=[f"{s:g}" for s in SCALES])
@pytest.mark.parametrize("name", sorted(NETS))
def test_bounds_contain_the_exact_values(name, scale):
    net = NETS[name](scale)
    g = net.graph
    rng = np.random.default_rng(7)
    lo, hi = _box(net, rng)
    pts = _points(lo, hi, rng, 60 if name == "conv" else 150)
    bounds = {m: compute_bounds(g, lo, hi, m) for m in ("interval", "crown")}
    C = rng.normal(size=(4, int(np.prod(net.output_shape))))
    out = g.outputs[0]
    cl, cu = linear_bounds(g, bounds["crown"], out, C)
    assert np.all(cl <= cu)
    for x in pts:
        exact = _exact_values(g, x)
        for m, b in bounds.items():
            bad = _outside(g, b, exact)
            assert not bad, f"{m} at scale {scale:g}: {bad[:3]}"
        y = exact[out]
        for r in range(len(C)):
            e = sum((Fraction(float(c)) * t for c, t in zip(C[r], y, strict=True)), Fraction(0))
            assert _inside(cl[r], e, cu[r]), f"row {r}: {_show(e)} not in [{cl[r]!r}, {cu[r]!r}]"
    for b in bounds.values():
        for v in g.values:
            assert np.all(np.isfinite(b.lo[v])) and np.all(np.isfinite(b.hi[v])), v


@pytest.mark.parametrize("scale", SCALES, ids=[f"{s:g}" for s in SCALES])
@pytest.mark.parametrize("name", sorted(NETS))
def test_widening_is_tiny(name, scale):
    """On a box of one point the bounds are the rounding error only: relative width < 1e-12."""
    net = NETS[name](scale)
    g = net.graph
    x = np.random.default_rng(12).uniform(-1, 1, int(np.prod(net.input_shape)))
    exact = _exact_values(g, x)
    for m in ("interval", "crown"):
        b = compute_bounds(g, x, x, m)
        assert not _outside(g, b, exact), m
        for v in g.values:
            size = max(float(np.max(np.abs(b.lo[v]))), float(np.max(np.abs(b.hi[v]))))
            width = float(np.max(b.hi[v] - b.lo[v]))
            assert width <= 1e-12 * size + 1e-300, (m, v, width, size)


@pytest.mark.parametrize("scale", SCALES, ids=[f"{s:g}" for s in SCALES])
@pytest.mark.parametrize("name", sorted(NETS))
def test_batch_crown_contains_the_exact_values(name, scale):
    """BaB's batched CROWN (numpy, its own back-substitution): sound lower bounds of C y and
    of every activation input, on sub-boxes and on a single point."""
    net = NETS[name](scale) if name != "mlp" else _mlp(scale, seed=3)
    g = net.graph
    rng = np.random.default_rng(8)
    lo, hi = _box(net, rng)
    # five sub-boxes of the box, bounded together (the last a single point)
    mid = (lo + hi) / 2
    x_lo = np.stack([lo, lo, mid, np.minimum(lo + 0.1, mid), mid])
    x_hi = np.stack([mid, hi, hi, mid, mid])
    n_out = int(np.prod(net.output_shape))
    C = rng.normal(size=(3, n_out))
    lower, _, relu_b = BatchCrown(g).bound(x_lo, x_hi, C)
    assert lower.shape == (5, 3)
    for k in range(5):
        for x in _points(x_lo[k], x_hi[k], rng, 15 if name == "conv" else 40):
            ex = _exact_values(g, x)
            y = ex[g.outputs[0]]
            for r in range(3):
                e = sum((Fraction(float(c)) * t for c, t in zip(C[r], y, strict=True)), Fraction(0))
                assert _inside(lower[k, r], e, np.inf), (k, r, _show(e), lower[k, r])
            for v, (bl, bh) in relu_b.items():
                # (a max pool's ReLU form has values of its own: its output is checked)
                for i, e in enumerate(ex.get(v, ())):
                    assert _inside(bl[k, i], e, bh[k, i]), (v, i)
            assert any(v in ex for v in relu_b)


@pytest.mark.parametrize("scale", SCALES, ids=[f"{s:g}" for s in SCALES])
def test_batch_crown_unit_rows_start_below_their_layer(scale, monkeypatch):
    """An activation input's bounds start at its layer's input with the rows M and constants b
    (the identity through z = M x + b, exact): the first layer so bounded comes out no wider
    than from the identity, whose product and error term it skips; the rest differ only as
    their (tighter) relaxations do, and every bound is sound (the test above, at each scale)."""
    from netopt.bounds import crown

    net = _mlp(scale, seed=5)
    g = net.graph
    rng = np.random.default_rng(9)
    lo, hi = _box(net, rng)
    mid = (lo + hi) / 2
    x_lo, x_hi = np.stack([lo, mid]), np.stack([mid, hi])
    C = rng.normal(size=(2, 3))
    bc = BatchCrown(g)
    starts = []
    real = crown.backsub

    def spy(*a, **k):
        starts.append(k.get("start_const") is not None)
        return real(*a, **k)

    monkeypatch.setattr("netopt.bounds.bab.backsub", spy)
    low, _, pre = bc.bound(x_lo, x_hi, C)
    assert starts[:-1] and all(starts[:-1]) and not starts[-1]  # units below, then the rows

    def from_identity(self, op, L, H, xl, xh, gauges, unstable_only=False):
        s = self.graph.value(op.outputs[0]).size
        eye = np.broadcast_to(np.eye(s), (len(xl), s, s))
        return self._backsub(op.outputs[0], eye, L, H, xl, xh, gauges=gauges)

    monkeypatch.setattr(BatchCrown, "_unit_bounds", from_identity)
    low0, _, pre0 = bc.bound(x_lo, x_hi, C)
    second = bc.relu_inputs[1]  # the first activation input bounded by back-substitution
    assert np.all(pre[second][0] >= pre0[second][0]) and np.all(pre[second][1] <= pre0[second][1])
    size = np.abs(low0) + scale
    assert np.all(np.abs(low - low0) <= 1e-9 * size), (low, low0)


def test_an_average_pool_unit_starts_from_the_identity(monkeypatch):
    """Average pooling's matrix holds fl(1/k), not 1/k: its rows through the identity carry
    that rounding's error term, so a unit it produces is never started below it."""
    from netopt.bounds import crown

    rng = np.random.default_rng(4)
    inits = {"wc": rng.normal(size=(2, 1, 2, 2)), "bc": rng.normal(size=2)}
    inits.update(w1=rng.normal(size=(3, 8)), b1=rng.normal(size=3))
    nodes = [
        helper.make_node("Conv", ["x", "wc", "bc"], ["c"], kernel_shape=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[3, 3], strides=[1, 1]),
        helper.make_node("Relu", ["p"], ["q"]),
        helper.make_node("Flatten", ["q"], ["f"]),
        helper.make_node("Gemm", ["f", "w1", "b1"], ["y"], transB=1),
    ]
    # a 3x3 pool of a 4x4 map: a third of its matrix is non-zero, so it is kept dense
    net = _model(nodes, inits, [1, 1, 5, 5], [1, 3])
    bc = BatchCrown(net.graph)
    pool = next(o for o in bc.graph.ops if o.op == "avgpool2d")
    assert isinstance(bc.maps[pool.id].mats[0], np.ndarray)
    calls = []
    real = crown.backsub

    def spy(graph, vid, *a, **k):
        calls.append((vid, k.get("start_const") is not None))
        return real(graph, vid, *a, **k)

    monkeypatch.setattr("netopt.bounds.bab.backsub", spy)
    lo = rng.uniform(-1, 0, 25)
    bc.bound(lo[None], (lo + 0.5)[None], rng.normal(size=(2, 3)))
    assert bc.maps[pool.id].rounded
    assert (pool.outputs[0], False) in calls  # from the identity at the pool's output
    assert all(v != pool.inputs[0] for v, _ in calls)  # never below it


# ------------------------------------------------------------------ the pieces
@pytest.mark.parametrize("alpha", [0.0, 0.01, ALPHA, 0.5, 1.0])
def test_relu_relaxation_lines_hold_exactly(alpha):
    """The upper line of an unstable unit lies above the function at both ends (it is convex,
    so on all of [l, u]); the lower lines are x and alpha x, below it everywhere."""
    rng = np.random.default_rng(9)
    mant = rng.uniform(0.1, 10, (2, 400))
    ex = rng.integers(-300, 300, (2, 400)).astype(float)
    lo, hi = -mant[0] * 10.0 ** ex[0], mant[1] * 10.0 ** ex[1]
    lo_s, lo_b, up_s, up_b = relu_relaxation(lo, hi, alpha)
    a = Fraction(float(alpha))
    assert np.all(np.isin(lo_s, (alpha, 1.0))) and np.all(lo_b == 0)
    for i in range(len(lo)):
        s, t = Fraction(float(up_s[i])), Fraction(float(up_b[i]))
        l, u = Fraction(float(lo[i])), Fraction(float(hi[i]))  # noqa: E741
        assert s * l + t >= a * l and s * u + t >= u, (lo[i], hi[i])
        # and it is the chord up to a relative 1e-12
        assert float(s * u + t - u) <= 1e-12 * max(abs(lo[i]), hi[i])


def test_leaky_relu_interval_rounds_outward():
    # 0.1 * x rounds for most x: the bounds must hold for the exact product
    g = Graph(
        [Value("x", (5,)), Value("y", (5,))],
        [Op("f", "leaky_relu", ("x",), ("y",), {"alpha": 0.1})],
        ["x"],
        ["y"],
    )
    x = np.array([-3.0, -1e-310, -7e300, -1 / 3, 2.0])
    lo, hi = interval_op(g, g.ops[0], {"x": x}, {"x": x})
    for i in range(5):
        e = Fraction(0.1) * Fraction(float(x[i])) if x[i] < 0 else Fraction(float(x[i]))
        assert _inside(lo[i], e, hi[i]), i


def test_overflowing_scale_gives_infinite_bounds_not_false_ones():
    """Weights 1e200 over three layers: values reach 1e600. No bound may be NaN, and a value the
    floats cannot bound gets an infinite bound, never a finite one that misses it."""
    net = _mlp(1e200)
    g = net.graph
    rng = np.random.default_rng(10)
    lo, hi = _box(net, rng)
    for m in ("interval", "crown"):
        b = compute_bounds(g, lo, hi, m)
        for v in g.values:
            assert not np.any(np.isnan(b.lo[v])) and not np.any(np.isnan(b.hi[v])), (m, v)
        for x in _points(lo, hi, rng, 20):
            assert not _outside(g, b, _exact_values(g, x)), m
        assert np.all(np.isinf(b.lo[g.outputs[0]]) | np.isinf(b.hi[g.outputs[0]]))


@pytest.mark.parametrize("n", [3, 100])
def test_copies_pass_infinite_bounds_through_unchanged(n):
    """A reshape (a dense identity up to 64 entries, sparse above) and a 0/1 selection layer
    copy their input's bounds, an infinite one too: never NaN (``0 * inf`` in a product)."""
    sel = np.zeros((2, n))
    sel[0, 1], sel[1, 0] = 1.0, 1.0
    g = Graph(
        [Value("x", (1, n)), Value("f", (n,)), Value("s", (2,)), Value("y", (1,))],
        [
            Op("fl", "reshape", ("x",), ("f",), {"shape": (n,)}),
            Op("s", "affine", ("f",), ("s",), {"weight": sel, "bias": np.zeros(2)}),
            Op("a", "affine", ("s",), ("y",), {"weight": np.ones((1, 2)), "bias": np.zeros(1)}),
        ],
        ["x"],
        ["y"],
    )
    lo, hi = np.zeros(n), np.ones(n)
    lo[0] = -np.inf
    for m in ("interval", "crown"):
        b = compute_bounds(g, lo, hi, m)
        assert np.array_equal(b.lo["f"], lo) and np.array_equal(b.hi["f"], hi), m
        assert np.array_equal(b.lo["s"], [0.0, -np.inf]) and np.array_equal(b.hi["s"], [1, 1])
        # (a row that sums an infinite bound is unbounded both ways, by design)
        assert b.lo["y"][0] == -np.inf and not np.isnan(b.hi["y"][0]), m
    bc = BatchCrown(g)
    low, _, _ = bc.bound(np.zeros((1, n)), np.ones((1, n)), np.ones((1, 1)))
    assert 0.0 - 1e-12 <= low[0, 0] <= 0.0


def test_copies_of_unbatched_and_batched_inputs_broadcast():
    """An exact map (a concat) of a single box's bounds and a batch's: the batch's shape, as
    the product form gave it; an AffineMap built by hand finds its copies itself."""
    from netopt.ir.ops.affine import AffineMap, affine_interval

    op = Op("c", "concat", ("a", "b"), ("y",), {"axis": 0})
    amap = AffineMap.of(op, [(3,), (2,)])
    rng = np.random.default_rng(1)
    a_lo, b_lo = rng.normal(size=3), rng.normal(size=(4, 2))
    lo, hi = affine_interval(amap, [a_lo, b_lo], [a_lo + 1, b_lo + 1])
    assert lo.shape == (4, 5)
    assert np.array_equal(lo, np.concatenate([np.broadcast_to(a_lo, (4, 3)), b_lo], axis=1))
    assert np.array_equal(hi, lo + 1)
    by_hand = AffineMap(amap.mats, amap.absm, amap.bias, amap.n, amap.exact, amap.rounded)
    assert np.array_equal(affine_interval(by_hand, [a_lo, b_lo], [a_lo + 1, b_lo + 1])[0], lo)


def test_a_sparse_dense_layer_is_kept_sparse():
    """A dense layer's weight is its matrix as given; a large one with few non-zeros (a pruned
    layer) goes to CSR, whose products skip the zeros; a small one stays dense."""
    from netopt.ir.ops.affine import AffineMap

    rng = np.random.default_rng(0)
    w = np.where(rng.uniform(size=(300, 300)) < 0.05, rng.normal(size=(300, 300)), 0.0)
    op = Op("p", "affine", ("x",), ("y",), {"weight": w, "bias": np.zeros(300)})
    for above in (None, 0.2):
        (m,) = AffineMap.of(op, [(300,)], dense_above=above).mats
        assert not isinstance(m, np.ndarray) and np.array_equal(m.toarray(), w)
    full = Op("d", "affine", ("x",), ("y",), {"weight": w + 1.0, "bias": np.zeros(300)})
    assert isinstance(AffineMap.of(full, [(300,)]).mats[0], np.ndarray)
    small = Op("s", "affine", ("x",), ("y",), {"weight": w[:10, :10], "bias": np.zeros(10)})
    assert isinstance(AffineMap.of(small, [(10,)]).mats[0], np.ndarray)


def test_nonfinite_weights_and_nan_boxes_are_refused():
    w = np.array([[1.0, np.nan]])
    g = Graph(
        [Value("x", (2,)), Value("y", (1,))],
        [Op("f", "affine", ("x",), ("y",), {"weight": w, "bias": np.zeros(1)})],
        ["x"],
        ["y"],
    )
    with pytest.raises(InputError, match="finite"):
        compute_bounds(g, -np.ones(2), np.ones(2), "interval")
    g = Graph(
        [Value("x", (2,)), Value("y", (1,))],
        [Op("f", "affine", ("x",), ("y",), {"weight": np.ones((1, 2)), "bias": np.zeros(1)})],
        ["x"],
        ["y"],
    )
    with pytest.raises(InputError, match="NaN"):
        compute_bounds(g, np.array([0.0, np.nan]), np.ones(2), "crown")


# ------------------------------------------------------------------ netopt check
def _sat_property(scale: float):
    """A property ``y <= d`` over ``[-1, 1]^4`` that holds exactly at one corner only.

    ``y = relu(w . x + b)`` with ``b = 1.5 sum |w|`` (so the ReLU is active everywhere) and a
    weight 1/3 far below the others, whose term the old bounds lost to rounding; ``d`` is the
    exact minimum (at the corner ``-sign(w)``) rounded up to a float. For seed 25 the old CROWN
    lower bound exceeded ``d`` at both scales tested (``netopt check`` said "unsat"), while the
    float64 forward pass at the corner is within ``d``, at every batch size tried (so BaB
    finds the witness).
    """
    rng = np.random.default_rng(25)
    w = scale * rng.normal(size=(1, 4))
    w[0, 3] = 1.0 / 3
    b = np.array([1.5 * float(np.abs(w).sum())])
    net = _model(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["z"], transB=1),
            helper.make_node("Relu", ["z"], ["r"]),
            helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1),
        ],
        {"w": w, "b": b, "w2": np.ones((1, 1)), "b2": np.zeros(1)},
        [1, 4],
        [1, 1],
    )
    corner = np.where(w[0] > 0, -1.0, 1.0)
    exact = sum(Fraction(float(a)) * Fraction(c) for a, c in zip(w[0], corner, strict=True))
    exact += Fraction(float(b[0]))
    d = float(exact)
    if Fraction(d) < exact:
        d = float(np.nextafter(d, np.inf))
    return net, corner, exact, d


@pytest.mark.parametrize("scale", [1e20, 1e37])
def test_check_never_refutes_a_satisfiable_property(tmp_path, scale):
    net, corner, exact, d = _sat_property(scale)
    # y <= d holds exactly at the corner, and in the float64 forward pass too
    assert _exact_values(net.graph, corner)[net.graph.outputs[0]][0] == exact <= Fraction(d)
    for k in (1, 3, 6):
        assert net.forward(np.tile(corner, (k, 1))).reshape(-1)[0] <= d
    b = compute_bounds(net.graph, -np.ones(4), np.ones(4), "crown")
    lo_c, _ = linear_bounds(net.graph, b, net.graph.outputs[0], np.ones((1, 1)))
    assert Fraction(float(lo_c[0])) <= exact
    prop = tmp_path / "p.vnnlib"
    prop.write_text(
        "".join(f"(declare-const X_{i} Real)\n" for i in range(4))
        + "(declare-const Y_0 Real)\n"
        + "".join(f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))\n" for i in range(4))
        + f"(assert (<= Y_0 {d!r}))\n"
    )
    # no sampling: the verdict rests on the bounds (CROWN, then BaB, then the MILP)
    r = netopt.check(net, prop, time_limit=20, n_samples=0)
    assert r.verdict != "unsat", r.details
    # the input-splitting search alone, on the same float64 bounds: no "unsat" either
    br = branch_and_bound(
        net, -np.ones(4), np.ones(4), np.ones((1, 1)), np.array([d]), mode="input", time_limit=10
    )
    assert br is not None and br.verdict != "unsat"
