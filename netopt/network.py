"""The user-facing :class:`Network`: an IR graph plus what it came from."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.errors import InputError, OnnxImportError
from netopt.ir import Graph
from netopt.ir.interpret import as_batch, interpret
from netopt.ir.ops import OPS

if TYPE_CHECKING:  # pragma: no cover
    import onnx
    import torch

__all__ = ["Network", "load", "check_same_architecture"]

log = logging.getLogger("netopt")


def _ort_message(e: BaseException) -> str:
    """onnxruntime's message on one line (its errors carry a '[ONNXRuntimeError] : n : KIND'
    prefix and sometimes a multi-line stack)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 600 else text[:600] + " ..."


def _lacks_kernel(e: OnnxImportError) -> str | None:
    """Why a refusal of onnxruntime's does not make the model invalid, or None.

    onnxruntime's NOT_IMPLEMENTED means its CPU provider has no kernel for a valid node at
    these dtypes (e.g. a float64 Conv): the model is fine, only the cross-check is missing.
    """
    cause = e.__cause__
    if cause is not None and type(cause).__name__ == "NotImplemented":
        return (
            "the model is valid ONNX, but onnxruntime's CPU provider has no kernel for one of "
            "its nodes at these dtypes, so its results cannot be checked against onnxruntime"
        )
    return None


def _make_ort_session(data: bytes, name: str) -> Any:
    """An onnxruntime CPU session for ``data``; its refusal is an :class:`OnnxImportError`.

    The session is first made with onnxruntime's default graph optimizations (what
    :meth:`Network.run_onnxruntime` has always used). onnxruntime's optimizer has bugs of its
    own, so where it fails the unoptimized graph (the ONNX semantics) is tried before the
    model is called invalid.
    """
    import onnxruntime as ort

    first: Exception | None = None
    for level in (None, ort.GraphOptimizationLevel.ORT_DISABLE_ALL):
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if level is not None:
            so.graph_optimization_level = level
        try:
            return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's Fail, InvalidGraph, InvalidArgument, ...
            first = first or e
    assert first is not None
    raise OnnxImportError(
        f"{name}: onnxruntime refuses the model ({_ort_message(first)}); netopt only imports "
        "models that onnxruntime, its independent reference, can run: fix the model (the "
        "dtypes of its inputs and weights, its ranks, attributes and opset) or re-export it"
    ) from first


