"""Interval and CROWN bounds of the smooth ops hold for the exact functions, even on wide boxes.

The old softmax rule ``e^l / (e^l + sum e^u - e^u)`` cancelled to a lower bound of 1 once the
other logits lay about 37 below, and underflowed to [0, 0] past a spread of about 745, which made
``netopt check`` answer "unsat" for satisfiable properties. Every bound here is checked against
an independent high-precision reference (mpmath at 128 bits), at sampled points and at the
corners of the box, where the extremes are.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import mpmath
import numpy as np
import pytest
from helpers.nets import make_model
from onnx import TensorProto, helper, numpy_helper

import netopt
from netopt.bounds import compute_bounds, interval_op, linear_bounds
from netopt.cli import main
from netopt.ir import Graph, Op, Value
from netopt.ir.interpret import interpret
from netopt.ir.ops import OPS

SMOOTH = sorted(name for name, spec in OPS.items() if spec.kind == "smooth")
SPREADS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
PREC = 128  # bits of the mpmath reference


# ------------------------------------------------------------------ exact references
@mpmath.workprec(PREC)
def _ref_sigmoid(x: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> list:
    return [1 / (1 + mpmath.exp(-mpmath.mpf(float(t)))) for t in x]


@mpmath.workprec(PREC)
def _ref_tanh(x: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> list:
    return [mpmath.tanh(mpmath.mpf(float(t))) for t in x]


def _groups(shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Flat indices of the softmax groups, one group per row."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    rest = [t for t in range(len(shape)) if t not in axes]
    k = int(np.prod([shape[t] for t in axes], dtype=np.int64))
    return idx.transpose((*rest, *axes)).reshape(-1, k)


@mpmath.workprec(PREC)
def _ref_softmax_terms(x: np.ndarray, shape, axes) -> list:
    """For each entry ``i``: the exact ``sum_{j != i} exp(x_j - x_i)`` of its group."""
    out = [None] * x.size
    for grp in _groups(shape, axes):
        xs = [mpmath.mpf(float(x[j])) for j in grp]
        for a, i in enumerate(grp):
            out[i] = mpmath.fsum(mpmath.exp(xs[b] - xs[a]) for b in range(len(grp)) if b != a)
    return out


def _ref_softmax(x, shape, axes) -> list:
    # 1 / (1 + sum_{j != i} e^{x_j - x_i}): no cancellation, no underflow in mpmath
    return [1 / (1 + s) for s in _ref_softmax_terms(x, shape, axes)]


def _ref_log_softmax(x, shape, axes) -> list:
    return [-mpmath.log1p(s) for s in _ref_softmax_terms(x, shape, axes)]


REFERENCES: dict[str, Callable[[np.ndarray, tuple, tuple], list]] = {
    "sigmoid": _ref_sigmoid,
    "tanh": _ref_tanh,
    "softmax": _ref_softmax,
    "log_softmax": _ref_log_softmax,
}
#: (input shape, attrs) per op: group sizes 1 (one axis of length 1, or no axis at all),
#: 2, 5, 24, and groups over several axes
CONFIGS: dict[str, list[tuple[tuple[int, ...], dict]]] = {
    "sigmoid": [((9,), {})],
    "tanh": [((9,), {})],
    "softmax": [
        ((1,), {"axes": (0,)}),
        ((3,), {"axes": ()}),
        ((2,), {"axes": (0,)}),
        ((3, 5), {"axes": (1,)}),
        ((2, 3, 4), {"axes": (0, 2)}),
    ],
}
CONFIGS["log_softmax"] = CONFIGS["softmax"]
RANGES = {"sigmoid": (0, 1), "tanh": (-1, 1), "softmax": (0, 1), "log_softmax": (-np.inf, 0)}


def _graph(op: str, shape: tuple[int, ...], attrs: dict) -> Graph:
    return Graph(
        [Value("x", shape), Value("y", shape)], [Op("f", op, ("x",), ("y",), attrs)], ["x"], ["y"]
    )


def _bounds(op: str, shape, attrs, lo: np.ndarray, hi: np.ndarray):
    g = _graph(op, shape, attrs)
    return interval_op(g, g.ops[0], {"x": lo}, {"x": hi})


def _points(lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, n: int = 6) -> np.ndarray:
    """Interior points, random corners, and the corners that realize each entry's extremes."""
    size = lo.size
    t = rng.random((n, size))
    inner = np.clip(lo * (1 - t) + hi * t, lo, hi)  # no overflow of hi - lo on huge boxes
    pts = [inner, np.where(rng.random((n, size)) < 0.5, lo, hi)]
    pts += [lo[None], hi[None], np.clip(lo / 2 + hi / 2, lo, hi)[None]]
    for i in range(min(size, 6)):  # one entry low, the others high (a softmax lower bound) ...
        e = np.arange(size) == i
        pts += [np.where(e, lo, hi)[None], np.where(e, hi, lo)[None]]  # ... and the reverse
    return np.concatenate(pts)


