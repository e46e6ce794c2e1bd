"""Data-movement ops (Slice, Gather, Split, Expand, Tile, ...) as one IR ``select``.

Such an op only moves entries of its variable input. Running the ONNX op itself (with
``onnx.reference``) on the *array of flat indices* of that input gives, for every output entry,
the input entry it copies: exactly the ``select`` op's ``index``. One converter therefore serves
every op of this kind, with the ONNX semantics of each (clamping, negative steps, axes) taken
from the ONNX project's own implementation rather than re-derived.
"""

from __future__ import annotations

import numpy as np

from netopt.frontend.context import Const, NodeContext, Unsupported, Var
from netopt.frontend.registry import converter

# op -> which input carries the data (the others must be constant)
_DATA_INPUT = {
    "Slice": 0,
    "Gather": 0,
    "GatherElements": 0,
    "GatherND": 0,
    "Split": 0,
    "Expand": 0,
    "Tile": 0,
    "DepthToSpace": 0,
    "SpaceToDepth": 0,
}


def _remap(ctx: NodeContext) -> list[Var]:
    from netopt.frontend.loader import _fold

    k = _DATA_INPUT[ctx.op_type]
    x = ctx.var(k)
    args: list[np.ndarray | None] = []
    for j, t in enumerate(ctx.inputs):
        if j == k:
            args.append(np.arange(int(np.prod(x.shape)), dtype=np.int64).reshape(x.shape))
        elif t is None:
            args.append(None)
        elif isinstance(t, Const):
            args.append(t.value)
        else:
            raise Unsupported(f"its input {j} depends on the network input; only input {k} may")
    try:
        outs = _fold(ctx.proto, args, ctx.opsets or {"": ctx.opset})
    except Exception as e:  # the ONNX evaluator rejects the node: name it
        raise ctx.fail(f"cannot evaluate the index remap ({type(e).__name__}: {e})") from e
    res = []
    for idx in outs:
        idx = np.asarray(idx, dtype=np.int64)
        batched = x.batched and idx.ndim >= 1 and idx.shape[0] == 1
        sample = idx[0] if batched else idx
        res.append(ctx.emit("select", [x], {"index": sample}, batched=batched))
    return res


for _op, _since in {
    "Slice": (1, 10, 11, 13),
    "Gather": (1, 11, 13),
    "GatherElements": (11, 13),
    "GatherND": (11, 12, 13),
    "Split": (2, 11, 13, 18),
    "Expand": (8, 13),
    "Tile": (6, 13),
    "DepthToSpace": (1, 11, 13),
    "SpaceToDepth": (1, 13),
}.items():
    converter(_op, since=_since, ir_ops=("select",))(_remap)

_remap.__doc__ = "An index remap of the variable input, evaluated by onnx.reference on its indices."