class Network:
    """A neural network imported into netopt's IR.

    Parameters
    ----------
    graph : Graph
        The normalized IR graph.
    onnx_bytes : bytes
        The serialized ONNX model it was imported from (for onnxruntime checks).
    raw_graph : Graph, optional
        The graph before the passes.

    Notes
    -----
    ``net(x)`` is the float64 reference forward pass; ``x`` is one sample of
    shape ``net.input_shape`` or a batch ``(B, *net.input_shape)``.
    """

    def __init__(self, graph: Graph, onnx_bytes: bytes, raw_graph: Graph | None = None) -> None:
        self.graph = graph
        self.raw_graph = raw_graph or graph
        self.onnx_bytes = onnx_bytes
        self._ort: tuple | None = None
        #: onnxruntime's session, made by :func:`load` (or on the first
        #: :meth:`run_onnxruntime`); None until then
        self._ort_sess: Any = None
        #: the message of onnxruntime's refusal, for a model netopt loads on purpose anyway
        self._ort_refusal: str | None = None

    def _ort_session(self) -> Any:
        """The onnxruntime session (made once); an :class:`OnnxImportError` if it refuses."""
        if self._ort_refusal is not None:
            raise OnnxImportError(self._ort_refusal)
        if self._ort_sess is None:
            self._ort_sess = _make_ort_session(self.onnx_bytes, self.source.name)
        return self._ort_sess

    # ------------------------------------------------------------ properties
    @property
    def source(self):
        """Provenance: path, sha256, opsets, producer."""
        return self.graph.source

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the (first) input."""
        return self.graph.value(self.graph.inputs[0]).shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the (first) output."""
        return self.graph.value(self.graph.outputs[0]).shape

    @property
    def n_params(self) -> int:
        """Number of weights (array attributes) in the normalized graph."""
        return int(
            sum(
                v.size
                for o in self.graph.ops
                for v in o.attrs.values()
                if isinstance(v, np.ndarray)
            )
        )

    @property
    def n_relus(self) -> int:
        """Number of scalar ReLU/LeakyReLU units (the binaries of an exact MILP)."""
        return int(
            sum(
                self.graph.value(o.outputs[0]).size
                for o in self.graph.ops
                if o.op in ("relu", "leaky_relu")
            )
        )

    def smooth_ops(self) -> list[str]:
        """Ids of ops with no exact piecewise-linear model (sigmoid, tanh, softmax, ...)."""
        return [o.id for o in self.graph.ops if OPS[o.op].kind == "smooth"]

    # -------------------------------------------------------------- forward
    def forward(self, x: np.ndarray | Mapping[str, np.ndarray], *, all_outputs: bool = False):
        """Float64 reference forward pass.

        Parameters
        ----------
        x : array or mapping
            One sample (``input_shape``) or a batch ``(B, *input_shape)``; a dict
            ``{input name: array}`` for several inputs.
        all_outputs : bool
            Return a dict of every graph output instead of the first one.
        """
        feeds, single = as_batch(self.graph, x)
        res = interpret(self.graph, feeds)
        if single:
            res = {k: v[0] for k, v in res.items()}
        return res if all_outputs else res[self.graph.outputs[0]]

    __call__ = forward

    def run_onnxruntime(self, x: np.ndarray) -> np.ndarray:
        """The same forward pass in onnxruntime (the independent reference).

        Feeds the model in its own dtype and layout, one sample at a time when
        its batch dimension is fixed, and returns float64 with netopt's shapes.

        Raises
        ------
        OnnxImportError
            Where onnxruntime refuses the model or fails to run it (with its message).
        """
        import onnx

        feeds, single = as_batch(self.graph, x)
        if len(feeds) != 1:
            raise InputError("run_onnxruntime takes single-input networks")
        xb = next(iter(feeds.values()))
        if self._ort is None:
            sess = self._ort_session()
            m = onnx.load_from_string(self.onnx_bytes)
            inits = {i.name for i in m.graph.initializer}
            vi = next(i for i in m.graph.input if i.name not in inits)
            tt = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
            self._ort = (sess, vi.name, dims, dtype)
        sess, name, dims, dtype = self._ort
        shape = tuple(self.input_shape)

        def run(feed: np.ndarray) -> np.ndarray:
            try:
                return sess.run(None, {name: feed.astype(dtype)})[0]
            except Exception as e:  # onnxruntime's RuntimeException, InvalidArgument, ...
                raise OnnxImportError(
                    f"{self.source.name}: onnxruntime fails to run the model on an input of "
                    f"shape {feed.shape} ({_ort_message(e)}); netopt cannot check its results "
                    "against onnxruntime: fix or re-export the model"
                ) from e

        def as_sample(y: np.ndarray) -> np.ndarray:
            y = np.asarray(y, dtype=np.float64)
            if y.size != int(np.prod(self.output_shape)):
                raise OnnxImportError(
                    f"{self.source.name}: onnxruntime's output has shape {list(y.shape)} for "
                    f"one sample, but netopt computes {list(self.output_shape)}; the model's "
                    "shapes are inconsistent: fix or re-export it"
                )
            return y.reshape(self.output_shape)

        lead = (1,) if len(dims) == len(shape) + 1 else ()
        ys = None
        if lead and dims[0] is None and len(xb) > 1:
            # a symbolic batch: one run for all samples. netopt's semantics is the model's on
            # a batch of one, so where the batched run fails or its output does not split into
            # samples (a Reshape to [1, -1], a bias broadcast along the batch), run each
            # sample alone below
            try:
                y = np.asarray(run(xb), dtype=np.float64)
                if y.size == xb.shape[0] * int(np.prod(self.output_shape)):
                    ys = y.reshape(xb.shape[0], *self.output_shape)
            except OnnxImportError:
                pass
            if ys is not None:
                # a model that mixes the samples of a batch (a Softmax over axis 0, an
                # opset-11 Softmax coercing to 2-D at axis 0) gives each sample another
                # value alone: check the first sample by itself
                y0 = as_sample(run(xb[:1].reshape(lead + shape)))
                scale = max(1.0, float(np.max(np.abs(y0), initial=0.0)))
                with np.errstate(invalid="ignore"):
                    close = np.abs(ys[0] - y0) <= 1e-5 * scale
                if not np.all(close | (np.isnan(ys[0]) & np.isnan(y0)) | (ys[0] == y0)):
                    ys = None
        if ys is None:
            ys = np.stack([as_sample(run(s.reshape(lead + shape))) for s in xb])
        return ys[0] if single else ys

    # ----------------------------------------------------------------- torch
    def torch_module(
        self, dtype: torch.dtype | None = None, device: str | torch.device | None = None
    ):
        """The graph as a batched ``torch.nn.Module`` (see :mod:`netopt.ir.torch_module`).

        Parameters
        ----------
        dtype : torch.dtype, optional
            Parameter dtype (default float32).
        device : str or torch.device, optional
            Default: ``"cuda"`` when available, else ``"cpu"``.
        """
        from netopt.ir.torch_module import GraphModule

        return GraphModule(self.graph, dtype=dtype, device=device)

    # ------------------------------------------------------------------ info
    def layers(self) -> list[dict[str, Any]]:
        """One row per IR op: id, op, input and output shapes, parameters, ONNX origin."""
        rows = []
        for o in self.graph.ops:
            rows.append(
                {
                    "id": o.id,
                    "op": o.op,
                    "inputs": [self.graph.value(i).shape for i in o.inputs],
                    "output": self.graph.value(o.outputs[0]).shape,
                    "params": int(
                        sum(v.size for v in o.attrs.values() if isinstance(v, np.ndarray))
                    ),
                    "origin": f"{o.origin.op_type} '{o.origin.node}'" if o.origin else "",
                }
            )
        return rows

    def __repr__(self) -> str:
        return (
            f"<Network {self.source.name}: {len(self.graph.ops)} ops, input {self.input_shape}, "
            f"output {self.output_shape}, {self.n_relus} ReLUs>"
        )


