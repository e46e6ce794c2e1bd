"""`netopt check --instances` on the shared VNN-COMP 2021 instances, against the competition.

    python benchmarks/compare/vnncomp_check.py [--sets acasxu mnistfc] [--timeout 30] [--no-verify]
                                               [--per-process]

For each set (``../shared/nets/<set>/verdicts.csv``: the instances, the competition's consensus
verdict and its fastest tool's time) this writes a VNN-COMP ``instances.csv`` with every line's
timeout set to ``--timeout``, runs ``netopt check --instances`` on it in one process, and prints
per instance our verdict and wall time next to the competition's, then a summary: decided,
agreeing, wrong (a verdict that contradicts the consensus: must be 0), our median and maximum
time and the fastest tool's median on the same instances (the ratio is the baseline of this
script). Every "unsat" is written with its certificate, which is then re-checked by
``netopt verify --property`` (proofs in float64, no solver): the count of fully re-checked
certificates is printed too.

With ``--per-process`` each instance is instead its own ``netopt check ONNX VNNLIB`` process, as
the competition runs a tool, and its time is that process's wall time, start-up included
(Python, imports, loading the network).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NETS = Path(__file__).resolve().parents[2].parent / "shared" / "nets"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _each(folder: Path, truth: list[dict[str, str]], timeout: float, certs: Path) -> list[dict]:
    """Every instance in a ``netopt check`` process of its own: the rows ``--instances``
    writes (``result``, ``seconds`` — here the process's wall time — and ``method``)."""
    certs.mkdir(exist_ok=True)
    out = []
    for t in truth:
        cert = certs / f"{Path(t['onnx']).stem}__{Path(t['vnnlib']).stem}.json"
        cmd = [sys.executable, "-m", "netopt", "check"]
        cmd += [str(folder / t["onnx"]), str(folder / t["vnnlib"])]
        cmd += ["--time-limit", str(timeout), "--certificate", str(cert), "--json"]
        out.append(check_process(cmd, timeout))
    return out


def check_process(cmd: list[str], timeout: float) -> dict:
    """Run one ``netopt check ... --json`` command line: ``result`` (a sat only once
    onnxruntime confirmed it, as ``--instances`` writes it), ``seconds`` (the process's wall
    time) and ``method`` (the phases that decided)."""
    import json

    t0 = time.perf_counter()
    try:
        # a process that overruns its own limit this far is stopped
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=2 * timeout + 30)
        r = json.loads(p.stdout)
    except subprocess.TimeoutExpired:
        r = {"verdict": "timeout", "details": []}
    except json.JSONDecodeError:
        r = {"verdict": f"error (exit {p.returncode})", "details": []}
    sec = time.perf_counter() - t0
    verdict = r["verdict"]
    if verdict == "sat" and not r.get("confirmed_by_onnxruntime"):
        verdict = "unknown"
    how = sorted(
        {
            d.get("method", "")
            for d in r.get("details") or []
            if d.get("verdict") in ("sat", "unsat")
        }
        - {""}
    )
    return {"result": verdict, "seconds": sec, "method": "; ".join(how)}


def run_set(name: str, timeout: float, verify: bool, work: Path, each: bool = False) -> dict:
    """Decide every instance of one set; returns the summary's figures."""
    folder = NETS / name
    truth = _rows(folder / "verdicts.csv")
    certs = work / f"{name}_certificates"
    if each:
        t0 = time.perf_counter()
        ours = _each(folder, truth, timeout, certs)
        return _report(name, truth, ours, timeout, time.perf_counter() - t0, verify, certs)
    inst = work / f"{name}.csv"
    with inst.open("w") as f:
        for r in truth:
            f.write(f"{folder / r['onnx']},{folder / r['vnnlib']},{timeout}\n")
    results = work / f"{name}_results.csv"
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "netopt",
            "check",
            "--instances",
            str(inst),
            "--results",
            str(results),
            "--certificate",
            str(certs),
            "--quiet",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    return _report(name, truth, _rows(results), timeout, wall, verify, certs)


