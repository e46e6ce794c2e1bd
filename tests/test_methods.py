"""Every registered method has one shape: accepts / check_support / option_names / run -> Outcome."""

from __future__ import annotations

import inspect

import pytest

import netopt
from netopt import formulations
from netopt.formulations._base import Formulation


@pytest.mark.parametrize("name", formulations.available())
def test_one_protocol(name: str) -> None:
    F = formulations.get(name)
    assert issubclass(F, Formulation) and F.name == name
    # no second way to run a method
    assert not hasattr(F, "driver") and not hasattr(F, "first_order")
    runs = F.run is not Formulation.run or (F.batched and F.run_batch is not Formulation.run_batch)
    assert runs, f"method '{name}' implements neither run() nor a batched run_batch()"
    names = F.option_names()
    assert names is not None and len(names) == len(set(names)), names
    assert F.options().names == names  # declared (netopt.options.Schema)
    assert all(isinstance(n, str) and n.isidentifier() for n in names)
    sig = inspect.signature(F.run)
    assert list(sig.parameters)[:3] == ["self", "problem", "solver"]


def test_the_registries_are_bound_on_import() -> None:
    assert "milp" in netopt.formulations.available()
    assert "highs" in netopt.solvers.available()


def test_exact_options_to_another_method_are_refused() -> None:
    import numpy as np
    from helpers.nets import make_model
    from onnx import helper

    node = helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)
    net = netopt.load(make_model([node], [1, 2], [1, 2], {"W": np.eye(2), "b": np.zeros(2)}))
    prob = netopt.Inversion(net, np.ones(2), box=(0.0, 1.0))
    with pytest.raises(netopt.InputError, match="belong to the exact formulations"):
        prob.solve("layerwise_lp", tighten=None)
    with pytest.raises(netopt.InputError, match="belong to the exact formulations"):
        prob.solve("lifted_bregman", n_samples=3)