def load(
    source: str | os.PathLike | onnx.ModelProto | bytes,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    passes: Sequence[Callable[[Graph], Graph]] | None = None,
) -> Network:
    """Import an ONNX model.

    Parameters
    ----------
    source : path, bytes or onnx.ModelProto
        The model.
    input_shapes : mapping, optional
        Per-sample shapes for inputs whose shape the file leaves symbolic.
    passes : sequence of callables, optional
        Graph rewrites to run (default :data:`netopt.ir.passes.DEFAULT_PASSES`;
        ``()`` keeps the converted graph as is).

    Returns
    -------
    Network

    Raises
    ------
    OnnxImportError, UnsupportedOpError
        With the file, node and op named, and what to do; also where onnxruntime refuses
        the model (with its message).

    Notes
    -----
    The onnxruntime session is made here, not on first use: netopt's results (certificates,
    counterexamples) are checked against onnxruntime, so a model it refuses (a float64 weight
    in a float32 Gemm, a string input, a rank-3 Gemm, ...) is refused at load rather than
    crashing ``netopt verify`` later. This adds about 2.5-7.5 ms to a load on the networks of
    ``benchmarks/perf/load_time.py`` (see benchmarks/RESULTS.md), and the session is kept for
    :meth:`Network.run_onnxruntime`. Two refusals do not make a model invalid: a file netopt
    reads by a documented convention onnxruntime does not know (OMLT's channel-first pooling
    kernels), and a valid node onnxruntime has no CPU kernel for (NOT_IMPLEMENTED, e.g. a
    float64 Conv). Such a model loads with a warning, and :meth:`Network.run_onnxruntime`
    raises onnxruntime's refusal.
    """
    from netopt.frontend import convert_model, read_model
    from netopt.frontend.loader import ort_deviation
    from netopt.ir.passes import DEFAULT_PASSES, run_passes

    passes = _check_load_arguments(input_shapes, passes)
    model, src = read_model(source)
    raw = convert_model(model, src, input_shapes=input_shapes)
    graph = run_passes(raw, tuple(DEFAULT_PASSES if passes is None else passes))
    net = Network(graph, model.SerializeToString(), raw)
    try:
        net._ort_sess = _make_ort_session(net.onnx_bytes, src.name)
    except OnnxImportError as e:
        why = ort_deviation(model) or _lacks_kernel(e)
        if why is None:
            raise
        log.warning("%s; netopt loads it anyway: %s", e, why)
        net._ort_refusal = str(e)
    return net


