"""The torch side of netopt: :class:`netopt.ir.torch_module.GraphModule` and :func:`netopt.from_torch`.

* every IR op's torch rule against the float64 reference forward (single-op graphs);
* the shared real networks: torch float64 against the interpreter, torch float32
  against onnxruntime (omlt/maxpool_2d.onnx, which onnxruntime rejects, against an
  independent chain of ``F.max_pool2d``);
* gradients with respect to the input, checked by finite differences;
* ``from_torch`` with both exporters on small modules, against the module itself.
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import netopt
from netopt.errors import InputError, OnnxImportError, SolverUnavailableError, UnsupportedOpError
from netopt.ir import Graph, Op, Value, freeze_attrs
from netopt.ir.interpret import interpret
from netopt.ir.ops import OPS

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from helpers.nets import NETS  # noqa: E402
from torch import nn  # noqa: E402

from netopt.ir.torch_module import TORCH_RULES, GraphModule, missing_rules  # noqa: E402

NET_FILES = sorted(NETS.glob("*/*.onnx")) if NETS.is_dir() else []
MAXPOOL_2D = "omlt/maxpool_2d.onnx"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Run torch single-threaded here: every tensor is tiny, and on a busy 2-core machine
    OpenMP's spinning threads made a gradcheck 50x slower than one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / max(1, max |ref|)."""
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    return float(np.abs(a - ref).max() / max(1.0, float(np.abs(ref).max())))


def run64(module: GraphModule, *xs: np.ndarray) -> Any:
    with torch.no_grad():
        y = module(*(torch.tensor(x, dtype=torch.float64) for x in xs))
    return tuple(t.numpy() for t in y) if isinstance(y, tuple) else y.numpy()


# --------------------------------------------------------------- single-op graphs
def one_op_graph(op: str, in_shapes: list[tuple[int, ...]], attrs: dict[str, Any]) -> Graph:
    """A graph of one IR op over fresh inputs ``x0, x1, ...``."""
    ins = [f"x{k}" for k in range(len(in_shapes))]
    out = tuple(OPS[op].infer(in_shapes, freeze_attrs(attrs)))
    values = [Value(i, tuple(s)) for i, s in zip(ins, in_shapes, strict=True)]
    return Graph([*values, Value("y", out)], [Op("op", op, ins, ("y",), attrs)], ins, ["y"])


_R = np.random.default_rng(7)


def _w(*shape: int) -> np.ndarray:
    return _R.normal(size=shape)


def _pool(kernel, strides, pads, ceil=False, dil=(1, 1), **extra):
    return {
        "kernel": kernel,
        "strides": strides,
        "pads": pads,
        "dilations": dil,
        "ceil_mode": ceil,
        **extra,
    }


def _conv(w, strides=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), group=1):
    return {
        "weight": w,
        "bias": _w(w.shape[0]),
        "strides": strides,
        "pads": pads,
        "dilations": dil,
        "group": group,
    }


