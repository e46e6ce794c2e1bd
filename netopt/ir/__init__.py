"""The intermediate representation: a typed DAG of per-sample ops, and what runs on it.

* :mod:`netopt.ir.graph` -- :class:`Graph`, :class:`Op`, :class:`Value` (the data structure);
* :mod:`netopt.ir.ops` -- the op vocabulary, one spec per op with its rules (shape inference,
  float64 forward, vector-Jacobian product, sparse matrix of a linear op, interval bounds,
  CROWN relaxation);
* :mod:`netopt.ir.interpret` -- the float64 reference interpreter and its reverse pass;
* :mod:`netopt.ir.passes` -- graph rewrites;
* :mod:`netopt.ir.chain` -- a chain graph cut into layers (composed linear map + activation),
  and the ops that keep a graph from being one, for the chain methods;
* :mod:`netopt.ir.torch_module` -- the graph as a batched ``torch.nn.Module`` (imports torch).
"""

from __future__ import annotations

from netopt.ir.graph import Graph, Op, Origin, SourceInfo, Value, freeze_attrs, sanitize

__all__ = ["Origin", "Value", "Op", "SourceInfo", "Graph", "sanitize", "freeze_attrs"]