def _check_load_arguments(input_shapes: Any, passes: Any) -> tuple | None:
    """Refuse a malformed ``input_shapes`` or ``passes`` before the model is read.

    Returns
    -------
    tuple or None
        ``passes`` as a tuple (an iterator is read once, here).

    Raises
    ------
    InputError
        Naming the argument, the offending entry and the form expected.
    """
    if input_shapes is not None:
        if not isinstance(input_shapes, Mapping):
            raise InputError(
                f"input_shapes must be a mapping {{input name: (d1, d2, ...)}}, "
                f"got {type(input_shapes).__name__}"
            )
        for name, dims in input_shapes.items():
            ok = isinstance(dims, Sequence) and not isinstance(dims, str | bytes)
            ok = ok and all(
                isinstance(d, int | np.integer) and not isinstance(d, bool) and d > 0 for d in dims
            )
            if not ok:
                raise InputError(
                    f"input_shapes[{name!r}] = {dims!r}: expected a tuple of positive integers "
                    "(the per-sample shape, no batch dimension)"
                )
    if passes is None:
        return None
    if isinstance(passes, str | bytes) or not isinstance(passes, Iterable):
        raise InputError(f"passes must be a sequence of callables Graph -> Graph, got {passes!r}")
    passes = tuple(passes)
    for k, f in enumerate(passes):
        if not callable(f):
            raise InputError(f"passes[{k}] = {f!r} is not callable (a pass maps Graph -> Graph)")
    return passes


def _attr_signature(v: Any) -> Any:
    """What of an attribute must agree along a training path: an array's shape, else the value."""
    if isinstance(v, np.ndarray):
        return ("array", tuple(v.shape))
    return v


def check_same_architecture(nets: Sequence[Network]) -> None:
    """Refuse a sequence whose networks are not one architecture at different weights.

    Compared against ``nets[0]``: the IR input and output shapes, the number of ops, and per op
    (in graph order) its IR kind, input/output value shapes, attribute names, the shapes of array
    attributes (weights) and the values of the others (strides, pads, axes, ...).

    Raises
    ------
    InputError
        Naming the index of the first network that differs and what differs.
    """
    ref = nets[0]
    rg = ref.graph
    for i, net in enumerate(nets[1:], start=1):
        g = net.graph

        def refuse(what: str, i: int = i, net: Network = net) -> None:
            raise InputError(
                f"networks[{i}] ({net.source.name}) differs in architecture from networks[0] "
                f"({ref.source.name}): {what}. Surfing follows one architecture through "
                "training; pass checkpoints of the same model"
            )

        if tuple(net.input_shape) != tuple(ref.input_shape):
            refuse(f"input shape {net.input_shape} vs {ref.input_shape}")
        if tuple(net.output_shape) != tuple(ref.output_shape):
            refuse(f"output shape {net.output_shape} vs {ref.output_shape}")
        if len(g.ops) != len(rg.ops):
            refuse(f"{len(g.ops)} IR ops vs {len(rg.ops)}")
        for k, (a, b) in enumerate(zip(rg.ops, g.ops, strict=True)):
            where = f"op {k} ('{b.id}'" + (f", from {b.origin}" if b.origin else "") + ")"
            if a.op != b.op:
                refuse(f"{where} is '{b.op}' where networks[0] has '{a.op}'")
            sa = [rg.value(v).shape for v in (*a.inputs, *a.outputs)]
            sb = [g.value(v).shape for v in (*b.inputs, *b.outputs)]
            if sa != sb:
                refuse(f"{where} '{b.op}' has value shapes {sb} where networks[0] has {sa}")
            if set(a.attrs) != set(b.attrs):
                refuse(
                    f"{where} has attributes {sorted(b.attrs)} where networks[0] has "
                    f"{sorted(a.attrs)}"
                )
            for name in a.attrs:
                x, y = _attr_signature(a.attrs[name]), _attr_signature(b.attrs[name])
                same = x == y if not isinstance(x, np.ndarray) else np.array_equal(x, y)
                if not same:
                    refuse(f"{where} attribute '{name}' is {y} where networks[0] has {x}")
