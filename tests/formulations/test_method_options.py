"""Every method's declared options are typed, and the torch methods refuse a solver alike.

A value of the wrong type must be one :class:`~netopt.errors.OptionError` naming the option
(never a ``TypeError`` / ``ValueError`` from inside a method), and a method that runs its own
torch iterations must refuse ``solver=`` pointing to ``device=``.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper

import netopt
from netopt import formulations
from netopt.errors import IncompatibleBackendError, OptionError

#: options whose valid values are any name a third-party library knows; a string is their type
FREE_TEXT = {("layerwise_lp", "cvxpy_solver")}

TYPED = [
    (name, o.name)
    for name in formulations.available()
    for o in formulations.get(name).options().options.values()
    if o.check is not None
]


def _problem() -> netopt.Inversion:
    W = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.3]])
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    net = netopt.load(make_model(nodes, [1, 2], [1, 3], {"W": W, "b": np.zeros(3)}))
    return netopt.Inversion(net, np.array([0.2, 0.4, 0.0]), box=(-1.0, 1.0))


def test_every_declared_option_is_typed():
    for name in formulations.available():
        s = formulations.get(name).options()
        untyped = [o.name for o in s.options.values() if o.check is None]
        assert untyped == [], f"method '{name}' declares options without a type: {untyped}"


@pytest.mark.parametrize(("method", "option"), TYPED)
def test_a_string_of_the_wrong_type_is_an_option_error(method, option):
    schema = formulations.get(method).options()
    bad = object() if (method, option) in FREE_TEXT else "not-a-valid-value"
    with pytest.raises(OptionError, match=f"option {option}=") as e:
        schema.parse({option: bad})
    assert schema.owner in str(e.value)
    # and the declared default itself is valid
    default = schema.options[option].default
    if default is not None:
        assert schema.options[option].check(default) is None, (method, option, default)


def test_a_bad_value_is_refused_by_solve_before_any_work():
    prob = _problem()
    with pytest.raises(OptionError, match=r"method 'adam': option max_iter='abc' must be an int"):
        prob.solve("adam", max_iter="abc")
    with pytest.raises(OptionError, match="order='sideways' must be one of 'backward'"):
        prob.solve("admm", order="sideways")
    with pytest.raises(OptionError, match="betas"):
        prob.solve("adam", betas=(0.9, 1.5))
    with pytest.raises(OptionError, match="device"):
        prob.solve("surfing", device="gpu-please")


def test_the_choices_are_the_methods_own():
    pytest.importorskip("torch")
    from netopt.formulations.admm.iterations import ORDERS
    from netopt.torch_export import EXPORTERS

    admm = formulations.get("admm").options().options["order"].check
    assert all(admm(o) is None for o in ORDERS)
    surf = formulations.get("surfing").options().options["exporter"].check
    assert all(surf(e) is None for e in EXPORTERS)


def test_valid_values_still_pass():
    adam = formulations.get("adam").options()
    adam.parse(
        {
            "device": "cpu",
            "dtype": "float64",
            "max_iter": 10,
            "start": [[0.0, 0.0], [0.1, 0.2]],
            "betas": (0.9, 0.99),
            "verbose": 1,
        }
    )
    formulations.get("surfing").options().parse({"init": "uniform", "path": []})
    formulations.get("lifted_bregman").options().parse({"image_shape": (1, 3), "box": (0, 1)})


#: the methods that run their own torch iterations: they choose where with ``device=``
TORCH_METHODS = [n for n in formulations.available() if "device" in formulations.get(n).options()]


def test_the_torch_methods_are_known():
    assert {"adam", "admm", "gd", "adr_gd", "surfing"} <= set(TORCH_METHODS)


@pytest.mark.parametrize("method", TORCH_METHODS)
def test_a_torch_method_refuses_any_solver(method):
    prob = _problem()
    if formulations.get(method)().accepts(prob):  # a method of Feasibility problems ("bab")
        prob = netopt.Feasibility(prob.net, C=np.eye(3), d=np.ones(3), box=(-1.0, 1.0))
    for solver in ("torch", "highs"):
        with pytest.raises(IncompatibleBackendError, match=rf"(?s)'{method}'.*solver.*device="):
            prob.solve(method, solver=solver)