# (id, IR op, input sample shapes, attrs): the corner cases of each op's semantics
OP_CASES: list[tuple[str, str, list[tuple[int, ...]], dict[str, Any]]] = [
    ("affine", "affine", [(5,)], {"weight": _w(3, 5), "bias": _w(3)}),
    ("affine-3d", "affine", [(2, 4, 5)], {"weight": _w(3, 5), "bias": _w(3)}),
    ("scale-scalar", "scale", [(2, 3)], {"mul": np.array(-1.5), "add": np.array(0.25)}),
    ("scale-channel", "scale", [(3, 4, 4)], {"mul": _w(3, 1, 1), "add": _w(3, 1, 1)}),
    ("scale-widen", "scale", [(1, 4)], {"mul": _w(3, 4), "add": _w(1)}),
    ("conv", "conv2d", [(2, 6, 7)], _conv(_w(3, 2, 3, 2))),
    (
        "conv-asym-pads-stride",
        "conv2d",
        [(2, 6, 7)],
        _conv(_w(4, 2, 3, 3), strides=(2, 3), pads=(1, 0, 2, 1)),
    ),
    (
        "conv-groups-dilations",
        "conv2d",
        [(4, 8, 8)],
        _conv(_w(6, 2, 2, 3), pads=(2, 1, 0, 3), dil=(2, 3), group=2),
    ),
    ("conv-depthwise", "conv2d", [(3, 5, 5)], _conv(_w(3, 1, 3, 3), pads=(1, 1, 1, 1), group=3)),
    (
        "avgpool",
        "avgpool2d",
        [(2, 6, 7)],
        _pool((2, 3), (2, 2), (0, 0, 0, 0), count_include_pad=False),
    ),
    (
        "avgpool-pads-exclude",
        "avgpool2d",
        [(2, 6, 7)],
        _pool((3, 3), (2, 2), (1, 1, 1, 0), count_include_pad=False),
    ),
    (
        "avgpool-pads-include",
        "avgpool2d",
        [(2, 6, 7)],
        _pool((3, 3), (2, 2), (1, 2, 0, 1), count_include_pad=True),
    ),
    (
        "avgpool-ceil-include",
        "avgpool2d",
        [(2, 6, 7)],
        _pool((3, 2), (2, 2), (1, 0, 1, 1), ceil=True, count_include_pad=True),
    ),
    (
        "avgpool-ceil-exclude",
        "avgpool2d",
        [(1, 7, 6)],
        _pool((3, 3), (3, 2), (0, 1, 0, 0), ceil=True, count_include_pad=False),
    ),
    (
        "avgpool-dilations",
        "avgpool2d",
        [(2, 7, 8)],
        _pool((2, 3), (1, 2), (1, 1, 1, 1), dil=(2, 2), ceil=True, count_include_pad=True),
    ),
    ("reshape", "reshape", [(2, 3, 4)], {"shape": (4, 6)}),
    ("reshape-flat", "reshape", [(2, 3, 4)], {"shape": (24,)}),
    ("transpose", "transpose", [(2, 3, 4)], {"perm": (2, 0, 1)}),
    ("select", "select", [(2, 3)], {"index": np.array([[5, 0], [2, 2], [1, 4]])}),
    ("identity", "identity", [(3, 2)], {}),
    ("pad", "pad", [(2, 3, 4)], {"pads": (0, 1, 2, 1, 0, 3), "value": 0.5}),
    ("add", "add", [(2, 3), (2, 3)], {}),
    ("concat", "concat", [(2, 3, 4), (2, 1, 4), (2, 2, 4)], {"axis": 1}),
    ("concat-last", "concat", [(3, 2), (3, 5)], {"axis": 1}),
    ("relu", "relu", [(3, 4)], {}),
    ("leaky_relu", "leaky_relu", [(3, 4)], {"alpha": 0.1}),
    ("leaky_relu-steep", "leaky_relu", [(3, 4)], {"alpha": 2.5}),
    ("maxpool", "maxpool2d", [(2, 6, 7)], _pool((2, 2), (2, 2), (0, 0, 0, 0))),
    ("maxpool-pads", "maxpool2d", [(2, 6, 7)], _pool((3, 3), (2, 1), (2, 0, 1, 2))),
    ("maxpool-ceil", "maxpool2d", [(2, 7, 6)], _pool((3, 2), (2, 3), (1, 1, 0, 0), ceil=True)),
    (
        "maxpool-ceil-dil",
        "maxpool2d",
        [(1, 8, 9)],
        _pool((2, 2), (3, 2), (0, 1, 1, 0), dil=(2, 3), ceil=True),
    ),
    # the end pads reach a whole window past the input: ceil_mode drops that window, which
    # a floor-mode pool over the padded image would keep
    (
        "maxpool-ceil-big-end-pad",
        "maxpool2d",
        [(1, 4, 5)],
        _pool((2, 2), (2, 2), (0, 0, 2, 2), ceil=True),
    ),
    (
        "avgpool-ceil-big-end-pad",
        "avgpool2d",
        [(1, 4, 5)],
        _pool((2, 2), (2, 2), (0, 0, 2, 2), ceil=True, count_include_pad=True),
    ),
    ("sigmoid", "sigmoid", [(3, 4)], {}),
    ("tanh", "tanh", [(3, 4)], {}),
    ("softmax", "softmax", [(5,)], {"axes": (0,)}),
    ("softmax-joint", "softmax", [(2, 3, 4)], {"axes": (0, 2)}),
    ("softmax-empty", "softmax", [(2, 3)], {"axes": ()}),
    ("log_softmax", "log_softmax", [(3, 4)], {"axes": (1,)}),
    ("log_softmax-all", "log_softmax", [(2, 3, 4)], {"axes": (2, 0, 1)}),
    ("log_softmax-empty", "log_softmax", [(2, 3)], {"axes": ()}),
]


