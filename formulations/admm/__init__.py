r"""ADMM (Wong & Kolter 2017): the network split into a chain of graph constraints, in torch.

* :mod:`.splitting` - the split (:class:`~.splitting.SplitModel`: blocks of a linear operator
  and one activation; numpy / scipy only);
* :mod:`.iterations` - the ADMM iterations (updates (8)-(12)), batched in torch;
* :mod:`.projections` - closed-form projections onto the graphs of ReLU, LeakyReLU, max-pool;
* :mod:`.linops` - linear operators and the solves with :math:`I + W^\top W` (dense inverse or
  Woodbury, FFT for circular convolutions, conjugate gradients in general).

Importing this package does not import torch: the iterations are imported when a solve runs.

Options (besides the batched methods' own, :mod:`netopt.formulations._batch`): ``rho`` (1),
``order`` (``"backward"``, ``"forward"``, ``"alternating"``, ``"jacobi"``), ``balance`` (True),
``balance_every`` (50), ``mu`` (10), ``tau`` (2), ``eps_abs`` (1e-6), ``eps_rel`` (1e-5),
``cg_iters`` (50), ``cg_tol`` (1e-10), ``newton_iters`` (20), ``eval_every`` (10),
``residual_every`` (10: residuals, stopping test and histories every this many iterations; the
ADMM history keeps every ``history_every``-th of those), ``refresh_every`` (50: exact
:math:`W z` products, which CG otherwise carries along).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from netopt.errors import FormulationError, InputError
from netopt.formulations import register
from netopt.formulations._batch import BatchedFormulation, check_batch
from netopt.formulations.admm.splitting import (
    _ACTIVATIONS,
    _LINEAR,
    Block,
    LinearOperator,
    SplitModel,
    _compose,
    _pool_windows,
)
from netopt.ir import Graph, Op
from netopt.ir.chain import chain_refusals, split_chain
from netopt.options import Check, choice, flag, integer, number
from netopt.problems import Feasibility, Problem

__all__ = ["ADMM", "SplitModel", "Block", "LinearOperator"]


def _refusal(op: Op) -> str | None:
    """ADMM's reason for an op with no graph projection (None: the generic checks decide)."""
    if op.op not in _LINEAR and op.op not in _ACTIVATIONS:
        return f"ADMM has no graph projection for '{op.op}'"
    return None


@register("admm")
class ADMM(BatchedFormulation):
    """The ADMM splitting (Wong & Kolter 2017) as a :class:`SplitModel`, iterated in torch.

    A chain network of linear ops and ReLU / LeakyReLU / max-pool activations; every other op
    (smooth activations, residual ``add``, ``concat``) is refused by :meth:`check_support`
    naming the node, with the advice to use a gradient method (``"adam"``).
    """

    name = "admm"
    model_type = "SplitModel"
    support_verb = "split"
    support_hint = "Use a gradient method instead: prob.solve('adam')."
    engine_options: ClassVar[tuple[str, ...]] = (
        "rho",
        "order",
        "balance",
        "balance_every",
        "mu",
        "tau",
        "eps_abs",
        "eps_rel",
        "cg_iters",
        "cg_tol",
        "newton_iters",
        "eval_every",
        "residual_every",
        "refresh_every",
    )
    engine_checks: ClassVar[dict[str, Check]] = {
        "rho": number(low=0, strict=True, none=False),
        # the orders of netopt.formulations.admm.iterations.ORDERS (that module imports torch)
        "order": choice("backward", "forward", "alternating", "jacobi"),
        "balance": flag,
        "balance_every": integer(low=1, none=False),
        "mu": number(low=0, strict=True, none=False),
        "tau": number(low=0, strict=True, none=False),
        "eps_abs": number(low=0, none=False),
        "eps_rel": number(low=0, none=False),
        "cg_iters": integer(low=0, none=False),
        "cg_tol": number(low=0, none=False),
        "newton_iters": integer(low=0, none=False),
        "eval_every": integer(low=1, none=False),
        "residual_every": integer(low=1, none=False),
        "refresh_every": integer(low=0, none=False),
    }

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        return chain_refusals(
            graph,
            _ACTIVATIONS,
            linear=_LINEAR,
            refusal=_refusal,
            method="ADMM",
            branches=True,
        )

    def build(self, problem: Problem | list[Problem], bounds: Any = None) -> SplitModel:
        """Split the network of ``problem`` (or of a list of problems on one network).

        Raises
        ------
        FormulationError
            An op that cannot be split (naming the node), or overlapping max-pool windows.
        InputError
            Problems on different networks or of different kinds, or a domain with linear
            constraints or integer coordinates (no closed-form projection).
        """
        problems = check_batch(problem, "admm")
        if isinstance(problems[0], Feasibility):
            raise FormulationError(
                "formulation 'admm' has no output update (proximal map) for a Feasibility "
                "problem's max-violation objective; use prob.solve('adam'), or prob.solve('milp') "
                "for a proof"
            )
        net = problems[0].net
        graph = net.graph
        self.require_support(graph, f" of {net.source.name}")
        n0 = int(np.prod(net.input_shape))
        blocks = [Block(0, LinearOperator("identity", n0, n0, np.zeros(n0)), "box", node="<input>")]
        for layer in split_chain(graph, f" of {net.source.name}"):
            lin = _compose(graph, layer)
            o = layer.activation
            if o is None:
                blocks.append(Block(len(blocks), lin, "linear", node=layer.node))
            elif o.op == "maxpool2d":
                windows = _pool_windows(o, graph.value(o.inputs[0]).shape)
                blocks.append(Block(len(blocks), lin, "maxpool", windows=windows, node=o.id))
            else:
                alpha = float(o.attrs.get("alpha", 0.0)) if o.op == "leaky_relu" else 0.0
                blocks.append(Block(len(blocks), lin, o.op, alpha=alpha, node=o.id))
        return SplitModel(
            blocks,
            problems,
            tuple(net.input_shape),
            tuple(net.output_shape),
            meta={"network": net.source.name},
        )

    def iterate(
        self,
        model: SplitModel,
        obj: Any,
        x0: Any,
        f: Any,
        common: dict[str, Any],
        options: dict[str, Any],
        dtype: Any,
        device: Any,
    ) -> tuple[dict[str, Any], str]:
        import torch

        from netopt.formulations.admm.iterations import ORDERS, ADMMOptions, ADMMRunner

        order = options.get("order", "backward")
        if order not in ORDERS:
            raise InputError(f"order must be one of {ORDERS}, got {order!r}")
        aopts = ADMMOptions(
            **common, **{k: options[k] for k in self.engine_options if k in options}
        )
        runner = ADMMRunner(model, obj, aopts, dtype, device)
        tl = options.get("time_limit")
        deadline = None if tl is None else time.perf_counter() + float(tl)
        with torch.no_grad():
            out = runner.run(x0, f, deadline)
        return out, f"admm ({aopts.order})"
