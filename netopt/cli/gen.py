"""``netopt gen``: write instances with known ground truth (ONNX + JSON + VNN-LIB)."""

from __future__ import annotations

import argparse
from typing import Any

from netopt.cli.args import _float_arg, _int_arg, _norm_arg
from netopt.errors import NetoptError

__all__ = ["add_parser"]


def _ints(spec: str, what: str) -> list[int]:
    """Positive integers from ``"20,100,500"``; :class:`NetoptError` naming ``--what``."""
    try:
        v = [int(t) for t in spec.replace(",", " ").split()]
    except ValueError:
        v = []
    # a width of 0 or less has no layer to build: refused here, not deep in the generator
    if not v or min(v) < 1:
        raise NetoptError(
            f"--{what} {spec.strip()!r}: expected integers >= 1 like 20,100,500"
        ) from None
    return v


def _dtype(name: str):
    import numpy as np

    return {"float32": np.float32, "float64": np.float64}[name]


def _report(inst: Any, paths: dict) -> None:
    gt = inst.ground_truth
    what = (
        f"satisfiable={gt.get('satisfiable')}"
        if inst.family == "sat3"
        else f"reachable={gt.get('reachable')}"
    )
    opt = gt.get("optimum")
    lb, ub = gt.get("optimum_lower_bound"), gt.get("optimum_upper_bound")
    known = (
        ""
        if opt is not None or lb is None
        else f" (>= {lb:.6g}" + ("" if ub is None else f", <= {ub:.6g}") + ")"
    )
    print(
        f"{inst.name}: {what}, optimum {opt if opt is not None else 'unknown'}"
        + known
        + f"  ->  {paths['json']}"
    )


