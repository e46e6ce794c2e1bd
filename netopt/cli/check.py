"""``netopt check MODEL PROPERTY``: decide a VNN-LIB property."""

from __future__ import annotations

import argparse
from pathlib import Path
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
    _write_out,
)
from netopt.cli.live import LiveLine, add_live_flags, wants_live_line

__all__ = ["EXIT_EPILOG", "add_parser", "cmd_check", "disjunct_lines"]

#: the exit statuses, as ``netopt check --help`` states them
EXIT_EPILOG = (
    "exit status (the SAT-solver convention): 10 sat (an input satisfies the property's "
    "constraints: a counterexample, re-checked in onnxruntime, see 'confirmed'), 20 unsat "
    "(proven: no input satisfies them), 0 unknown (no verdict within the limits), 2 a usage or "
    "input error (one 'netopt: error:' line) or an --out file that could not be written, 130 "
    "interrupted (Ctrl-C: the disjuncts decided so far are listed, the rest 'not tried'; a second "
    "Ctrl-C ends at once)."
)


def cmd_check(args: argparse.Namespace) -> int:
    import time

    import netopt
    from netopt.errors import NetoptError
    from netopt.vnnlib.check import check

    if args.device is not None:
        from netopt.vnnlib.check import _check_device

        _check_device(args.device)  # (once, before any network is loaded)
    if args.instances is not None:
        if args.model or args.property:
            raise NetoptError("give either MODEL PROPERTY or --instances CSV, not both")
        from netopt.cli.instances import cmd_check_instances

        return cmd_check_instances(args)
    if not (args.model and args.property):
        raise NetoptError("netopt check needs MODEL PROPERTY (or --instances CSV)")

    t_cmd = time.perf_counter()
    if args.out:
        _check_writable(args.out, "--out")
    if args.certificate:
        _check_writable(args.certificate, "--certificate")
    live = LiveLine(start=t_cmd) if wants_live_line(args) else None
    if live is not None:
        live({"phase": "loading", "elapsed": 0.0})  # from the first second: a large model is slow
    net = netopt.load(args.model)
    opts = {
        k: v for k, v in {"threads": args.threads, "device": args.device}.items() if v is not None
    }
    if getattr(args, "verbose", False):
        opts["verbose"] = True  # the solver's log, on stderr
    limit = args.time_limit
    if limit is not None:
        # --time-limit is the command's wall time: loading the network spent some of it
        limit = max(0.01, limit - (time.perf_counter() - t_cmd))
    r = check(net, args.property, time_limit=limit, solver=args.solver, progress=live, **opts)
    wall = time.perf_counter() - t_cmd
    if live is not None:
        # the last MILP's figures belonged to one disjunct: the final line is the verdict's
        gone = dict.fromkeys(("incumbent", "bound", "nodes", "disjunct", "disjuncts"))
        live.finish(**gone, elapsed=wall, verdict=r.verdict)
    # as in invert: a failed write is reported after the verdict, which is printed regardless
    write_error = (
        _write_out(lambda: Path(args.out).write_text(r.to_json()), args.out, "--out")
        if args.out
        else None
    )
    cert_note = None
    if args.certificate:
        if r.verdict == "unsat":
            from netopt.certificate import Certificate

            cert = Certificate.from_check(r, args.property, net)
            err = _write_out(lambda: cert.save(args.certificate), args.certificate, "--certificate")
            write_error = write_error or err
            if err is None:
                cert_note = f"  certificate written to {args.certificate}"
        else:
            # only an unsat verdict has a certificate (a counterexample is its own evidence)
            cert_note = f"  no certificate written: the verdict is {r.verdict}, not unsat"
    code = EXIT_INTERRUPTED if r.stopped == "interrupted" else _exit_status(r.verdict)
    if args.json:
        print(r.to_json())
        return _after_write(write_error, code)
    print(f"{r.verdict}")
    for line in disjunct_lines(r):
        print(line)
    if r.verdict == "sat":
        print(f"  counterexample x = {r.x.reshape(-1).tolist()}")
        print(
            f"  f(x) (onnxruntime) = {r.y_onnxruntime.reshape(-1).tolist()}; confirmed: {r.confirmed}"
        )
    if r.stopped == "interrupted":
        print("  interrupted (Ctrl-C): the disjuncts above were decided before it")
    print(f"  total {r.seconds:.2f} s deciding, {wall:.1f} s in all")
    if cert_note:
        print(cert_note)
    return _after_write(write_error, code)