def _sample_inputs(g: Graph, n: int, seed: int = 0, scale: float = 2.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-scale, scale, (n, *g.value(i).shape)) for i in g.inputs]


@pytest.mark.parametrize("op,shapes,attrs", [c[1:] for c in OP_CASES], ids=[c[0] for c in OP_CASES])
def test_op_rule_matches_reference(op: str, shapes, attrs) -> None:
    g = one_op_graph(op, shapes, attrs)
    xs = _sample_inputs(g, 6)
    ref = interpret(g, dict(zip(g.inputs, xs, strict=True)))["y"]
    m64 = GraphModule(g, dtype=torch.float64, device="cpu")
    assert rel_err(run64(m64, *xs), ref) < 1e-12
    m32 = GraphModule(g, device="cpu")
    with torch.no_grad():
        y32 = m32(*(torch.tensor(x, dtype=torch.float32) for x in xs))
    assert y32.dtype == torch.float32
    assert rel_err(y32.double().numpy(), ref) < 1e-5


def test_op_cases_cover_every_ir_op() -> None:
    assert set(OPS) <= {c[1] for c in OP_CASES}


def test_every_ir_op_has_a_torch_rule() -> None:
    assert missing_rules() == []
    assert set(OPS) == set(TORCH_RULES)


def test_scale_widening_rank_matches_reference() -> None:
    g = one_op_graph("scale", [(4,)], {"mul": _w(3, 4), "add": np.array(0.0)})
    xs = _sample_inputs(g, 5)
    ref = interpret(g, {"x0": xs[0]})["y"]
    assert rel_err(run64(GraphModule(g, torch.float64, "cpu"), *xs), ref) < 1e-12


def test_scale_widening_rank_is_per_sample() -> None:
    # what onnxruntime computes for Mul(x[4], c[3, 4]) on every sample
    mul = _w(3, 4)
    g = one_op_graph("scale", [(4,)], {"mul": mul, "add": np.array(0.5)})
    (x,) = _sample_inputs(g, 5)
    expected = x[:, None, :] * mul[None] + 0.5
    assert rel_err(run64(GraphModule(g, torch.float64, "cpu"), x), expected) < 1e-12


def test_missing_rule_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    g = one_op_graph("relu", [(3,)], {})
    monkeypatch.delitem(TORCH_RULES, "relu")
    with pytest.raises(UnsupportedOpError, match=r"'op' \(relu\)") as info:
        GraphModule(g, device="cpu")
    assert info.value.unsupported == [("op", "relu", "no torch rule")]


def _multi_io_graph() -> Graph:
    """Two inputs, two outputs: ``y0 = relu(concat(a, b))``, ``y1 = a + tanh(b)``."""
    vals = [
        Value("a", (3,)),
        Value("b", (3,)),
        Value("c", (6,)),
        Value("y0", (6,)),
        Value("t", (3,)),
        Value("y1", (3,)),
    ]
    ops = [
        Op("cat", "concat", ("a", "b"), ("c",), {"axis": 0}),
        Op("r", "relu", ("c",), ("y0",)),
        Op("th", "tanh", ("b",), ("t",)),
        Op("sum", "add", ("a", "t"), ("y1",)),
    ]
    return Graph(vals, ops, ["a", "b"], ["y0", "y1"])


