"""The ``netopt`` command.

Every command has ``--help``. Errors a user can cause are printed as one
``netopt: error: ...`` line (no traceback) with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from netopt.errors import InputError, NetoptError, UnsupportedOpError

__all__ = ["main", "ops_table_markdown"]


class _Parser(argparse.ArgumentParser):
    """argparse with netopt's error format: one ``netopt: error: ...`` line, exit status 2.

    argparse's own format (the usage block, then ``netopt invert: error: ...``) is what every
    other error of netopt is not; the usage is one ``--help`` away, which the line names.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"netopt: error: {message} (see '{self.prog} --help')\n")


def _float_arg(what: str, *, lo: float | None = None, positive: bool = False):
    """An argparse ``type=``: a finite float, at least ``lo`` (or above 0 if ``positive``).

    Parameters
    ----------
    what : str
        What the number is, for the message ("a number of seconds").
    lo : float, optional
        The smallest value allowed.
    positive : bool
        Refuse 0 as well.
    """
    import math

    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = math.nan
        ok = math.isfinite(v) and (lo is None or v >= lo) and (not positive or v > 0)
        if not ok:
            rng = " > 0" if positive else "" if lo is None else f" >= {lo:g}"
            raise argparse.ArgumentTypeError(f"expected {what}{rng} (finite), got {s.strip()!r}")
        return v

    return parse


def _int_arg(what: str, lo: int):
    """An argparse ``type=``: an integer of at least ``lo``."""

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            v = lo - 1
        if v < lo:
            raise argparse.ArgumentTypeError(
                f"expected {what}, an integer >= {lo}, got {s.strip()!r}"
            )
        return v

    return parse


def _norm_arg(s: str) -> str:
    """An argparse ``type=`` for ``--norm``: 1, 2 or inf."""
    if s.strip() not in ("1", "2", "inf"):
        raise argparse.ArgumentTypeError(f"expected 1, 2 or inf, got {s.strip()!r}")
    return s.strip()


def _is_negative_number(token: str) -> bool:
    """Whether ``token`` is a negative number or a list of numbers led by one (``-1e-3``,
    ``-0.5,0.2``): a value, since netopt has no option that looks like a number."""
    if not token.startswith("-") or token.startswith("--") or len(token) < 2:
        return False
    parts = token.replace(",", " ").split()
    try:
        [float(t) for t in parts]
    except ValueError:
        return False
    return bool(parts)


def _protect_negative_numbers(argv: Sequence[str]) -> list[str]:
    """Let values that start with a minus sign through argparse as typed.

    argparse takes ``-0.5,0.2`` or ``-1e-3`` for an option (only ``-1``-like tokens pass), so
    ``--target -0.5,0.2`` and ``--box -1e-3 1`` failed. A leading space makes argparse read the
    token as a value, and every number parser here ignores it. ``--box=LO,HI`` is split into
    ``--box LO HI`` so the two-value option also has an ``=`` form.
    """
    out: list[str] = []
    for tok in argv:
        if tok.startswith("--box=") and len(tok[6:].split(",")) == 2:
            out += ["--box", *(" " + v for v in tok[6:].split(","))]
        elif _is_negative_number(tok):
            out.append(" " + tok)
        else:
            out.append(tok)
    return out


# the positional arguments that name a file to read, per command: a folder there is refused
# before any work, with the file kind expected
_INPUT_FILES = {
    "info": (("model", "an .onnx file"),),
    "invert": (("model", "an .onnx file or an instance .json"),),
    "check": (("model", "an .onnx file"), ("property", "a .vnnlib file")),
    "verify": (("certificate", "a certificate .json"), ("model", "an .onnx file")),
    "bench": (("suite", "a suite .toml file"),),
    "report": (("db", "a results database file"),),
    "gen": (("formula", "a DIMACS .cnf file"),),
}


