"""``netopt invert MODEL``: the input whose output is closest to a target, with a certificate."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from netopt.cli.args import (
    EXIT_INTERRUPTED,
    EXIT_SAT,
    EXIT_UNKNOWN,
    EXIT_UNSAT,
    _after_write,
    _check_writable,
    _float_arg,
    _int_arg,
    _norm_arg,
    _read_vector,
    _write_out,
)
from netopt.cli.live import LiveLine, add_live_flags, wants_live_line
from netopt.errors import InputError, NetoptError
from netopt.options import Option, Schema

__all__ = ["EXIT_EPILOG", "add_parser", "cmd_invert"]

#: the exit statuses, as ``netopt invert --help`` states them
EXIT_EPILOG = (
    "exit status: an optimization problem exits 0 when the method ran (whatever it proved: see "
    "'status' and 'claim'). With --within TOL the question is one of feasibility (does some input "
    "of the box reach |f(x) - target|_inf <= TOL?) and the exit status is the SAT-solver "
    "convention: 10 sat (a witness, re-checked in float64), 20 unsat (proven: no input reaches "
    "it), 0 unknown (no verdict). In both cases 1 means the solver failed (status error) and 2 a "
    "usage or input error (one 'netopt: error:' line) or an --out file that could not be written; "
    "130 interrupted (Ctrl-C: the best point and the bound proven so far are printed and written "
    "to --out with status 'interrupted'; a second Ctrl-C ends at once)."
)


def _solve_options(
    args: argparse.Namespace, schema: Schema | None, live: LiveLine | None = None
) -> dict:
    """The common solver options of ``args``, as far as the method declares them.

    ``--time-limit``, ``--gap`` and ``--threads`` are offered for every method; one the method
    does not take is dropped with a warning naming it (the layer-wise LPs have no time limit,
    the first-order methods no gap), so the same command line runs every method. The live line
    and the solver's log are offered only to methods that take ``progress`` / ``verbose``; the
    live line (:class:`~netopt.cli.live.LiveLine`) is ``opts["progress"]`` when shown.
    """
    asked = {"time_limit": args.time_limit, "threads": args.threads, "gap": args.gap}
    opts = {k: v for k, v in asked.items() if v is not None}
    if getattr(args, "verbose", False):
        opts["verbose"] = True  # the solver's log, on stderr
    if live is not None:
        opts["progress"] = live
    if schema is None:
        return opts
    for k in [k for k in opts if k not in schema]:
        if k in asked:
            flag = "--" + k.replace("_", "-")
            print(
                f"netopt: warning: {schema.owner} takes no {k}; {flag} ignored",
                file=sys.stderr,
            )
        del opts[k]
    return opts


def _option_value(text: str, option: Option | None) -> Any:
    """The Python value of ``--option KEY=TEXT``, read as the declared option expects.

    The candidates are, in order: ``true``/``false``, ``none``/``null``, an integer, a number,
    a JSON value (``[28, 28]``, ``{"a": 1}``), a comma-separated tuple of numbers (``28,28``)
    and the text itself; those of the type of the option's default are moved first. The first
    candidate the option's check accepts is taken (``tighten=none`` is None where the check
    allows None, ``regularizer=none`` the text where only strings are allowed); with no check,
    or none accepted, the first, so that :meth:`Schema.parse` names the option and what it must
    be.
    """
    import json

    t = text.strip()
    cands: list[Any] = []
    low = t.lower()
    if low in ("true", "false"):
        cands.append(low == "true")
    if low in ("none", "null"):
        cands.append(None)
    for conv in (int, float):
        try:
            cands.append(conv(t))
        except ValueError:
            pass
    if t[:1] in "[{":
        try:
            v = json.loads(t)
            cands.append(tuple(v) if isinstance(v, list) else v)
        except ValueError:
            pass
    if "," in t:
        try:
            cands.append(tuple(_number(u) for u in t.split(",") if u.strip()))
        except ValueError:
            pass
    cands.append(t)
    if option is None:
        return cands[0]
    d = option.default
    if d is not None:
        # candidates of the default's type first (a float default takes an integer too)
        want: Any = (
            bool
            if isinstance(d, bool)
            else (int, float)
            if isinstance(d, float)
            else tuple
            if isinstance(d, tuple | list)
            else type(d)
        )
        typed = [
            float(c) if isinstance(d, float) else c
            for c in cands
            if isinstance(c, want) and (want is bool or not isinstance(c, bool))
        ]
        cands = typed + [c for c in cands if c not in typed]
    if option.check is not None:
        for c in cands:
            if option.check(c) is None:
                return c
    return cands[0]


def _number(text: str) -> int | float:
    """An int if ``text`` is one, else a float (``ValueError`` if neither)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _method_options(items: Sequence[str] | None, schema: Schema | None, method: str) -> dict:
    """``--option KEY=VALUE`` items, each read by :func:`_option_value` and checked by
    :meth:`Schema.parse` (one :class:`~netopt.errors.OptionError` naming the option)."""
    from netopt.errors import OptionError

    out: dict[str, Any] = {}
    for it in items or ():
        key, sep, text = it.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise OptionError(f"--option {it.strip()!r}: expected KEY=VALUE (e.g. max_iter=200)")
        if key in out:
            raise OptionError(f"--option {key}: given twice")
        opt = None if schema is None else schema.options.get(key)
        out[key] = _option_value(text, opt)
    if schema is not None:
        schema.parse(out)
    elif out:
        raise OptionError(f"method '{method}' declares no options; --option cannot be used")
    return out