def test_several_inputs_and_outputs() -> None:
    g = _multi_io_graph()
    xs = _sample_inputs(g, 4)
    ref = interpret(g, dict(zip(g.inputs, xs, strict=True)))
    ys = run64(GraphModule(g, torch.float64, "cpu"), *xs)
    assert isinstance(ys, tuple) and len(ys) == 2
    for y, name in zip(ys, g.outputs, strict=True):
        assert rel_err(y, ref[name]) < 1e-12
    with pytest.raises(InputError, match="2 input"):
        GraphModule(g, device="cpu")(torch.zeros(4, 3))


def test_weights_are_buffers_and_follow_to() -> None:
    g = one_op_graph("conv2d", [(2, 5, 5)], _conv(_w(3, 2, 3, 3), pads=(1, 1, 1, 1)))
    m = GraphModule(g, device="cpu")
    assert list(m.parameters()) == []
    bufs = dict(m.named_buffers())
    assert bufs and all(not b.requires_grad for b in bufs.values())
    assert all(b.dtype == torch.float32 for b in bufs.values())
    assert m.dtype == torch.float32 and m.device.type == "cpu"
    m = m.to(torch.float64)
    assert m.dtype == torch.float64
    assert all(b.dtype == torch.float64 for b in m.buffers())
    # a float32 input is cast to the module's dtype
    y = m(torch.zeros(2, 2, 5, 5, dtype=torch.float32))
    assert y.dtype == torch.float64 and y.shape == (2, 3, 5, 5)
    with pytest.raises(InputError, match="expected"):
        m(torch.zeros(2, 5, 5))


# ----------------------------------------------------------------- shared networks
def _net_id(p: Path) -> str:
    return f"{p.parent.name}/{p.name}"


_NET_PARAMS = [pytest.param(p, id=_net_id(p)) for p in NET_FILES] or [
    pytest.param(None, marks=pytest.mark.skip(reason=f"no shared networks folder at {NETS}"))
]


def _maxpool_2d_chain(x: torch.Tensor) -> torch.Tensor:
    """omlt/maxpool_2d.onnx written directly with torch (its kernels read as spatial)."""
    y = F.max_pool2d(x, (2, 3), stride=1)
    y = F.relu(y)
    y = F.max_pool2d(y, (1, 2), stride=(1, 2))
    return F.max_pool2d(y, (4, 2), stride=(3, 1), ceil_mode=True)


@pytest.mark.parametrize("path", _NET_PARAMS)
def test_shared_net(path: Path) -> None:
    net = netopt.load(path)
    x = np.random.default_rng(0).uniform(-1.0, 1.0, (100, *net.input_shape))
    ref = net.forward(x)
    m64 = net.torch_module(torch.float64, "cpu")
    assert rel_err(run64(m64, x), ref) < 1e-9
    m32 = net.torch_module(torch.float32, "cpu")
    with torch.no_grad():
        y32 = m32(torch.tensor(x, dtype=torch.float32)).double().numpy()
    if _net_id(path) == MAXPOOL_2D:
        # onnxruntime rejects this file (3-entry kernel_shape): an independent reference
        assert net.output_shape == (3, 2, 1)
        indep = _maxpool_2d_chain(torch.tensor(x)).numpy()
        assert rel_err(ref, indep) < 1e-12
        assert rel_err(run64(m64, x), indep) < 1e-12
        assert rel_err(y32, indep) < 1e-5
    else:
        assert rel_err(y32, net.run_onnxruntime(x)) < 1e-5


