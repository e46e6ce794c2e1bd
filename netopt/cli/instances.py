"""``netopt check --instances instances.csv``: a benchmark's instances decided in one process.

The VNN-COMP layout: each line of the CSV is ``onnx,vnnlib,timeout`` (paths relative to the CSV's
folder, the timeout in seconds; no header). Every instance is decided by
:func:`netopt.vnnlib.check.check` within its timeout (start-up of the network included), in one
process, so the imports and each network's load are paid once. Written:

* the results CSV (``--results``): one row per instance, written as soon as it is decided, with
  ``onnx, vnnlib, timeout, result, seconds, method, confirmed, message``; ``result`` is VNN-COMP's
  word (``sat``, ``unsat``, ``timeout`` when the time ran out without a verdict, ``unknown``,
  ``error`` with the message);
* for every ``sat`` instance, its counterexample in VNN-COMP's result format (next to the CSV, in
  ``<results stem>_counterexamples/<onnx stem>__<vnnlib stem>.counterexample``)::

      sat
      ((X_0 0.1)
       (X_1 -0.3)
       (Y_0 2.5))

  with the inputs and the outputs onnxruntime computes for them (what the competition's checker
  re-evaluates);
* with ``--certificate FOLDER``, for every ``unsat`` instance its certificate
  (:meth:`netopt.certificate.Certificate.from_check`) as ``FOLDER/<onnx stem>__<vnnlib
  stem>.json``, which ``netopt verify`` re-checks.

A Ctrl-C stops at the instance being decided (it is recorded as ``unknown``); the rest are not
tried and the rows written so far stay.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from netopt.errors import InputError, NetoptError

__all__ = ["read_instances", "counterexample_text", "cmd_check_instances"]

#: the results CSV's columns
COLUMNS = ("onnx", "vnnlib", "timeout", "result", "seconds", "method", "confirmed", "message")


def read_instances(path: str | Path) -> list[tuple[Path, Path, float]]:
    """The instances of a VNN-COMP ``instances.csv``: ``(onnx, vnnlib, timeout)`` per line.

    Raises
    ------
    InputError
        Naming the file and line of a row that is not ``onnx,vnnlib,timeout`` with a positive
        finite timeout, or of a file that does not exist.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the instances file ({e})") from None
    base = path.parent
    out = []
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 3:
            raise InputError(
                f"{path}, line {n}: expected 'onnx,vnnlib,timeout' (3 fields), got {len(row)}"
            )
        onnx_p, vnn_p, tout = (c.strip() for c in row)
        try:
            t = float(tout)
        except ValueError:
            raise InputError(f"{path}, line {n}: timeout {tout!r} is not a number") from None
        if not (np.isfinite(t) and t > 0):
            raise InputError(f"{path}, line {n}: timeout must be a number > 0, got {tout!r}")
        files = []
        for p in (onnx_p, vnn_p):
            f = (base / p) if not Path(p).is_absolute() else Path(p)
            if not f.is_file():
                raise InputError(f"{path}, line {n}: {p} is not a file (relative to {base})")
            files.append(f)
        out.append((files[0], files[1], t))
    if not out:
        raise InputError(f"{path}: no instances (expected lines 'onnx,vnnlib,timeout')")
    return out


def counterexample_text(x: np.ndarray, y: np.ndarray) -> str:
    """VNN-COMP's result file for a counterexample: ``sat`` and the ``(X_i v)``/``(Y_j v)`` list.

    Values are written with ``repr`` (the shortest text that reads back as the same float64).
    """
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    pairs = [f"(X_{i} {float(v)!r})" for i, v in enumerate(xs)]
    pairs += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(ys)]
    return "sat\n(" + "\n ".join(pairs) + ")\n"


