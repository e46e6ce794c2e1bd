"""The reference interpreter: a float64 forward pass over the IR, batched.

Every result netopt returns is re-checked with this interpreter, independently
of the solver that produced it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from netopt.errors import InputError
from netopt.ir.graph import Graph
from netopt.ir.ops import OPS

__all__ = ["interpret", "as_batch", "vjp"]


def as_batch(
    graph: Graph, x: np.ndarray | Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], bool]:
    """Normalize user inputs to ``{input id: (B, *shape) float64}``.

    Returns the arrays and whether the caller passed single samples (no batch axis).

    Raises
    ------
    InputError
        On a wrong shape, a missing input or a non-numeric array.
    """
    if not isinstance(x, Mapping):
        if len(graph.inputs) != 1:
            raise InputError(
                f"the network has {len(graph.inputs)} inputs {list(graph.inputs)}; pass a dict"
            )
        x = {graph.inputs[0]: x}
    out: dict[str, np.ndarray] = {}
    single = None
    by_onnx = {graph.value(i).onnx_name: i for i in graph.inputs}
    for key, arr in x.items():
        vid = key if key in graph.inputs else by_onnx.get(key)
        if vid is None:
            raise InputError(
                f"'{key}' is not an input of the network (inputs: {list(graph.inputs)})"
            )
        try:
            a = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(f"input '{key}' is not a numeric array ({e})") from e
        shape = graph.value(vid).shape
        if a.shape == shape:
            a, s = a[None], True
        elif a.shape[1:] == shape and a.ndim == len(shape) + 1:
            s = False
        else:
            raise InputError(
                f"input '{key}' has shape {a.shape}; expected {shape} or (batch, {', '.join(map(str, shape))})"
            )
        if single is not None and s != single:
            raise InputError("mix of batched and single-sample inputs")
        single = s
        out[vid] = a
    missing = [i for i in graph.inputs if i not in out]
    if missing:
        raise InputError(f"missing network inputs {missing}")
    return out, bool(single)


def interpret(
    graph: Graph, inputs: Mapping[str, np.ndarray], *, keep: bool = False
) -> dict[str, np.ndarray]:
    """Run the graph in float64.

    Parameters
    ----------
    graph : Graph
        The IR graph.
    inputs : mapping
        ``{input id: array (B, *shape)}``, all with the same batch size ``B``.
    keep : bool
        Return every value of the graph, not only the outputs.

    Returns
    -------
    dict
        ``{value id: (B, *shape) float64 array}`` for the outputs (or all values).
    """
    env: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    remaining = {v: len(graph.consumers(v)) for v in graph.values}
    outs = set(graph.outputs)
    for op in graph.ops:
        xs = [env[i] for i in op.inputs]
        y = OPS[op.op].forward(xs, op.attrs)
        env[op.outputs[0]] = np.asarray(y, dtype=np.float64)
        if not keep:
            # free intermediate values as soon as their last reader has run
            for i in op.inputs:
                remaining[i] -= 1
                if remaining[i] == 0 and i not in outs:
                    env.pop(i, None)
    if keep:
        return env
    return {o: env[o] for o in graph.outputs}


def vjp(
    graph: Graph, env: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Vector-Jacobian product by reverse accumulation, in float64.

    Parameters
    ----------
    graph : Graph
    env : mapping
        Every value of a forward pass (``interpret(..., keep=True)``), batched.
    grads : mapping
        ``{value id: dL/dvalue}`` seeds (batched, the value's shape).

    Returns
    -------
    dict
        ``{input id: dL/dinput}``. ReLU-like ops use the subgradient that is 0 at the kink;
        max-pool routes to the first maximal cell.
    """
    acc: dict[str, np.ndarray] = {
        k: np.asarray(v, dtype=np.float64).reshape(len(v), -1) for k, v in grads.items()
    }
    for op in reversed(graph.ops):
        out = op.outputs[0]
        if out not in acc:
            continue
        g = acc.pop(out)  # (B, size_out)
        shapes = [graph.value(i).shape for i in op.inputs]
        rule = OPS[op.op].vjp
        if rule is None:  # pragma: no cover - every IR op has a vjp rule
            raise NotImplementedError(f"no vjp rule for {op.op}")
        parts = rule(op, shapes, graph.value(out).shape, g, env)
        for i, gi in zip(op.inputs, parts, strict=True):
            acc[i] = acc[i] + gi if i in acc else gi
    return {
        i: acc.get(i, np.zeros((len(next(iter(grads.values()))), graph.value(i).size))).reshape(
            -1, *graph.value(i).shape
        )
        for i in graph.inputs
    }