def _report(
    name: str, truth: list, ours: list, timeout: float, wall: float, verify: bool, certs: Path
) -> dict:
    """The per-instance table and the set's summary line."""
    folder = NETS / name
    decided = agree = wrong = verified = unsat = 0
    times, fastest = [], []
    print(f"\n{name}: {len(truth)} instances, timeout {timeout:g} s, wall {wall:.1f} s in all")
    print(f"{'instance':48s} {'ours':8s} {'s':>7s}   {'VNN-COMP':9s} {'fastest s':>9s}  how")
    for t, o in zip(truth, ours, strict=True):
        v = o["result"]
        sec = float(o["seconds"])
        times.append(sec)
        fastest.append(float(t["fastest_runtime_s"]))
        ok = v in ("sat", "unsat")
        decided += ok
        if ok and t["verdict"] in ("sat", "unsat"):
            agree += v == t["verdict"]
            wrong += v != t["verdict"]
        elif ok:
            agree += 1  # a tie: either verdict, with its evidence
        extra = ""
        if v == "unsat":
            unsat += 1
            if verify:
                extra = _verify(certs, folder, t)
                verified += extra == "proof re-checked"
        label = f"{Path(t['onnx']).stem[:30]} {Path(t['vnnlib']).stem}"
        print(
            f"{label:48s} {v:8s} {sec:7.2f}   {t['verdict']:9s} {float(t['fastest_runtime_s']):9.2f}"
            f"  {o['method']} {extra}"
        )
    med, fmed = statistics.median(times), statistics.median(fastest)
    print(
        f"{name}: decided {decided}/{len(truth)}, agree {agree}, WRONG {wrong}; median "
        f"{med:.2f} s (fastest tool {fmed:.2f} s, ratio {med / fmed:.2f}), max {max(times):.2f} s"
        + (f"; unsat certificates re-checked {verified}/{unsat}" if verify else "")
    )
    return {"decided": decided, "wrong": wrong, "median": med, "max": max(times)}


def _verify(certs: Path, folder: Path, t: dict[str, str]) -> str:
    path = certs / f"{Path(t['onnx']).stem}__{Path(t['vnnlib']).stem}.json"
    return certificate_status(path, folder / t["onnx"], folder / t["vnnlib"])


def certificate_status(cert: Path, onnx: Path, vnnlib: Path) -> str:
    """What ``Certificate.verify`` says of an unsat instance's certificate, in words."""
    from netopt.certificate import Certificate

    if not cert.exists():
        return "no certificate"
    rep = Certificate.load(cert).verify(onnx, vnnlib_path=vnnlib)
    if not rep["ok"]:
        return "CERTIFICATE FAILED"
    return "proof re-checked" if rep["fully_checked"] else "solver-attested part"


def mode_row(label: str, row: dict, modes: tuple) -> str:
    """One instance decided under each of ``modes`` (``(name, setting)`` pairs), as a line."""
    cells = [
        f"{r['result']:8s} {r['seconds']:6.2f} s  {r['method'] or '-'} {r['proof']}"
        for r in (row[m] for m, _ in modes)
    ]
    return f"{label:16s} | " + " | ".join(cells)


def mode_summary(rows: list[dict], modes: tuple) -> None:
    """Per mode the instances decided, the median time and the certificates that failed; where
    both of two modes decide, whether they agree and the median ratio of their times (the
    second's over the first's)."""
    import statistics

    for name, _ in modes:
        got = [r[name] for r in rows]
        done = [r for r in got if r["result"] in ("sat", "unsat")]
        med = statistics.median(r["seconds"] for r in got)
        bad = sum(r["proof"] == "CERTIFICATE FAILED" for r in got)
        print(
            f"{name}: decided {len(done)}/{len(got)}, median {med:.2f} s, certificates failed {bad}"
        )
    (first, _), (second, _) = modes
    both = [r for r in rows if all(r[m]["result"] in ("sat", "unsat") for m, _ in modes)]
    if both:
        agree = all(r[first]["result"] == r[second]["result"] for r in both)
        ratio = statistics.median(r[second]["seconds"] / r[first]["seconds"] for r in both)
        print(
            f"both decide {len(both)}: verdicts agree {agree}; "
            f"median time ratio ({second} / {first}) {ratio:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="*", default=["acasxu", "mnistfc"])
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument(
        "--per-process",
        action="store_true",
        help="each instance a netopt check process of its own (start-up included)",
    )
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load {load:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            run_set(name, args.timeout, not args.no_verify, Path(tmp), args.per_process)


if __name__ == "__main__":
    main()
