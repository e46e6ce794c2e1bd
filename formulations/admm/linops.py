r"""Linear operators of the split chain in torch, and the solves with :math:`I + W^\top W`.

ADMM's interior update (paper (9)) is :math:`z = (I + W^\top W)^{-1} r`. How it is solved
depends on :math:`W` (:math:`m \times n`):

* **dense**: the inverse is formed once, in float64, and applied as a matrix product (one GEMM
  per iteration, the fastest kernel on any device). Directly, :math:`(I + W^\top W)^{-1}`
  (:math:`n \times n`, cost :math:`n^2` per row), or by Woodbury,
  :math:`(I + W^\top W)^{-1} = I - W^\top (I + W W^\top)^{-1} W` (cost :math:`2mn + m^2`),
  whichever is cheaper. Both matrices have eigenvalues in :math:`[1, 1 + \|W\|^2]`, so the
  explicit inverse is as accurate as a Cholesky solve.
* **circular convolution** (stride 1): the 2-D DFT block-diagonalizes :math:`W`,
  :math:`\widehat{Wx}(\omega) = \hat K(\omega) \hat x(\omega)` with :math:`\hat K(\omega) \in
  \mathbb{C}^{C_{out} \times C_{in}}`, so :math:`(I + W^\top W)^{-1}` is one small Hermitian
  solve :math:`(I + \hat K^H \hat K) \hat z = \hat r` per frequency (:func:`fft_circular_solve`).
* **any other convolution or sparse map** (zero padding, strides): conjugate gradients on
  :math:`I + W^\top W` with :math:`W` as ``conv2d`` and :math:`W^\top` as the polyphase
  ``conv2d`` of :func:`conv_adjoint` (or sparse products), warm-started from the previous iterate
  (:func:`cg`). The matrix is symmetric positive definite with condition number :math:`\le 1 +
  \|W\|^2`.

ADMM needs :math:`z = (I + W^\top W)^{-1}(a + W^\top t)` *and* :math:`W z` (the next pair
projection reads it). Every operator's :meth:`update` returns both at the cost of one forward
and one adjoint product plus the solve's own work:

* Woodbury, with :math:`K = I + W W^\top` and :math:`e = (W a - t) K^{-1}`: :math:`z = a - W^\top
  e` and :math:`W z = t + e` (since :math:`W W^\top = K - I`); one :math:`W`, one :math:`W^\top`,
  one :math:`m \times m` product;
* direct: :math:`z = (a + W^\top t) G^{-1}`, :math:`W z` by one product;
* CG from :math:`x_0` with :math:`W x_0` known (the previous iterate's product): the initial
  residual :math:`a - x_0 + W^\top(t - W x_0)` takes one :math:`W^\top`, and :math:`W x` is
  carried along the iterations (:math:`W x \mathrel{+}= \alpha W p`, where :math:`W p` is half of
  the CG product anyway), so ``n`` CG steps cost ``n`` forward and ``n + 1`` adjoint products.

A Cholesky factor instead of the explicit inverse would cost two triangular solves, i.e. twice
the flops of the one GEMM, with no accuracy gain at these condition numbers; it is not used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from netopt.ir.torch_windows import conv_adjoint, conv_adjoint_weight

__all__ = [
    "make_operator",
    "DenseOp",
    "IdentityOp",
    "ConvOp",
    "SparseOp",
    "cg",
    "fft_circular_solve",
]


def cg(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    r: torch.Tensor,
    x0: torch.Tensor | None = None,
    iters: int = 50,
    tol: float = 1e-10,
) -> torch.Tensor:
    r"""Conjugate gradients for :math:`A x = r`, :math:`A` s.p.d., every row of ``r`` at once.

    Each row has its own step sizes; the loop stops when every row's residual norm is at most
    ``tol`` times its right-hand side's (or after ``iters`` steps).
    """
    x = torch.zeros_like(r) if x0 is None else x0.clone()
    res = r - matvec(x) if x0 is not None else r.clone()
    p = res.clone()
    rs = (res * res).sum(dim=1, keepdim=True)
    stop = (tol**2) * torch.clamp((r * r).sum(dim=1, keepdim=True), min=1e-300)
    for _ in range(iters):
        if bool((rs <= stop).all()):
            break
        Ap = matvec(p)
        pAp = (p * Ap).sum(dim=1, keepdim=True)
        alpha = torch.where(rs > stop, rs / torch.clamp(pAp, min=1e-300), torch.zeros_like(rs))
        x = x + alpha * p
        res = res - alpha * Ap
        rs_new = (res * res).sum(dim=1, keepdim=True)
        beta = rs_new / torch.clamp(rs, min=1e-300)
        p = res + beta * p
        rs = rs_new
    return x


def cg_update(
    mv: Callable[[torch.Tensor], torch.Tensor],
    rmv: Callable[[torch.Tensor], torch.Tensor],
    a: torch.Tensor,
    t: torch.Tensor,
    x0: torch.Tensor,
    wx0: torch.Tensor,
    iters: int,
    tol: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""CG for :math:`(I + W^\top W) x = a + W^\top t` from :math:`x_0`, returning :math:`(x, Wx)`.

    ``wx0`` is :math:`W x_0`. The initial residual is :math:`a - x_0 + W^\top (t - W x_0)` (one
    adjoint product for the right-hand side and :math:`A x_0` together); each step computes
    :math:`q = W p` and :math:`A p = p + W^\top q`, and updates :math:`W x \mathrel{+}= \alpha q`
    alongside :math:`x`. With ``tol > 0`` the loop stops once every row's residual norm is at
    most ``tol`` times its initial one (one host sync per step; ``tol <= 0`` runs ``iters``
    steps without any).
    """
    x = x0.clone()
    wx = wx0.clone()
    res = rmv(t - wx0).add_(a).sub_(x0)
    p = res.clone()
    # fused products and in-place updates: on large batches the CG steps' vector work is
    # memory-bound and otherwise rivals the convolutions themselves
    rs = torch.linalg.vecdot(res, res).unsqueeze(1)
    stop = (tol**2) * rs if tol > 0 else torch.zeros_like(rs)
    for _ in range(iters):
        if tol > 0 and bool((rs <= stop).all()):
            break
        q = mv(p)
        ap = rmv(q).add_(p)
        pap = torch.linalg.vecdot(p, ap).unsqueeze(1)
        # rows already converged (or with p = 0) take no step
        alpha = torch.where(rs > stop, rs / torch.clamp(pap, min=1e-300), torch.zeros_like(rs))
        x.addcmul_(alpha, p)
        wx.addcmul_(alpha, q)
        res.addcmul_(alpha, ap, value=-1.0)
        rs_new = torch.linalg.vecdot(res, res).unsqueeze(1)
        p.mul_(rs_new / torch.clamp(rs, min=1e-300)).add_(res)
        rs = rs_new
    return x, wx


