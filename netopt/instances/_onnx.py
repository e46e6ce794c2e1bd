"""Write fully connected networks given as weight matrices to ONNX.

The generators build their networks as numpy matrices (which is how their constructions and
proofs are stated) and write them with standard ONNX ops (``Gemm``, ``Relu``, ``LeakyRelu``)
so that any tool reading ONNX - onnxruntime, other verifiers - sees the same network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from netopt.errors import InputError

__all__ = ["mlp_onnx"]

_ONNX_TYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


def mlp_onnx(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None],
    activations: Sequence[str | None],
    *,
    dtype: type = np.float32,
    name: str = "mlp",
    opset: int = 17,
) -> onnx.ModelProto:
    """An ONNX model computing ``x -> act_L(W_L ... act_1(W_1 x + b_1) ... + b_L)``.

    Parameters
    ----------
    weights : list of (n_out, n_in) arrays
        Layer matrices ``W_l`` (rows are output units).
    biases : list of (n_out,) arrays or None
        ``b_l`` (``None`` for no bias: the Gemm gets a zero ``C``).
    activations : list of {"relu", "leaky_relu:<slope>", None}
        The activation after each layer (``None``: linear).
    dtype : numpy float type
        float32 (default, what most tools expect) or float64. Integer and half-integer weights
        are exact in either.

    Returns
    -------
    onnx.ModelProto
        Input ``x`` of shape ``(1, n_in)``, output ``y`` of shape ``(1, n_out)``.
    """
    dt = np.dtype(dtype)
    if dt not in _ONNX_TYPE:
        raise InputError(f"dtype must be float32 or float64, got {dt}")
    if not (len(weights) == len(biases) == len(activations)) or not weights:
        raise InputError("weights, biases and activations must be non-empty and of equal length")
    nodes, inits = [], []
    cur = "x"
    n_in = int(np.asarray(weights[0]).shape[1])
    prev = n_in
    for i, (W, b, act) in enumerate(zip(weights, biases, activations, strict=True)):
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or W.shape[1] != prev:
            raise InputError(f"layer {i}: W has shape {W.shape}; expected (*, {prev})")
        bb = np.zeros(W.shape[0]) if b is None else np.asarray(b, dtype=np.float64).reshape(-1)
        if bb.shape != (W.shape[0],):
            raise InputError(f"layer {i}: b has shape {bb.shape}; expected ({W.shape[0]},)")
        inits += [
            numpy_helper.from_array(W.astype(dt), f"W{i}"),
            numpy_helper.from_array(bb.astype(dt), f"b{i}"),
        ]
        out = f"z{i}" if act else ("y" if i == len(weights) - 1 else f"h{i}")
        nodes.append(
            helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [out], name=f"fc{i}", transB=1)
        )
        if act:
            nxt = "y" if i == len(weights) - 1 else f"h{i}"
            if act == "relu":
                nodes.append(helper.make_node("Relu", [out], [nxt], name=f"relu{i}"))
            elif act.startswith("leaky_relu"):
                _, _, s = act.partition(":")
                slope = float(s) if s else 0.01
                nodes.append(
                    helper.make_node("LeakyRelu", [out], [nxt], name=f"lrelu{i}", alpha=slope)
                )
            else:
                raise InputError(
                    f"layer {i}: unknown activation {act!r} (relu, leaky_relu:<slope>)"
                )
            out = nxt
        cur = out
        prev = W.shape[0]
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", _ONNX_TYPE[dt], [1, n_in])],
        [helper.make_tensor_value_info("y", _ONNX_TYPE[dt], [1, prev])],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="netopt")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m