def _assert_contains(name: str, lo, hi, ref: Sequence, where: str) -> None:
    assert not np.any(np.isnan(lo)) and not np.any(np.isnan(hi)), where
    assert np.all(lo <= hi), where
    with mpmath.workprec(PREC):
        for i, r in enumerate(ref):
            assert mpmath.mpf(float(lo[i])) <= r <= mpmath.mpf(float(hi[i])), (
                f"{name} {where}: exact value {mpmath.nstr(r, 20)} of entry {i} is outside "
                f"[{lo[i]!r}, {hi[i]!r}]"
            )


def test_every_smooth_op_has_a_reference():
    """A new smooth op needs an interval rule here and a reference in this file."""
    assert SMOOTH and set(SMOOTH) <= set(REFERENCES) and set(SMOOTH) <= set(CONFIGS)


@pytest.mark.parametrize("op", SMOOTH)
@pytest.mark.parametrize("spread", SPREADS)
def test_interval_contains_the_exact_values(op, spread):
    rng = np.random.default_rng(int(spread) + len(op))
    ref, rg = REFERENCES[op], RANGES[op]
    for shape, attrs in CONFIGS[op]:
        axes = tuple(attrs.get("axes", ()))
        for _ in range(2):
            centre = rng.uniform(-spread, spread, int(np.prod(shape)))
            width = rng.uniform(0, spread, centre.size) * (rng.random(centre.size) < 0.8)
            lo, hi = centre - width, centre + width
            blo, bhi = _bounds(op, shape, attrs, lo, hi)
            assert np.all(blo >= rg[0]) and np.all(bhi <= rg[1])
            if op in ("softmax", "log_softmax"):
                # finite inputs, finite bounds (the old rule gave log-softmax [-inf, -inf])
                assert np.all(np.isfinite(blo)) and np.all(np.isfinite(bhi))
            with mpmath.workprec(PREC):
                for x in _points(lo, hi, rng):
                    _assert_contains(op, blo, bhi, ref(x, shape, axes), f"{shape} {attrs} at {x}")
                # the rule is the exact extreme: entry i's lower bound is attained where x_i is
                # low and the others high, so it may only differ by the outward rounding
                for i in range(min(lo.size, 6)):
                    e = np.arange(lo.size) == i
                    r_lo = ref(np.where(e, lo, hi), shape, axes)[i]
                    r_hi = ref(np.where(e, hi, lo), shape, axes)[i]
                    tol_lo = 1e-9 * abs(r_lo) + 1e-300
                    tol_hi = 1e-9 * abs(r_hi) + 1e-300
                    assert blo[i] >= r_lo - tol_lo and bhi[i] <= r_hi + tol_hi, (op, shape, i)


def test_extreme_scalars():
    """Results that round to the ends of the range in float64 are inside it exactly."""
    x = np.array([40.0, -800.0, -740.0, 0.0, 1e-300, 20.0])
    lo, hi = _bounds("sigmoid", (6,), {}, x, x)
    assert hi[1] > 0 and hi[2] > 0 and lo[0] < 1  # sigmoid(-800) > 0, sigmoid(40) < 1
    lo, hi = _bounds("tanh", (6,), {}, x, x)
    assert lo[5] < 1 and hi[4] > 0 and lo[4] < 1e-300
    # softmax over a spread of 2e5: the far logit's bounds are tiny, positive, not 0 above
    lo, hi = _bounds("softmax", (2,), {"axes": (0,)}, np.array([0.0, -1.0]), np.array([2e5, 1.0]))
    assert lo[0] <= 1 / (1 + np.e) <= hi[0] and lo[1] == 0 and hi[1] >= 1 / (1 + np.exp(-1)) - 1e-12
    lo, hi = _bounds(
        "log_softmax", (2,), {"axes": (0,)}, np.array([0.0, -1.0]), np.array([2e5, 1.0])
    )
    assert np.all(np.isfinite(lo)) and lo[1] <= -2e5 + 1 and hi[1] >= -np.log1p(np.exp(-1)) - 1e-12


