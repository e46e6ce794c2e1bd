"""The IR op vocabulary: one :class:`OpSpec` per op, holding every rule the core knows for it.

Every IR op maps per-sample tensors to one per-sample tensor. The numpy forward
functions take arrays with one extra leading batch axis ``B`` and are the
reference semantics of the op: the interpreter, the torch module and every
formulation must agree with them.

The vocabulary is kept small on purpose so that every formulation can cover it.
Each op is classified as

* ``linear`` — affine in its inputs (``affine``, ``scale``, ``conv2d``,
  ``avgpool2d``, ``add``, ``concat``, ``pad``, and the index remaps
  ``reshape``/``transpose``/``identity``);
* ``piecewise_linear`` — ``relu``, ``leaky_relu``, ``maxpool2d``: exact in a MILP;
* ``smooth`` — ``sigmoid``, ``tanh``, ``softmax``, ``log_softmax``: first-order
  methods only, unless a formulation has a rule.

An op is one class in the module of its family (:mod:`~netopt.ir.ops.linear`,
:mod:`~netopt.ir.ops.index`, :mod:`~netopt.ir.ops.conv`,
:mod:`~netopt.ir.ops.activations`, :mod:`~netopt.ir.ops.smooth`), registered with
:func:`register_op`; its static methods are its rules (see :class:`OpSpec`). The
interpreter, the reverse pass, the interval bounds and CROWN dispatch through
:data:`OPS`; the torch rules live in :mod:`netopt.ir.torch_module` (torch is optional).
"""

from __future__ import annotations

# the families register their ops into OPS when imported (spec holds the registry, so a family
# imports spec, never this package: no import cycle)
from netopt.ir.ops import activations, conv, index, linear, smooth  # noqa: F401
from netopt.ir.ops.conv import pool_output_size, window_index
from netopt.ir.ops.spec import (
    KINDS,
    OPS,
    RULES,
    OpSpec,
    check_arity,
    is_linear,
    linear_map,
    register_op,
    same_shape,
    size,
)

__all__ = [
    "OpSpec",
    "OPS",
    "register_op",
    "pool_output_size",
    "KINDS",
    "RULES",
    "linear_map",
    "window_index",
    "is_linear",
    "check_arity",
    "same_shape",
    "size",
]