def _check_input_files(args: argparse.Namespace) -> None:
    """Refuse a folder where a command reads a file (else an ``IsADirectoryError`` later)."""
    for attr, kind in _INPUT_FILES.get(args.command, ()):
        v = getattr(args, attr, None)
        if v and Path(v).is_dir():
            raise NetoptError(f"{v} is a folder; netopt {args.command} expects {kind} here")


def _check_writable(path: str, flag: str) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    The file is opened for appending (an existing file is not changed) or created and removed
    again: the one test that also holds for root, read-only mounts and odd files.
    """
    import os

    p = Path(path)
    if p.is_dir():
        raise NetoptError(f"{flag} {path}: is a folder; give a file name (e.g. {p / 'out.json'})")
    parent = p.parent
    if parent.exists() and not parent.is_dir():
        raise NetoptError(f"{flag} {path}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise NetoptError(f"{flag} {path}: the folder {parent} does not exist; create it first")
    try:
        if p.exists():
            with open(p, "ab"):
                pass
        else:
            with open(p, "xb"):
                pass
            os.unlink(p)
    except OSError as e:
        raise NetoptError(f"{flag} {path}: cannot write here ({e.strerror})") from None


def _write_out(write: Callable[[], object], path: str, flag: str) -> str | None:
    """Run ``write`` (which writes ``path``); the error message if it fails, else None.

    The caller prints its result either way, then the message: the result is never lost.
    """
    try:
        write()
    except OSError as e:
        return f"{flag} {path}: cannot write the file ({e.strerror}); the result is printed above"
    return None


def _parse_shapes(items: Sequence[str] | None) -> dict[str, tuple[int, ...]] | None:
    if not items:
        return None
    out = {}
    for it in items:
        name, sep, dims = it.rpartition("=")
        if not sep or not name:
            raise NetoptError(
                f"--input-shape '{it}': expected NAME=D1,D2,... (per-sample, no batch)"
            )
        try:
            out[name] = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise NetoptError(f"--input-shape '{it}': dimensions must be integers") from None
        if any(d < 1 for d in out[name]):
            raise NetoptError(f"--input-shape '{it}': dimensions must be positive integers")
    return out


def _fmt_shape(s: Sequence[int]) -> str:
    return str(tuple(int(d) for d in s))


def cmd_info(args: argparse.Namespace) -> int:
    import netopt

    t0 = time.perf_counter()
    try:
        net = netopt.load(args.model, input_shapes=_parse_shapes(args.input_shape))
    except UnsupportedOpError as e:
        if args.json:
            print(
                json.dumps(
                    {
                        "file": args.model,
                        "unsupported": [
                            {"node": n, "op_type": t, "reason": r} for n, t, r in e.unsupported
                        ],
                    },
                    indent=2,
                )
            )
        else:
            print(f"{args.model}: cannot be imported completely.", file=sys.stderr)
            print(str(e), file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    g = net.graph
    info = {
        "file": net.source.name,
        "sha256": net.source.sha256,
        "producer": net.source.producer,
        "opsets": {d or "ai.onnx": v for d, v in net.source.opsets},
        "inputs": {g.value(i).onnx_name or i: list(g.value(i).shape) for i in g.inputs},
        "outputs": {g.value(o).onnx_name or o: list(g.value(o).shape) for o in g.outputs},
        "parameters": net.n_params,
        "relus": net.n_relus,
        "smooth_ops": net.smooth_ops(),
        "ir_ops": g.op_counts(),
        "layers": [
            {**r, "inputs": [list(s) for s in r["inputs"]], "output": list(r["output"])}
            for r in net.layers()
        ],
        "load_seconds": round(dt, 4),
        "unsupported": [],
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"file       {info['file']}")
    print(f"sha256     {info['sha256']}")
    print(f"producer   {info['producer'] or '-'}   opsets {info['opsets']}")
    for k in ("inputs", "outputs"):
        print(f"{k:<10} " + ", ".join(f"{n} {_fmt_shape(s)}" for n, s in info[k].items()))
    print()
    rows = [("#", "IR op", "output shape", "params", "from ONNX")]
    for k, r in enumerate(net.layers()):
        rows.append((str(k), r["op"], _fmt_shape(r["output"]), str(r["params"]), r["origin"]))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print()
    print(f"parameters {info['parameters']}")
    print(f"ReLUs      {info['relus']}")
    if info["smooth_ops"]:
        print(
            f"smooth     {', '.join(info['smooth_ops'])} (no exact MILP: use a first-order method)"
        )
    print("unsupported none")
    print(f"loaded in  {dt * 1e3:.1f} ms")
    return 0


def _read_vector(spec: str, what: str):
    """Numbers from a .npy/.json/.txt file or a comma/space separated list.

    A .json file holds a list of numbers (nested lists for a shaped array) or an object with
    that list under the key ``what`` (``{"target": [...]}``, other keys ignored). Every number
    must be finite.

    Raises
    ------
    NetoptError
        Naming ``--what``, the file or value, and the form expected.
    """
    import json as _json
    from pathlib import Path

    import numpy as np

    spec = spec.strip()  # see _protect_negative_numbers
    p = Path(spec)
    flag = f"--{what} {spec!r}"
    if spec and p.is_dir():
        raise NetoptError(f"{flag}: is a folder; give numbers or a .npy/.json/.txt file")
    try:
        if p.suffix == ".npy" and p.is_file():
            v = np.load(p, allow_pickle=False)
        elif p.suffix == ".json" and p.is_file():
            v = _json.loads(p.read_text())
            if isinstance(v, dict):
                if what not in v:
                    raise NetoptError(
                        f'{flag}: a JSON object must hold the numbers under "{what}" '
                        f'(like {{"{what}": [0.5, 1.0]}}), or give a plain JSON list; '
                        + (f"this one has keys {sorted(v)[:5]}" if v else "this one is empty")
                    )
                v = v[what]
            if not _is_number_list(v):
                raise NetoptError(
                    f"{flag}: expected a JSON list of numbers (or nested lists), got "
                    f"{type(v).__name__} {str(v)[:60]}"
                )
        elif p.is_file():
            v = p.read_text().replace(",", " ").split()
        elif p.suffix in (".npy", ".json", ".txt"):
            raise NetoptError(f"{flag}: no such file")
        else:
            v = spec.replace(",", " ").split()
        a = np.asarray(v, dtype=np.float64)
    except (ValueError, TypeError, OverflowError, OSError, UnicodeDecodeError) as e:
        raise NetoptError(
            f"{flag}: not a list of numbers or a readable .npy/.json/.txt file ({e})"
        ) from None
    if a.size == 0:
        raise NetoptError(f"{flag}: no numbers given")
    if not np.all(np.isfinite(a)):
        raise NetoptError(f"{flag}: every number must be finite (found NaN or inf)")
    return a


def _is_number_list(v) -> bool:
    """Whether a parsed JSON value is a (nested) list of numbers, or one number."""
    if isinstance(v, list):
        return bool(v) and all(_is_number_list(t) for t in v)
    return isinstance(v, int | float) and not isinstance(v, bool)


def _progress_printer():
    """A live status line on stderr: incumbent, bound, gap, nodes, time."""

    def show(d: dict) -> None:
        print(
            f"\r  incumbent {d['incumbent']:.6g}  bound {d['bound']:.6g}  gap {100 * d['gap']:.2f}%  "
            f"nodes {d['nodes']}  {d['time']:.0f} s   ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    return show


def _solve_options(args: argparse.Namespace) -> dict:
    opts = {"time_limit": args.time_limit, "threads": args.threads, "gap": args.gap}
    if getattr(args, "verbose", False):
        opts["verbose"] = True  # the solver's log, on stderr
    if getattr(args, "progress", False) or (
        sys.stderr.isatty() and not getattr(args, "quiet", False)
    ):
        opts["progress"] = _progress_printer()
    return {k: v for k, v in opts.items() if v is not None}


def cmd_invert(args: argparse.Namespace) -> int:
    import numpy as np

    import netopt
    from netopt.problems import Inversion
    from netopt.result import Status

    if args.model.endswith(".json"):
        # an instance written by `netopt gen`: its target, box and norm
        from netopt.instances import load_instance

        if args.target or args.box:
            raise NetoptError("an instance JSON carries its target and box; drop --target/--box")
        inst = load_instance(args.model)
        try:
            prob, net = inst.problem, inst.net
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
        prob = Inversion(net, target, norm=args.norm, box=box)
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
    opts = _solve_options(args)
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
    res = prob.solve(args.formulation, args.solver, **kw)
    if "progress" in opts:
        print(file=sys.stderr)
    cert = res.certificate
    # written first, but a failure is only reported after the result is printed: a solve is
    # never lost to a full disk or a folder removed meanwhile
    write_error = _write_out(lambda: cert.save(args.out), args.out, "--out") if args.out else None
    failed = 1 if res.status == Status.ERROR else 0  # the solver failed: nothing is claimed
    if args.json:
        print(cert.to_json())
        return _after_write(write_error, failed)
    print(f"model      {model_path}")
    print(
        f"problem    {prob.describe()} over the box, target "
        + np.array2string(prob.target.reshape(-1), precision=4, threshold=12, edgeitems=3)
    )
    print(f"status     {res.status}")
    if res.message and res.status in (Status.ERROR, Status.UNKNOWN):
        print(f"message    {res.message}")
    if res.objective is not None:
        print(f"objective  {res.objective:.9g}   (recomputed in float64 from x)")
    if res.bound is not None:
        src = res.extra.get("bound_source") or f"proven by {res.solver} {res.solver_version}"
        print(f"bound      {res.bound:.9g}   ({src})")
    if res.gap is not None:
        print(f"gap        {res.gap:.3g}")
    if res.model_size and "variables" in res.model_size:
        ms = res.model_size
        print(
            f"model size {ms['variables']} variables, {ms['integers']} binaries, {ms['rows']} rows"
        )
    elif "bound_source" in res.extra:
        print(f"model      none needed: {res.extra['bound_source']}")
    print("time       " + ", ".join(f"{k} {v:.2f} s" for k, v in res.timings.items()))
    print(f"claim      {cert.claim}")
    if args.out and write_error is None:
        print(
            f"certificate written to {args.out}  (check it: netopt verify {args.out} {model_path})"
        )
    return _after_write(write_error, failed)


def _after_write(write_error: str | None, status: int) -> int:
    """The exit status once the result is printed: 2 with the error line if ``--out`` failed."""
    if write_error is None:
        return status
    print(f"netopt: error: {write_error}", file=sys.stderr)
    return 2


def cmd_check(args: argparse.Namespace) -> int:
    import netopt
    from netopt.vnncheck import check

    if args.out:
        _check_writable(args.out, "--out")
    net = netopt.load(args.model)
    opts = {k: v for k, v in {"threads": args.threads}.items() if v is not None}
    if getattr(args, "verbose", False):
        opts["verbose"] = True  # the solver's log, on stderr
    r = check(net, args.property, time_limit=args.time_limit, solver=args.solver, **opts)
    # as in invert: a failed write is reported after the verdict, which is printed regardless
    write_error = (
        _write_out(lambda: Path(args.out).write_text(r.to_json()), args.out, "--out")
        if args.out
        else None
    )
    if args.json:
        print(r.to_json())
        return _after_write(write_error, 0)
    print(f"{r.verdict}")
    for d in r.details:
        extra = f", {d['evidence']}" if "evidence" in d else ""
        print(
            f"  disjunct {d['disjunct']}: {d.get('verdict', '?')} by {d['method']} in {d['seconds']:.2f} s{extra}"
        )
    if r.verdict == "sat":
        print(f"  counterexample x = {r.x.reshape(-1).tolist()}")
        print(
            f"  f(x) (onnxruntime) = {r.y_onnxruntime.reshape(-1).tolist()}; confirmed: {r.confirmed}"
        )
    print(f"  total {r.seconds:.2f} s")
    return _after_write(write_error, 0)


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-check a certificate; exit 0 (all re-checked), 3 (all re-checkable hold, some claim is
    only the solver's word; 0 with ``--allow-attested``) or 1 (a check failed)."""
    from netopt.certificate import Certificate

    cert = Certificate.load(args.certificate)
    rep = cert.verify(args.model)
    print(f"certificate {args.certificate}: {cert.kind}")
    # the claim rebuilt from the evidence, never the file's own text
    print(f"claim: {rep['claim'] if rep['claim'] is not None else '(none: see the checks)'}")
    for n in rep["notes"]:
        print(f"  [note] {n}")
    for c in rep["checks"]:
        print(
            f"  [{'ok' if c['ok'] else 'FAILED'}] {c['check']}"
            + (f" ({c['detail']})" if c["detail"] else "")
        )
    for u in rep["unchecked"]:
        print(f"  [solver-attested, only a proof can check this] {u}")
    for a in rep["attempts"]:
        print(f"  [refutation attempt{': REFUTED' if a['refuted'] else ''}] {a['detail']}")
    if not rep["ok"]:
        print("NOT verified")
        return 1
    if rep["fully_checked"]:
        print("verified")
        return 0
    print("verified, except the solver-attested claim(s) listed above")
    return 0 if args.allow_attested else 3


