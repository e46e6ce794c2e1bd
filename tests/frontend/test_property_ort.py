"""Property: every generated model that onnxruntime accepts loads, and ``net.forward`` matches
``net.run_onnxruntime`` (and so does the graph before the passes).

The generator is :func:`helpers.onnx_strategies.models`; the oracle is
:func:`helpers.ort_oracle.check_against_onnxruntime`.
"""

from __future__ import annotations

import onnx
from helpers.onnx_builders import Case
from helpers.onnx_strategies import describe, models, property_settings
from helpers.ort_oracle import check_against_onnxruntime, ort_accepts, random_inputs, rel_err
from hypothesis import assume, given, note

import netopt


@property_settings(1200)
@given(case=models())
def test_random_models_match_onnxruntime(case: Case) -> None:
    """A valid model onnxruntime runs loads, and netopt computes what onnxruntime does."""
    note(describe(case))
    onnx.checker.check_model(case.model)
    data = case.model.SerializeToString()
    assume(ort_accepts(data))
    net = netopt.load(case.model)
    check_against_onnxruntime(case.model, net)
    # bytes load the same network
    assert (
        rel_err(
            netopt.load(data).forward(random_inputs(net, 2, 5)),
            net.forward(random_inputs(net, 2, 5)),
        )
        == 0
    )
