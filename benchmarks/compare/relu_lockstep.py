"""ReLU splitting of a property's disjuncts in lockstep against one disjunct after the other.

    python benchmarks/compare/relu_lockstep.py [--time-limit 60] [--unseen] [--names SUBSTR ...]

For each MNIST 256x2 robustness property (the shared ones, and with ``--unseen`` the shifted
images of ``unseen_instances.py``), the disjuncts that the one CROWN pass of ``netopt check``
leaves open are decided by ReLU splitting (``branch_and_bound(mode="relu")``) twice, in the same
process, alternating per property: one disjunct after the other, each search alone (the check
before the lockstep), then all of them at once (``groups``: the searches in lockstep, each
round's bound and branching calls merged, ``netopt.bounds.relu_lockstep``). Prints per
property the disjuncts searched, both verdicts (they must agree: a "sat" of either confirmed in
float64, every "unsat" proof re-checked by ``check_proof``), both times, the domains and the
ratio; then the totals. The time limit is per disjunct alone and per property in lockstep.

On a property with a counterexample, one after the other searches the disjuncts before its
own first (up to the time limit each: minutes), where ``netopt check``'s attack finds most of
them in a second; ``--names`` picks the properties the check leaves to branch and bound.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NETS = HERE.parents[1].parent / "shared" / "nets"


def _unseen(work: Path) -> list[Path]:
    spec = importlib.util.spec_from_file_location("unseen", HERE / "unseen_instances.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [Path(r["vnnlib"]) for r in mod.mnist_instances(work)]


def _open_disjuncts(net, prop) -> list[int]:
    from netopt.vnnlib.check.decide import _crown_closed

    closed = _crown_closed(net, prop)
    return [k for k in range(len(prop.disjuncts)) if closed is None or not closed[k]]


def _checked(net, prop, ks: list[int], results: list) -> str:
    """Each result re-checked: its proof by the checker, its point in float64."""
    from netopt.bounds.proof import check_proof

    for k, r in zip(ks, results, strict=True):
        dj = prop.disjuncts[k]
        if r.verdict == "unsat" and not check_proof(net.graph, r.proof).ok:
            return f"PROOF REJECTED (disjunct {k})"
        if r.verdict == "sat":
            y = net.forward(np.asarray(r.x).reshape(1, *net.input_shape)).reshape(-1)
            if not np.all(dj.C @ y <= dj.d):
                return f"POINT WRONG (disjunct {k})"
    return "ok"


def run(path: Path, tl: float) -> dict | None:
    import netopt
    from netopt.bounds.branch import branch_and_bound

    net = netopt.load(NETS / "mnistfc" / "mnist-net_256x2.onnx")
    prop = netopt.load_vnnlib(path, 784, 10)
    ks = _open_disjuncts(net, prop)
    if not ks:
        return None
    djs = [prop.disjuncts[k] for k in ks]
    lo, hi = djs[0].lo, djs[0].hi
    # one after the other (stopping at a counterexample, as the check does)
    t = time.perf_counter()
    alone = []
    for dj in djs:
        alone.append(branch_and_bound(net, lo, hi, dj.C, dj.d, mode="relu", time_limit=tl))
        if alone[-1].verdict == "sat":
            break
    t_alone = time.perf_counter() - t
    v_alone = (
        "sat"
        if alone[-1].verdict == "sat"
        else ("unsat" if all(r.verdict == "unsat" for r in alone) else "unknown")
    )
    # in lockstep
    t = time.perf_counter()
    C = np.concatenate([dj.C for dj in djs])
    d = np.concatenate([dj.d for dj in djs])
    groups = np.concatenate([[i] * len(dj.d) for i, dj in enumerate(djs)])
    if len(djs) > 1:
        both = branch_and_bound(net, lo, hi, C, d, mode="relu", time_limit=tl, groups=groups)
        parts = [both] if both.verdict == "sat" else both.parts
        ks_both = [ks[both.group]] if both.verdict == "sat" else ks
    else:
        both = branch_and_bound(net, lo, hi, C, d, mode="relu", time_limit=tl)
        parts, ks_both = [both], ks
    t_both = time.perf_counter() - t
    check = _checked(net, prop, ks[: len(alone)], alone)
    if check == "ok":
        check = _checked(net, prop, ks_both, parts)
    return {
        "disjuncts": len(ks),
        "alone": (v_alone, t_alone, sum(r.stats["nodes"] for r in alone)),
        "both": (both.verdict, t_both, both.stats["nodes"]),
        "check": check,
    }


def _warm_up(path: Path) -> None:
    """A short search first, so that neither way pays the imports and first calls."""
    import netopt
    from netopt.bounds.branch import branch_and_bound

    net = netopt.load(NETS / "mnistfc" / "mnist-net_256x2.onnx")
    dj = netopt.load_vnnlib(path, 784, 10).disjuncts[0]
    branch_and_bound(net, dj.lo, dj.hi, dj.C, dj.d, mode="relu", time_limit=2.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--unseen", action="store_true", help="the shifted images too")
    ap.add_argument("--names", nargs="*", help="only the properties whose name has one of these")
    args = ap.parse_args()
    import torch

    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; time limit {args.time_limit} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = sorted((NETS / "mnistfc").glob("prop_*.vnnlib"))
        if args.unseen:
            paths += _unseen(Path(tmp))
        if args.names:
            paths = [p for p in paths if any(n in p.stem for n in args.names)]
        _warm_up(paths[0])
        tot_a = tot_b = 0.0
        bad = 0
        print(f"{'property':28s} {'open':>4s}  {'alone':>22s}  {'lockstep':>22s}  ratio")
        for p in paths:
            r = run(p, args.time_limit)
            if r is None:
                continue
            (va, ta, na), (vb, tb, nb) = r["alone"], r["both"]
            agree = va == vb or "unknown" in (va, vb)
            bad += (not agree) or r["check"] != "ok"
            tot_a, tot_b = tot_a + ta, tot_b + tb
            print(
                f"{p.stem:28s} {r['disjuncts']:4d}  {va:7s} {ta:6.2f} s {na:6d}  "
                f"{vb:7s} {tb:6.2f} s {nb:6d}  {ta / max(tb, 1e-9):5.2f}"
                + ("" if agree else "  VERDICTS DIFFER")
                + ("" if r["check"] == "ok" else f"  {r['check']}")
            )
    print(
        f"total: one after the other {tot_a:.1f} s, in lockstep {tot_b:.1f} s, "
        f"ratio {tot_a / max(tot_b, 1e-9):.2f}; disagreements or failed checks: {bad}"
    )


if __name__ == "__main__":
    main()