# ---------------------------------------------------------------------- gradients
def _grad_graph() -> Graph:
    """A small graph through every differentiable corner: pads, groups, pools, smooth ops."""
    rng = np.random.default_rng(3)
    w = lambda *s: rng.normal(scale=0.5, size=s)  # noqa: E731
    vals, ops = [Value("x", (2, 5, 5))], []

    def add(op: str, inp: tuple[str, ...], attrs: dict[str, Any]) -> str:
        name = f"v{len(ops)}"
        shape = OPS[op].infer([next(v.shape for v in vals if v.id == i) for i in inp], attrs)
        vals.append(Value(name, tuple(shape)))
        ops.append(Op(f"o{len(ops)}", op, inp, (name,), attrs))
        return name

    c = add("conv2d", ("x",), {**_conv(w(4, 1, 3, 3), pads=(1, 0, 1, 2), group=2), "bias": w(4)})
    s = add("scale", (c,), {"mul": w(4, 1, 1), "add": w(4, 1, 1)})
    lr = add("leaky_relu", (s,), {"alpha": 0.2})
    mp = add("maxpool2d", (lr,), _pool((2, 2), (2, 2), (1, 0, 0, 1), ceil=True))
    ap = add(
        "avgpool2d", (c,), _pool((3, 3), (2, 2), (1, 1, 1, 0), ceil=True, count_include_pad=False)
    )
    cat = add("concat", (mp, ap), {"axis": 0})
    th = add("tanh", (cat,), {})
    sm = add("softmax", (th,), {"axes": (1, 2)})
    tr = add("transpose", (sm,), {"perm": (1, 2, 0)})
    pd = add("pad", (tr,), {"pads": (0, 0, 1, 0, 0, 0), "value": 0.3})
    n_pd = int(np.prod(vals[-1].shape))
    se = add("select", (pd,), {"index": np.arange(n_pd)[::-1].copy()})
    fl = add("reshape", (se,), {"shape": (n_pd,)})
    af = add("affine", (fl,), {"weight": w(4, vals[-1].shape[0]), "bias": w(4)})
    sg = add("sigmoid", (af,), {})
    rl = add("relu", (af,), {})
    sum_ = add("add", (sg, rl), {})
    add("log_softmax", (sum_,), {"axes": (0,)})
    return Graph(vals, ops, ["x"], [vals[-1].id])


def test_gradients_finite_differences() -> None:
    g = _grad_graph()
    assert set(g.op_counts()) == set(OPS) - {"identity"}  # identity has no gradient to check
    m = GraphModule(g, torch.float64, "cpu")
    x = torch.tensor(_sample_inputs(g, 1, seed=1, scale=1.0)[0], requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_on_shared_net(dtype: torch.dtype) -> None:
    path = NETS / "conv" / "Convnet_maxpool.onnx"
    if not path.exists():
        pytest.skip(f"{path} not found")
    net = netopt.load(path)
    m = net.torch_module(dtype, "cpu")
    x = torch.rand(3, *net.input_shape, dtype=dtype).requires_grad_()
    y = m(x)
    assert y.shape == (3, *net.output_shape) and y.requires_grad
    y[:, 0].sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# --------------------------------------------------------------------- from_torch
class Residual(nn.Module):
    """``relu(x + f(x))``."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.f(x))


class Normalized(nn.Module):
    """``Linear((x - mean) / std)``: the normalization folds into the affine map."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.1, -0.2, 0.3, 0.0]))
        self.register_buffer("std", torch.tensor([0.5, 2.0, 1.5, 0.25]))
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin((x - self.mean) / self.std)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.Linear(8, 3))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 3),
    )


def _avgpool() -> nn.Module:
    # both pools have ceil_mode windows reaching past the padding (the divisor's corner case)
    return nn.Sequential(
        nn.Conv2d(1, 2, 2),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
    )


def _softmax() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Softmax(dim=-1))