def fft_circular_solve(kernel: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    r"""Solve :math:`(I + W^\top W) z = r` for a circular, stride-1 multi-channel convolution.

    :math:`W` maps :math:`(C_{in}, H, W)` to :math:`(C_{out}, H, W)` by :math:`(Wx)_o[i, j] =
    \sum_{c, p, q} K[o, c, p, q] \, x_c[(i + p) \bmod H, (j + q) \bmod W]` (cross-correlation, as
    ``conv2d`` with circular padding on the bottom/right). Its DFT is :math:`\hat K(\omega)
    \hat x(\omega)` with :math:`\hat K = \overline{\operatorname{DFT}(K \text{ zero-padded})}`;
    each frequency gets a :math:`C_{in} \times C_{in}` (or, by Woodbury, :math:`C_{out} \times
    C_{out}`) solve.

    Parameters
    ----------
    kernel : (C_out, C_in, kh, kw)
    r : (B, C_in, H, W)

    Returns
    -------
    (B, C_in, H, W)
    """
    cout, cin, kh, kw = kernel.shape
    B, c, H, W = r.shape
    if kh > H or kw > W:
        raise ValueError(f"kernel {kh}x{kw} larger than the image {H}x{W}")
    kpad = torch.zeros(cout, cin, H, W, dtype=kernel.dtype, device=kernel.device)
    kpad[:, :, :kh, :kw] = kernel
    # cross-correlation: y = sum_p K[p] x[i + p], so yhat = conj(Khat) xhat
    khat = torch.conj(torch.fft.fft2(kpad)).permute(2, 3, 0, 1)  # (H, W, C_out, C_in)
    rhat = torch.fft.fft2(r).permute(2, 3, 1, 0)  # (H, W, C_in, B)
    kh_ = khat.conj().transpose(-1, -2)  # K^H, (H, W, C_in, C_out)
    if cout < cin:
        # Woodbury: (I + K^H K)^{-1} = I - K^H (I + K K^H)^{-1} K
        small = torch.eye(cout, dtype=khat.dtype, device=r.device) + khat @ kh_
        zhat = rhat - kh_ @ torch.linalg.solve(small, khat @ rhat)
    else:
        big = torch.eye(cin, dtype=khat.dtype, device=r.device) + kh_ @ khat
        zhat = torch.linalg.solve(big, rhat)
    return torch.fft.ifft2(zhat.permute(3, 2, 0, 1)).real


class IdentityOp:
    """:math:`W = I`; :math:`(I + W^\\top W)^{-1} r = r / 2`."""

    kind = "identity"

    def __init__(self, n: int, bias: torch.Tensor) -> None:
        self.n_in = self.n_out = n
        self.bias = bias

    def mv(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def rmv(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def solve(self, r: torch.Tensor, x0: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * r

    def update(self, a, t, x0=None, wx0=None) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`z = (a + t) / 2` and :math:`W z = z`."""
        z = 0.5 * (a + t)
        return z, z.clone()  # callers may update W z in place


class DenseOp:
    r"""A dense :math:`W` (m x n) with a cached inverse formed once in float64.

    :meth:`update` costs one :math:`W`, one :math:`W^\top` and either an :math:`m \times m`
    (Woodbury, :math:`K^{-1} = (I + W W^\top)^{-1}`) or an :math:`n \times n` (direct,
    :math:`G^{-1} = (I + W^\top W)^{-1}`) product per row, so Woodbury is used when :math:`m <
    n` (module docstring).
    """

    kind = "dense"

    def __init__(self, w: np.ndarray, bias: torch.Tensor, woodbury: bool | None = None) -> None:
        m, n = w.shape
        self.n_in, self.n_out = n, m
        dt, dev = bias.dtype, bias.device
        w64 = torch.tensor(w, dtype=torch.float64, device=dev)
        self.w = w64.to(dt)
        self.wt = self.w.T.contiguous()
        self.bias = bias
        self.woodbury = (m < n) if woodbury is None else bool(woodbury)
        if self.woodbury:
            k = torch.eye(m, dtype=torch.float64, device=dev) + w64 @ w64.T
            self.kinv = torch.cholesky_inverse(torch.linalg.cholesky(k)).to(dt)
        else:
            g = torch.eye(n, dtype=torch.float64, device=dev) + w64.T @ w64
            self.ginv = torch.cholesky_inverse(torch.linalg.cholesky(g)).to(dt)

    def mv(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.wt

    def rmv(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.w

    def solve(self, r: torch.Tensor, x0: torch.Tensor | None = None) -> torch.Tensor:
        if self.woodbury:
            return r - ((r @ self.wt) @ self.kinv) @ self.w
        return r @ self.ginv

    def update(self, a, t, x0=None, wx0=None) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`z = (I + W^\top W)^{-1}(a + W^\top t)` and :math:`W z`."""
        if self.woodbury:
            e = torch.addmm(t, a, self.wt, alpha=1.0, beta=-1.0) @ self.kinv  # (W a - t) K^-1
            return torch.addmm(a, e, self.w, alpha=-1.0), t + e
        z = torch.addmm(a, t, self.w) @ self.ginv
        return z, z @ self.wt


class ConvOp:
    """A ``conv2d`` (any pads, strides, dilations, groups) on flattened samples; CG solves.

    The adjoint is :func:`conv_adjoint` (a stride-1 ``conv2d`` and a pixel shuffle), not
    ``conv_transpose2d``, whose strided CPU kernel costs several forward passes.
    """

    kind = "conv"

    def __init__(
        self,
        attrs: dict,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        bias: torch.Tensor,
        cg_iters: int = 50,
        cg_tol: float = 1e-10,
    ) -> None:
        dt, dev = bias.dtype, bias.device
        self.weight = torch.tensor(np.asarray(attrs["weight"]), dtype=dt, device=dev)
        self.stride = tuple(int(s) for s in attrs["strides"])
        self.dilation = tuple(int(d) for d in attrs.get("dilations", (1, 1)))
        self.groups = int(attrs["group"])
        pt, pl, pb, pr = (int(p) for p in attrs["pads"])
        self.pads = (pl, pr, pt, pb)
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.n_in, self.n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
        self.bias = bias
        self.sym_pad = (pt, pl) if (pt == pb and pl == pr) else None
        self.adj_kernel, self.adj_dilation, self.adj_padding = conv_adjoint_weight(
            self.weight, self.stride, self.dilation, self.groups
        )
        self.cg_iters, self.cg_tol = cg_iters, cg_tol

    def mv(self, x: torch.Tensor) -> torch.Tensor:
        xb = x.reshape(x.shape[0], *self.in_shape)
        if self.sym_pad is None:
            xb = F.pad(xb, self.pads)
            pad = 0
        else:
            pad = self.sym_pad  # torch pads symmetric cells itself, without a copy
        y = F.conv2d(xb, self.weight, None, self.stride, pad, self.dilation, self.groups)
        return y.reshape(x.shape[0], -1)

    def rmv(self, y: torch.Tensor) -> torch.Tensor:
        B = y.shape[0]
        x = conv_adjoint(
            y.reshape(B, *self.out_shape),
            self.adj_kernel,
            self.stride,
            self.adj_dilation,
            self.adj_padding,
            self.groups,
            self.in_shape[1:],
            (self.pads[2], self.pads[0]),
        )
        return x.reshape(B, -1)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`(I + W^\top W) x`."""
        return x + self.rmv(self.mv(x))

    def solve(self, r: torch.Tensor, x0: torch.Tensor | None = None) -> torch.Tensor:
        return cg(self.normal, r, x0, self.cg_iters, self.cg_tol)

    def update(self, a, t, x0, wx0) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`z \approx (I + W^\top W)^{-1}(a + W^\top t)` by CG from ``x0``, and :math:`W z`."""
        return cg_update(self.mv, self.rmv, a, t, x0, wx0, self.cg_iters, self.cg_tol)


class SparseOp:
    """A scipy sparse :math:`W` as a torch sparse CSR matrix; CG solves."""

    kind = "sparse"

    def __init__(self, mat, bias: torch.Tensor, cg_iters: int = 50, cg_tol: float = 1e-10):
        dt, dev = bias.dtype, bias.device
        self.n_out, self.n_in = mat.shape

        def tens(m):
            m = m.tocsr()  # scipy's CSR is valid by construction: no invariant checks needed
            with warnings.catch_warnings():
                # torch labels CSR support "beta" on every construction; the ops used here
                # (matrix-vector products) are covered by tests/formulations/test_admm.py
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                return torch.sparse_csr_tensor(
                    torch.tensor(m.indptr, dtype=torch.int64),
                    torch.tensor(m.indices, dtype=torch.int64),
                    torch.tensor(m.data, dtype=dt),
                    size=m.shape,
                    check_invariants=False,
                ).to(dev)

        self.w, self.wt = tens(mat), tens(mat.T)
        self.bias = bias
        self.cg_iters, self.cg_tol = cg_iters, cg_tol

    def mv(self, x: torch.Tensor) -> torch.Tensor:
        return (self.w @ x.T).T

    def rmv(self, y: torch.Tensor) -> torch.Tensor:
        return (self.wt @ y.T).T

    def solve(self, r: torch.Tensor, x0: torch.Tensor | None = None) -> torch.Tensor:
        return cg(lambda x: x + self.rmv(self.mv(x)), r, x0, self.cg_iters, self.cg_tol)

    def update(self, a, t, x0, wx0) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`ConvOp.update`."""
        return cg_update(self.mv, self.rmv, a, t, x0, wx0, self.cg_iters, self.cg_tol)


def make_operator(lin, dtype: torch.dtype, device: torch.device, cg_iters: int, cg_tol: float):
    """The torch operator of a :class:`netopt.formulations.admm.LinearOperator`."""
    bias = torch.tensor(lin.bias, dtype=dtype, device=device)
    if lin.kind == "identity":
        return IdentityOp(lin.n_in, bias)
    if lin.kind == "dense":
        return DenseOp(lin.weight, bias)
    if lin.kind == "conv":
        return ConvOp(lin.conv, lin.in_shape, lin.conv_out_shape, bias, cg_iters, cg_tol)
    return SparseOp(lin.matrix, bias, cg_iters, cg_tol)
