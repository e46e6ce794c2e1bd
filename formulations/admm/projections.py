r"""Euclidean projections onto the graphs of activations, in closed form, batched in torch.

Each function takes a point :math:`(a, b)` (pre-activation, post-activation; any matching shapes
for the elementwise ones) and returns the nearest :math:`(x, y)` with :math:`y = \sigma(x)`. The
derivations are in ALGORITHMS.md section 1.3; the tests compare each with brute force.

ReLU, :math:`\{(t, t) : t \ge 0\} \cup \{(t, 0) : t \le 0\}`: the nearest point of the first
ray is :math:`t_+ = \max((a + b)/2, 0)`, of the second :math:`(\min(a, 0), 0)`; the nearer wins.

LeakyReLU with slope :math:`c \in [0, 1)`, rays :math:`(t, t), t \ge 0` and :math:`(t, ct), t
\le 0`: candidates :math:`t_+ = \max((a + b)/2, 0)` and :math:`t_- = \min((a + cb)/(1 + c^2),
0)`; the nearer wins.

Max-pool over a window, :math:`\{(x, y) : y = \max_j x_j\}`, from :math:`(a \in
\mathbb{R}^m, b)`: sort :math:`a_{(1)} \ge \dots \ge a_{(m)}`, let :math:`t_k = (b + a_{(1)} +
\dots + a_{(k)})/(k + 1)` and take the smallest :math:`k` with :math:`t_k \ge a_{(k+1)}`
(:math:`a_{(m+1)} = -\infty`); then :math:`y = t_k`, the :math:`k` largest coordinates become
:math:`t_k` and the others keep :math:`a`. (For fixed :math:`y = t` the cost is :math:`(b - t)^2
+ (t - a_{(1)})^2 + \sum_{j \ge 2} (a_{(j)} - t)_+^2`, convex in :math:`t`; :math:`t_k` is its
stationary point on the piece where exactly :math:`k` coordinates exceed :math:`t`.)

Identity (a block without activation), :math:`\{(t, t)\}`: :math:`t = (a + b)/2`. The input
block's :math:`\{(t, t) : lo \le t \le hi\}`: :math:`t = \operatorname{clip}((a + b)/2, lo,
hi)` (the 2-D problem is a 1-D convex one in :math:`t`).
"""

from __future__ import annotations

import torch

__all__ = ["project_relu", "project_leaky_relu", "project_maxpool", "project_linear", "project_box"]


def project_relu(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest point of the ReLU graph to ``(a, b)``, elementwise."""
    t = torch.clamp(0.5 * (a + b), min=0.0)
    xm = torch.clamp(a, max=0.0)
    d_pos = (a - t) ** 2 + (b - t) ** 2
    d_neg = (a - xm) ** 2 + b**2
    pos = d_pos <= d_neg
    return torch.where(pos, t, xm), torch.where(pos, t, torch.zeros_like(t))


def project_leaky_relu(
    a: torch.Tensor, b: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest point of the LeakyReLU graph (slope ``alpha`` for negative inputs)."""
    tp = torch.clamp(0.5 * (a + b), min=0.0)
    tn = torch.clamp((a + alpha * b) / (1.0 + alpha * alpha), max=0.0)
    d_pos = (a - tp) ** 2 + (b - tp) ** 2
    d_neg = (a - tn) ** 2 + (b - alpha * tn) ** 2
    pos = d_pos <= d_neg
    return torch.where(pos, tp, tn), torch.where(pos, tp, alpha * tn)


def project_maxpool(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Nearest point of the max graph, window by window.

    Parameters
    ----------
    a : (..., m)
        The windows' cells; ``-inf`` marks a padding cell (never the maximum, never moved).
    b : (...)
        The window outputs.

    Returns
    -------
    x : (..., m), y : (...)
    """
    m = a.shape[-1]
    srt, order = torch.sort(a, dim=-1, descending=True)
    k = torch.arange(1, m + 1, dtype=a.dtype, device=a.device)
    # padding cells (-inf) sort last: their prefix sums are -inf and never chosen before the
    # last real cell, where the condition holds (the next "cell" is -inf)
    t = (b.unsqueeze(-1) + torch.cumsum(srt, dim=-1)) / (k + 1)
    nxt = torch.cat([srt[..., 1:], torch.full_like(srt[..., :1], -torch.inf)], dim=-1)
    ok = t >= nxt
    first = torch.argmax(ok.to(torch.int8), dim=-1, keepdim=True)  # smallest k with t_k >= a_(k+1)
    tk = torch.gather(t, -1, first)
    top = torch.arange(m, device=a.device) <= first
    xs = torch.where(top, tk, srt)
    x = torch.empty_like(a).scatter_(-1, order, xs)
    x = torch.where(torch.isinf(a), a, x)
    return x, tk.squeeze(-1)


def project_linear(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest point of the identity's graph: both at the midpoint."""
    t = 0.5 * (a + b)
    return t, t


def project_box(
    a: torch.Tensor, b: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest point of :math:`\\{(t, t) : lo \\le t \\le hi\\}`."""
    t = torch.maximum(torch.minimum(0.5 * (a + b), hi), lo)
    return t, t
