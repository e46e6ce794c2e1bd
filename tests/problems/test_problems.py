"""Problem kinds: the registry, the JSON of every kind, trivial bounds, evaluate and penalty."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from helpers.nets import make_model
from onnx import helper

import netopt
from netopt.errors import InputError
from netopt.problems import (
    KINDS,
    CrossEntropy,
    Domain,
    Feasibility,
    Inversion,
    OutputObjective,
    Problem,
    register_kind,
)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """y = W x, 3 inputs and 2 outputs."""
    W = np.array([[1.0, -2.0], [0.5, 1.0], [0.0, 3.0]], dtype=np.float32)
    m = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])], [1, 3], [1, 2], {"W": W})
    path = tmp_path_factory.mktemp("nets") / "lin.onnx"
    onnx.save(m, path)
    return netopt.load(path)


def every_kind(net):
    box = (-np.ones(3), np.ones(3))
    return [
        Inversion(net, [0.5, -1.0], norm=1, weights=[1.0, 2.0], box=box),
        Inversion(net, [0.5, -1.0], norm=2, box=box),
        Inversion(net, [0.5, -1.0], norm="inf", domain=Domain.make((3,))),
        OutputObjective(net, [1.0, -1.0], sense="max", constant=0.25, box=box),
        Feasibility(net, [0.1, 0.2], tol=1e-3, box=box),
        Feasibility(
            net,
            C=[[1.0, 0.0]],
            d=[0.5],
            box=box,
            A=np.array([[1.0, 1.0, 0.0]]),
            b=np.array([0.5]),
        ),
        CrossEntropy(net, 1, l2=0.5, x_ref=np.full(3, 0.1), box=box),
        Inversion(net, [0.0, 0.0], box=box, integer=np.array([True, False, False])),
    ]


def test_every_kind_is_registered_by_name():
    assert {"Inversion", "OutputObjective", "Feasibility", "CrossEntropy"} <= set(KINDS)
    for name, cls in KINDS.items():
        assert cls.kind == name and issubclass(cls, Problem)
    assert Feasibility.feasibility and not Inversion.feasibility


def test_json_round_trip_of_every_kind(net):
    X = np.random.default_rng(0).uniform(-1, 1, (6, 3))
    Y = net.forward(X)
    for p in every_kind(net):
        d = p.to_json()
        assert d["type"] == p.kind and list(d)[:2] == ["type", "domain"]
        q = Problem.from_json(net, json.loads(json.dumps(d)))
        assert type(q) is type(p) and q.describe() == p.describe() and q.sense == p.sense
        assert q.to_json() == d
        assert np.array_equal(q.evaluate(Y), p.evaluate(Y))
        assert np.array_equal(q.penalty(X), p.penalty(X))
        for f in ("lo", "hi", "A", "b", "integer"):
            a, b = getattr(q.domain, f), getattr(p.domain, f)
            assert (a is None and b is None) or np.array_equal(a, b)


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda d: d.pop("target"), "problem.target is missing"),
        (lambda d: d.update(norm=True), "problem.norm must be"),
        (lambda d: d.update(type="Nope"), "unknown problem type 'Nope'"),
        (lambda d: d.update(type=3), "problem.type must be a string"),
        (lambda d: d["domain"].update(lo=[0.0]), "problem.domain.lo has 1 entries"),
        (lambda d: d.update(weights=[1.0, -1.0]), "problem: weights must be"),
    ],
)
def test_from_json_names_the_bad_field(net, change, match):
    d = every_kind(net)[0].to_json()
    change(d)
    with pytest.raises(InputError, match=match):
        Problem.from_json(net, d)


def test_trivial_bound(net):
    kinds = {type(p).__name__: p.trivial_bound() for p in every_kind(net)}
    assert kinds["Inversion"] == (0.0, "a norm is non-negative")
    assert kinds["OutputObjective"] is None and kinds["Feasibility"] is None
    assert kinds["CrossEntropy"] is None
    X = np.random.default_rng(1).uniform(-1, 1, (50, 3))
    for p in every_kind(net):
        tb = p.trivial_bound()
        if tb is not None:
            assert np.all(p.evaluate(net.forward(X)) + p.penalty(X) >= tb[0])


def test_evaluate_and_penalty(net):
    inv, inv2, invinf, out, feas, feas_poly, ce, _ = every_kind(net)
    x = np.array([[0.5, -0.5, 1.0]])
    y = net.forward(x)
    assert np.allclose(y, [[0.25, 1.5]])
    assert np.allclose(inv.evaluate(y), [abs(0.25 - 0.5) + 2 * abs(1.5 + 1.0)])
    assert np.allclose(inv2.evaluate(y), [np.hypot(0.25 - 0.5, 2.5)])
    assert np.allclose(invinf.evaluate(y), [2.5])
    assert np.allclose(out.evaluate(y), [0.25 - 1.5 + 0.25])
    assert np.allclose(feas.evaluate(y), [max(0.25 - 0.1, 1.5 - 0.2) - 1e-3])
    assert np.allclose(feas_poly.evaluate(y), [0.25 - 0.5])
    z = np.array([0.25, 1.5])
    assert np.allclose(ce.evaluate(y), [np.log(np.exp(z).sum()) - 1.5])
    assert np.allclose(ce.penalty(x), [0.25 * ((x.reshape(-1) - 0.1) ** 2).sum()])
    assert np.all(inv.penalty(x) == 0.0)
    assert np.isclose(ce.objective_of_input(x), ce.evaluate(y)[0] + ce.penalty(x)[0])


def test_register_kind_refuses_a_second_class_of_the_same_name():
    with pytest.raises(ValueError, match="already registered"):

        @register_kind
        class Inversion(Problem):  # noqa: F811 - the clash is the point
            pass

    assert KINDS["Inversion"].__module__ == "netopt.problems.objectives"
