"""The registry of torch rules, one per IR op (:data:`TORCH_RULES`, :func:`torch_rule`), and the
helpers the rules share; :mod:`netopt.ir.torch_module` (the design, most rules, the module
that runs a graph) and :mod:`netopt.ir.torch_windows` (convolution and pooling) register into
it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from netopt.ir.graph import Op
from netopt.ir.ops import OPS

__all__ = ["TORCH_RULES", "RuleBuilder", "Shape", "torch_rule"]

Shape = tuple[int, ...]
#: A builder: ``(op, input sample shapes, output sample shape) -> module`` whose
#: ``forward(*xs)`` maps batched ``(B, *shape)`` inputs to the batched output.
RuleBuilder = Callable[[Op, Sequence[Shape], Shape], nn.Module]

#: IR op name -> builder of the op's torch module.
TORCH_RULES: dict[str, RuleBuilder] = {}


def torch_rule(name: str) -> Callable[[RuleBuilder], RuleBuilder]:
    """Register the torch builder of the IR op ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`netopt.ir.ops.OPS`.

    Raises
    ------
    RuntimeError
        At import, if ``name`` is no IR op or already has a rule.
    """

    def deco(fn: RuleBuilder) -> RuleBuilder:
        if name not in OPS:
            raise RuntimeError(f"torch rule for '{name}', which is not an IR op")
        if name in TORCH_RULES:
            raise RuntimeError(f"torch rule for IR op '{name}' registered twice")
        TORCH_RULES[name] = fn
        return fn

    return deco


def _f64(a: Any) -> torch.Tensor:
    """A read-only IR weight as a fresh float64 tensor (cast to the module dtype later)."""
    return torch.tensor(np.asarray(a, dtype=np.float64))


def _pair(v: Sequence[Any]) -> tuple[int, int]:
    a, b = (int(t) for t in v)
    return a, b
