"""Pure IR -> IR rewrites that leave the forward pass unchanged.

Each pass is a function ``Graph -> Graph``; :data:`DEFAULT_PASSES` is what
:func:`netopt.load` runs. The rewrites:

* :func:`drop_identities` — Identity/Dropout/float Cast, reshapes to the same
  shape, identity permutations, ``scale`` by 1 plus 0, zero padding;
* :func:`merge_index_remaps` — chains of reshapes become one; transposes that
  only move size-1 axes become reshapes; consecutive transposes compose (a
  cancelling NHWC<->NCHW pair disappears);
* :func:`fold_scales` — elementwise constant maps (BatchNorm, normalization
  Sub/Div, constant Mul, bias Adds) fold into the neighbouring ``affine`` or
  ``conv2d`` (this is also the MatMul+Add fusion), or into each other.

A fold only happens where the intermediate value has one reader and is no graph
output, so no value a user may ask for disappears silently.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from netopt.ir.graph import Graph, Op

__all__ = [
    "drop_identities",
    "merge_index_remaps",
    "fold_scales",
    "DEFAULT_PASSES",
    "run_passes",
]


def _rewire(ops: list[Op], old: str, new: str) -> list[Op]:
    return [
        o.replace(inputs=tuple(new if i == old else i for i in o.inputs)) if old in o.inputs else o
        for o in ops
    ]


def _is_noop(g: Graph, o: Op) -> bool:
    x = g.value(o.inputs[0]).shape if o.inputs else None
    if o.op == "identity":
        return True
    if o.op == "reshape":
        return tuple(o.attrs["shape"]) == x
    if o.op == "transpose":
        return tuple(o.attrs["perm"]) == tuple(range(len(o.attrs["perm"])))
    if o.op == "pad":
        return not any(o.attrs["pads"])
    if o.op == "scale":
        return (
            bool(np.all(o.attrs["mul"] == 1.0))
            and bool(np.all(o.attrs["add"] == 0.0))
            and g.value(o.outputs[0]).shape == x
        )
    return False


def drop_identities(g: Graph) -> Graph:
    """Remove ops that compute the identity, rewiring their readers to the input."""
    ops = {o.id: o for o in g.ops}
    outputs = list(g.outputs)
    for oid in [o.id for o in g.ops]:
        o = ops[oid]  # the current version: earlier removals may have rewired it
        if not _is_noop(g, o):
            continue
        src, dst = o.inputs[0], o.outputs[0]
        del ops[oid]
        ops = {k: v for k, v in zip(ops, _rewire(list(ops.values()), dst, src), strict=True)}
        outputs = [src if v == dst else v for v in outputs]
    if len(ops) == len(g.ops):
        return g
    return g.rebuild(ops.values(), outputs=outputs)


def _single_reader(g: Graph, vid: str) -> Op | None:
    readers = g.consumers(vid)
    if len(readers) == 1 and vid not in g.outputs:
        return readers[0]
    return None


def _transpose_as_reshape(g: Graph, o: Op) -> bool:
    # a permutation that keeps the relative order of the non-unit axes is a reshape
    shape = g.value(o.inputs[0]).shape
    nonunit = [a for a in o.attrs["perm"] if shape[a] != 1]
    return nonunit == sorted(nonunit)


def merge_index_remaps(g: Graph) -> Graph:
    """Merge reshape chains, turn trivial transposes into reshapes, compose transposes."""
    while True:
        ops = list(g.ops)
        changed = False
        for o in g.ops:
            if o.op == "transpose" and _transpose_as_reshape(g, o):
                shape = g.value(o.outputs[0]).shape
                ops = [
                    o.replace(op="reshape", attrs={"shape": shape}) if p.id == o.id else p
                    for p in ops
                ]
                changed = True
                break
            nxt = _single_reader(g, o.outputs[0])
            if nxt is None:
                continue
            if o.op == "reshape" and nxt.op == "reshape":
                merged = nxt.replace(inputs=o.inputs)
            elif o.op == "transpose" and nxt.op == "transpose":
                p1, p2 = o.attrs["perm"], nxt.attrs["perm"]
                merged = nxt.replace(inputs=o.inputs, attrs={"perm": tuple(p1[i] for i in p2)})
            elif {o.op, nxt.op} <= _REMAPS and "select" in (o.op, nxt.op):
                # compose two index remaps into one select: y.flat = x.flat[i1.flat[i2]]
                i1 = _remap_index(g, o)
                i2 = _remap_index(g, nxt)
                merged = nxt.replace(
                    op="select", inputs=o.inputs, attrs={"index": i1.reshape(-1)[i2]}
                )
            else:
                continue
            ops = [merged if p.id == nxt.id else p for p in ops if p.id != o.id]
            changed = True
            break
        if not changed:
            return g
        g = drop_identities(g.rebuild(ops))


_REMAPS = {"reshape", "transpose", "select"}


def _remap_index(g: Graph, o: Op) -> np.ndarray:
    """The flat input index of every output entry of an index-remap op (output's shape)."""
    shape = g.value(o.inputs[0]).shape
    src = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    if o.op == "reshape":
        return src.reshape(g.value(o.outputs[0]).shape)
    if o.op == "transpose":
        return src.transpose(o.attrs["perm"])
    return np.asarray(o.attrs["index"])


# ----------------------------------------------------------------- fold_scales
def _full(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(c, dtype=np.float64), shape)


def _along_last(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``c`` as a vector over the last axis, if it varies along that axis only."""
    f = _full(c, shape).reshape(-1, shape[-1])
    return f[0].copy() if np.all(f == f[:1]) else None


def _per_channel(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``c`` as a vector over channels (axis 0 of a (C, H, W) sample), if it is one."""
    f = _full(c, shape).reshape(shape[0], -1)
    return f[:, 0].copy() if np.all(f == f[:, :1]) else None


def _fold_pair(g: Graph, a: Op, b: Op) -> Op | None:
    """Fold ``b(a(x))`` into one op when one of them is a ``scale``; None if not exact."""
    xs, mid, ys = (
        g.value(a.inputs[0]).shape,
        g.value(a.outputs[0]).shape,
        g.value(b.outputs[0]).shape,
    )
    if b.op == "scale" and a.op == "scale" and mid == ys:
        m1, c1, m2, c2 = a.attrs["mul"], a.attrs["add"], b.attrs["mul"], b.attrs["add"]
        return a.replace(
            outputs=b.outputs, attrs={"mul": np.asarray(m1 * m2), "add": np.asarray(c1 * m2 + c2)}
        )
    if b.op == "scale" and mid == ys:
        m, c = b.attrs["mul"], b.attrs["add"]
        if a.op == "affine":
            mv, cv = _along_last(m, ys), _along_last(c, ys)
            if mv is None or cv is None:
                return None
            w, bias = a.attrs["weight"], a.attrs["bias"]
            return a.replace(
                outputs=b.outputs, attrs={"weight": w * mv[:, None], "bias": bias * mv + cv}
            )
        if a.op == "conv2d":
            mv, cv = _per_channel(m, ys), _per_channel(c, ys)
            if mv is None or cv is None:
                return None
            w, bias = a.attrs["weight"], a.attrs["bias"]
            return a.replace(
                outputs=b.outputs,
                attrs={**a.attrs, "weight": w * mv[:, None, None, None], "bias": bias * mv + cv},
            )
        return None
    if a.op == "scale" and xs == mid:
        m, c = a.attrs["mul"], a.attrs["add"]
        if b.op == "affine":
            mv, cv = _along_last(m, mid), _along_last(c, mid)
            if mv is None or cv is None:
                return None
            w, bias = b.attrs["weight"], b.attrs["bias"]
            return b.replace(
                inputs=a.inputs, attrs={"weight": w * mv[None, :], "bias": bias + w @ cv}
            )
        if b.op == "conv2d":
            mv, cv = _per_channel(m, mid), _per_channel(c, mid)
            # a shift before a zero-padded conv changes the border: fold it only without pads
            if mv is None or cv is None or (np.any(cv) and any(b.attrs["pads"])):
                return None
            w, bias, grp = b.attrs["weight"], b.attrs["bias"], int(b.attrs["group"])
            M, cg = w.shape[0], w.shape[1]
            wg = w.reshape(grp, M // grp, cg, *w.shape[2:])
            mg, cgv = mv.reshape(grp, 1, cg, 1, 1), cv.reshape(grp, 1, cg, 1, 1)
            new_b = bias + (wg * cgv).sum(axis=(2, 3, 4)).reshape(M)
            return b.replace(
                inputs=a.inputs,
                attrs={**b.attrs, "weight": (wg * mg).reshape(w.shape), "bias": new_b},
            )
    return None


def fold_scales(g: Graph) -> Graph:
    """Fold elementwise constant maps into neighbouring ``affine``/``conv2d``/``scale`` ops.

    With :math:`s(x) = m \\odot x + c` varying along the features only:
    :math:`s(Wx + b) = (\\mathrm{diag}(m) W) x + (m \\odot b + c)` and
    :math:`W s(x) + b = (W \\mathrm{diag}(m)) x + (W c + b)`; for convolutions the
    same per channel, where a shift *before* a padded convolution is not folded
    (the zero border would become ``-c``).
    """
    while True:
        for a in g.ops:
            b = _single_reader(g, a.outputs[0])
            if b is None or "scale" not in (a.op, b.op):
                continue
            merged = _fold_pair(g, a, b)
            if merged is None:
                continue
            ops = [merged if p.id == (a.id if merged.id == a.id else b.id) else p for p in g.ops]
            ops = [p for p in ops if p.id != (b.id if merged.id == a.id else a.id)]
            g = g.rebuild(ops)
            break
        else:
            return g


DEFAULT_PASSES: tuple[Callable[[Graph], Graph], ...] = (
    drop_identities,
    merge_index_remaps,
    fold_scales,
    drop_identities,
)


def run_passes(g: Graph, passes: tuple[Callable[[Graph], Graph], ...] = DEFAULT_PASSES) -> Graph:
    """Apply ``passes`` in order."""
    for p in passes:
        g = p(g)
    return g
