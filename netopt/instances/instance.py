"""An inversion instance with its ground truth, and its files: ONNX + JSON + VNN-LIB.

An instance is a network, a target ``y``, a box domain and a norm - the problem
``min_{lo <= x <= hi} ||f(x) - y||_p`` (:class:`netopt.Inversion`) - together with what is known
about its answer and how it was made:

``ground_truth``
    ``reachable`` (whether some input reaches the *target region*
    ``|f(x) - y|_inf <= region_tol``; for a 3SAT instance this is the formula's satisfiability),
    ``satisfiable`` (3SAT only), ``optimum`` (the exact minimum when known), ``optimum_lower_bound``
    / ``optimum_upper_bound`` (sound bounds), ``x_star`` (a point attaining the upper bound:
    the planted input or a decoded assignment) and ``source`` (how each was established).
``params``
    The generator, its parameters and its seed: enough to regenerate the instance.

:meth:`Instance.save` writes ``NAME.onnx``, ``NAME.json`` and ``NAME.vnnlib`` (plus any
attachments, e.g. ``NAME.cnf``); :func:`load_instance` reads the JSON back and gives the
:class:`~netopt.problems.Inversion`. The VNN-LIB file asserts the input box and the target region,
so that a verifier's ``sat`` means "a preimage of the region exists" - the same question.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from netopt.errors import InputError

__all__ = ["Instance", "load_instance", "FORMAT"]

FORMAT = "netopt-instance"
FORMAT_VERSION = 1


def _num(v: float) -> str:
    """A float as a plain decimal (VNN-LIB parsers do not all accept exponents)."""
    return np.format_float_positional(float(v), unique=True, trim="0")


@dataclass
class Instance:
    """A generated inversion instance (see the module docstring).

    Attributes
    ----------
    name : str
        File stem.
    family : str
        ``"sat3"``, ``"expansive"`` or ``"mlp"``.
    model : onnx.ModelProto
    target : ndarray
        Flat target output ``y``.
    lo, hi : ndarray
        Flat, finite input box.
    norm : float
        ``p`` of the objective (1, 2 or inf).
    region_tol : float
        Half-width of the VNN-LIB target region ``|f(x) - y|_inf <= region_tol``.
    ground_truth, params : dict
    attachments : dict
        Extra files ``{suffix: text}`` written beside the instance (``{"cnf": ...}``).
    model_path : str or None
        The ONNX file it was read from or last saved to.
    """

    name: str
    family: str
    model: onnx.ModelProto
    target: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    norm: float = 1.0
    region_tol: float = 1e-3
    ground_truth: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    attachments: dict[str, str] = field(default_factory=dict)
    model_path: str | None = None
    _net: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.target = np.asarray(self.target, dtype=np.float64).reshape(-1)
        self.lo = np.asarray(self.lo, dtype=np.float64).reshape(-1)
        self.hi = np.asarray(self.hi, dtype=np.float64).reshape(-1)
        if not (np.all(np.isfinite(self.lo)) and np.all(np.isfinite(self.hi))):
            raise InputError(f"instance {self.name}: the input box must be finite")

    @property
    def net(self):
        """The :class:`~netopt.network.Network` (loaded once)."""
        if self._net is None:
            from netopt.network import load

            self._net = load(self.model)
        return self._net

    @property
    def problem(self):
        """The :class:`~netopt.problems.Inversion` this instance states."""
        from netopt.problems import Inversion

        shape = self.net.input_shape
        n = int(np.prod(shape, dtype=np.int64))
        if self.lo.size != n or self.hi.size != n:
            # reshape would fail with numpy's message; say which instance and what fits
            raise InputError(
                f"instance {self.name}: the box has {self.lo.size} (lo) and {self.hi.size} (hi) "
                f"entries; the network input has {n} (shape {tuple(shape)})"
            )
        return Inversion(
            self.net,
            self.target,
            norm=self.norm,
            box=(self.lo.reshape(shape), self.hi.reshape(shape)),
        )

    # ----------------------------------------------------------------- files
    def vnnlib(self) -> str:
        """A VNN-LIB property: the input box and the target region (``sat`` = reachable)."""
        n_in, n_out = self.lo.size, self.target.size
        lines = [
            f"; netopt instance {self.name} ({self.family})",
            f"; sat <=> some input in the box reaches |Y - target|_inf <= {_num(self.region_tol)}",
        ]
        lines += [f"(declare-const X_{i} Real)" for i in range(n_in)]
        lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
        for i in range(n_in):
            lines.append(f"(assert (>= X_{i} {_num(self.lo[i])}))")
            lines.append(f"(assert (<= X_{i} {_num(self.hi[i])}))")
        for j in range(n_out):
            lines.append(f"(assert (>= Y_{j} {_num(self.target[j] - self.region_tol)}))")
            lines.append(f"(assert (<= Y_{j} {_num(self.target[j] + self.region_tol)}))")
        return "\n".join(lines) + "\n"

    def to_json(self, model_file: str | None = None) -> dict[str, Any]:
        from netopt import __version__

        data = self.model.SerializeToString()
        gt = {
            k: (
                np.asarray(v, dtype=np.float64).reshape(-1).tolist()
                if k == "x_star" and v is not None
                else v
            )
            for k, v in self.ground_truth.items()
        }
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "family": self.family,
            "netopt_version": __version__,
            "model": model_file or f"{self.name}.onnx",
            "model_sha256": hashlib.sha256(data).hexdigest(),
            "vnnlib": f"{self.name}.vnnlib",
            "region_tol": self.region_tol,
            "problem": self.problem.to_json(),
            "ground_truth": gt,
            "params": self.params,
            "attachments": {k: f"{self.name}.{k}" for k in self.attachments},
        }

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write the instance's files into ``out_dir`` (created); returns ``{kind: path}``."""
        d = Path(out_dir)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the output folder {d}: {e.strerror}") from None
        paths = {
            "onnx": d / f"{self.name}.onnx",
            "json": d / f"{self.name}.json",
            "vnnlib": d / f"{self.name}.vnnlib",
        }
        paths["onnx"].write_bytes(self.model.SerializeToString())
        paths["vnnlib"].write_text(self.vnnlib())
        for k, text in self.attachments.items():
            paths[k] = d / f"{self.name}.{k}"
            paths[k].write_text(text)
        paths["json"].write_text(json.dumps(self.to_json(), indent=1) + "\n")
        self.model_path = str(paths["onnx"])
        return paths