@pytest.mark.parametrize("op", SMOOTH)
def test_infinite_input_bounds_are_never_nan(op):
    rng = np.random.default_rng(3)
    rg = RANGES[op]
    shape, attrs = CONFIGS[op][-1]
    n = int(np.prod(shape))
    vals = np.array([-np.inf, -1e308, -50.0, 0.0, 3.0, 1e308, np.inf])
    for _ in range(30):
        a, b = rng.choice(vals, n), rng.choice(vals, n)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        blo, bhi = _bounds(op, shape, attrs, lo, hi)
        assert not np.any(np.isnan(blo)) and not np.any(np.isnan(bhi))
        assert np.all(blo <= bhi) and np.all(blo >= rg[0]) and np.all(bhi <= rg[1])
        # finite points of the box stay inside (a box with an infinite point has none)
        fl = np.where(lo == -np.inf, np.minimum(hi, -1e3), lo)
        fh = np.where(hi == np.inf, np.maximum(fl, 1e3), hi)
        if not (np.all(np.isfinite(fl)) and np.all(np.isfinite(fh))):
            continue
        for x in _points(fl, fh, rng, n=1):
            r = REFERENCES[op](x, shape, tuple(attrs.get("axes", ())))
            _assert_contains(op, blo, bhi, r, f"box [{lo}, {hi}] at {x}")


def test_large_softmax_group_is_linear_time():
    """A group of 20 000 logits: no k x k matrix (that would take 3.2 GB)."""
    rng = np.random.default_rng(4)
    k = 20_000
    lo = rng.uniform(-50, 50, k)
    hi = lo + rng.uniform(0, 5, k)
    blo, bhi = _bounds("softmax", (k,), {"axes": (0,)}, lo, hi)
    llo, lhi = _bounds("log_softmax", (k,), {"axes": (0,)}, lo, hi)
    assert np.all(blo <= bhi) and np.all(llo <= lhi)
    # spot checks against the exact extremes, computed in mpmath
    with mpmath.workprec(80):
        eu = [mpmath.exp(mpmath.mpf(float(t))) for t in hi]
        su = mpmath.fsum(eu)
        for i in (0, int(np.argmax(hi)), int(np.argmin(lo))):
            exact = mpmath.exp(mpmath.mpf(float(lo[i])))
            exact = exact / (exact + su - eu[i])
            assert blo[i] <= exact and blo[i] >= float(exact) * (1 - 1e-9)
            assert llo[i] <= mpmath.log(exact) and llo[i] >= float(mpmath.log(exact)) - 1e-9


# ------------------------------------------------------------------ CROWN on networks
def _smooth_net(op: str, scale: float, rng: np.random.Generator):
    """x (4) -> Gemm (large weights) -> smooth op -> Gemm -> y (3), a float64 ONNX model."""
    w1 = scale * rng.normal(size=(6, 4))
    b1 = scale * rng.normal(size=6)
    w2 = rng.normal(size=(3, 6))
    b2 = rng.normal(size=3)
    onnx_op = {
        "sigmoid": "Sigmoid",
        "tanh": "Tanh",
        "softmax": "Softmax",
        "log_softmax": "LogSoftmax",
    }
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1)]
    opset = 17
    if op in ("softmax", "log_softmax"):
        # opset 11: normalized jointly over the trailing axes of (N, 2, 3): a two-axis group
        opset = 11
        nodes += [
            helper.make_node("Reshape", ["h", "s3"], ["h3"]),
            helper.make_node(onnx_op[op], ["h3"], ["a3"], axis=1),
            helper.make_node("Reshape", ["a3", "s2"], ["a"]),
        ]
    else:
        nodes.append(helper.make_node(onnx_op[op], ["h"], ["a"]))
    nodes.append(helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], transB=1))
    inits = [
        numpy_helper.from_array(v, k) for k, v in {"w1": w1, "b1": b1, "w2": w2, "b2": b2}.items()
    ]
    inits += [
        numpy_helper.from_array(np.array([-1, 2, 3], dtype=np.int64), "s3"),
        numpy_helper.from_array(np.array([-1, 6], dtype=np.int64), "s2"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 3])],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return netopt.load(m)