def _adaptive_avgpool() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class SliceSplitReduce(nn.Module):
    """Data movement and reductions: split, strided slices, flip, expand, mean, sum."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.split([1, 1], dim=1)
        s = x.sum(dim=1).reshape(x.shape[0], -1)[:, 1:4:2]
        f = a[:, 0, ::3, 1].flip(-1)
        e = b.expand(-1, 3, -1, -1)[:, :, 0, :2].reshape(x.shape[0], -1)[:, 4:6]
        return self.fc(torch.relu(x.mean(dim=(2, 3)) + s + f - e))


MODULES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "slice-split-reduce": (SliceSplitReduce, (2, 6, 6)),
    "mlp-batchnorm-leakyrelu": (_mlp, (5,)),
    "cnn-conv-bn-relu-maxpool-linear": (_cnn, (2, 9, 9)),
    "residual": (Residual, (6,)),
    "avgpool-ceil-count_include_pad": (_avgpool, (1, 8, 7)),
    "softmax": (_softmax, (4,)),
    "normalize-linear": (Normalized, (4,)),
    "adaptive-avgpool": (_adaptive_avgpool, (2, 6, 6)),
}

# known frontend gaps, each with the exporter that meets it; strict xfails, so that a filled
# gap shows up as an XPASS failure and its entry gets removed
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def _build(name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    module = MODULES[name][0]()
    with torch.no_grad():
        # non-trivial running statistics, so that folding BatchNorm is really tested
        for sub in module.modules():
            if isinstance(sub, nn.BatchNorm1d | nn.BatchNorm2d):
                sub.running_mean.uniform_(-0.5, 0.5)
                sub.running_var.uniform_(0.5, 2.0)
                sub.weight.uniform_(0.5, 1.5)
                sub.bias.uniform_(-0.5, 0.5)
    return module


def _export_params() -> list[Any]:
    params = []
    for k, name in enumerate(MODULES):
        for exporter in ("dynamo", "torchscript"):
            gap = KNOWN_GAPS.get((name, exporter))
            marks = (
                [pytest.mark.xfail(strict=True, raises=UnsupportedOpError, reason=gap)]
                if gap
                else []
            )
            params.append(pytest.param(name, exporter, k, marks=marks, id=f"{name}-{exporter}"))
    return params


@pytest.mark.parametrize("name,exporter,seed", _export_params())
def test_from_torch_matches_module(name: str, exporter: str, seed: int) -> None:
    module = _build(name, seed)
    module.train()  # from_torch exports in eval mode and must restore this
    shape = MODULES[name][1]
    example = torch.rand(3, *shape) * 2 - 1  # a batch: only its first sample is used
    net = netopt.from_torch(module, example, exporter=exporter)
    assert module.training and all(m.training for m in module.modules())
    assert net.input_shape == shape
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, (20, *shape))
    ref64 = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        ref = ref64(torch.tensor(x)).numpy()
    # float32 weights in the export (e.g. folded BatchNorm, a float32 epsilon) bound the match
    assert rel_err(net.forward(x), ref) < 1e-6
    assert rel_err(run64(net.torch_module(torch.float64, "cpu"), x), ref) < 1e-6


def test_from_torch_opset_and_input_names() -> None:
    module = _build("cnn-conv-bn-relu-maxpool-linear", 0)
    net = netopt.from_torch(
        module, torch.zeros(1, 2, 9, 9), exporter="torchscript", opset=13, input_names=["img"]
    )
    assert ("", 13) in net.source.opsets
    assert net.graph.value(net.graph.inputs[0]).onnx_name == "img"
    assert net.output_shape == (3,)


def test_from_torch_is_quiet() -> None:
    module = _build("residual", 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        netopt.from_torch(module, torch.zeros(1, 6), exporter="torchscript")
    assert [str(w.message) for w in caught] == []


class _Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.t())  # (1, 4) -> (4, 1): the shapes do not fit


def test_from_torch_export_failure() -> None:
    with pytest.raises(OnnxImportError, match=r"_Broken.*torchscript.*exporter='dynamo'"):
        netopt.from_torch(_Broken(), torch.zeros(1, 4), exporter="torchscript")


def test_from_torch_bad_arguments() -> None:
    with pytest.raises(ValueError, match="exporter"):
        netopt.from_torch(nn.Linear(2, 2), torch.zeros(1, 2), exporter="jit")


def test_from_torch_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(SolverUnavailableError, match=r"pip install torch==2\.13\.0"):
        netopt.from_torch(object(), None)
