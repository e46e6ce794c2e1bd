"""ONNX file or ModelProto -> IR :class:`~netopt.ir.Graph`.

The loader reads and checks the model, folds every constant subgraph (with
``onnx.reference``, the ONNX project's own evaluator, so any op on constants is
understood), lists *every* node it cannot take in one
:class:`~netopt.errors.UnsupportedOpError`, converts the rest with the
registered converters, and removes the batch dimension.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import Message
from onnx import numpy_helper

from netopt.errors import OnnxImportError, UnsupportedOpError
from netopt.frontend.context import Const, NodeContext, Tensor, Var
from netopt.frontend.registry import MAX_OPSET, MIN_OPSET, Unsupported, lookup
from netopt.ir import Graph, Op, SourceInfo, Value, sanitize

log = logging.getLogger("netopt")

__all__ = ["load_graph", "read_model", "convert_model", "ort_deviation"]

# ops whose value on constant inputs is not a constant
_NONDETERMINISTIC = {
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
}
# ops whose output is a constant even on a variable input (shapes are static)
_SHAPE_OPS = {"Shape", "Size"}


class _Poison:
    """Marks a tensor downstream of an unsupported node."""


_POISON = _Poison()


def _non_text_field(msg: Message) -> str | None:
    """The name of a string field of ``msg`` (recursively) that holds no valid UTF-8, if any.

    ONNX is proto2, whose parser does not validate strings: a corrupt file can carry names
    that are not text, which protobuf (upb) then hands out as ``bytes``. Doc strings are not
    checked (netopt never reads them).
    """
    stack = [msg]
    while stack:
        m = stack.pop()
        for fd, v in m.ListFields():
            if fd.type == fd.TYPE_MESSAGE:
                # a single message or a repeated container of them
                stack.extend([v] if isinstance(v, Message) else v)
            elif fd.type == fd.TYPE_STRING and fd.name != "doc_string":
                if any(isinstance(t, bytes) for t in ([v] if isinstance(v, str | bytes) else v)):
                    return fd.full_name
    return None


def read_model(
    source: str | os.PathLike | onnx.ModelProto | bytes,
) -> tuple[onnx.ModelProto, SourceInfo]:
    """Read and check an ONNX model; every failure is an :class:`OnnxImportError`."""
    if isinstance(source, onnx.ModelProto):
        model, path = source, None
        data = source.SerializeToString()
    else:
        if isinstance(source, bytes):
            data, path = source, None
        else:
            path = str(source)
            p = Path(path)
            if not p.exists():
                raise OnnxImportError(f"{path}: no such file; pass the path of an .onnx model")
            if p.is_dir():
                raise OnnxImportError(f"{path}: is a folder, not an ONNX file")
            data = p.read_bytes()
        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except Exception as e:  # protobuf's DecodeError and friends
            raise OnnxImportError(
                f"{path or '<bytes>'}: not an ONNX model, or the file is truncated or corrupt "
                f"({type(e).__name__}: {e}); re-export or re-download it"
            ) from e
        if path is not None and any(
            t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
        ):
            try:
                onnx.load_external_data_for_model(model, str(Path(path).parent))
            except Exception as e:
                raise OnnxImportError(
                    f"{path}: its external weight files cannot be read ({e}); keep them beside the model"
                ) from e
    name = path or "<in-memory model>"
    bad = _non_text_field(model)
    if bad is not None:
        raise OnnxImportError(
            f"{name}: the field {bad} holds bytes that are not UTF-8 text, so the file is "
            "corrupt; re-export or re-download it"
        )
    if not model.HasField("graph") or (not model.graph.output and not model.graph.node):
        raise OnnxImportError(
            f"{name}: not an ONNX model (no graph with outputs found); is this the right file?"
        )
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # onnx.checker.ValidationError, and C++ errors for odd inputs
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxImportError(
            f"{name}: the model fails onnx.checker ({msg}); fix the exporter's output "
            "(e.g. re-export, or run onnx.shape_inference / onnxsim) and load it again"
        ) from e
    src = SourceInfo(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        opsets=tuple((o.domain or "", int(o.version)) for o in model.opset_import),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        ir_version=int(model.ir_version),
    )
    return model, src


def ort_deviation(model: onnx.ModelProto) -> str | None:
    """Why netopt reads ``model`` although onnxruntime refuses it, or None.

    The only such case is OMLT's pooling convention (a kernel_shape ``(channels, kh, kw)``
    on a 4-D input), which :mod:`netopt.frontend.conv` reads on purpose; any other model
    onnxruntime refuses is refused by :func:`netopt.load` too.
    """
    for n in model.graph.node:
        if n.op_type in ("MaxPool", "AveragePool") and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.name == "kernel_shape" and len(a.ints) == 3:
                    return (
                        f"node '{n.name}' ({n.op_type}) has the kernel_shape {list(a.ints)} "
                        "of OMLT's channel-first convention, which netopt reads as a 2-D kernel"
                    )
    return None


#: the largest weight magnitude netopt accepts in a float32 model. float32 ends at 3.4e38; a
#: weight of 1e30 still leaves 8 orders of magnitude for the inputs and the sums of a layer
#: before onnxruntime's float32 arithmetic overflows where netopt's float64 would not.
#: (A float64 model is computed in float64 by onnxruntime too: no limit but finiteness.)
MAX_WEIGHT_FLOAT32 = 1e30

#: graph input element types netopt computes with: it feeds real numbers and models
#: float32/float64 arithmetic in float64 (float16 rounding is not modelled)
_INPUT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE}


def _decode_attr(a: onnx.AttributeProto) -> Any:
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [t.decode("utf-8", "replace") for t in v]
    return v


def _dims(vi: onnx.ValueInfoProto) -> list[int | str | None] | None:
    t = vi.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for d in t.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _input_var(
    vi: onnx.ValueInfoProto,
    name: str,
    override: Sequence[int] | None,
    taken: set[str],
    several: bool = False,
) -> tuple[Var, Value]:
    et = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
    if et not in _INPUT_TYPES:
        tname = (
            onnx.TensorProto.DataType.Name(et) if et in onnx.TensorProto.DataType.values() else et
        )
        raise OnnxImportError(
            f"{name}: graph input '{vi.name}' has the element type {tname}; netopt optimizes "
            "over real-valued inputs of type FLOAT or DOUBLE (it models neither integer, bool "
            "or string inputs nor float16 rounding): re-export the model with a float32 input"
        )
    dims = _dims(vi)
    vid = sanitize(vi.name, taken, "x")
    if override is not None:
        sample = tuple(int(d) for d in override)
        batched = dims is not None and len(dims) == len(sample) + 1
        return Var(vid, ((1, *sample) if batched else sample), batched), Value(vid, sample, vi.name)
    if dims is None:
        raise OnnxImportError(
            f"{name}: graph input '{vi.name}' has no shape; pass load(..., "
            f"input_shapes={{'{vi.name}': (...)}}) with its per-sample shape"
        )
    batched = len(dims) >= 2
    if batched:
        d0 = dims[0]
        if isinstance(d0, int) and d0 > 1:
            raise OnnxImportError(
                f"{name}: graph input '{vi.name}' has a fixed batch dimension {d0} (shape "
                f"{dims}); netopt works per sample: re-export with batch size 1 or a symbolic "
                f"batch, or pass input_shapes={{'{vi.name}': {tuple(dims)}}} if axis 0 is no batch"
                + (
                    f"; if '{vi.name}' holds weights, store them as an initializer (netopt "
                    "needs constant weights)"
                    if several
                    else ""
                )
            )
        rest = dims[1:]
    else:
        rest = dims
    if any(not isinstance(d, int) or d < 1 for d in rest):
        raise OnnxImportError(
            f"{name}: graph input '{vi.name}' has shape {dims} with unresolved dimensions; "
            f"pass load(..., input_shapes={{'{vi.name}': (...)}}) with its per-sample shape"
        )
    sample = tuple(int(d) for d in rest)
    return Var(vid, ((1, *sample) if batched else sample), batched), Value(vid, sample, vi.name)


def _fold(
    node: onnx.NodeProto, args: list[np.ndarray | None], opsets: Mapping[str, int]
) -> list[np.ndarray]:
    """Evaluate ``node`` on constant inputs with ``onnx.reference``, under the model's opsets.

    The node is wrapped in a one-node graph: given a bare NodeProto, ReferenceEvaluator
    ignores ``opsets`` and applies the newest schema (e.g. Unsqueeze-13, whose axes are an
    input, to an opset-11 Unsqueeze whose axes are an attribute).
    """
    from onnx.reference import ReferenceEvaluator

    names = [f"i{k}" if a is not None else "" for k, a in enumerate(args)]
    n = onnx.helper.make_node(
        node.op_type,
        names,
        [f"o{k}" for k in range(len(node.output))],
        domain=node.domain,
    )
    n.attribute.extend(node.attribute)
    g = onnx.helper.make_graph(
        [n],
        "fold",
        [onnx.helper.make_empty_tensor_value_info(nm) for nm in names if nm],
        [onnx.helper.make_empty_tensor_value_info(o) for o in n.output],
    )
    ev = ReferenceEvaluator(g, opsets=dict(opsets))
    feeds = {nm: a for nm, a in zip(names, args, strict=True) if nm}
    return [np.asarray(r) for r in ev.run(None, feeds)]


def load_graph(
    source: str | os.PathLike | onnx.ModelProto | bytes,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Graph:
    """Convert an ONNX model into an IR graph (without running the passes).

    Parameters
    ----------
    source : path, bytes or onnx.ModelProto
        The model.
    input_shapes : mapping, optional
        Per-sample shapes (no batch axis) for graph inputs whose shape the file
        leaves symbolic.

    Raises
    ------
    OnnxImportError
        Unreadable or invalid file, unresolved shapes, non-finite weights, a
        fixed batch dimension above 1.
    UnsupportedOpError
        Listing every node netopt cannot take, with its name, op type and reason.
    """
    model, src = read_model(source)
    return convert_model(model, src, input_shapes=input_shapes)


def convert_model(
    model: onnx.ModelProto,
    src: SourceInfo,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Graph:
    """Convert a model already read and checked by :func:`read_model`."""
    # converters register on import of the package
    import netopt.frontend  # noqa: F401

    name = src.name
    g = model.graph
    opsets = {("" if d == "ai.onnx" else d): v for d, v in src.opsets}
    default = opsets.get("", None)
    if default is None and any(n.domain in ("", "ai.onnx") for n in g.node):
        raise OnnxImportError(f"{name}: the model imports no default-domain opset")
    if default is not None and default < MIN_OPSET:
        raise OnnxImportError(
            f"{name}: opset {default} is older than netopt supports ({MIN_OPSET}..{MAX_OPSET}); "
            f"upgrade it with onnx.version_converter.convert_version(model, {MIN_OPSET})"
        )
    if default is not None and default > MAX_OPSET:
        log.warning(
            "%s: opset %d is newer than the tested range %d..%d",
            name,
            default,
            MIN_OPSET,
            MAX_OPSET,
        )

    env: dict[str, Tensor | _Poison] = {}
    for init in g.initializer:
        try:
            env[init.name] = Const(numpy_helper.to_array(init))
        except Exception as e:
            raise OnnxImportError(f"{name}: initializer '{init.name}' cannot be read ({e})") from e
    for sp in g.sparse_initializer:
        try:
            env[sp.values.name] = Const(numpy_helper.to_array(sp))  # type: ignore[arg-type]
        except Exception as e:
            raise OnnxImportError(f"{name}: sparse initializer cannot be read ({e})") from e

    values: dict[str, Value] = {}
    taken_values: set[str] = set()
    ir_inputs: list[str] = []
    overrides = dict(input_shapes or {})
    free = [vi for vi in g.input if vi.name not in env]
    for vi in free:  # inputs with initializers are weights (tf2onnx, MATLAB): constants
        var, val = _input_var(vi, name, overrides.pop(vi.name, None), taken_values, len(free) > 1)
        env[vi.name] = var
        values[val.id] = val
        ir_inputs.append(val.id)
    if overrides:
        raise OnnxImportError(
            f"{name}: input_shapes names {sorted(overrides)}, which are not graph inputs "
            f"(inputs: {[vi.name for vi in g.input if vi.name not in env or isinstance(env[vi.name], Var)]})"
        )
    if not ir_inputs:
        raise OnnxImportError(
            f"{name}: the graph has no variable input (all inputs are initializers)"
        )
    if not g.output:
        # nothing to optimize, and every consumer of the network reads its first output
        raise OnnxImportError(
            f"{name}: the graph declares no output; add the network's output to graph.output "
            "(e.g. re-export the model)"
        )

    # -------- first walk: which nodes are constant, which have no converter at all
    node_names: list[str] = []
    taken_nodes: set[str] = set()
    for k, n in enumerate(g.node):
        node_names.append(sanitize(n.name or f"{n.op_type}_{k}", taken_nodes, "node"))
    const_names = {t for t, v in env.items() if isinstance(v, Const)}
    unsupported: list[tuple[str, str, str]] = []
    for k, n in enumerate(g.node):
        ins = [i for i in n.input if i]
        is_const = (all(i in const_names for i in ins) and n.op_type not in _NONDETERMINISTIC) or (
            n.op_type in _SHAPE_OPS and n.domain in ("", "ai.onnx")
        )
        if is_const:
            const_names.update(o for o in n.output if o)
            continue
        opset = opsets.get("" if n.domain == "ai.onnx" else n.domain, 0)
        if lookup(n.domain, n.op_type, opset) is None:
            dom = f"{n.domain}::" if n.domain not in ("", "ai.onnx") else ""
            unsupported.append(
                (node_names[k], f"{dom}{n.op_type}", f"no converter for opset {opset}")
            )

    # -------- second walk: convert
    ops: list[Op] = []
    taken_ops: set[str] = set()
    used_later: set[str] = {o.name for o in g.output}
    for n in g.node:
        used_later.update(i for i in n.input if i)
    for k, n in enumerate(g.node):
        nname = node_names[k]
        opset = opsets.get("" if n.domain == "ai.onnx" else n.domain, 0)
        ins: list[Tensor | None] = []
        poisoned = False
        for i in n.input:
            if not i:
                ins.append(None)
                continue
            if i not in env:
                raise OnnxImportError(
                    f"{name}: ONNX node '{nname}' ({n.op_type}) reads '{i}', which no node, "
                    "initializer or input defines"
                )
            t = env[i]
            if isinstance(t, _Poison):
                poisoned = True
                ins.append(None)
            else:
                ins.append(t)
        if poisoned:
            for o in n.output:
                env[o] = _POISON
            continue
        try:
            attrs = {a.name: _decode_attr(a) for a in n.attribute}
        except Exception as e:
            raise OnnxImportError(
                f"{name}: ONNX node '{nname}' ({n.op_type}): unreadable attribute ({e})"
            ) from e
        const_in = all(t is None or isinstance(t, Const) for t in ins)
        outs: list[Tensor]
        if const_in and n.op_type not in _NONDETERMINISTIC:
            try:
                res = _fold(n, [None if t is None else t.value for t in ins], opsets)  # type: ignore[union-attr]
            except Exception as e:
                raise OnnxImportError(
                    f"{name}: ONNX node '{nname}' ({n.op_type}) on constants cannot be evaluated "
                    f"({type(e).__name__}: {e}); check its attributes and inputs"
                ) from e
            outs = [Const(r) for r in res]
        else:
            entry = lookup(n.domain, n.op_type, opset)
            if entry is None:
                for o in n.output:
                    env[o] = _POISON
                continue  # listed by the first walk
            ctx = NodeContext(
                name=nname,
                op_type=n.op_type,
                opset=opset,
                inputs=ins,
                attrs=attrs,
                n_outputs=len(n.output),
                file=name,
                _values=values,
                _ops=ops,
                _taken_ops=taken_ops,
                proto=n,
                opsets=opsets,
            )
            try:
                r = entry.fn(ctx)
            except Unsupported as e:
                unsupported.append((nname, n.op_type, str(e)))
                for o in n.output:
                    env[o] = _POISON
                continue
            except OnnxImportError:
                raise
            except Exception as e:  # a converter bug or a malformed node: name the node
                raise OnnxImportError(
                    f"{name}: ONNX node '{nname}' ({n.op_type}) could not be converted "
                    f"({type(e).__name__}: {e}); check the node's attributes and input shapes"
                ) from e
            outs = list(r) if isinstance(r, list | tuple) else [r]
        for j, o in enumerate(n.output):
            if not o:
                continue
            if j < len(outs):
                env[o] = outs[j]
            elif o in used_later:
                unsupported.append(
                    (
                        nname,
                        n.op_type,
                        f"its output {j} ('{o}') is used, and netopt only computes the first",
                    )
                )
                env[o] = _POISON
    if unsupported:
        lines = "\n".join(f"  - node '{a}' ({b}): {c}" for a, b, c in unsupported)
        kinds = sorted({b for _, b, _ in unsupported})
        raise UnsupportedOpError(
            f"{name}: {len(unsupported)} node(s) netopt cannot import ({', '.join(kinds)}):\n{lines}\n"
            "See the table of supported ONNX ops in the README; replace these ops in the model "
            "or re-export it.",
            unsupported,
        )

    # -------- outputs: drop the batch axis, check the declared shapes
    ir_outputs: list[str] = []
    ctx = NodeContext("output", "Output", default or 0, [], {}, 0, name, values, ops, taken_ops)
    for vo in g.output:
        t = env.get(vo.name)
        if isinstance(t, Const) or t is None:
            raise OnnxImportError(
                f"{name}: graph output '{vo.name}' does not depend on any input; nothing to optimize"
            )
        assert isinstance(t, Var)
        dims = _dims(vo)
        if (
            not t.batched
            and dims is not None
            and len(dims) >= 2
            and len(dims) == t.rank
            and t.shape[0] == 1
            and not (isinstance(dims[0], int) and dims[0] > 1)
        ):
            t = ctx.rebatch(t)  # the declared output has its batch axis: drop it
        if dims is not None:
            full = t.shape
            if len(dims) == len(full):
                bad = [
                    (i, d, full[i])
                    for i, d in enumerate(dims)
                    if isinstance(d, int) and d > 0 and d != full[i]
                ]
                if bad:
                    raise OnnxImportError(
                        f"{name}: graph output '{vo.name}' is declared {dims}, but the network "
                        f"computes {list(full)}; the file's shapes are inconsistent"
                    )
        ir_outputs.append(t.vid)
        if values[t.vid].onnx_name is None:
            values[t.vid] = Value(t.vid, t.sample_shape, vo.name)
    in_types = {vi.type.tensor_type.elem_type for vi in free}
    _check_weights(ops, name, MAX_WEIGHT_FLOAT32 if onnx.TensorProto.FLOAT in in_types else np.inf)
    graph = Graph(values.values(), ops, ir_inputs, ir_outputs, src)
    return graph


def _check_weights(ops: Sequence[Op], name: str, limit: float) -> None:
    """Refuse non-finite weights, and weights above ``limit`` in magnitude, in the final ops.

    :meth:`NodeContext.emit` checks finiteness of the weights it is given, but converters
    also edit emitted ops in place (a Gemm's bias folded into its affine op), so the final
    ops are checked again here. ``limit`` is :data:`MAX_WEIGHT_FLOAT32` for a float32 model:
    larger weights overflow in onnxruntime's float32 arithmetic where netopt's float64 model
    stays finite.
    """
    for o in ops:
        for k, v in o.attrs.items():
            if not (isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size):
                continue
            where = f"ONNX {o.origin}" if o.origin else f"IR op '{o.id}'"
            if not np.all(np.isfinite(v)):
                at = np.argwhere(~np.isfinite(v))[0].tolist()
                raise OnnxImportError(
                    f"{name}: {where}: its constant '{k}' holds a non-finite value "
                    f"({v[tuple(at)]} at {at}); netopt needs finite weights: fix or re-export "
                    "the model"
                )
            big = float(np.max(np.abs(v)))
            if big > limit:
                at = np.unravel_index(int(np.argmax(np.abs(v))), v.shape)
                raise OnnxImportError(
                    f"{name}: {where}: its constant '{k}' holds {big:.6g} at "
                    f"{[int(i) for i in at]}, beyond the {limit:.0e} netopt accepts in a float32 model: "
                    "onnxruntime computes in float32 (largest 3.4e38), where such weights "
                    "overflow to inf while netopt's float64 model stays finite; fix or "
                    "rescale the model"
                )