@pytest.mark.parametrize("op", SMOOTH)
def test_crown_and_interval_contain_forward_and_onnxruntime(op):
    rng = np.random.default_rng(5)
    for scale in (1.0, 100.0, 1e4):
        net = _smooth_net(op, scale, rng)
        g = net.graph
        assert any(o.op == op for o in g.ops)
        if op in ("softmax", "log_softmax"):
            assert len(next(o for o in g.ops if o.op == op).attrs["axes"]) == 2
        for _ in range(2):
            lo = rng.uniform(-1, 1, 4)
            hi = lo + rng.uniform(0, 2, 4)
            x = _points(lo, hi, rng, n=150)
            env = interpret(g, {g.inputs[0]: x}, keep=True)
            y_ort = net.run_onnxruntime(x).reshape(len(x), -1)
            y_f64 = net.forward(x).reshape(len(x), -1)
            for method in ("interval", "crown"):
                b = compute_bounds(g, lo, hi, method)
                for v, a in env.items():
                    a = a.reshape(len(x), -1)
                    tol = 1e-9 * np.maximum(1, np.abs(a))
                    assert np.all(a >= b.lo[v] - tol) and np.all(a <= b.hi[v] + tol), (method, v)
                out_lo, out_hi = b[g.outputs[0]]
                for y in (y_f64, y_ort):
                    tol = 1e-9 * np.maximum(1, np.abs(y))
                    assert np.all(y >= out_lo - tol) and np.all(y <= out_hi + tol), (method, scale)


