"""The torch rules of the windowed IR ops: ``conv2d`` (with a strided convolution's input
gradient as a pixel-shuffled stride-1 convolution, :func:`conv_adjoint`), ``avgpool2d`` and
``maxpool2d``, registered with :func:`netopt.ir.torch_rules.torch_rule` (the design is
:mod:`netopt.ir.torch_module`'s: ONNX's window semantics reproduced exactly, explicit padding
before a pad-free torch kernel, weights as buffers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netopt.ir.graph import Op
from netopt.ir.ops import pool_output_size
from netopt.ir.torch_rules import Shape, _f64, _pair, torch_rule

__all__ = ["conv_adjoint", "conv_adjoint_weight"]


def _torch_pads(pads: Sequence[int], extra: tuple[int, int] = (0, 0)) -> tuple[int, int, int, int]:
    """IR ``(top, left, bottom, right)`` (plus extra bottom/right cells) in ``F.pad`` order."""
    pt, pl, pb, pr = (int(t) for t in pads)
    return (pl, pr + extra[1], pt, pb + extra[0])


def _overhang(in_shape: Shape, a: Any, kernel: tuple[int, int]) -> tuple[tuple[int, int], Shape]:
    """Cells a ``ceil_mode`` window reaches beyond the bottom/right pads, and the output size.

    Follows :func:`netopt.ir.ops.pool_output_size` (which drops a last window that
    starts inside the end padding only).
    """
    kh, kw = kernel
    sh, sw = _pair(a["strides"])
    dh, dw = _pair(a.get("dilations", (1, 1)))
    pt, pl, pb, pr = (int(t) for t in a["pads"])
    ceil = bool(a.get("ceil_mode", False))
    _, h, w = in_shape
    oh = pool_output_size(h, kh, sh, pt, pb, dh, ceil)
    ow = pool_output_size(w, kw, sw, pl, pr, dw, ceil)
    need_h = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - (h + pt + pb))
    need_w = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - (w + pl + pr))
    return (need_h, need_w), (oh, ow)


def conv_adjoint_weight(
    weight: torch.Tensor,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    r"""The stride-1 ``conv2d`` kernel whose output, pixel-shuffled, is the adjoint of a conv.

    The forward map (on the zero-padded input :math:`x_p`) is :math:`y_o[i, j] = \sum_{c, p, q}
    w_{o c}[p, q] \, x_{p, c}[s_h i + d_h p, s_w j + d_w q]`. Write the dilated kernel
    :math:`\bar w[d p] = w[p]`, of size :math:`K = d(k-1)+1`, zero-extended to a multiple
    :math:`s m` of the stride. For the input row :math:`s u + \alpha` (phase :math:`\alpha <
    s`) the adjoint is

    .. math::

        x_{p, c}[s u + \alpha] = \sum_{o, i + p' = u} \bar w_{o c}[s p' + \alpha] \, y_o[i],

    a *stride-1* full correlation of :math:`y` with the flipped phase kernel
    :math:`\bar w[s(m-1-p') + \alpha]`. All :math:`s_h s_w` phases are one ``conv2d`` with
    :math:`C_{in} s_h s_w` output channels (channel-major, phase-minor), padding :math:`m - 1`,
    followed by a pixel shuffle. It does the forward's flops, where ``conv_transpose2d`` with a
    stride on CPU is several times slower than the forward. With stride 1 this is the familiar
    :math:`\operatorname{conv2d}(y, \operatorname{flip}(w)^\top)` with dilation :math:`d` and
    padding :math:`d(k-1)`, and the kernel is kept undilated.

    Returns
    -------
    kernel : (C_in s_h s_w, C_out / groups, m_h, m_w)
    dilation : the adjoint conv's dilation (``dilation`` for stride 1, else 1)
    padding : the adjoint conv's symmetric padding
    """
    cout, cin_g, kh, kw = weight.shape
    sh, sw = stride
    dh, dw = dilation
    if sh == 1 and sw == 1:
        k = weight.flip(2, 3).reshape(groups, cout // groups, cin_g, kh, kw)
        k = k.transpose(1, 2).reshape(groups * cin_g, cout // groups, kh, kw)
        return k.contiguous(), (dh, dw), (dh * (kh - 1), dw * (kw - 1))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    mh, mw = -(-eh // sh), -(-ew // sw)
    wd = torch.zeros(cout, cin_g, mh * sh, mw * sw, dtype=weight.dtype, device=weight.device)
    wd[:, :, :eh:dh, :ew:dw] = weight
    # (g, C_out/g, C_in/g, m_h, s_h, m_w, s_w) -> (g, C_in/g, s_h, s_w, C_out/g, m_h, m_w)
    k = wd.reshape(groups, cout // groups, cin_g, mh, sh, mw, sw).permute(0, 2, 4, 6, 1, 3, 5)
    k = k.flip(5, 6).reshape(groups * cin_g * sh * sw, cout // groups, mh, mw)
    return k.contiguous(), (1, 1), (mh - 1, mw - 1)


def conv_adjoint(
    y: torch.Tensor,
    kernel: torch.Tensor,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    padding: tuple[int, int],
    groups: int,
    in_hw: tuple[int, int],
    crop: tuple[int, int],
) -> torch.Tensor:
    r"""Adjoint of a convolution: :math:`W^\top y` cropped to the unpadded input.

    ``kernel``, ``dilation``, ``padding`` come from :func:`conv_adjoint_weight`; ``in_hw`` is
    the unpadded input size and ``crop`` its offset (top, left) in the padded input. Cells of
    the padded input that no window reaches are zero (the result is zero-extended).
    """
    B = y.shape[0]
    sh, sw = stride
    z = F.conv2d(y, kernel, None, 1, padding, dilation, groups)
    if sh > 1 or sw > 1:
        c = z.shape[1] // (sh * sw)
        U, V = z.shape[2], z.shape[3]
        z = z.reshape(B, c, sh, sw, U, V).permute(0, 1, 4, 2, 5, 3).reshape(B, c, U * sh, V * sw)
    h, w = in_hw
    pt, pl = crop
    short_h, short_w = pt + h - z.shape[2], pl + w - z.shape[3]
    if short_h > 0 or short_w > 0:
        z = F.pad(z, (0, max(short_w, 0), 0, max(short_h, 0)))
    return z[:, :, pt : pt + h, pl : pl + w]


class _Conv2d(nn.Module):
    def __init__(self, op: Op) -> None:
        super().__init__()
        w = _f64(op.attrs["weight"])
        self.register_buffer("weight", w)
        self.register_buffer("bias", _f64(op.attrs["bias"]))
        self.stride = _pair(op.attrs["strides"])
        self.dilation = _pair(op.attrs.get("dilations", (1, 1)))
        self.groups = int(op.attrs["group"])
        self.pads = _torch_pads(op.attrs["pads"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # explicit zero padding: the IR allows asymmetric pads, torch's conv does not
        if any(self.pads):
            x = F.pad(x, self.pads)
        if (
            max(self.stride) > 1
            and x.requires_grad
            and not (self.weight.requires_grad or self.bias.requires_grad)
        ):
            # input gradients only (weights are buffers): a faster adjoint for strided convs
            return _StridedConvInputGrad.apply(x, self.weight, self.bias, self._adjoint(), self)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def _adjoint(self) -> tuple:
        """The polyphase adjoint kernel, formed once per weight tensor (dtype, device)."""
        key = (self.weight.data_ptr(), self.weight.dtype, self.weight.device)
        if getattr(self, "_adj_key", None) != key:
            self._adj = conv_adjoint_weight(self.weight, self.stride, self.dilation, self.groups)
            self._adj_key = key
        return self._adj


class _StridedConvInputGrad(torch.autograd.Function):
    r"""``conv2d`` (no padding, stride > 1) whose backward is the polyphase adjoint.

    The gradient with respect to the input is :math:`W^\top g`. Autograd's own
    (``convolution_backward``, the ``conv_transpose2d`` kernel) is several times slower than the
    forward on CPU for strided convolutions;
    :func:`conv_adjoint` computes the same product as one
    stride-1 ``conv2d`` plus a pixel shuffle, at the forward's flops. Weights and bias get no
    gradient (they are buffers); not twice differentiable.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, adjoint, mod):  # noqa: D102
        ctx.adjoint = adjoint
        ctx.conf = (mod.stride, mod.groups, tuple(x.shape[2:]))
        return F.conv2d(x, weight, bias, mod.stride, 0, mod.dilation, mod.groups)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: D102
        kern, adj_dil, adj_pad = ctx.adjoint
        stride, groups, hw = ctx.conf
        gx = conv_adjoint(grad, kern, stride, adj_dil, adj_pad, groups, hw, (0, 0))
        return gx, None, None, None, None


