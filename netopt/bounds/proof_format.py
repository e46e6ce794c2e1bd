"""The format of branch-and-bound proofs: :class:`BabProof` and its JSON form.

The tree's node forms and what a leaf claims are described in :mod:`netopt.bounds.proof`, whose
:func:`~netopt.bounds.proof.check_proof` re-checks a proof; this module holds the data alone, so
that the search (:func:`netopt.bounds.branch.branch_and_bound`) can record proofs without
importing the checker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netopt.errors import InputError

__all__ = ["BabProof", "FORMAT", "VERSION"]

#: The format's name and version, written into every proof. From version 2 on a reader takes
#: every version up to its own and refuses a later one by name (a newer field it would ignore
#: could only make it reject a sound proof with a confusing message); readers before it ignored
#: the version, and some version-1 proofs already carry ``"pre"`` and ``"form"``. Version 3
#: adds ``"inherit"``; a proof without it is written as version 2, which older readers take.
FORMAT = "netopt-bab-proof"
VERSION = 3
#: the version written for a proof without ``"inherit"``
VERSION_PLAIN = 2
#: The network forms a proof's units may be counted in (:attr:`BabProof.form`).
FORMS = ("", "chain")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    # an integer beyond float64's range (JSON allows any) would overflow float(): refused
    if isinstance(v, int) and not isinstance(v, bool):
        return abs(v) < 2**1023
    return isinstance(v, float)


def _floats(v: Any, where: str, ndim: int) -> np.ndarray:
    """A JSON list (of lists) of numbers as a float64 array of ``ndim`` dimensions."""
    if isinstance(v, np.ndarray) and v.dtype.kind in "fiu":
        a = v.astype(np.float64)
    else:
        if not isinstance(v, list):
            raise InputError(f"proof.{where} must be a list, got {type(v).__name__}")
        try:
            a = np.asarray(v)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"proof.{where} must hold numbers only") from None
        # (a null, a string, a boolean or a ragged list is no array of numbers)
        if a.dtype.kind not in "fiu":
            raise InputError(f"proof.{where} must hold numbers only")
        a = a.astype(np.float64)
    if ndim == 2 and a.size == 0 and a.ndim != 2:
        # an empty list: no rows (reshape(0, -1) is ambiguous for numpy)
        a = a.reshape(len(a) if a.ndim >= 1 else 0, 0)
    if a.ndim != ndim:
        raise InputError(f"proof.{where} must have {ndim} dimension(s), got {a.ndim}")
    return a


@dataclass
class BabProof:
    """A branch-and-bound tree proving that no ``x`` in ``[lo, hi]`` has ``C f(x) <= d``.

    Attributes
    ----------
    lo, hi : (n_in,) float64
        The flattened root box.
    C : (k, n_out) float64
    d : (k,) float64
    nodes : list
        The tree in pre-order: ``["x", i, cut]``, ``["r", layer, unit]``, ``["leaf", row]`` or
        ``["leaf", row, p]`` (see the module's docstring).
    params : list of dict
        Per-leaf bound parameters: ``{"slopes": [...], "betas": [[layer, unit, beta], ...]}``,
        or the slopes of a few units only, ``"alphas": [[layer, unit, slope], ...]``; and
        ``"lam": [...]``, one weight per row: the leaf claims the bound of that combination of
        the rows instead of its one row.
    pre : list
        The root's optimized activation bounds (alpha-CROWN's intermediate bounds), used by
        every leaf of the root's box: entries ``(layer, units, sides, slopes)``, row ``r`` the
        bound of ``sides[r] * z[units[r]]`` of that activation op's input ``z`` (side ``+1``: a
        lower bound of the unit's input, ``-1``: an upper one), each bounded by CROWN with its own lower-line
        slopes of the earlier layers, ``slopes`` a list of ``(layer i, units of layer i,
        (R, len(units)) slopes)``. In JSON: ``{"layer", "units", "sides", "slopes": [[i,
        [units], [[per row]]]]}``. Empty: CROWN's bounds.
    form : str
        The form of the network the units are counted in: ``""`` the network as given (max
        pooling as ReLUs), ``"chain"`` its chain form on the root box
        (:func:`netopt.ir.chain_form.chain_form` of the graph and ``lo``: skip connections
        carried through the layers), which the checker rebuilds.
    inherit : bool
        Every bound below an input split starts from the activation signs that its nearest
        input-split ancestor's own bounds prove (:meth:`netopt.bounds.bab.BatchCrown.bound`'s
        ``known``; a unit fixed on a box is fixed on its pieces, and CROWN's bounds of a piece
        are not always as tight as its parent's), and every bound in the tree back-substitutes
        only the rows of the units whose sign is still open (``unstable_only``). The checker
        then bounds each input-split node too, from the root down, to derive them
        (:mod:`netopt.bounds.proof`). In JSON ``"inherit": true``, left out when false.

    Its JSON (:meth:`to_dict`) also names the format, ``"format": "netopt-bab-proof"``, and its
    ``"version"`` (:data:`VERSION`); :meth:`from_dict` refuses another format or a later version.
    """

    lo: np.ndarray
    hi: np.ndarray
    C: np.ndarray
    d: np.ndarray
    nodes: list = field(default_factory=list)
    params: list = field(default_factory=list)
    pre: list = field(default_factory=list)
    form: str = ""
    inherit: bool = False

    def __post_init__(self) -> None:
        self.lo = np.asarray(self.lo, dtype=np.float64).reshape(-1)
        self.hi = np.asarray(self.hi, dtype=np.float64).reshape(-1)
        self.C = np.atleast_2d(np.asarray(self.C, dtype=np.float64))
        self.d = np.asarray(self.d, dtype=np.float64).reshape(-1)

    @classmethod
    def single_leaf(
        cls, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, d: np.ndarray, row: int
    ) -> BabProof:
        """The proof of a root box closed by CROWN alone on row ``row``."""
        return cls(lo, hi, C, d, [["leaf", int(row)]], [])

    def to_dict(self) -> dict[str, Any]:
        """The proof as a JSON-able dict (:meth:`from_dict` reads it back)."""
        return {
            "format": FORMAT,
            "version": VERSION if self.inherit else VERSION_PLAIN,
            "lo": self.lo.tolist(),
            "hi": self.hi.tolist(),
            "C": self.C.tolist(),
            "d": self.d.tolist(),
            "nodes": [list(n) for n in self.nodes],
            "params": [dict(p) for p in self.params],
            **({"pre": [_pre_json(e) for e in self.pre]} if self.pre else {}),
            **({"form": self.form} if self.form else {}),
            **({"inherit": True} if self.inherit else {}),
        }

    @classmethod
    def from_dict(cls, obj: Any) -> BabProof:
        """A proof from its parsed JSON; :class:`InputError` names the bad field or node.

        The fields' types and shapes, and the indices that need no network (an input
        coordinate below ``len(lo)``, a row below ``len(d)``, a parameter set that exists)
        are checked here; the network-dependent ones by :func:`check_proof`.
        """
        if not isinstance(obj, dict):
            raise InputError(f"a proof must be a JSON object, got {type(obj).__name__}")
        _check_format(obj)
        for key in ("lo", "hi", "C", "d", "nodes"):
            if key not in obj:
                raise InputError(f"proof.{key} is missing")
        lo, hi = _floats(obj["lo"], "lo", 1), _floats(obj["hi"], "hi", 1)
        if lo.shape != hi.shape:
            raise InputError(f"proof.lo has {lo.size} entries, proof.hi {hi.size}")
        C, d = _floats(obj["C"], "C", 2), _floats(obj["d"], "d", 1)
        if C.shape[0] != d.size:
            raise InputError(f"proof.C has {C.shape[0]} rows, proof.d {d.size} entries")
        nodes, params = obj["nodes"], obj.get("params", [])
        if not isinstance(nodes, list):
            raise InputError("proof.nodes must be a list")
        if not isinstance(params, list):
            raise InputError("proof.params must be a list")
        for k, p in enumerate(params):
            _read_params(p, f"proof.params[{k}]")
        n_in, n_rows = lo.size, d.size
        for k, nd in enumerate(nodes):
            bad = _node_error(nd, n_in, n_rows, len(params))
            if bad:
                raise InputError(f"proof.nodes[{k}]: {bad}")
        pre = obj.get("pre", [])
        if not isinstance(pre, list):
            raise InputError("proof.pre must be a list")
        form = obj.get("form", "")
        if form not in FORMS:
            raise InputError(f"proof.form must be one of {FORMS}, got {form!r}")
        inherit = obj.get("inherit", False)
        if not isinstance(inherit, bool):
            raise InputError(f"proof.inherit must be true or false, got {inherit!r}")
        pre_rows = [_read_pre(e, k) for k, e in enumerate(pre)]
        return cls(lo, hi, C, d, nodes, params, pre_rows, form, inherit)


def _check_format(obj: dict) -> None:
    """Refuse another format's document or a later version of this one, by name.

    Both fields are optional on reading (a proof without them is read as this version's);
    the claim never rests on them: every leaf is re-checked whatever they say.
    """
    fmt = obj.get("format", FORMAT)
    if fmt != FORMAT:
        raise InputError(f"proof.format is {fmt!r}: not a branch-and-bound proof ({FORMAT!r})")
    version = obj.get("version", VERSION)
    if not _is_int(version) or version < 1:
        raise InputError(f"proof.version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise InputError(
            f"proof.version is {version}: written by a newer netopt than this one, which reads "
            f"proofs up to version {VERSION}; upgrade netopt to check it"
        )


def _pre_json(e: tuple) -> dict[str, Any]:
    layer, units, sides, slopes = e
    return {
        "layer": int(layer),
        "units": [int(u) for u in units],
        "sides": [int(s) for s in sides],
        "slopes": [
            [int(i), [int(u) for u in cols], np.asarray(v, np.float64).tolist()]
            for i, cols, v in slopes
        ],
    }


def _ints(v: Any, where: str) -> np.ndarray:
    if not isinstance(v, list) or not all(_is_int(u) and 0 <= u < 2**62 for u in v):
        raise InputError(f"{where} must be a list of non-negative integers (below 2**62)")
    return np.asarray(v, dtype=np.int64).reshape(-1)


def _read_pre(e: Any, k: int) -> tuple:
    """One entry of ``proof.pre``, type-checked (its ranges need the network: the checker)."""
    where = f"proof.pre[{k}]"
    if not isinstance(e, dict) or not all(
        key in e for key in ("layer", "units", "sides", "slopes")
    ):
        raise InputError(f"{where} must be an object with layer, units, sides and slopes")
    if not _is_int(e["layer"]) or e["layer"] < 0:
        raise InputError(f"{where}.layer must be a non-negative integer")
    units = _ints(e["units"], f"{where}.units")
    sides = e["sides"]
    if not isinstance(sides, list) or not all(s in (1, -1) and _is_int(s) for s in sides):
        raise InputError(f"{where}.sides must be a list of 1 and -1")
    if len(sides) != len(units):
        raise InputError(f"{where} has {len(units)} units and {len(sides)} sides")
    if not isinstance(e["slopes"], list):
        raise InputError(f"{where}.slopes must be a list of [layer, units, slopes]")
    slopes = []
    for t in e["slopes"]:
        if not (isinstance(t, list) and len(t) == 3 and _is_int(t[0]) and t[0] >= 0):
            raise InputError(f"{where}.slopes: each entry is [layer, units, slopes]")
        cols = _ints(t[1], f"{where}.slopes' units")
        v = _floats(t[2], f"pre[{k}].slopes", 2)
        if v.shape != (len(units), len(cols)):
            raise InputError(
                f"{where}.slopes of layer {t[0]} must be {len(units)} rows of {len(cols)}"
            )
        slopes.append((int(t[0]), cols, v))
    return int(e["layer"]), units, np.asarray(sides, dtype=np.int64), slopes


def _node_error(nd: Any, n_in: int, n_rows: int, n_params: int) -> str:
    """What is wrong with one node's form (empty when nothing)."""
    if not isinstance(nd, list) or not nd or not isinstance(nd[0], str):
        return f"a node is a list starting with 'x', 'r' or 'leaf', got {str(nd)[:60]}"
    t = nd[0]
    if t == "x":
        if len(nd) != 3 or not _is_int(nd[1]) or not _is_num(nd[2]):
            return "an input split is ['x', coordinate, cut]"
        if not 0 <= nd[1] < n_in:
            return f"input coordinate {nd[1]} out of range (the box has {n_in})"
        if not math.isfinite(nd[2]):
            return f"the cut {nd[2]!r} is not finite"
    elif t == "r":
        if len(nd) != 3 or not _is_int(nd[1]) or not _is_int(nd[2]):
            return "a ReLU split is ['r', layer, unit]"
        if nd[1] < 0 or nd[2] < 0:
            return "a ReLU split's layer and unit are non-negative"
    elif t == "leaf":
        if len(nd) not in (2, 3) or not all(_is_int(v) for v in nd[1:]):
            return "a leaf is ['leaf', row] or ['leaf', row, params index]"
        if not 0 <= nd[1] < n_rows:
            return f"row {nd[1]} out of range (C has {n_rows})"
        if len(nd) == 3 and not 0 <= nd[2] < n_params:
            return f"params index {nd[2]} out of range ({n_params} given)"
    else:
        return f"unknown node type {t[:20]!r}"
    return ""


def _read_params(p: Any, where: str) -> tuple[list | None, list, list, np.ndarray | None]:
    """A parameter set's slopes (per layer an array or None), betas, alphas (the slopes of
    a few units) and lam (weights of the rows), type-checked."""
    if not isinstance(p, dict):
        raise InputError(f"{where} must be a JSON object")
    slopes = p.get("slopes")
    out: list | None = None
    if slopes is not None:
        if not isinstance(slopes, list):
            raise InputError(f"{where}.slopes must be a list (one entry per activation op)")
        out = []
        for j, s in enumerate(slopes):
            out.append(None if s is None else _floats(s, f"{where[6:]}.slopes[{j}]", 1))
    betas = _triples(p, "betas", where)
    alphas = _triples(p, "alphas", where)
    if alphas and slopes is not None:
        raise InputError(f"{where} gives both slopes and alphas: give one")
    lam = p.get("lam")
    if lam is not None:
        lam = _floats(lam, f"{where[6:]}.lam", 1)
    return out, betas, alphas, lam


def _triples(p: dict, key: str, where: str) -> list:
    """``p[key]``: a list of ``[layer, unit, value]`` (``"betas"``, ``"alphas"``), type-checked."""
    name = "beta" if key == "betas" else "slope"
    out = p.get(key) or []
    if not isinstance(out, list):
        raise InputError(f"{where}.{key} must be a list of [layer, unit, {name}]")
    for t in out:
        if not (
            isinstance(t, list)
            and len(t) == 3
            and _is_int(t[0])
            and _is_int(t[1])
            and t[0] >= 0
            and t[1] >= 0
            and _is_num(t[2])
        ):
            raise InputError(f"{where}.{key}: each entry is [layer, unit, {name}], got {t!r:.60}")
    return out
