"""Every network in ../shared/nets loads, and the interpreter matches onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import ORT_REJECTS, REAL_NETS, net_id, rel_err, require_nets

import netopt

ORT_NETS = [p for p in REAL_NETS if p.name not in ORT_REJECTS]


@pytest.mark.parametrize("path", ORT_NETS, ids=[net_id(p) for p in ORT_NETS])
def test_real_net_matches_onnxruntime(path):
    require_nets()
    net = netopt.load(path)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (100, *net.input_shape))
    y = net(x)
    assert y.shape == (100, *net.output_shape)
    ref = net.run_onnxruntime(x)
    assert rel_err(y, ref) < 1e-5
    # the graph before the passes computes the same function
    raw = netopt.load(path, passes=())
    assert rel_err(raw(x), y) < 1e-9
    # a single sample gives the single result
    assert np.allclose(net(x[0]), y[0])


def test_real_nets_present():
    require_nets()
    assert len(REAL_NETS) >= 20


def test_omlt_maxpool_2d_semantics():
    """onnxruntime rejects this file; netopt reads OMLT's (channels, kh, kw) kernels."""
    require_nets()
    path = next(p for p in REAL_NETS if p.name == "maxpool_2d.onnx")
    net = netopt.load(path)
    assert net.input_shape == (3, 6, 7) and net.output_shape == (3, 2, 1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 3, 6, 7))

    # independent reference: explicit windows in numpy
    def maxpool(a, k, s, ceil=False):
        h, w = a.shape[2:]
        oh = (-(-(h - k[0]) // s[0]) if ceil else (h - k[0]) // s[0]) + 1
        ow = (-(-(w - k[1]) // s[1]) if ceil else (w - k[1]) // s[1]) + 1
        out = np.empty(a.shape[:2] + (oh, ow))
        for i in range(oh):
            for j in range(ow):
                out[:, :, i, j] = a[
                    :, :, i * s[0] : i * s[0] + k[0], j * s[1] : j * s[1] + k[1]
                ].max(axis=(2, 3))
        return out

    ref = maxpool(np.maximum(maxpool(x, (2, 3), (1, 1)), 0), (1, 2), (1, 2))
    ref = maxpool(ref, (4, 2), (3, 1), ceil=True)
    assert ref.shape == (50, 3, 2, 1)
    np.testing.assert_allclose(net(x), ref, rtol=0, atol=1e-12)


def test_special_handling_is_recorded():
    """The importer's particular cases on the real files, as the README describes them."""
    require_nets()
    by = {p.name: p for p in REAL_NETS}
    # ACAS Xu: the Sub(input, zeros) folds away; 7 affine layers, 6 ReLU layers of 50
    acas = netopt.load(by["ACASXU_run2a_1_1_batch_2000.onnx"])
    assert acas.graph.op_counts()["affine"] == 7 and acas.n_relus == 300
    assert "scale" not in acas.graph.op_counts()
    # test_small: weight on the left, MatMul(W, x), column-vector convention
    small = netopt.load(by["test_small.onnx"])
    assert small.input_shape == (1,) and small.output_shape == (1,)
    # fc1 (tf2onnx): symbolic batch and a trailing Identity, which the passes remove
    fc1 = netopt.load(by["fc1.onnx"])
    assert "identity" not in fc1.graph.op_counts()
    # conv_mp1: the output has no batch axis; the Transpose of constant weights is folded
    mp1 = netopt.load(by["conv_mp1.onnx"])
    assert mp1.output_shape == (5,) and "transpose" not in mp1.graph.op_counts()
    # the sigmoid net is imported, and its smooth op is reported
    sig = netopt.load(by["keras_linear_131_sigmoid.onnx"])
    assert len(sig.smooth_ops()) == 1