def ops_table_markdown() -> str:
    """The README's table of supported ONNX ops, generated from the converter registry."""
    from netopt.frontend import supported_ops

    lines = [
        "| ONNX op | since-versions handled | IR ops | notes |",
        "| --- | --- | --- | --- |",
    ]
    for r in supported_ops():
        lines.append(
            f"| {r['op_type']} | {', '.join(map(str, r['since']))} | "
            f"{', '.join(r['ir_ops']) or '(constant)'} | {r['doc'].replace('|', '/')} |"
        )
    lines.append(
        "| *any op whose inputs are all constants* | all | (folded) | evaluated at import by "
        "`onnx.reference` (Constant, Shape, Gather, ConstantOfShape, ...) |"
    )
    return "\n".join(lines)


def cmd_ops(args: argparse.Namespace) -> int:
    print(ops_table_markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="netopt",
        description="Optimization over the inputs of trained neural networks.",
    )
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and warnings")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    info = sub.add_parser(
        "info",
        help="show a model's layers, shapes, parameters, ReLUs and unsupported ops",
        description="Import an ONNX model and describe its IR: layers, shapes, parameter "
        "count, ReLU count, smooth ops, and every op netopt cannot import.",
    )
    info.add_argument("model", help="path of an .onnx file")
    info.add_argument(
        "--input-shape",
        action="append",
        metavar="NAME=D1,D2,...",
        help="per-sample shape of an input whose shape the file leaves symbolic (repeatable)",
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=cmd_info)

    inv = sub.add_parser(
        "invert",
        help="find the input whose output is closest to a target (exact MILP), with a certificate",
        description="Minimize ||f(x) - target||_p over a box with the exact MILP; print the "
        "result (objective recomputed in float64, bound proven by the solver) and write a "
        "certificate.",
    )
    inv.add_argument("model", help="path of an .onnx file, or an instance .json from netopt gen")
    inv.add_argument("--target", help="numbers 'a,b,...' or a .npy/.json/.txt file")
    inv.add_argument(
        "--norm", default="1", type=_norm_arg, help="p of the norm: 1, 2 or inf (2 needs gurobi)"
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
        help="seconds for the solver",
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
        "--formulation",
        default="milp",
        help="milp (exact, default), layerwise_lp, or a first-order one: adam, gd, pgd, sign_pgd, admm",
    )
    inv.add_argument("--method", help="layerwise_lp's method: linf, l1, relax, exact")
    inv.add_argument(
        "--bounds", default="crown", choices=["interval", "crown"], help="first bounds"
    )
    inv.add_argument("--no-tighten", action="store_true", help="skip LP bound tightening")
    inv.add_argument("--start", help="a starting input (numbers or file) for the solver")
    inv.add_argument("--out", help="write the certificate (JSON) here")
    inv.add_argument("--json", action="store_true", help="print the certificate as JSON")
    inv.add_argument(
        "--progress", action="store_true", help="live line even when not on a terminal"
    )
    inv.add_argument("--quiet", action="store_true", help="no live line")
    inv.set_defaults(func=cmd_invert)

    chk = sub.add_parser(
        "check",
        help="decide a VNN-LIB property: sat (with a counterexample) or unsat",
        description="Decide a VNN-LIB property; a counterexample is re-checked in onnxruntime.",
    )
    chk.add_argument("model", help="path of an .onnx file")
    chk.add_argument("property", help="path of a .vnnlib file")
    chk.add_argument(
        "--time-limit",
        type=_float_arg("a number of seconds", positive=True),
        help="seconds for the whole property",
    )
    chk.add_argument("--solver", default="highs", help="backend for the MILP stage")
    chk.add_argument("--threads", type=_int_arg("a thread count", 1), help="solver threads")
    chk.add_argument("--out", help="write the verdict and evidence (JSON) here")
    chk.add_argument("--json", action="store_true", help="print JSON")
    chk.set_defaults(func=cmd_check)

    ver = sub.add_parser(
        "verify",
        help="re-check a certificate without the solver (the point through onnxruntime)",
        description="Re-check everything in a certificate that can be checked without a solver; "
        "list what only the solver attests (a MILP's bound, infeasibility). Exit status: 0 every "
        "claim re-checked, 3 every re-checkable claim holds but some claim is only attested by "
        "the solver, 1 a check failed, 2 a malformed certificate.",
    )
    ver.add_argument("certificate", help="certificate JSON written by netopt invert --out")
    ver.add_argument("model", help="the .onnx file it is about")
    ver.add_argument(
        "--allow-attested",
        action="store_true",
        help="exit 0, not 3, when everything re-checkable holds and the rest is solver-attested "
        "(still listed)",
    )
    ver.set_defaults(func=cmd_verify)

    ops = sub.add_parser(
        "ops",
        help="print the table of supported ONNX ops (markdown)",
        description="Print the supported ONNX ops, generated from the converter registry.",
    )
    ops.set_defaults(func=cmd_ops)

    from netopt.cli_gen import add_gen_parser

    add_gen_parser(sub)
    from netopt.cli_bench import add_bench_parsers

    add_bench_parsers(sub)
    return p


def _version() -> str:
    from netopt import __version__

    return f"netopt {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netopt`` command; returns the exit status."""
    argv = _protect_negative_numbers(sys.argv[1:] if argv is None else list(argv))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        # --help, --version and argument errors (already printed): the status, returned like
        # every other outcome, so callers in-process see 2 for a bad argument, not an exception
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="netopt: %(levelname)s: %(message)s",
    )
    try:
        _check_input_files(args)
        return int(args.func(args) or 0)
    except NetoptError as e:
        print(f"netopt: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader has gone (`netopt ... | head`): nothing to tell it, and Python's flush of
        # stdout at exit must not fail again, so stdout goes to the null device
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # no real file descriptor (in-process capture)
            pass
        return 1
    except OSError as e:
        # the last resort for a file the checks above could not foresee (a disk that fills,
        # a file removed meanwhile): still one line naming the file, never a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"netopt: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netopt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