@torch_rule("conv2d")
def _conv2d(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    """ONNX ``Conv``: zero pads ``(top, left, bottom, right)``, strides, dilations, groups."""
    return _Conv2d(op)


class _AvgPool2d(nn.Module):
    def __init__(self, op: Op, in_shape: Shape) -> None:
        super().__init__()
        a = op.attrs
        c, h, w = in_shape
        kernel = _pair(a["kernel"])
        self.stride = _pair(a["strides"])
        self.dilation = _pair(a.get("dilations", (1, 1)))
        extra, self.out_hw = _overhang(in_shape, a, kernel)
        self.pads = _torch_pads(a["pads"], extra)
        self.channels = c
        # window sums as a depthwise convolution with a ones kernel: it supports
        # dilations, which F.avg_pool2d does not
        self.register_buffer("ones", torch.ones(c, 1, *kernel, dtype=torch.float64))
        # the divisor |N|: ones inside the input, the explicit pads counted iff
        # count_include_pad, the ceil_mode overhang never (ops.AvgPool2d)
        fill = 1.0 if a["count_include_pad"] else 0.0
        pt, pl, pb, pr = (int(t) for t in a["pads"])
        cells = F.pad(torch.ones(1, 1, h, w, dtype=torch.float64), (pl, pr, pt, pb), value=fill)
        cells = F.pad(cells, (0, extra[1], 0, extra[0]), value=0.0)
        count = F.conv2d(cells, self.ones[:1], None, self.stride, 0, self.dilation)
        oh, ow = self.out_hw
        self.register_buffer("count", count[:, :, :oh, :ow].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = F.pad(x, self.pads)
        s = F.conv2d(x, self.ones, None, self.stride, 0, self.dilation, self.channels)
        oh, ow = self.out_hw
        return s[:, :, :oh, :ow] / self.count


@torch_rule("avgpool2d")
def _avgpool2d(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`y = \frac{1}{|N|} \sum_N x` with the divisor of ``ops.AvgPool2d`` as a buffer."""
    return _AvgPool2d(op, ins[0])


class _MaxPool2d(nn.Module):
    def __init__(self, op: Op, in_shape: Shape) -> None:
        super().__init__()
        a = op.attrs
        self.kernel = _pair(a["kernel"])
        self.stride = _pair(a["strides"])
        self.dilation = _pair(a.get("dilations", (1, 1)))
        extra, self.out_hw = _overhang(in_shape, a, self.kernel)
        # pads and ceil_mode overhang are -inf, so they never win the max
        self.pads = _torch_pads(a["pads"], extra)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = F.pad(x, self.pads, value=-torch.inf)
        y = F.max_pool2d(x, self.kernel, self.stride, 0, self.dilation)
        oh, ow = self.out_hw
        # the padded image may hold one more window than pool_output_size keeps
        return y[:, :, :oh, :ow]


@torch_rule("maxpool2d")
def _maxpool2d(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`\max_N x` with the pads and ``ceil_mode`` overhang as :math:`-\infty`."""
    return _MaxPool2d(op, ins[0])


# --------------------------------------------------------------------- smooth
