"""What a converter sees: the node's inputs as constants or variables, and ``emit``.

The frontend tracks every ONNX tensor either as a :class:`Const` (folded to a
numpy array at import) or as a :class:`Var` (an IR value). A ``Var`` keeps its
*ONNX view* shape: with the batch axis of size 1 in front when ``batched``, and
without it otherwise. Converters reason in ONNX axes; :meth:`Var.sample_axis`
maps them to IR axes. Any op that would mix the batch axis with others can first
call :meth:`NodeContext.unbatch`, which turns a batched ``(1, *s)`` tensor into
an unbatched one whose sample is ``(1, *s)``; ONNX axes are then IR axes, and
the result is exact because the batch has size 1 (the per-sample semantics of
the network is what netopt optimizes over).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netopt.errors import OnnxImportError
from netopt.frontend.registry import Unsupported
from netopt.ir import Op, Origin, Value, sanitize
from netopt.ir.ops import OPS

__all__ = ["Const", "Var", "NodeContext", "Unsupported"]


@dataclass(frozen=True)
class Const:
    """A tensor known at import time."""

    value: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)


@dataclass(frozen=True)
class Var:
    """A tensor that depends on the network input: an IR value.

    Attributes
    ----------
    vid : str
        The IR value id.
    shape : tuple of int
        The ONNX-view shape (``(1, *sample)`` when ``batched``).
    batched : bool
        Whether ONNX axis 0 is the (removed) batch axis.
    """

    vid: str
    shape: tuple[int, ...]
    batched: bool

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape[1:] if self.batched else self.shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    def sample_axis(self, axis: int) -> int:
        """The IR axis of ONNX axis ``axis`` (negative allowed); the batch axis has none."""
        a = axis + self.rank if axis < 0 else axis
        if not 0 <= a < self.rank:
            raise Unsupported(f"axis {axis} is out of range for a rank-{self.rank} tensor")
        if self.batched:
            if a == 0:
                raise _BatchAxis()
            return a - 1
        return a


class _BatchAxis(Unsupported):
    def __init__(self) -> None:
        super().__init__("the op acts on the batch axis")


Tensor = Const | Var


@dataclass
class NodeContext:
    """One ONNX node being converted.

    Attributes
    ----------
    name, op_type, opset : the node's identity and the opset it is read under
    inputs : list of Const, Var or None (an omitted optional input)
    attrs : dict of decoded ONNX attributes
    """

    name: str
    op_type: str
    opset: int
    inputs: list[Tensor | None]
    attrs: dict[str, Any]
    n_outputs: int
    file: str
    _values: dict[str, Value]
    _ops: list[Op] = field(default_factory=list)
    _taken_ops: set[str] = field(default_factory=set)
    _emitted: int = 0
    #: the ONNX node itself and the model's opsets (for evaluating index remaps)
    proto: Any = None
    opsets: Mapping[str, int] | None = None

    # ------------------------------------------------------------ inputs
    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def input(self, k: int) -> Tensor | None:
        return self.inputs[k] if k < len(self.inputs) else None

    def const(self, k: int, what: str = "input") -> np.ndarray | None:
        """Input ``k`` as a constant array (None when omitted); a variable is unsupported."""
        t = self.input(k)
        if t is None:
            return None
        if isinstance(t, Var):
            raise Unsupported(
                f"its {what} (input {k}) depends on the network input; netopt needs it constant "
                "(store weights as initializers)"
            )
        return t.value

    def var(self, k: int) -> Var:
        t = self.input(k)
        if not isinstance(t, Var):
            raise Unsupported(f"input {k} is expected to depend on the network input")
        return t

    def ints(self, key: str, default: Sequence[int] | None = None) -> tuple[int, ...] | None:
        v = self.attrs.get(key, default)
        return None if v is None else tuple(int(t) for t in v)

    # ------------------------------------------------------------- emission
    @property
    def origin(self) -> Origin:
        return Origin(self.name, self.op_type, self.opset)

    def fail(self, msg: str) -> OnnxImportError:
        return OnnxImportError(f"{self.file}: ONNX {self.origin}: {msg}")

    def emit(
        self,
        op: str,
        inputs: Sequence[Var],
        attrs: Mapping[str, Any] | None = None,
        *,
        batched: bool | None = None,
    ) -> Var:
        """Append an IR op reading ``inputs`` and return its output as a Var.

        The output's sample shape comes from the op's shape inference; it is
        ``batched`` like the first input unless told otherwise.
        """
        attrs = dict(attrs or {})
        for k, v in attrs.items():
            if isinstance(v, np.ndarray) and v.dtype.kind in "fc" and not np.all(np.isfinite(v)):
                bad = np.argwhere(~np.isfinite(v))[0].tolist()
                raise self.fail(
                    f"its constant '{k}' holds a non-finite value ({v[tuple(bad)]} at {bad}); "
                    "netopt needs finite weights: fix or re-export the model"
                )
        try:
            shape = tuple(OPS[op].infer([i.sample_shape for i in inputs], attrs))
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise self.fail(f"shapes do not fit ({e})") from e
        # the first op keeps the node's name; helpers ops it needs get the op as suffix
        oid = sanitize(f"{self.name}.{op}" if self._emitted else self.name, self._taken_ops, "op")
        self._emitted += 1
        vid = sanitize(oid, set(self._values), "v")
        self._values[vid] = Value(vid, shape, None)
        self._ops.append(Op(oid, op, tuple(i.vid for i in inputs), (vid,), attrs, self.origin))
        b = inputs[0].batched if batched is None else batched
        return Var(vid, ((1, *shape) if b else shape), b)

    def unbatch(self, v: Var) -> Var:
        """The same tensor with its batch axis kept as a sample axis of size 1."""
        if not v.batched:
            return v
        out = self.emit("reshape", [v], {"shape": v.shape}, batched=False)
        return out

    def rebatch(self, v: Var) -> Var:
        """Back to a batched view when the leading axis has size 1 (no-op otherwise)."""
        if v.batched or v.rank == 0 or v.shape[0] != 1:
            return v
        return self.emit("reshape", [v], {"shape": v.shape[1:]}, batched=True)

    def reshape(self, v: Var, onnx_shape: Sequence[int], batched: bool) -> Var:
        """Reshape ``v`` to the ONNX-view shape ``onnx_shape``."""
        shape = tuple(int(d) for d in onnx_shape)
        sample = shape[1:] if batched else shape
        if sample == v.sample_shape and batched == v.batched:
            return v
        return self.emit("reshape", [v], {"shape": sample}, batched=batched)
