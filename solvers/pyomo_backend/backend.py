"""The ``pyomo`` backend: any MILP solver through Pyomo, on a readable model."""

from __future__ import annotations

import importlib
import logging
import shutil
import time
from typing import Any

import numpy as np

from netopt.errors import (
    IncompatibleBackendError,
    OptionError,
    SolveError,
    SolverUnavailableError,
)
from netopt.model import LinearModel
from netopt.solvers import register
from netopt.solvers._base import Backend, RawSolution, check_options
from netopt.solvers.pyomo_backend.model import _scan_vars, to_pyomo
from netopt.solvers.pyomo_backend.runners import RUNNERS
from netopt.solvers.pyomo_backend.specs import (
    _KEEPS_POINT,
    _RAW_LIMITS,
    _STATUS,
    ALIASES,
    PIP,
    SOLVERS,
    SolverSpec,
    _pyomo,
)

log = logging.getLogger("netopt")

__all__ = ["PyomoBackend"]


def _same_value(requested: Any, stored: Any) -> bool:
    """Whether a solver stored an option as asked (``nan`` kept as nan, or ``1.5`` truncated, is not)."""
    if isinstance(stored, str) or isinstance(requested, str):
        return str(requested) == str(stored)
    try:
        return float(requested) == float(stored)
    except (TypeError, ValueError):
        return requested == stored