def cmd_invert(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    import netopt
    from netopt import formulations
    from netopt.problems import Feasibility, Inversion
    from netopt.result import Status

    t_cmd = time.perf_counter()
    # the method and its options first: a misspelt name or option must not cost a model load
    schema = formulations.get(args.formulation).options()
    extra = _method_options(args.option, schema, args.formulation)
    live = LiveLine(start=t_cmd) if wants_live_line(args) else None
    if live is not None:
        live({"phase": "loading", "elapsed": 0.0})  # from the first second: a large model is slow
    if args.model.endswith(".json"):
        # an instance written by `netopt gen`: its target, box and norm
        from netopt.instances import load_instance

        if args.target or args.box:
            raise NetoptError("an instance JSON carries its target and box; drop --target/--box")
        inst = load_instance(args.model)
        try:
            prob, net = inst.problem, inst.net
            if args.within is not None:
                dom = prob.domain
                prob = Feasibility(net, prob.target, args.within, box=(dom.lo, dom.hi))
        except InputError as e:
            # the problem's own message names the argument; the user knows the file
            raise InputError(f"{args.model}: {e}") from None
        model_path = inst.model_path
    else:
        if not args.target:
            raise NetoptError("--target is required (or give an instance JSON from netopt gen)")
        net = netopt.load(args.model)
        target = _read_vector(args.target, "target")
        lo = _read_vector(args.box[0], "box") if args.box else None
        hi = _read_vector(args.box[1], "box") if args.box else None
        box = (
            None
            if lo is None
            else (
                lo.reshape(-1)[0] if lo.size == 1 else lo,
                hi.reshape(-1)[0] if hi.size == 1 else hi,
            )
        )
        if args.within is None:
            prob = Inversion(net, target, norm=args.norm, box=box)
        else:
            prob = Feasibility(net, target, args.within, box=box)
        model_path = args.model
    # every input checked before the solve: a wrong --start or --out must not cost a solve
    start = None
    if args.start is not None:
        try:
            start = prob.check_start(_read_vector(args.start, "start"))
        except InputError as e:
            raise InputError(f"--start {args.start.strip()!r}: {e}") from None
    if args.out:
        _check_writable(args.out, "--out")
    opts = _solve_options(args, schema, live)
    kw = dict(opts)
    # the exact path's options only where they were asked for: other formulations refuse them
    if args.bounds != "crown":
        kw["bounds"] = args.bounds
    if args.no_tighten:
        kw["tighten"] = None
    if start is not None:
        kw["start"] = start
    if args.method:
        kw["method"] = args.method
    for k, v in extra.items():
        if k in kw:
            flag = "--" + k.replace("_", "-")
            raise NetoptError(f"--option {k}: also given as {flag}; give it once")
        kw[k] = v
    if kw.get("time_limit") is not None:
        # --time-limit is the command's wall time: loading and checking the inputs spent some
        kw["time_limit"] = max(0.01, kw["time_limit"] - (time.perf_counter() - t_cmd))
    if live is not None and "progress" not in opts:
        # a method without progress events: the line says what runs until its result
        live({"phase": f"{args.formulation} running", "elapsed": 0.0})
    res = prob.solve(args.formulation, args.solver, **kw)
    if live is not None:
        # the last live figures are the summary's: the result's, recomputed in float64
        live.finish(
            incumbent=res.objective,
            bound=res.bound,
            gap=res.gap,
            nodes=res.nodes,
            elapsed=time.perf_counter() - t_cmd,
            verdict=str(res.status),
        )
    cert = res.certificate
    # written first, but a failure is only reported after the result is printed: a solve is
    # never lost to a full disk or a folder removed meanwhile
    write_error = _write_out(lambda: cert.save(args.out), args.out, "--out") if args.out else None
    code = _exit_status(prob, res)
    if args.json:
        print(cert.to_json())
        return _after_write(write_error, code)
    print(f"model      {model_path}")
    print(
        f"problem    {prob.describe()} over the box, target "
        + np.array2string(prob.target.reshape(-1), precision=4, threshold=12, edgeitems=3)
    )
    print(f"status     {res.status}")
    if res.status == Status.INTERRUPTED:
        print("           (stopped by Ctrl-C: the best point so far and the bound proven so far)")
    if res.message and res.status in (Status.ERROR, Status.UNKNOWN):
        print(f"message    {res.message}")
    if res.objective is not None:
        print(f"objective  {res.objective:.9g}   (recomputed in float64 from x)")
    if res.bound is not None:
        src = res.extra.get("bound_source") or f"proven by {res.solver} {res.solver_version}"
        print(f"bound      {res.bound:.9g}   ({src})")
    elif res.status == Status.INTERRUPTED:
        print("bound      none proven before the interrupt")
    if res.gap is not None:
        print(f"gap        {res.gap:.3g}")
    if res.model_size and "variables" in res.model_size:
        ms = res.model_size
        print(
            f"model size {ms['variables']} variables, {ms['integers']} binaries, {ms['rows']} rows"
        )
    elif "bound_source" in res.extra:
        print(f"model      none needed: {res.extra['bound_source']}")
    if res.nodes:
        print(f"nodes      {res.nodes}")
    print("time       " + ", ".join(f"{k} {v:.2f} s" for k, v in res.timings.items()))
    print(f"claim      {cert.claim}")
    if isinstance(prob, Feasibility):
        print(f"verdict    {res.verdict}")
    if args.out and write_error is None:
        print(
            f"certificate written to {args.out}  (check it: netopt verify {args.out} {model_path})"
        )
    return _after_write(write_error, code)


class _MethodsHelp(str):
    """A help text naming every registered method, looked up only when the help is printed.

    argparse expands a help text with ``text % params`` when it formats ``--help``; until then
    no formulation module is imported, so ``netopt info`` and the others stay as fast as before
    and do not depend on the methods importing.
    """

    def __mod__(self, params: Any) -> str:
        from netopt import formulations

        return str(self) % ", ".join(formulations.available())


def _exit_status(prob: Any, res: Any) -> int:
    """``netopt invert``'s exit status (see :data:`EXIT_EPILOG`).

    A Feasibility problem (``--within``) is a decision: 10 when a witness was found and its
    constraint violation re-checked in float64 (``res.verdict == "sat"``), 20 when the method
    proved that no input of the box reaches the region, 0 when neither is known. An
    optimization problem exits 0 whatever its status. 1 in both cases when the solver failed
    (status "error": nothing is claimed). 130 when the user interrupted the solve (Ctrl-C): the
    result and the certificate are still the run's, with status "interrupted".
    """
    from netopt.problems import Feasibility
    from netopt.result import Status

    if res.status == Status.ERROR:
        return 1
    if res.status == Status.INTERRUPTED:
        return EXIT_INTERRUPTED
    if not isinstance(prob, Feasibility):
        return 0
    return {"sat": EXIT_SAT, "unsat": EXIT_UNSAT}.get(res.verdict, EXIT_UNKNOWN)


def add_parser(sub: Any) -> None:
    """Register ``netopt invert``."""
    inv = sub.add_parser(
        "invert",
        help="find the input whose output is closest to a target (exact MILP), with a certificate",
        description="Minimize ||f(x) - target||_p over a box with the exact MILP (or any other "
        "registered method, --formulation), or decide whether some input reaches the target "
        "(--within); print the result (objective recomputed in float64, bound proven by the "
        "solver) and write a certificate.",
        epilog=EXIT_EPILOG,
    )
    inv.add_argument("model", help="path of an .onnx file, or an instance .json from netopt gen")
    inv.add_argument("--target", help="numbers 'a,b,...' or a .npy/.json/.txt file")
    inv.add_argument(
        "--norm",
        default="1",
        type=_norm_arg,
        help="p of the norm: 1, 2 or inf (2: the MILP needs gurobi; --formulation bab does not)",
    )
    inv.add_argument(
        "--box",
        nargs=2,
        metavar=("LO", "HI"),
        help="input box: scalars or files (also --box=LO,HI)",
    )
    inv.add_argument(
        "--time-limit",
        type=_float_arg("a number of seconds", positive=True),
        help="seconds for the whole command, every phase included (ignored, with a warning, by "
        "a method without a limit)",
    )
    inv.add_argument(
        "--gap",
        type=_float_arg("a relative gap", lo=0),
        help="relative optimality gap (default 1e-6)",
    )
    inv.add_argument("--threads", type=_int_arg("a thread count", 1), help="solver threads")
    inv.add_argument(
        "--solver", help="backend (default: the formulation's own; milp: highs, gurobi, pyomo)"
    )
    inv.add_argument(
        "--within",
        type=_float_arg("a tolerance", lo=0),
        metavar="TOL",
        help="decide feasibility instead: is |f(x) - target|_inf <= TOL reachable in the box? "
        "(exit 10 sat, 20 unsat, 0 unknown; --norm is not used)",
    )
    inv.add_argument(
        "--formulation",
        default="auto",
        metavar="METHOD",
        help=_MethodsHelp(
            "the method: %s (default auto: exact, branch and bound on up to 16 inputs over a "
            "box, then the MILP; milp: the MILP alone)"
        ),
    )
    inv.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the method, as it declares them (repeatable; e.g. max_iter=200, "
        "image_shape=28,28); values are read as the declared type, 'true'/'false', 'none', "
        "numbers, JSON or comma-separated numbers",
    )
    inv.add_argument("--method", help="layerwise_lp's method: linf, l1, relax, exact")
    inv.add_argument(
        "--bounds", default="crown", choices=["interval", "crown"], help="first bounds"
    )
    inv.add_argument("--no-tighten", action="store_true", help="skip LP bound tightening")
    inv.add_argument("--start", help="a starting input (numbers or file) for the solver")
    inv.add_argument("--out", help="write the certificate (JSON) here")
    add_live_flags(inv, "print the certificate as JSON")
    inv.set_defaults(func=cmd_invert)
