"""The gradient methods (GD, Adam, normalized and sign projected gradient) in torch.

Every check is against an independent reference: the exact MILP, the float64 interpreter.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers.nets import mlp_net  # noqa: E402

import netopt  # noqa: E402
from netopt.errors import FormulationError, IncompatibleBackendError, InputError  # noqa: E402
from netopt.instances import mlp_instance  # noqa: E402
from netopt.problems import CrossEntropy  # noqa: E402
from netopt.result import Status  # noqa: E402
from netopt.solve import solve_many  # noqa: E402


# ----------------------------------------------------------------------------- gradient methods
@pytest.mark.parametrize("method", ["gd", "adam", "pgd", "sign_pgd"])
def test_gradient_methods_reduce_the_objective_within_the_box(method):
    inst = mlp_instance((10, 32, 32, 2), 0, target="realizable")
    prob = netopt.Inversion(inst.net, inst.target, norm=1, box=(inst.lo, inst.hi))
    start = np.full(10, 0.9)
    res = prob.solve(method, start=start, max_iter=200, dtype="float64")
    assert res.status == Status.FEASIBLE and res.bound is None
    assert res.objective < 0.9 * prob.objective_of_input(start)
    assert prob.domain.contains(res.x)
    assert res.objective == prob.objective_of_input(res.x)


def test_gradient_batching_over_targets_matches_one_at_a_time():
    inst = mlp_instance((5, 12, 3), 3, target="realizable", dtype=np.float64)
    rng = np.random.default_rng(11)
    targets = [inst.target + rng.normal(scale=0.3, size=3) for _ in range(3)]
    probs = [netopt.Inversion(inst.net, t, norm=1, box=(-1, 1)) for t in targets]
    # the stopping test is batch-wide: switch it off to compare row by row at a fixed count
    kw = {"dtype": "float64", "max_iter": 150, "restarts": 2}
    together = solve_many(probs, "gd", **kw)
    alone = [p.solve("gd", **kw) for p in probs]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.x, b.x, atol=1e-12)
        assert a.objective == pytest.approx(b.objective, abs=1e-12)


def test_gradient_nan_is_a_status_with_the_iteration():
    net, _, _ = mlp_net((3, 2), [None])
    prob = netopt.OutputObjective(net, [1.0, -1.0], sense="min")  # unbounded below, no box
    res = prob.solve("gd", lr=1e300, max_iter=50, dtype="float64")
    assert res.status == Status.ERROR
    assert res.extra["diverged_at"] >= 1 and "iteration" in res.message


def test_aliases_are_the_gradient_method_with_the_option_fixed():
    from netopt import formulations
    from netopt.formulations.gradient import METHODS, Gradient

    for m in METHODS:
        F = formulations.get(m)
        assert issubclass(F, Gradient) and F.method == m
        assert F.options().names == formulations.get("gradient").options().names
    inst = mlp_instance((4, 8, 2), 0)
    prob = netopt.Inversion(inst.net, inst.target, box=(-1, 1))
    kw = {"dtype": "float64", "max_iter": 20}
    a, b = prob.solve("pgd", **kw), prob.solve("gradient", method="pgd", **kw)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.extra["method"] == b.extra["method"] == "pgd"


# ----------------------------------------------------------------------------- API, devices
def test_device_selection_and_options():
    inst = mlp_instance((4, 8, 2), 0)
    prob = netopt.Inversion(inst.net, inst.target, box=(-1, 1))
    assert prob.solve("adam", device="cpu", max_iter=5).extra["device"] == "cpu"
    auto = prob.solve("adam", max_iter=5).extra["device"]
    assert auto == ("cuda:0" if torch.cuda.is_available() else "cpu") or auto.startswith("cuda")
    with pytest.raises(netopt.OptionError, match="unknown option.*rho.*it takes"):
        prob.solve("adam", rho=1.0)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            prob.solve("adam", device="cuda")
    with pytest.raises(IncompatibleBackendError, match="(?s)'adam'.*device"):
        prob.solve("adam", solver="torch", max_iter=5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gradient_cuda_matches_cpu():
    inst = mlp_instance((6, 16, 2), 1, dtype=np.float64)
    prob = netopt.Inversion(inst.net, inst.target, box=(-1, 1))
    kw = {"dtype": "float64", "max_iter": 100}
    a, b = prob.solve("gd", device="cuda", **kw), prob.solve("gd", device="cpu", **kw)
    np.testing.assert_allclose(a.x, b.x, atol=1e-8)


def test_heuristic_point_seeds_the_milp():
    inst = mlp_instance((6, 12, 12, 2), 4, target="outside")
    prob = netopt.Inversion(inst.net, inst.target, norm=1, box=(inst.lo, inst.hi))
    heur = prob.solve("adam", max_iter=300, restarts=4)
    exact = prob.solve("milp", start=heur.x, heuristic=False, n_samples=0, time_limit=60)
    assert exact.status == Status.OPTIMAL
    assert exact.objective <= heur.objective + 1e-9
    assert exact.bound <= heur.objective + 1e-6  # the heuristic's value is an upper bound


def test_cross_entropy_problem():
    net, _, _ = mlp_net((4, 8, 3), ["relu", None], seed=12)
    prob = CrossEntropy(net, label=1, l2=0.1, box=(-2, 2))
    with pytest.raises(FormulationError, match="cross-entropy"):
        prob.solve("milp")
    x0 = np.zeros(4)
    res = prob.solve("adam", dtype="float64", max_iter=300, start=x0)
    assert res.objective < prob.objective_of_input(x0)
    assert res.objective == prob.objective_of_input(res.x)
    assert res.certificate.verify(net)["ok"]
    with pytest.raises(InputError):
        CrossEntropy(net, label=3)