def cmd_check_instances(args: argparse.Namespace) -> int:
    """Decide every instance of ``args.instances``; see the module doc. Exit 0 (2 on bad input)."""
    import netopt
    from netopt.cli.args import _check_writable
    from netopt.cli.live import LiveLine, wants_live_line
    from netopt.control import sigint_guard
    from netopt.vnnlib.check import check

    items = read_instances(args.instances)
    results = Path(args.results)
    _check_writable(str(results), "--results")
    cex_dir = results.with_name(results.stem + "_counterexamples")
    want_live = wants_live_line(args)
    nets: dict[Path, Any] = {}
    counts: dict[str, int] = {}
    stopped = False
    with results.open("w", newline="") as fh, sigint_guard():
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        fh.flush()
        for i, (onnx_p, vnn_p, tout) in enumerate(items, start=1):
            t0 = time.perf_counter()
            live = LiveLine(start=t0) if want_live else None
            row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
            row.update(onnx=str(onnx_p), vnnlib=str(vnn_p), timeout=tout)
            try:
                if live is not None:
                    live({"phase": f"instance {i}/{len(items)}: loading", "elapsed": 0.0})
                net = nets.get(onnx_p)
                if net is None:
                    net = nets[onnx_p] = netopt.load(onnx_p)
                left = max(0.01, tout - (time.perf_counter() - t0))

                show = None
                if live is not None:

                    def show(ev: dict, live: Any = live, i: int = i) -> None:
                        live({**ev, "phase": f"instance {i}/{len(items)}: {ev['phase']}"})

                r = check(
                    net, vnn_p, time_limit=left, progress=show, device=getattr(args, "device", None)
                )
                result = r.verdict
                if result == "unknown" and (
                    r.stopped == "time limit" or time.perf_counter() - t0 >= 0.95 * tout
                ):
                    result = "timeout"  # VNN-COMP's word for no verdict within the time
                if result == "sat" and not r.confirmed:
                    # onnxruntime does not confirm the point: no claim
                    result, row["message"] = (
                        "unknown",
                        "counterexample not confirmed in onnxruntime",
                    )
                row.update(result=result, confirmed=r.confirmed if r.verdict == "sat" else "")
                decided = [d for d in r.details if d.get("verdict") in ("sat", "unsat")]
                row["method"] = ";".join(sorted({d["method"] for d in decided}))
                if result == "sat":
                    cex_dir.mkdir(parents=True, exist_ok=True)
                    name = f"{onnx_p.stem}__{vnn_p.stem}.counterexample"
                    (cex_dir / name).write_text(counterexample_text(r.x, r.y_onnxruntime))
                if result == "unsat" and getattr(args, "certificate", None):
                    from netopt.certificate import Certificate

                    cert_dir = Path(args.certificate)
                    try:
                        cert_dir.mkdir(parents=True, exist_ok=True)
                        Certificate.from_check(r, vnn_p, net).save(
                            cert_dir / f"{onnx_p.stem}__{vnn_p.stem}.json"
                        )
                    except OSError as e:
                        row["message"] = f"certificate not written ({e.strerror})"
                stopped = r.stopped == "interrupted"
            except NetoptError as e:
                row.update(result="error", message=str(e))
            row["seconds"] = f"{time.perf_counter() - t0:.3f}"
            w.writerow([row[c] for c in COLUMNS])
            fh.flush()
            counts[row["result"]] = counts.get(row["result"], 0) + 1
            if live is not None:
                live.finish(incumbent=None, bound=None, nodes=None, verdict=row["result"])
            print(
                f"{i}/{len(items)}  {row['result']:8s} {float(row['seconds']):8.2f} s  "
                f"{onnx_p.name}  {vnn_p.name}"
                + (f"  ({row['message']})" if row["message"] else ""),
                flush=True,
            )
            if stopped:
                break
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    done = sum(counts.values())
    print(f"{done}/{len(items)} instances: {summary}; results in {results}")
    if cex_dir.is_dir():
        print(f"counterexamples in {cex_dir}")
    if stopped:
        print("interrupted (Ctrl-C): the instances after the last one listed were not tried")
        return 130
    return 0
