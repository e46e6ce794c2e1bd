"""The real networks in ../shared/nets and a small ONNX builder, shared by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
NETS = ROOT.parent / "shared" / "nets"
REAL_NETS = sorted(NETS.glob("*/*.onnx")) if NETS.is_dir() else []
# onnxruntime itself rejects this file (OMLT's kernel_shape convention)
ORT_REJECTS = {"maxpool_2d.onnx"}


def net_id(p: Path) -> str:
    return f"{p.parent.name}/{p.name}"


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(1, max |b|): relative for large outputs, absolute near 0."""
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def make_model(
    nodes: list[onnx.NodeProto],
    x_shape: list,
    y_shape: list | None,
    inits: dict[str, np.ndarray] | None = None,
    opset: int = 17,
    x_name: str = "x",
    y_name: str = "y",
) -> onnx.ModelProto:
    """A float32 model with one input ``x`` and one output ``y``."""
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(y_name, TensorProto.FLOAT, y_shape)],
        initializer=[
            numpy_helper.from_array(
                np.asarray(v, dtype=np.float32)
                if np.asarray(v).dtype.kind == "f"
                else np.asarray(v),
                k,
            )
            for k, v in (inits or {}).items()
        ],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def require_nets() -> None:
    if not REAL_NETS:
        pytest.skip(f"the shared networks folder {NETS} is absent")


def mlp_net(widths, acts, seed=0):
    """A float64 MLP network with random weights: ``(net, weights, biases)``."""
    import netopt
    from netopt.instances._onnx import mlp_onnx

    rng = np.random.default_rng(seed)
    Ws = [
        rng.normal(size=(o, i)) / np.sqrt(i) for i, o in zip(widths[:-1], widths[1:], strict=True)
    ]
    bs = [rng.normal(scale=0.1, size=o) for o in widths[1:]]
    return netopt.load(mlp_onnx(Ws, bs, acts, dtype=np.float64)), Ws, bs
