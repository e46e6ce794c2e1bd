"""The random ONNX model builder of the property tests: tensors, drawn cases, node and constant
emission, and the lowest IR version of each opset.

:class:`Builder` draws every choice from hypothesis (names in the styles exporters use, constants
as initializers or Constant nodes, tied weights); the steps that use it are in
:mod:`helpers.onnx_strategies`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import helper, numpy_helper

# the lowest IR version of each opset (onnx.helper.VERSION_TABLE); IR < 4 lists
# initializers among the graph inputs
MIN_IR = {7: 3, 8: 3, 9: 4, 10: 5, 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8}


def min_ir(opset: int) -> int:
    return MIN_IR.get(opset, 9 if opset < 21 else 10)


@dataclass
class T:
    """A tensor of the model being built: its name and ONNX shape (the batch axis as 1)."""

    name: str
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Case:
    """A generated model and how it was drawn (for the failure report)."""

    model: onnx.ModelProto
    opset: int
    batch: str | int | None
    ops: list[str]


class Builder:
    """Accumulates nodes and constants; every choice is drawn from hypothesis.

    ``sym`` says the batch axis is symbolic: ops must then act per sample (never on axis 0),
    as an exporter's model does. With a batch fixed at 1 (or none), any op valid for the
    shape is fair game.
    """

    def __init__(self, draw, opset: int, sym: bool, rng: np.random.Generator) -> None:
        self.draw, self.opset, self.sym, self.rng = draw, opset, sym, rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0
        self.names: list[str] = []
        self.weights: dict[tuple[int, ...], str] = {}
        self.log: list[str] = []

    # --------------------------------------------------------------- drawing
    def pick(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def randint(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def coin(self, p: float = 0.5) -> bool:
        # an integer draw shrinks towards "False"
        return self.draw(st.integers(0, 999)) < int(1000 * p)

    def axis(self, a: int, rank: int, since: int = 11) -> int:
        """Axis ``a`` in ``[0, rank)``, written negative sometimes where the opset allows it."""
        return a - rank if a < rank and self.opset >= since and self.coin(0.3) else a

    # -------------------------------------------------------------- building
    def fresh(self, prefix: str) -> str:
        """A new tensor name, in the styles exporters use (``a/b:0``, ``input.1``, ``12``).

        Some names differ from an earlier one only in characters the IR's ids replace by
        ``_``, so the frontend's sanitized ids would collide if it did not make them unique.
        """
        self.n += 1
        style = self.randint(0, 9)
        if style == 0 and self.names:
            twin = self.pick(self.names).replace("/", "_").replace(":", "_")
            if twin not in self.names:
                self.names.append(twin)
                return twin
        sep = "_/:."[style % 4] if style < 8 else ""
        name = f"{prefix}{sep}{self.n}" if style != 9 else str(self.n)
        self.names.append(name)
        return name

    def const(self, arr, prefix: str = "c") -> str:
        """A constant as an initializer or (sometimes) a Constant node."""
        arr = np.asarray(arr)
        name = self.fresh(prefix)
        # Constant-1 (before opset 9) holds floating-point tensors only
        if self.coin(0.2) and (self.opset >= 9 or arr.dtype.kind == "f"):
            attrs = {"value": numpy_helper.from_array(arr, name + "_v")}
            if self.opset >= 12 and arr.ndim <= 1 and arr.size and self.coin():
                # the typed attributes of Constant-12: a float32 scalar or a 1-D list
                if arr.dtype == np.float32:
                    attrs = (
                        {"value_float": float(arr)}
                        if arr.ndim == 0
                        else {"value_floats": arr.tolist()}
                    )
                elif arr.dtype == np.int64 and arr.ndim == 1:
                    attrs = {"value_ints": arr.tolist()}
            self.nodes.append(helper.make_node("Constant", [], [name], **attrs))
        else:
            self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def weight(self, shape, fan_in: int | None = None, lo: float = -1.0) -> np.ndarray:
        w = self.rng.uniform(lo, 1.0, shape)
        if fan_in:
            w = w * (1.5 / np.sqrt(fan_in))
        return w.astype(np.float32)

    def shared_weight(self, shape, fan_in: int) -> str:
        """A weight constant; sometimes one an earlier node already uses (tied weights)."""
        shape = tuple(shape)
        if shape in self.weights and self.coin(0.3):
            return self.weights[shape]
        name = self.const(self.weight(shape, fan_in), "W")
        self.weights.setdefault(shape, name)
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64), "i")

    def node(self, op: str, inputs, shape, n_out: int = 1, **attrs) -> T:
        outs = [self.fresh(op.lower())] + [
            self.fresh(op.lower() + "_extra") for _ in range(n_out - 1)
        ]
        # node names: mostly unique, sometimes missing or shared by several nodes
        name = self.pick(["new", "new", "new", "", "layer"])
        name = self.fresh(op) if name == "new" else name
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name, **attrs))
        self.log.append(f"{op}{attrs if attrs else ''} -> {list(shape)}")
        return T(outs[0], tuple(int(d) for d in shape))
