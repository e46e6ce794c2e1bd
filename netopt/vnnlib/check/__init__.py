"""Deciding VNN-LIB properties: "sat" with a counterexample that onnxruntime confirms, or "unsat".

Each disjunct of the property's counterexample region is decided in turn, cheapest first:
sampled inputs (a counterexample found by a forward pass), then symbolic (CROWN) bounds on the
output constraints ``C y`` (an "unsat" proof when a row's lower bound exceeds its limit), then
branch and bound (:mod:`netopt.bounds.branch`: input or ReLU splits, every "unsat" with a proof
``netopt verify`` re-checks), then the exact MILP (a witness, or infeasibility attested by the
solver). A property of several disjuncts over a wide input (MNIST's
one disjunct per class) is first attacked as a whole (:func:`netopt.attack.falsify_disjuncts`), so
that a counterexample of its last disjunct is not found only after the MILP of the first.

The package: this module holds :func:`check` (options, the time limit, Ctrl-C), which hands the
property to the driver of :mod:`~netopt.vnnlib.check.decide` (the disjuncts in turn, phase by
phase); :mod:`~netopt.vnnlib.check.evidence` holds :class:`CheckResult` and the onnxruntime
confirmation of a counterexample, :mod:`~netopt.vnnlib.check.attacks` the falsifier's and the
sampler's candidates, :mod:`~netopt.vnnlib.check.progress` the events and statistics reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from netopt.control import Deadline, sigint_guard
from netopt.errors import OptionError
from netopt.network import Network

# the constants of the phases, importable from here as before
from netopt.vnnlib.check.decide import BAB_FULL_DIM as BAB_FULL_DIM
from netopt.vnnlib.check.decide import BAB_SHARE as BAB_SHARE
from netopt.vnnlib.check.decide import LOW_DIM_ATTACK as LOW_DIM_ATTACK
from netopt.vnnlib.check.decide import MILP_MIN_SECONDS as MILP_MIN_SECONDS
from netopt.vnnlib.check.decide import PROOF_MARGIN as PROOF_MARGIN
from netopt.vnnlib.check.decide import _check
from netopt.vnnlib.check.evidence import ORT_TOL as ORT_TOL
from netopt.vnnlib.check.evidence import CheckResult
from netopt.vnnlib.property import VnnlibProperty
from netopt.vnnlib.reader import load_vnnlib

__all__ = ["check", "CheckResult"]


def _check_device(device: Any) -> None:
    """An OptionError now, not in a phase, for a device torch does not see (or without
    torch)."""
    from netopt.errors import InputError

    try:
        from netopt.torch_utils import resolve_device

        resolve_device(device)
    except ImportError:
        raise OptionError(
            f"check: device={device!r} needs torch (pip install 'netopt[torch]'), or leave it out"
        ) from None
    except InputError as e:
        raise OptionError(f"check: {e}") from None


def check(
    net: Network,
    prop: VnnlibProperty | str | os.PathLike,
    *,
    time_limit: float | None = None,
    n_samples: int = 512,
    seed: int = 0,
    bab_time: float = 60.0,
    attack_time: float = 5.0,
    progress: Callable[[dict], Any] | None = None,
    device: Any = None,
    **solve_options: Any,
) -> CheckResult:
    """Decide a VNN-LIB property on ``net``.

    Parameters
    ----------
    net : Network
    prop : VnnlibProperty or path
    time_limit : float, optional
        Seconds for the whole property: one :class:`~netopt.control.Deadline` for every
        disjunct. Each phase of a disjunct takes its budget from what remains, the MILP of a
        disjunct gets at most all of it; a disjunct not reached when it runs out is
        ``"not tried"`` (``stopped == "time limit"``).
    n_samples : int
        Random inputs tried per disjunct before any solver.
    bab_time : float
        Seconds per disjunct for branch and bound (:func:`netopt.bounds.branch.branch_and_bound`:
        input splitting up to ``INPUT_SPLIT_MAX_DIM`` inputs, ReLU splitting beyond) before
        the MILP, at most ``BAB_SHARE`` of the time left; 0 skips it.
    attack_time : float
        Seconds for the falsifier (at most a fifth of the time left) on inputs of more than
        ``BAB_FULL_DIM`` coordinates (fewer go to input splitting); 0 skips it. A property of
        several box disjuncts gets one run on all of them at once, before any bound
        (:func:`netopt.attack.falsify_disjuncts`); otherwise each disjunct gets one after its
        bounds fail to decide it (:func:`netopt.attack.falsify`). Needs torch unless the network
        is a chain of affine maps and ReLUs.
    progress : callable, optional
        Receives one event (a dict, see :func:`netopt.control.emit`) as each phase of each
        disjunct starts: ``phase`` (``"sampling"``, ``"crown"``, ``"attack"``, ``"branch and bound"``,
        ``"milp: <its phase>"``), ``elapsed`` since the check started, ``disjunct`` (1-based)
        and ``disjuncts``; the MILP's events carry its ``incumbent``/``bound``/``gap``.
    device : str, optional
        The torch device of the attack and of branch and bound's torch searches (ReLU
        splitting; input splitting's on a GPU): default CUDA when torch sees one. On a CPU,
        the attack on a chain of affine maps and ReLUs and input splitting run in numpy
        whatever it is. Needs torch. Every claim is re-checked in float64 whatever it is.
    **solve_options
        Passed to :meth:`Feasibility.solve` (solver, bounds, tighten, gap, threads, ...).

    A first Ctrl-C (or :func:`netopt.control.request_interrupt`) stops the check between or
    inside disjuncts: the disjunct being decided is ``"unknown"``, the rest ``"not tried"``,
    ``stopped == "interrupted"``; a counterexample already found is kept.
    """
    from netopt.solvers._base import validate_common_options

    # a negative or NaN limit would mean no limit at all further down: refuse it here
    validate_common_options(
        "check",
        {
            "time_limit": time_limit,
            **{
                k: v for k, v in solve_options.items() if k in ("gap", "abs_gap", "threads", "seed")
            },
        },
    )
    if not (isinstance(bab_time, int | float) and np.isfinite(bab_time) and bab_time >= 0):
        raise OptionError(f"check: bab_time must be a finite number >= 0, got {bab_time!r}")
    if not (isinstance(attack_time, int | float) and np.isfinite(attack_time) and attack_time >= 0):
        raise OptionError(f"check: attack_time must be a finite number >= 0, got {attack_time!r}")
    if device is not None:
        _check_device(device)
    deadline = Deadline(time_limit)
    n_in, n_out = int(np.prod(net.input_shape)), int(np.prod(net.output_shape))
    if not isinstance(prop, VnnlibProperty):
        prop = load_vnnlib(prop, n_inputs=n_in, n_outputs=n_out)
    elif (prop.n_inputs, prop.n_outputs) != (n_in, n_out):
        from netopt.errors import InputError

        raise InputError(
            f"the property has {prop.n_inputs} inputs and {prop.n_outputs} outputs; the network "
            f"{net.source.name} has {n_in} and {n_out}"
        )
    with sigint_guard():
        # the guard forgets the request when it ends: what it stopped is recorded in `stopped`
        res = _check(
            net,
            prop,
            deadline,
            n_samples,
            seed,
            bab_time,
            attack_time,
            progress,
            solve_options,
            device,
        )
    res.seconds = deadline.elapsed()
    tried = {info["disjunct"]: info["verdict"] for info in res.details}
    res.disjunct_status = [tried.get(k, "not tried") for k in range(len(prop.disjuncts))]
    return res