def _check_count(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise NetoptError(f"--count must be at least 1, got {args.count}")


def cmd_gen_sat3(args: argparse.Namespace) -> int:
    _check_count(args)
    from netopt.instances import cnf as C
    from netopt.instances.sat3 import sat3_instance

    common = {
        "variant": args.variant,
        "rescale": args.rescale,
        "permute": args.permute,
        "identity_layers": args.identity_layers,
        "dtype": _dtype(args.dtype),
    }
    if args.formula:
        if args.vars is not None or args.clauses is not None or args.count != 1:
            raise NetoptError(
                "give either a FORMULA.cnf file or --vars/--clauses/--count, not both"
            )
        f = C.read_dimacs(args.formula)
        from pathlib import Path

        stem = Path(args.formula).stem
        inst = sat3_instance(
            f,
            seed=args.seed,
            name=f"{stem}_{args.variant}",
            params={"formula": str(args.formula)},
            **common,
        )
        _report(inst, inst.save(args.out))
        return 0
    if args.vars is None:
        raise NetoptError("give a FORMULA.cnf file, or --vars N (with --clauses M or --ratio R)")
    n = args.vars
    m = args.clauses if args.clauses is not None else C.clauses_for_ratio(n, args.ratio)
    for k in range(args.count):
        seed = args.seed + k
        assignment = None
        if args.kind == "planted":
            f, assignment = C.planted_3sat(n, m, seed)
        else:
            want = {"any": None, "sat": True, "unsat": False}[args.kind]
            f, assignment = (
                (C.random_3sat(n, m, seed), None)
                if want is None
                else C.random_formula(n, m, want, seed, max_tries=args.max_tries)
            )
        inst = sat3_instance(
            f,
            seed=seed,
            assignment=assignment,
            name=f"sat3_{args.variant}_n{n}_m{m}_{args.kind}_s{seed}",
            params={"formula": args.kind, "formula_seed": seed},
            **common,
        )
        _report(inst, inst.save(args.out))
    return 0


def cmd_gen_expansive(args: argparse.Namespace) -> int:
    _check_count(args)
    from netopt.instances.expansive import expansive_instance

    widths = _ints(args.widths, "widths")
    for k in range(args.count):
        inst = expansive_instance(
            widths,
            args.seed + k,
            activation=args.activation,
            slope=args.slope,
            noise=args.noise,
            noise_kind=args.noise_kind,
            norm=float(args.norm),
            dtype=_dtype(args.dtype),
        )
        _report(inst, inst.save(args.out))
    return 0


def cmd_gen_mlp(args: argparse.Namespace) -> int:
    _check_count(args)
    from netopt.instances.mlp import mlp_instance

    widths = _ints(args.widths, "widths")
    if not args.box[0] < args.box[1]:
        raise NetoptError(f"--box {args.box[0]:g} {args.box[1]:g}: LO must be below HI")
    for k in range(args.count):
        inst = mlp_instance(
            widths,
            args.seed + k,
            target=args.target,
            box=(args.box[0], args.box[1]),
            norm=float(args.norm),
            region_tol=args.region_tol,
            dtype=_dtype(args.dtype),
            certify=args.certify,
            time_limit=args.time_limit,
        )
        _report(inst, inst.save(args.out))
    return 0


def add_parser(sub: Any) -> None:
    """Register ``netopt gen {sat3,expansive,mlp}``."""
    gen = sub.add_parser(
        "gen",
        help="generate instances with known ground truth (3SAT, expansive, mlp)",
        description="Write inversion instances with known ground truth: an ONNX model, an "
        "instance JSON (target, box, norm, ground truth, generator, parameters, seed) and a "
        "VNN-LIB property whose 'sat' means the target region is reachable.",
    )
    gsub = gen.add_subparsers(dest="family", metavar="FAMILY")
    gsub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", required=True, help="output folder (created)")
        p.add_argument(
            "--seed",
            type=_int_arg("a seed", 0),
            default=0,
            help="seed (instance k uses seed + k)",
        )
        p.add_argument("--dtype", default="float32", choices=["float32", "float64"])

    s = gsub.add_parser(
        "sat3",
        help="the 3SAT reduction: a preimage exists iff the formula is satisfiable",
        description="Reduce a CNF formula (a DIMACS file, or random 3-SAT) to ReLU-network "
        "inversion: the target is reachable iff the formula is satisfiable, and otherwise "
        "every input misses it by at least 1.",
    )
    s.add_argument("formula", nargs="?", help="a DIMACS .cnf file (else a random formula)")
    s.add_argument(
        "--vars",
        type=_int_arg("a variable count", 1),
        help="number of variables n of a random formula",
    )
    s.add_argument(
        "--clauses",
        type=_int_arg("a clause count", 1),
        help="number of clauses m (default: ratio * n)",
    )
    s.add_argument(
        "--ratio",
        type=_float_arg("a ratio", positive=True),
        default=4.26,
        help="clauses per variable (default 4.26)",
    )
    s.add_argument(
        "--kind",
        default="any",
        choices=["any", "sat", "unsat", "planted"],
        help="uniform random, conditioned on sat/unsat (by python-sat), or planted-satisfiable",
    )
    s.add_argument("--count", type=_int_arg("a count", 1), default=1, help="number of formulas")
    s.add_argument(
        "--max-tries",
        type=_int_arg("a number of draws", 1),
        default=1000,
        help="draws for --kind sat/unsat",
    )
    s.add_argument("--variant", default="box", choices=["box", "free", "lei4"])
    s.add_argument("--rescale", action="store_true", help="random positive rescaling of units")
    s.add_argument("--permute", action="store_true", help="shuffle hidden units")
    s.add_argument(
        "--identity-layers",
        type=_int_arg("a layer count", 0),
        default=0,
        help="insert N mixing layers computing identity",
    )
    common(s)
    s.set_defaults(func=cmd_gen_sat3)

    e = gsub.add_parser(
        "expansive",
        help="random Gaussian expansive generator with a planted latent (Lei et al.)",
        description="G(z) = phi(W_L ... phi(W_1 z)), W_l ~ N(0, 1/n_l), target G(z*) + noise.",
    )
    e.add_argument("--widths", default="20,100,500", help="latent first, e.g. 20,100,500")
    e.add_argument("--activation", default="relu", choices=["relu", "leaky_relu"])
    e.add_argument("--slope", type=_float_arg("a slope"), default=0.1, help="LeakyReLU slope")
    e.add_argument(
        "--noise", type=_float_arg("a noise level", lo=0), default=0.0, help="noise level sigma"
    )
    e.add_argument("--noise-kind", default="uniform", choices=["uniform", "gaussian"])
    e.add_argument("--norm", default="1", type=_norm_arg, help="1, 2 or inf")
    e.add_argument("--count", type=_int_arg("a count", 1), default=1)
    common(e)
    e.set_defaults(func=cmd_gen_expansive)

    m = gsub.add_parser(
        "mlp",
        help="random ReLU MLP with a realizable, outside-image or unreachable target",
        description="A random He-initialized ReLU MLP on a box, with a target of the given kind.",
    )
    m.add_argument("--widths", default="10,32,32,2", help="input first, e.g. 10,32,32,2")
    m.add_argument(
        "--target", default="realizable", choices=["realizable", "outside", "unreachable"]
    )
    m.add_argument(
        "--box",
        nargs=2,
        type=_float_arg("a bound"),
        default=[-1.0, 1.0],
        metavar=("LO", "HI"),
        help="the input box (also --box=LO,HI)",
    )
    m.add_argument("--norm", default="1", type=_norm_arg, help="1, 2 or inf")
    m.add_argument(
        "--region-tol",
        type=_float_arg("a tolerance", lo=0),
        default=1e-3,
        help="VNN-LIB region half-width",
    )
    m.add_argument("--certify", action="store_true", help="record the MILP's certified optimum")
    m.add_argument(
        "--time-limit",
        type=_float_arg("a number of seconds", positive=True),
        default=60.0,
        help="seconds for --certify",
    )
    m.add_argument("--count", type=_int_arg("a count", 1), default=1)
    common(m)
    m.set_defaults(func=cmd_gen_mlp)