def load_instance(path: str | os.PathLike) -> Instance:
    """Read an instance JSON written by :meth:`Instance.save` (its ONNX file beside it).

    The model's SHA-256 is checked against the JSON, so a JSON never silently pairs with a
    different network. The file is user input: every field is checked, and anything malformed
    raises :class:`~netopt.errors.InputError` naming the file and the field, never another
    exception.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder; give the instance .json file written by netopt gen")
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read the instance file ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise InputError(f'{p}: not a netopt instance file (no "format": "{FORMAT}")')
    fv = d.get("format_version", 0)
    if isinstance(fv, bool) or not isinstance(fv, int):
        raise InputError(f"{p}: format_version must be an integer, got {fv!r}")
    if fv > FORMAT_VERSION:
        raise InputError(
            f"{p}: instance format version {fv} is newer than this netopt "
            f"reads ({FORMAT_VERSION}); upgrade netopt"
        )
    missing = [k for k in ("name", "family", "model", "region_tol", "problem") if k not in d]
    if missing:
        raise InputError(f"{p}: the instance file lacks {missing}; write it with Instance.save")
    for k in ("name", "family", "model"):
        if not isinstance(d[k], str) or not d[k]:
            raise InputError(f"{p}: {k} must be a non-empty string, got {d[k]!r}")
    mp = p.parent / d["model"]
    if mp.is_dir():
        raise InputError(f"{p}: its model {d['model']!r} names the folder {mp}, not an .onnx file")
    try:
        data = mp.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: its model {mp} is missing") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read its model {mp} ({e.strerror})") from None
    if hashlib.sha256(data).hexdigest() != d.get("model_sha256"):
        raise InputError(
            f"{p}: {mp} is not the model this instance was written with (SHA-256 differs)"
        )
    prob = d["problem"]
    if not isinstance(prob, dict) or prob.get("type") != "Inversion":
        kind = prob.get("type") if isinstance(prob, dict) else prob
        raise InputError(f"{p}: only Inversion instances are supported, got {kind!r}")
    if any(k not in prob for k in ("target", "norm", "domain")):
        raise InputError(f"{p}: its problem lacks the target, norm or domain")
    target = _numbers(prob["target"], p, "problem.target")
    dom = prob["domain"]
    if not isinstance(dom, dict):
        raise InputError(
            f"{p}: problem.domain must be an object with lists 'lo' and 'hi', got {dom!r:.80}"
        )
    for k in ("lo", "hi"):
        if k not in dom:
            raise InputError(f"{p}: problem.domain lacks {k!r} (a list of numbers)")
    lo = _numbers(dom["lo"], p, "problem.domain.lo")
    hi = _numbers(dom["hi"], p, "problem.domain.hi")
    if lo.size != hi.size:
        raise InputError(f"{p}: problem.domain.lo has {lo.size} entries but hi has {hi.size}")
    norm = prob["norm"]
    if norm not in (1, 2, "inf") or isinstance(norm, bool):
        raise InputError(f'{p}: problem.norm must be 1, 2 or "inf", got {norm!r}')
    region_tol = d["region_tol"]
    if (
        isinstance(region_tol, bool)
        or not isinstance(region_tol, int | float)
        or not np.isfinite(region_tol)
        or region_tol < 0
    ):
        raise InputError(
            f"{p}: region_tol must be a finite non-negative number, got {region_tol!r}"
        )
    for k in ("ground_truth", "params", "attachments"):
        if not isinstance(d.get(k, {}), dict):
            raise InputError(f"{p}: {k} must be an object, got {d[k]!r:.80}")
    attachments = {}
    for k, fn in d.get("attachments", {}).items():
        if not isinstance(fn, str) or not fn:
            raise InputError(f"{p}: attachments[{k!r}] must be a file name, got {fn!r}")
        ap = p.parent / fn
        if ap.is_file():
            try:
                attachments[k] = ap.read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"{p}: cannot read its attachment {ap} ({e})") from None
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends: the file is not ONNX
        raise InputError(f"{p}: its model {mp} is not a readable ONNX file ({e})") from None
    return Instance(
        name=d["name"],
        family=d["family"],
        model=model,
        target=target,
        lo=lo,
        hi=hi,
        norm=float("inf") if norm == "inf" else float(norm),
        region_tol=float(region_tol),
        ground_truth=d.get("ground_truth", {}),
        params=d.get("params", {}),
        attachments=attachments,
        model_path=str(mp),
    )


def _numbers(v: Any, p: Path, where: str) -> np.ndarray:
    """A JSON list of finite numbers as float64, or :class:`InputError` naming file and field."""
    if not isinstance(v, list) or not all(
        isinstance(t, int | float) and not isinstance(t, bool) for t in v
    ):
        raise InputError(f"{p}: {where} must be a list of numbers, got {v!r:.80}")
    try:
        a = np.asarray(v, dtype=np.float64)
    except OverflowError:  # a JSON integer beyond float range
        raise InputError(f"{p}: {where} has a number out of range") from None
    if not np.all(np.isfinite(a)):
        raise InputError(f"{p}: {where} must be finite")
    return a