def disjunct_lines(r: Any) -> list[str]:
    """One line per disjunct of the property, in its order, with its status.

    A tried disjunct shows its verdict, the method that decided it (or the phase it stopped in),
    its seconds and its evidence; one never reached shows why: ``not tried (counterexample found
    in another disjunct)``, ``not tried (time limit)`` or ``not tried (interrupted)``.
    """
    tried = {d["disjunct"]: d for d in r.details}
    n = len(r.disjunct_status) or len(tried)
    out = []
    for k in range(n):
        d = tried.get(k)
        if d is None:
            if r.verdict == "sat" and r.disjunct is not None and k != r.disjunct:
                # the attack on all disjuncts at once may find a later one's first
                why = "counterexample found in another disjunct"
            else:
                why = r.stopped or "time limit"
            out.append(f"  disjunct {k}: not tried ({why})")
            continue
        if "stopped" in d:
            out.append(
                f"  disjunct {k}: unknown, stopped before {d['method']} ({d['stopped']}) after "
                f"{d['seconds']:.2f} s"
            )
            continue
        extra = f", {d['evidence']}" if "evidence" in d else ""
        out.append(
            f"  disjunct {k}: {d.get('verdict', '?')} by {d['method']} in "
            f"{d['seconds']:.2f} s{extra}"
        )
    return out


def _exit_status(verdict: str) -> int:
    """The SAT-solver convention: 10 sat, 20 unsat, 0 unknown (see :data:`EXIT_EPILOG`)."""
    return {"sat": EXIT_SAT, "unsat": EXIT_UNSAT}.get(verdict, EXIT_UNKNOWN)


def add_parser(sub: Any) -> None:
    """Register ``netopt check``."""
    chk = sub.add_parser(
        "check",
        help="decide a VNN-LIB property: sat (with a counterexample) or unsat",
        description="Decide a VNN-LIB property; a counterexample is re-checked in onnxruntime.",
        epilog=EXIT_EPILOG,
    )
    chk.add_argument("model", nargs="?", help="path of an .onnx file")
    chk.add_argument("property", nargs="?", help="path of a .vnnlib file")
    chk.add_argument(
        "--instances",
        metavar="CSV",
        help="decide every line 'onnx,vnnlib,timeout' of a VNN-COMP instances.csv (paths "
        "relative to it) in one process, instead of MODEL PROPERTY; writes --results and each "
        "counterexample in VNN-COMP's format; exit 0 (130 on Ctrl-C)",
    )
    chk.add_argument(
        "--results",
        default="results.csv",
        metavar="CSV",
        help="with --instances: the results file (default results.csv; counterexamples go to "
        "<its stem>_counterexamples/)",
    )
    chk.add_argument(
        "--time-limit",
        type=_float_arg("a number of seconds", positive=True),
        help="seconds for the whole command (every disjunct; the ones not reached in time are "
        "listed as 'not tried')",
    )
    chk.add_argument("--solver", default="highs", help="backend for the MILP stage")
    chk.add_argument("--threads", type=_int_arg("a thread count", 1), help="solver threads")
    chk.add_argument(
        "--device",
        help="torch device of the attack and of branch and bound's torch searches, e.g. cpu or "
        "cuda (default: cuda when torch sees one; on a CPU, MLPs' attack and input splitting "
        "run in numpy)",
    )
    chk.add_argument("--out", help="write the verdict and evidence (JSON) here")
    chk.add_argument(
        "--certificate",
        metavar="PATH",
        help="for an unsat verdict, write a certificate (each disjunct's branch-and-bound proof, "
        "or the solver attesting it) that 'netopt verify PATH MODEL --property PROPERTY' "
        "re-checks; with --instances, PATH is a folder receiving one "
        "<onnx stem>__<vnnlib stem>.json per unsat instance",
    )
    add_live_flags(chk, "print JSON")
    chk.set_defaults(func=cmd_check)