# ------------------------------------------------------------------ netopt check
PROP = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 -1))
(assert (<= X_0 1))
(assert (>= X_1 -1))
(assert (<= X_1 1))
(assert {out})
"""


def _write_repro(tmp_path, s: float, op: str = "Softmax", out: str = "(<= Y_0 0.5)"):
    """z = (s x0 + s, x1) on [-1, 1]^2, y = op(z); at x = (-1, 1), softmax(z)_0 = 0.269."""
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["z"], transB=1),
        helper.make_node(op, ["z"], ["y"], axis=-1),
    ]
    inits = {"w": np.array([[s, 0.0], [0.0, 1.0]]), "b": np.array([s, 0.0])}
    model = tmp_path / f"m_{op}_{s:g}.onnx"
    model.write_bytes(make_model(nodes, [1, 2], [1, 2], inits).SerializeToString())
    prop = tmp_path / "p.vnnlib"
    prop.write_text(PROP.format(out=out))
    return model, prop


@pytest.mark.parametrize("s", [1.0, 100.0, 1e5])
def test_reproducer_answers_sat(tmp_path, capsys, s):
    """The fuzzer's case: y0 <= 0.5 holds at x = (-1, 1), so "unsat" is wrong.

    CROWN's bound on y0 must contain 0.269; ``netopt check`` answers "sat" with a counterexample
    onnxruntime confirms (the region x0 <= -1 + x1/s is a thin sliver along a face of the box: the
    box's vertices find it where uniform samples do not).
    """
    model, prop = _write_repro(tmp_path, s)
    net = netopt.load(model)
    b = compute_bounds(net.graph, -np.ones(2), np.ones(2), "crown")
    y = net.forward(np.array([-1.0, 1.0])).reshape(-1)
    lo, hi = b[net.graph.outputs[0]]
    assert np.all(lo <= y) and np.all(y <= hi) and lo[0] <= 0.27 and hi[1] >= 0.73
    r = netopt.check(net, prop, time_limit=30)
    assert r.verdict == "sat" and r.confirmed
    rc = main(["check", str(model), str(prop), "--time-limit", "30"])
    out = capsys.readouterr()
    assert rc == 10 and out.out.startswith("sat") and "confirmed: True" in out.out


def test_open_smooth_property_is_unknown_not_an_error(tmp_path, capsys):
    """Sampling misses it, CROWN cannot decide it, the MILP has no softmax rule: "unknown"
    without the falsifier (which may find it).

    0.4 <= y0 <= 0.5 holds only in a band 1e4 (x0 + 1) - x1 in [log(2/3), 0], about 4e-5 wide
    in x0, that no vertex of the box touches and the seeded samples miss.
    """
    model, _ = _write_repro(tmp_path, 1e4)
    prop = tmp_path / "band.vnnlib"
    prop.write_text(PROP.format(out="(<= Y_0 0.5))\n(assert (>= Y_0 0.4)"))
    net = netopt.load(model)
    r = netopt.check(net, prop, time_limit=30, n_samples=16, attack_time=0)
    assert r.verdict == "unknown"
    assert any("no exact model" in d.get("evidence", "") for d in r.details)
    # with the falsifier, whose short burst of many starts may reach the band (within its
    # fraction of a second): a counterexample onnxruntime confirms, or the same "unknown"
    rc = main(["check", str(model), str(prop), "--time-limit", "30"])
    out = capsys.readouterr()
    if rc == 10:
        assert out.out.startswith("sat") and "confirmed: True" in out.out, out
    else:
        assert rc == 0 and out.out.startswith("unknown") and "no exact model" in out.out, out


@pytest.mark.parametrize(
    "s,op,out",
    [
        (100.0, "Softmax", "(<= Y_0 0.999999)"),  # old rule: y0 >= 1, "unsat by crown"
        (1e3, "Softmax", "(>= Y_1 1e-12)"),  # old rule: y1 <= 0
        (1e3, "LogSoftmax", "(>= Y_1 -30)"),  # old rule: log y1 in [-inf, -inf]
    ],
)
def test_wide_softmax_properties_are_sat(tmp_path, capsys, s, op, out):
    """Properties the old rule refuted, with regions wide enough for sampling to find a witness.

    ``check`` samples before it bounds, so the verdict alone would not show the bug: the CROWN
    stage itself (``linear_bounds`` of the constraint rows, as ``check`` runs it) must leave the
    property open.
    """
    model, prop = _write_repro(tmp_path, s, op, out)
    net = netopt.load(model)
    dj = netopt.load_vnnlib(prop, n_inputs=2, n_outputs=2).disjuncts[0]
    b = compute_bounds(net.graph, dj.lo, dj.hi, "crown")
    lo_c, _ = linear_bounds(net.graph, b, net.graph.outputs[0], dj.C)
    assert np.all(lo_c <= dj.d)
    r = netopt.check(net, prop, time_limit=30)
    assert r.verdict == "sat" and r.confirmed
    assert main(["check", str(model), str(prop)]) == 10
    text = capsys.readouterr().out
    assert text.startswith("sat") and "confirmed: True" in text


@pytest.mark.parametrize("s", [1.0, 100.0, 1e5])
@pytest.mark.parametrize(
    "op,out",
    [
        ("Softmax", "(>= Y_0 1.01)"),  # beyond the range
        ("Softmax", "(<= Y_0 0.25)"),  # y0 >= 1 / (1 + e) = 0.2689 on the whole box
        ("Softmax", "(>= Y_1 0.75)"),  # y1 <= e / (1 + e) = 0.7311
        ("LogSoftmax", "(>= Y_1 -0.3)"),  # log y1 <= -0.3133
    ],
)
def test_unsat_properties_stay_unsat(tmp_path, capsys, s, op, out):
    model, prop = _write_repro(tmp_path, s, op, out)
    r = netopt.check(netopt.load(model), prop, time_limit=30)
    assert r.verdict == "unsat" and r.details[0]["method"] == "crown"
    assert main(["check", str(model), str(prop)]) == 20
    assert capsys.readouterr().out.startswith("unsat")


def test_outward_rounding_is_small():
    """The sound rule stays tight: the exact extremes are matched to about 1e-12."""
    for op, (shape, attrs) in itertools.product(SMOOTH, [((4,), {"axes": (0,)})]):
        lo = np.array([-3.0, 0.5, 2.0, -1.0])
        hi = lo + 0.25
        blo, bhi = _bounds(op, shape, attrs if op in ("softmax", "log_softmax") else {}, lo, hi)
        f = OPS[op].forward
        a = attrs if op in ("softmax", "log_softmax") else {}
        if op in ("sigmoid", "tanh"):
            np.testing.assert_allclose(blo, f([lo[None]], a)[0], rtol=1e-11)
            np.testing.assert_allclose(bhi, f([hi[None]], a)[0], rtol=1e-11)
        else:
            for i in range(4):
                e = np.arange(4) == i
                np.testing.assert_allclose(
                    blo[i], f([np.where(e, lo, hi)[None]], a)[0, i], rtol=1e-11
                )
                np.testing.assert_allclose(
                    bhi[i], f([np.where(e, hi, lo)[None]], a)[0, i], rtol=1e-11
                )
