"""HiGHS is trusted only for what a successful run attests.

* ``threads`` in any order within one process gives the same proven optimum (HiGHS keeps one task
  scheduler per process; highspy 1.16 refuses a later run with another thread count unless the
  scheduler is reset), checked against brute force over the activation patterns (scipy's LP).
* A run that fails (``run()`` returns ``kError``, or the model status stays ``kNotset``) gives
  status ``error`` and no bound, end to end; a bound past the recomputed objective by more than
  the solver's tolerances is an error naming both numbers, not a clamp.
* No solver text reaches stdout (``--json`` output parses).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

import netopt
from netopt.errors import OptionError
from netopt.solvers.highs_backend import HighsBackend

ROOT = Path(__file__).resolve().parents[1]


def _net(seed: int = 3, n_in: int = 20, hidden: int = 6) -> tuple[netopt.Network, tuple]:
    """A ``n_in -> hidden -> 1`` ReLU net as a torch-free ONNX model, with its weights."""
    import onnx
    from helpers.nets import make_model

    rng = np.random.default_rng(seed)
    W1 = rng.normal(size=(hidden, n_in)) / np.sqrt(n_in)
    b1 = rng.normal(size=hidden) * 0.1
    w2 = rng.normal(size=(1, hidden))
    b2 = np.array([0.1])
    W1, b1, w2 = (a.astype(np.float32).astype(np.float64) for a in (W1, b1, w2))
    nodes = [
        onnx.helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        onnx.helper.make_node("Relu", ["h"], ["r"]),
        onnx.helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1),
    ]
    m = make_model(nodes, [1, n_in], [1, 1], {"W1": W1, "b1": b1, "w2": w2, "b2": b2})
    return netopt.load(m), (W1, b1, w2, b2)


@pytest.fixture(scope="module")
def small_net() -> netopt.Network:
    return _net(seed=1, n_in=3, hidden=8)[0]


def _brute_force_max(weights: tuple, lo: float, hi: float) -> float:
    """max f over the box, by one LP per activation pattern (scipy's HiGHS, not highspy)."""
    W1, b1, w2, b2 = weights
    n = W1.shape[1]
    best = -np.inf
    for pattern in itertools.product((0, 1), repeat=len(b1)):
        s = np.array(pattern, dtype=float)
        # active units: W1 x + b1 >= 0; inactive: <= 0; f = w2 (s * (W1 x + b1)) + b2
        sign = np.where(s > 0, -1.0, 1.0)
        A = sign[:, None] * W1
        b = -sign * b1
        c = -(w2[0] * s) @ W1
        r = scipy.optimize.linprog(c, A_ub=A, b_ub=b, bounds=[(lo, hi)] * n, method="highs")
        if r.status == 0:
            best = max(best, float(-r.fun + (w2[0] * s) @ b1 + b2[0]))
    return best


def test_threads_in_any_order_give_the_same_proven_optimum() -> None:
    net, weights = _net()
    truth = _brute_force_max(weights, -1.0, 1.0)
    prob = netopt.OutputObjective(net, np.array([1.0]), sense="max", box=(-1.0, 1.0))
    seen = []
    for threads in (None, 1, 2, None, 1):
        kw = {} if threads is None else {"threads": threads}
        r = prob.solve("milp", time_limit=60, heuristic=False, n_samples=0, **kw)
        assert r.status == netopt.Status.OPTIMAL, (threads, r.status, r.message)
        assert r.bound is not None and r.bound >= truth - 1e-6, (threads, r.bound, truth)
        assert abs(r.objective - truth) <= 1e-6 * max(1.0, abs(truth)), (threads, r.objective)
        seen.append(r.bound)
    assert max(seen) - min(seen) <= 1e-6


def test_lp_tightening_and_milp_with_another_thread_count(small_net) -> None:
    """The scheduler is started by the LP tightening, then the MILP asks for another count."""
    target = small_net(np.array([0.3, -0.2, 0.5]).reshape(small_net.input_shape))
    prob = netopt.Inversion(small_net, target + 0.5, norm=1, box=(-1.0, 1.0))
    ref = prob.solve("milp", time_limit=30)
    for threads in (1, 2, 1):
        r = prob.solve("milp", time_limit=30, threads=threads)
        assert r.status == netopt.Status.OPTIMAL, r.message
        assert abs(r.bound - ref.bound) <= 1e-6 * max(1.0, abs(ref.bound))


def _failing_run(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    import highspy

    real_run = highspy.Highs.run

    def run(self):  # type: ignore[no-untyped-def]
        if how == "error":
            return highspy.HighsStatus.kError
        # run "succeeds" but leaves nothing (the model status stays unset)
        self.clearSolver()
        return highspy.HighsStatus.kOk

    assert real_run is not None
    monkeypatch.setattr(highspy.Highs, "run", run)
    if how == "notset":
        monkeypatch.setattr(
            highspy.Highs, "getModelStatus", lambda self: highspy.HighsModelStatus.kNotset
        )


@pytest.mark.parametrize("how", ["error", "notset"])
def test_failed_run_gives_no_bound(monkeypatch: pytest.MonkeyPatch, small_net, how: str) -> None:
    from netopt.bounds import compute_bounds
    from netopt.formulations.milp import MILP

    target = np.zeros(small_net.output_shape)
    prob = netopt.Inversion(small_net, target + 50.0, norm=1, box=(-1.0, 1.0))
    bnd = compute_bounds(small_net.graph, prob.domain.lo, prob.domain.hi, "crown")
    model = MILP().build(prob, bnd)
    _failing_run(monkeypatch, how)
    raw = HighsBackend().solve(model, time_limit=10)
    assert raw.status == "error"
    assert raw.bound is None and raw.x is None and raw.objective is None
    # end to end: the local search's point is kept (re-checked), no bound, no claim
    res = prob.solve("milp", time_limit=10)
    assert res.status == netopt.Status.ERROR
    assert res.bound is None and res.gap is None
    assert "HiGHS failed" in res.message
    cert = res.certificate
    assert "bound" not in cert.evidence or cert.evidence["bound"] is None
    # a feasibility question: never "unsat" from a failed run
    f = netopt.Feasibility(small_net, target + 50.0, tol=0.1, box=(-1.0, 1.0))
    fr = f.solve("milp", time_limit=10)
    assert fr.status == netopt.Status.ERROR and fr.verdict != "unsat"


def test_bound_past_objective_is_an_error_not_a_clamp(
    monkeypatch: pytest.MonkeyPatch, small_net
) -> None:
    target = np.zeros(small_net.output_shape) + 50.0  # out of reach: the MILP must prove it
    prob = netopt.Inversion(small_net, target, norm=1, box=(-1.0, 1.0))
    good = prob.solve("milp", time_limit=30)
    assert "bound_source" not in good.extra
    assert good.status == netopt.Status.OPTIMAL
    real = HighsBackend.solve

    def lying(self, model, **opts):  # type: ignore[no-untyped-def]
        raw = real(self, model, **opts)
        raw.bound = raw.bound + shift
        return raw

    monkeypatch.setattr(HighsBackend, "solve", lying)
    shift = 1e-9  # round-off: within the tolerance, taken as the objective
    r = prob.solve("milp", time_limit=30)
    assert r.status == netopt.Status.OPTIMAL and r.bound == r.objective
    shift = 0.5  # a false bound
    r = prob.solve("milp", time_limit=30)
    assert r.status == netopt.Status.ERROR and r.bound is None
    assert f"{good.objective:.6g}"[:5] in r.message and "past the objective" in r.message


@pytest.mark.parametrize(
    "bad",
    [
        {"time_limit": -5},
        {"time_limit": float("nan")},
        {"time_limit": 0},
        {"gap": -1},
        {"gap": float("nan")},
        {"abs_gap": float("inf")},
        {"threads": -3},
        {"threads": 1.5},
    ],
)
def test_bad_option_values_are_refused_before_any_work(small_net, bad: dict) -> None:
    prob = netopt.Inversion(small_net, np.zeros(small_net.output_shape), box=(-1.0, 1.0))
    key = next(iter(bad))
    with pytest.raises(OptionError, match=key):
        prob.solve("milp", **bad)


def test_an_option_highs_rejects_names_it(small_net) -> None:
    # an unreachable target, so that the solver would be needed
    prob = netopt.Inversion(small_net, np.zeros(small_net.output_shape) + 50, box=(-1.0, 1.0))
    with pytest.raises(OptionError, match="mip_rel_gap"):
        prob.solve("milp", options={"mip_rel_gap": -3.0})


def test_json_output_is_only_json(tmp_path: Path) -> None:
    """A fresh process (the banner prints once per process) writes nothing but the JSON."""
    model = ROOT / "examples" / "models" / "digits_mlp.onnx"
    target = ROOT / "examples" / "models" / "digits_target.json"
    out = subprocess.run(
        [sys.executable, "-m", "netopt.cli", "invert", str(model), "--target", str(target),
         "--box", "0", "1", "--time-limit", "30", "--threads", "1", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["kind"] == "point" and d["evidence"]["bound"] is not None
    assert "HiGHS" not in out.stdout.replace(d["evidence"]["solver"], "")


def test_no_banner_on_stdout() -> None:
    """highspy 1.16 prints a banner on stdout at a process's first ``Highs()``: it is swallowed."""
    code = (
        "from netopt.solvers.highs_session import HighsSession, new_highs\n"
        "new_highs(); HighsSession('x').run(); print('only this')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "only this\n"


def test_check_json_output_is_only_json(tmp_path: Path) -> None:
    """``netopt check --json`` on a property the MILP decides prints nothing but the JSON."""
    net, weights = _net(seed=5, n_in=3, hidden=8)
    path = tmp_path / "net.onnx"
    path.write_bytes(net.onnx_bytes)
    top = _brute_force_max(weights, -1.0, 1.0)
    prop = tmp_path / "p.vnnlib"
    decl = "".join(f"(declare-const X_{i} Real)\n" for i in range(3)) + "(declare-const Y_0 Real)\n"
    box = "".join(f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))\n" for i in range(3))
    prop.write_text(decl + box + f"(assert (>= Y_0 {top - 1e-3}))\n")
    out = subprocess.run(
        [sys.executable, "-m", "netopt.cli", "check", str(path), str(prop), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 10, out.stderr  # sat
    d = json.loads(out.stdout)
    assert d["verdict"] == "sat"