@register("pyomo")
class PyomoBackend(Backend):
    """Any MILP solver through Pyomo, on a readable model (see :func:`to_pyomo`).

    Options: ``time_limit`` (s), ``gap`` (relative MIP gap, default 1e-6 as the HiGHS backend),
    ``abs_gap``, ``threads``, ``seed``, ``verbose`` (the solver's log), ``progress`` (called once
    after the solve with incumbent, bound, gap, nodes and time: Pyomo exposes no solver callback),
    ``options``: ``{"solver": key}`` picks a solver of :data:`SOLVERS` (``"highs"`` by default,
    ``"scip"``, ``"cbc"``, ``"glpk"``; aliases ``"appsi_highs"``, ``"scip_direct"``), every other
    entry is passed to that solver under its own name (e.g. ``{"solver": "scip",
    "limits/nodes": 100}``). The common options are translated to each solver's names (see
    ``SolverSpec.option_names``). A model start (``model.start``) is handed over as a MIP start
    when the solver takes one.

    The class declares the union of its solvers' features; :meth:`solve` refuses a model that the
    chosen solver cannot take (a MIQP on HiGHS, for one) with an
    :class:`~netopt.errors.IncompatibleBackendError` naming the solvers that can.

    Raises
    ------
    SolverUnavailableError
        Pyomo, or the chosen solver's package or executable, is missing, or the solver name is
        unknown; the message gives the install command.
    IncompatibleBackendError
        An option name the chosen solver does not know (HiGHS and SCIP are asked before the
        model is built).
    OptionError
        An invalid common option, or a value HiGHS or SCIP rejects or would not store as given
        (``seed=-1``, ``nan``, ``1.5`` for an integer option), before the model is built.
    SolveError
        The solver raised inside Pyomo.

    Notes
    -----
    What comes back is only what the solver attests: see :meth:`solve_pyomo`. For HiGHS (through
    APPSI, which ignores the status HiGHS's ``run()`` returns) the run is checked here: a failed
    run (``kError`` or an unset model status) is status "error" with HiGHS's log lines. Before
    handing HiGHS to Pyomo, its banner is kept off stdout and its process-wide scheduler is made
    to accept the ``threads`` asked for (:mod:`netopt.solvers.highs_session`).
    """

    name = "pyomo"
    features = frozenset({"integer", "quadratic", "quadratic_integer", "dual_bound", "start"})
    packages = ("pyomo",)
    pip = PIP

    # ----------------------------------------------------------------- solver choice
    @staticmethod
    def spec(solver: str) -> SolverSpec:
        """The :class:`SolverSpec` of ``solver`` (or an alias of it)."""
        key = ALIASES.get(str(solver).lower(), str(solver).lower())
        if key not in SOLVERS:
            raise SolverUnavailableError(
                f"backend 'pyomo': unknown solver {solver!r}; netopt drives "
                f"{', '.join(sorted(SOLVERS))} through Pyomo ({', '.join(f'{k}: {s.install}' for k, s in SOLVERS.items())}). "
                "For another Pyomo solver, build the model with netopt.solvers.pyomo_backend.to_pyomo "
                "and call pyomo's SolverFactory yourself."
            )
        return SOLVERS[key]

    @classmethod
    def solver_available(cls, solver: str) -> tuple[bool, str]:
        """Whether ``solver`` can run through Pyomo here (and, if not, why and how to fix it)."""
        try:
            s = cls.spec(solver)
        except SolverUnavailableError as e:
            return False, str(e)
        ok, why = cls.available()
        if not ok:
            return False, why
        if s.package:
            try:
                importlib.import_module(s.package)
            except ImportError as e:
                return (
                    False,
                    f"solver '{s.name}' needs the Python package {s.package} ({e}): {s.install}",
                )
        if s.executable and shutil.which(s.executable) is None:
            return (
                False,
                f"solver '{s.name}' needs the executable '{s.executable}' on PATH: {s.install}",
            )
        if s.api == "v2":
            _pyomo()  # importing pyomo.environ registers the solver plugins
            from pyomo.contrib.solver.common.factory import SolverFactory

            if s.pyomo_name not in SolverFactory:
                import pyomo

                return False, (
                    f"solver '{s.name}' needs Pyomo's '{s.pyomo_name}' interface, which Pyomo "
                    f"{pyomo.version.version} lacks: {s.install}"
                )
            avail = SolverFactory(s.pyomo_name).available()
        elif s.api == "appsi":
            from pyomo.contrib.appsi.solvers import Highs

            avail = Highs().available()
        else:
            avail = True
        if not avail:  # e.g. a package too old for Pyomo's interface (BadVersion)
            return (
                False,
                f"Pyomo reports solver '{s.name}' as {avail}: {s.install} (a recent version)",
            )
        return True, ""

    @classmethod
    def installed_solvers(cls) -> list[str]:
        """Keys of :data:`SOLVERS` that can run here."""
        return [k for k in SOLVERS if cls.solver_available(k)[0]]

    def _check_solver(self, s: SolverSpec, model: LinearModel) -> None:
        need = set()
        if model.is_mip:
            need.add("integer")
        if model.is_quadratic:
            need.add("quadratic_integer" if model.is_mip else "quadratic")
        missing = need - s.features
        if missing:
            able = [k for k, o in SOLVERS.items() if need <= o.features]
            raise IncompatibleBackendError(
                f"backend 'pyomo': solver '{s.name}' cannot solve a model with "
                f"{', '.join(sorted(missing))}; Pyomo solvers that can: "
                f"{', '.join(able) or 'none'} (options={{'solver': ...}}), or solver='gurobi'"
            )

    # ------------------------------------------------------------------------ solve
    def solve(self, model: LinearModel, **opts: Any) -> RawSolution:
        """Build :func:`to_pyomo` of ``model`` and solve it (see the class docstring)."""
        check_options(self.name, opts)
        self.require()
        self.check_model(model)
        extra = dict(opts.get("options") or {})
        s = self.spec(extra.pop("solver", "highs"))
        ok, why = self.solver_available(s.name)
        if not ok:
            raise SolverUnavailableError(f"backend 'pyomo': {why}")
        self._check_solver(s, model)
        # every option the solver will get, checked before the (possibly long) build
        self._validate(s, *self._native_options(s, opts, extra))
        t0 = time.perf_counter()
        pm = to_pyomo(model)
        build = time.perf_counter() - t0
        log.debug("pyomo: built the model in %.3f s", build)
        raw = self.solve_pyomo(pm, model, **opts)
        raw.extra["build_seconds"] = build
        return raw

    def solve_pyomo(self, pm: Any, model: LinearModel, **opts: Any) -> RawSolution:
        """Solve a model made by :func:`to_pyomo` (possibly with constraints of the user's).

        Parameters
        ----------
        pm : pyomo ConcreteModel
            ``to_pyomo(model)``, with anything added.
        model : LinearModel
            The model it came from (for the column order, integrality and the start).
        **opts
            As :meth:`solve`.

        Returns
        -------
        RawSolution
            ``x`` is the full vector in ``model``'s column order. The status comes from the
            solver's termination condition (see ``_STATUS``): a bound only from a run that ended
            optimal or at a limit and whose solver reports one; a failed or undetermined run
            ("error", "unknown", "solverFailure", ...) gives status "error" with the condition and
            no point, bound or claim; ``infeasibleOrUnbounded`` is "infeasible" only when every
            variable of ``pm`` has finite bounds, else "unknown".
        """
        check_options(self.name, opts)
        extra = dict(opts.get("options") or {})
        s = self.spec(extra.pop("solver", "highs"))
        ok, why = self.solver_available(s.name)
        if not ok:
            raise SolverUnavailableError(f"backend 'pyomo': {why}")
        native, origin = self._native_options(s, opts, extra)
        self._validate(s, native, origin)
        verbose = bool(opts.get("verbose", False))
        columns = pm.netopt_columns
        warm = model.start is not None and model.is_mip and "start" in s.features
        if warm:
            for v, x0 in zip(
                columns, np.asarray(model.start, dtype=np.float64).tolist(), strict=True
            ):
                v.set_value(x0, skip_validation=True)
        t0 = time.perf_counter()
        run = RUNNERS[s.api]
        try:
            out = run(s, pm, native, verbose, warm)
        except (SolverUnavailableError, IncompatibleBackendError, SolveError):
            raise
        except Exception as e:  # a solver failing inside Pyomo: say which and how
            raise SolveError(
                f"backend 'pyomo': solver '{s.name}' failed ({type(e).__name__}: {e}); "
                "rerun with verbose=True to see its log"
            ) from e
        dt = time.perf_counter() - t0
        tc = out["tc"]
        status, note = self._status(s, out, pm)
        x = obj = bound = None
        if out["has_x"] and status in _KEEPS_POINT:
            vals = [v.value for v in columns]
            # a column in no row and not in the objective is not sent to some solvers: any value
            # within its bounds is optimal, take the one nearest 0
            miss = [j for j, v in enumerate(vals) if v is None]
            x = np.asarray([0.0 if v is None else v for v in vals], dtype=np.float64)
            if miss:
                x[miss] = np.clip(0.0, model.lb[miss], model.ub[miss])
                it = model.integer[miss]
                x[np.asarray(miss)[it]] = np.ceil(x[np.asarray(miss)[it]])
            obj = out["objective"]
            if obj is None or not np.isfinite(obj):
                pyo = _pyomo()
                active = next(pm.component_data_objects(pyo.Objective, active=True))
                obj = float(pyo.value(active))
            if not (np.isfinite(obj) and np.all(np.isfinite(x))):
                x = obj = None
        if status in ("optimal", "time_limit"):
            # the user may have added integer variables to pm: judge the model the solver saw
            if model.is_mip or _scan_vars(pm)[0]:
                b = out["bound"]
                bound = float(b) if b is not None and np.isfinite(b) else None
            elif status == "optimal" and obj is not None:
                # an LP's optimum is its bound (duality); a limited LP's incumbent bounds nothing
                # (APPSI reports it as the bound then)
                bound = obj
        progress = opts.get("progress")
        if progress is not None:
            gap = (
                abs(obj - bound) / max(1.0, abs(obj))
                if obj is not None and bound is not None
                else None
            )
            progress(
                {"incumbent": obj, "bound": bound, "gap": gap, "nodes": out["nodes"], "time": dt}
            )
        msg = f"{s.name} via Pyomo: {tc}"
        if out.get("raw") and status != "optimal":
            msg += f" ({s.name} status {out['raw']})"
        if note:
            msg += f"; {note}"
        if out.get("message"):
            msg += f" ({out['message']})"
        if status == "error" and out.get("log_tail"):
            msg += f" (log: {out['log_tail']})"
        if status == "error":
            log.warning("backend 'pyomo': %s", msg)
        raw = RawSolution(
            status, x, obj, bound, out["nodes"], dt, msg, f"{s.name} {out['version']}"
        )
        raw.extra["pyomo_solver"] = s.name
        raw.extra["termination_condition"] = tc
        if out.get("tolerances"):
            raw.extra["tolerances"] = out["tolerances"]
        return raw

    @staticmethod
    def _status(s: SolverSpec, out: dict[str, Any], pm: Any) -> tuple[str, str]:
        """netopt's status of a finished run, and a note on how it was decided."""
        tc = out["tc"]
        if out.get("failed"):
            return "error", "the solver's run failed: nothing it reports is used"
        status = _STATUS.get(tc, "error")
        if tc == "unknown" and (s.name, out.get("raw")) in _RAW_LIMITS:
            return "time_limit", f"stopped by the solver's {out['raw']} limit"
        if tc == "infeasibleOrUnbounded":
            # with every variable bounded (finitely, in the solver's sense) the objective cannot
            # be unbounded, so the model is infeasible; otherwise nothing is known
            if _scan_vars(pm)[1]:
                return "infeasible", "every variable is bounded, so it is infeasible"
            return "unknown", "infeasible or unbounded, undecided (a variable is unbounded)"
        if status == "error":
            return status, "the run failed or ended undetermined: nothing it reports is used"
        return status, ""

    @staticmethod
    def _native_options(
        s: SolverSpec, opts: dict[str, Any], extra: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The solver's own option names and values (common options translated, ``extra`` as is),
        and, for each translated one, the common option it came from."""
        common = {k: opts.get(k) for k in ("time_limit", "gap", "abs_gap", "threads", "seed")}
        if common["gap"] is None:
            common["gap"] = 1e-6  # as the HiGHS backend: results agree across backends to ~1e-6
        native: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for k, v in common.items():
            if v is None:
                continue
            if k not in s.option_names:
                log.warning("pyomo: solver '%s' has no option for %s; ignored", s.name, k)
                continue
            if k == "time_limit" and s.name == "glpk":
                v = max(1, int(np.ceil(float(v))))  # glpsol --tmlim takes whole seconds
            elif k in ("threads", "seed"):
                v = int(v)
            else:
                v = float(v)
            native[s.option_names[k]] = v
            origin[s.option_names[k]] = k
        native.update(extra)
        for k in extra:
            origin.pop(k, None)
        return native, origin

    @staticmethod
    def _validate(
        s: SolverSpec, native: dict[str, Any], origin: dict[str, str] | None = None
    ) -> None:
        """Refuse an option the solver does not know or will not take, before building anything.

        HiGHS and SCIP are asked directly (on a scratch instance), and the value they store is
        read back: HiGHS's ``setOptionValue`` only returns an error for ``time_limit=-5`` (which
        APPSI ignores, leaving no limit), SCIP truncates ``1.5`` for an integer parameter. CBC and
        GLPK run as executables and cannot be asked; their common options are checked by
        :func:`~netopt.solvers._base.check_options`.

        Raises
        ------
        IncompatibleBackendError
            An option name the solver does not know.
        OptionError
            A value it refuses or would not store as given; the message names the option (and
            the common option it was translated from).
        """
        if not native:
            return
        origin = origin or {}
        unknown: list[str] = []
        bad: list[str] = []

        def what(k: str, v: Any, why: str) -> str:
            src = f" (from {origin[k]}={v!r})" if k in origin else ""
            return f"{k}={v!r}{src}: {why}"

        if s.name == "highs":
            import highspy

            from netopt.solvers.highs_session import new_highs

            h = new_highs()
            kok = highspy.HighsStatus.kOk
            for k, v in native.items():
                got = h.getOptionValue(k)
                if not isinstance(got, tuple) or got[0] != kok:
                    unknown.append(f"{k}={v!r}")
                    continue
                try:
                    st = h.setOptionValue(k, v)
                except Exception as e:  # highspy raises on a wrong value type
                    bad.append(what(k, v, f"{type(e).__name__}: {e}"))
                    continue
                if st != kok:
                    bad.append(what(k, v, "HiGHS rejects the value (out of range)"))
                    continue
                stored = h.getOptionValue(k)[1]
                if not _same_value(v, stored):
                    bad.append(what(k, v, f"HiGHS stores {stored!r} instead"))
        elif s.name == "scip":
            import pyscipopt

            sm = pyscipopt.Model()
            sm.hideOutput()
            for k, v in native.items():
                try:
                    sm.getParam(k)
                except Exception:
                    unknown.append(f"{k}={v!r}")
                    continue
                try:
                    sm.setParam(k, v)
                except Exception as e:
                    bad.append(what(k, v, f"SCIP rejects the value ({e})"))
                    continue
                stored = sm.getParam(k)
                if not _same_value(v, stored):
                    bad.append(what(k, v, f"SCIP stores {stored!r} instead"))
        if unknown:
            raise OptionError(
                f"backend 'pyomo': solver '{s.name}' rejects option(s) {', '.join(unknown)} "
                "(unknown name); see the solver's option list"
            )
        if bad:
            raise OptionError(
                f"backend 'pyomo': solver '{s.name}' rejects option value(s) {'; '.join(bad)}; "
                "see the solver's option list for the ranges"
            )
