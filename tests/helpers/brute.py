"""Small random ReLU MLPs and their exact optima by brute force over activation patterns."""

from __future__ import annotations

import itertools

import numpy as np
from onnx import helper
from scipy.optimize import linprog

from helpers.nets import make_model


def random_mlp(seed: int, max_relus: int = 8):
    """A random 2-3 layer ReLU MLP (numpy weights and the ONNX model)."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 4))
    n_hidden = int(rng.integers(1, 3))
    widths, left = [], max_relus
    for k in range(n_hidden):
        w = int(rng.integers(1, max(2, left - (n_hidden - k - 1)) + 1))
        w = min(w, left - (n_hidden - k - 1))
        widths.append(w)
        left -= w
    n_out = int(rng.integers(1, 3))
    dims = [n_in, *widths, n_out]
    Ws = [rng.normal(size=(dims[i + 1], dims[i])) for i in range(len(dims) - 1)]
    bs = [rng.normal(size=dims[i + 1]) * 0.5 for i in range(len(dims) - 1)]
    nodes, inits, cur = [], {}, "x"
    for i, (w, b) in enumerate(zip(Ws, bs, strict=True)):
        inits[f"w{i}"], inits[f"b{i}"] = w, b
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"h{i}"], transB=1))
        cur = f"h{i}"
        if i < len(Ws) - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    nodes[-1].output[0] = "y"
    model = make_model(nodes, ["N", n_in], ["N", n_out], inits)
    # the ONNX file stores float32: the reference uses the same rounded weights
    Ws = [w.astype(np.float32).astype(np.float64) for w in Ws]
    bs = [b.astype(np.float32).astype(np.float64) for b in bs]
    return model, Ws, bs


def brute_force(Ws, bs, target, p, lo=-1.0, hi=1.0) -> float:
    """min ||f(x) - t||_p over the box: one LP per activation pattern (scipy's linprog)."""
    n_in = Ws[0].shape[1]
    widths = [w.shape[0] for w in Ws[:-1]]
    best = np.inf
    for pattern in itertools.product([0, 1], repeat=sum(widths)):
        # a_k = D_k (W_k a_{k-1} + b_k) as an affine map P x + q of the input
        P, q = np.eye(n_in), np.zeros(n_in)
        A_ub, b_ub, k = [], [], 0
        for W, b, n in zip(Ws[:-1], bs[:-1], widths, strict=True):
            zP, zq = W @ P, W @ q + b
            d = np.array(pattern[k : k + n], dtype=float)
            k += n
            # active: z >= 0  (-z <= 0); inactive: z <= 0
            sgn = np.where(d > 0, -1.0, 1.0)
            A_ub.append(sgn[:, None] * zP)
            b_ub.append(-sgn * zq)
            P, q = d[:, None] * zP, d * zq
        yP, yq = Ws[-1] @ P, Ws[-1] @ q + bs[-1]
        m = len(yq)
        # variables: x (n_in), t (m for p=1, 1 for p=inf)
        nt = m if p == 1 else 1
        T = np.eye(m) if p == 1 else np.ones((m, 1))
        Au = [np.hstack([a, np.zeros((len(a), nt))]) for a in A_ub]
        Au.append(np.hstack([yP, -T]))  # y - t <= target
        Au.append(np.hstack([-yP, -T]))  # -(y - t) <= -target
        bu = [*b_ub, target - yq, -(target - yq)]
        res = linprog(
            np.r_[np.zeros(n_in), np.ones(nt)],
            A_ub=np.vstack(Au),
            b_ub=np.concatenate(bu),
            bounds=[(lo, hi)] * n_in + [(0, None)] * nt,
            method="highs",
        )
        if res.status == 0:
            best = min(best, res.fun)
    return best
