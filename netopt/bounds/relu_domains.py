"""A ReLU-splitting round's per-domain state: the open domains' tensors merged, the unit to
split by score, and the closed leaves' slopes and multipliers for the proof."""

from __future__ import annotations

from typing import Any

import numpy as np


def merge(rt: Any, old: list | None, add: list | None, pair: bool = False) -> list | None:
    """The per-domain tensors of the domains left (``old`` at ``rt``) and the new ``add``."""
    import torch

    if old is None:
        return add
    if pair:
        kept = [(a[rt], b[rt]) for a, b in old]
        if add is None:
            return kept
        return [
            (torch.cat([a, a2]), torch.cat([b, b2]))
            for (a, b), (a2, b2) in zip(kept, add, strict=True)
        ]
    kept = [a[rt] for a in old]
    if add is None:
        return kept
    return [torch.cat([a, a2]) for a, a2 in zip(kept, add, strict=True)]


def choose_relu(scores: list, kt: Any, sp: list) -> tuple:
    """The unsplit unit of the highest score in each kept domain: ``(layer, unit, ok)``, where
    ``ok`` is False for a domain with no unstable unit left to split."""
    import torch

    best_val = best_layer = best_unit = None
    for j, sc in enumerate(scores):
        sc = sc[kt]
        sc = torch.where(sp[j] == 0, sc, torch.full_like(sc, -1.0))
        v, u = sc.max(dim=1)
        v, u = v.cpu().numpy(), u.cpu().numpy()
        if best_val is None:
            best_val, best_layer, best_unit = v, np.full(len(v), j), u
        else:
            better = v > best_val
            best_val = np.where(better, v, best_val)
            best_layer = np.where(better, j, best_layer)
            best_unit = np.where(better, u, best_unit)
    if best_val is None:
        n = len(sp[0]) if sp else 0
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    return best_layer, best_unit, best_val > 0


def at(a: Any, sel: np.ndarray) -> Any:
    """``a`` at the domains ``sel`` (a layer's array; None stays None)."""
    return None if a is None else a[sel]


def slopes_of(slopes: list | None, idx: Any) -> list[np.ndarray] | None:
    """The slopes per layer ``(len(idx), n_j)`` of the domains ``idx``, in float64 numpy."""
    if not slopes:
        return None
    return [s.detach()[idx].cpu().double().numpy() for s in slopes]


def betas_of(
    betas: list | None, idx: Any, rows: np.ndarray, splits: list
) -> list[np.ndarray] | None:
    """The beta multipliers of each domain's bounded row ``rows`` per layer ``(len(rows),
    n_j)``, zero where the domain's ``splits`` leave a unit free (a multiplier belongs to a
    split constraint), if any."""
    if not betas:
        return None
    out = []
    for b, s in zip(betas, splits, strict=True):
        b = b.detach()[idx].cpu().double().numpy()  # (B, k, n_j)
        out.append(b[np.arange(len(rows)), rows] * (s != 0))
    return out


def combination_rows(params: list, rows: np.ndarray, mu: np.ndarray | None, k: int) -> np.ndarray:
    """The tree's row of each closed leaf: ``rows`` (the bounded one), but for a leaf closed by
    the rows' combination (row ``k``), whose parameters then carry its weights ``"lam"`` (in
    place) and whose row is their largest."""
    out = rows.copy()
    for q in np.nonzero(rows >= k)[0]:
        params[q] = {**(params[q] or {}), "lam": mu[q].tolist()}
        out[q] = int(mu[q].argmax())
    return out


def leaf_params(
    slopes: list | None, betas: list | None, ok: np.ndarray, splits: list | None = None
) -> list[dict | None]:
    """The proof parameters of the confirmed leaves: slopes per layer, betas at their splits.

    (Whole-batch array operations, then one list per leaf: a round confirms thousands of
    leaves, and a loop over them in Python cost about 7 % of a decision's time.)"""
    idx = np.nonzero(ok)[0]
    out: list[dict] = [{} for _ in idx]
    if slopes is not None:
        per_layer = [s[idx].tolist() for s in slopes]
        for q, p in enumerate(out):
            p["slopes"] = [layer[q] for layer in per_layer]
    if betas is not None and splits is not None:
        for j, (b, s) in enumerate(zip(betas, splits, strict=True)):
            if b is None or s is None:
                continue
            bq, sq = np.asarray(b)[idx], np.asarray(s)[idx]
            # each leaf's positive multipliers at its split units, units in ascending order
            q, u = np.nonzero((sq != 0) & (bq > 0))
            for qq, uu, v in zip(q.tolist(), u.tolist(), bq[q, u].tolist(), strict=True):
                out[qq].setdefault("betas", []).append([j, uu, v])
    return [p or None for p in out]
