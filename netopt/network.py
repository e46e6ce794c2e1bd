"""The user-facing :class:`Network`: an IR graph plus what it came from."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.errors import InputError
from netopt.interpret import as_batch, interpret
from netopt.ir import Graph
from netopt.ops import OPS

if TYPE_CHECKING:  # pragma: no cover
    import onnx
    import torch

__all__ = ["Network", "load"]


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
        self._ort = None

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
        """
        import onnx
        import onnxruntime as ort

        feeds, single = as_batch(self.graph, x)
        if len(feeds) != 1:
            raise InputError("run_onnxruntime takes single-input networks")
        xb = next(iter(feeds.values()))
        if self._ort is None:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            sess = ort.InferenceSession(self.onnx_bytes, so, providers=["CPUExecutionProvider"])
            m = onnx.load_from_string(self.onnx_bytes)
            inits = {i.name for i in m.graph.initializer}
            vi = next(i for i in m.graph.input if i.name not in inits)
            tt = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
            self._ort = (sess, vi.name, dims, dtype)
        sess, name, dims, dtype = self._ort
        shape = tuple(self.input_shape)
        if len(dims) == len(shape) + 1 and dims[0] is None:
            y = sess.run(None, {name: xb.astype(dtype)})[0]
            ys = np.asarray(y, dtype=np.float64).reshape(xb.shape[0], *self.output_shape)
        else:
            lead = (1,) if len(dims) == len(shape) + 1 else ()
            ys = np.stack(
                [
                    np.asarray(
                        sess.run(None, {name: s.reshape(lead + shape).astype(dtype)})[0],
                        dtype=np.float64,
                    ).reshape(self.output_shape)
                    for s in xb
                ]
            )
        return ys[0] if single else ys

    # ----------------------------------------------------------------- torch
    def torch_module(
        self, dtype: torch.dtype | None = None, device: str | torch.device | None = None
    ):
        """The graph as a batched ``torch.nn.Module`` (see :mod:`netopt.torch_module`).

        Parameters
        ----------
        dtype : torch.dtype, optional
            Parameter dtype (default float32).
        device : str or torch.device, optional
            Default: ``"cuda"`` when available, else ``"cpu"``.
        """
        from netopt.torch_module import GraphModule

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
        Graph rewrites to run (default :data:`netopt.passes.DEFAULT_PASSES`;
        ``()`` keeps the converted graph as is).

    Returns
    -------
    Network

    Raises
    ------
    OnnxImportError, UnsupportedOpError
        With the file, node and op named, and what to do.
    """
    from netopt.frontend import convert_model, read_model
    from netopt.passes import DEFAULT_PASSES, run_passes

    model, src = read_model(source)
    raw = convert_model(model, src, input_shapes=input_shapes)
    graph = run_passes(raw, tuple(DEFAULT_PASSES if passes is None else passes))
    return Network(graph, model.SerializeToString(), raw)
