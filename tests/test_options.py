"""Declared options: one OptionError for every option mistake, before any work; registry misses."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper

import netopt
from netopt import formulations
from netopt.errors import OptionError, UnknownNameError
from netopt.options import Option, Schema, choice, flag, integer, number


@pytest.fixture(scope="module")
def prob() -> netopt.Inversion:
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    W = np.array([[1.0, -1.0], [0.5, 2.0]])
    net = netopt.load(make_model(nodes, [1, 2], [1, 2], {"W": W, "b": np.zeros(2)}))
    return netopt.Inversion(net, np.array([5.0, 5.0]), norm=1, box=(0.0, 1.0))


def test_schema_parse() -> None:
    s = Schema(
        "method 'm'",
        [
            Option("time_limit", number(low=0, strict=True)),
            Option("n", integer(low=1)),
            Option("on", flag),
            Option("kind", choice("a", "b")),
            "free",
        ],
    )
    assert s.parse({"time_limit": 2, "n": 3.0, "on": True, "kind": "a", "free": object()})
    for bad, what in [
        ({"time_limit": 0}, "time_limit=0 must be > 0"),
        ({"time_limit": float("nan")}, "must be finite"),
        ({"n": 0}, "n=0 must be >= 1"),
        ({"n": 1.5}, "must be an integer"),
        ({"on": "yes"}, "must be True or False"),
        ({"kind": "c"}, "must be one of 'a', 'b'"),
        ({"tim_limit": 1}, "unknown option.*tim_limit.*did you mean time_limit"),
    ]:
        with pytest.raises(OptionError, match=what):
            s.parse(bad)


@pytest.mark.parametrize("name", formulations.available())
def test_every_method_refuses_a_typo_naming_the_valid_options(prob, name: str) -> None:
    names = formulations.get(name).option_names()
    with pytest.raises(OptionError, match=f"method '{name}': unknown option.*no_such_option") as e:
        prob.solve(name, no_such_option=1)
    listed = str(e.value).split("it takes ", 1)[1]
    assert names and set(listed.split(", ")) == set(names)


@pytest.mark.parametrize(
    ("method", "bad", "what"),
    [
        ("milp", {"relax": "yes"}, "relax='yes' must be True or False"),
        ("milp", {"bounds": "exact"}, "bounds='exact' must be one of"),
        ("milp", {"tighten": "milp"}, "tighten='milp' must be one of"),
        ("milp", {"n_samples": -1}, "n_samples=-1 must be >= 0"),
        ("milp", {"heuristic_time": float("inf")}, "must be finite"),
        ("milp", {"time_limit": "10"}, "time_limit='10' must be a number"),
        ("adam", {"time_limit": -1}, "time_limit=-1 must be > 0"),
        ("layerwise_lp", {"eps0": "small"}, "eps0='small' must be a number"),
        ("layerwise_lp", {"warm": 1}, "warm=1 must be True or False"),
        ("adr_gd", {"steps": 2.5}, "steps=2.5 must be an integer"),
    ],
)
def test_invalid_values_are_refused_before_any_work(prob, method, bad, what) -> None:
    with pytest.raises(OptionError, match=what):
        prob.solve(method, **bad)


def test_registry_misses_list_what_is_registered(prob) -> None:
    with pytest.raises(UnknownNameError, match="no formulation named 'milpp'; available: .*milp"):
        prob.solve("milpp")
    with pytest.raises(UnknownNameError, match="no backend named 'higs'; available: .*highs"):
        prob.solve("milp", "higs")
    e = UnknownNameError("no backend named 'x'")
    assert str(e) == "no backend named 'x'" and isinstance(e, KeyError)
