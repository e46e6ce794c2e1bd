"""Instance generators: CNF I/O, the 3SAT reduction (against a SAT solver and brute force),
the expansive and MLP families, instance files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import netopt
from netopt.errors import InputError
from netopt.instances import (
    CNF,
    brute_force_sat,
    expansive_instance,
    load_instance,
    mlp_instance,
    parse_dimacs,
    planted_3sat,
    random_3sat,
    random_formula,
    read_dimacs,
    sat3_instance,
)
from netopt.instances.cnf import clauses_for_ratio, sat_solve
from netopt.instances.sat3 import VARIANTS, decode, sat_layers, sat_loss

pysat = pytest.importorskip("pysat", reason="python-sat gives the SAT ground truth")


# ------------------------------------------------------------------ DIMACS
def test_dimacs_round_trip_and_syntax():
    f = random_3sat(9, 38, seed=3)
    assert parse_dimacs(f.to_dimacs(["a comment"])) == f
    text = "c hello\np cnf 4 3\n1 -2\n 3 0 -4 2 0\n1 2 3 4 0\n%\n0\n"
    g = parse_dimacs(text)
    assert g.n == 4 and g.clauses == ((1, -2, 3), (-4, 2), (1, 2, 3, 4))
    # a final clause without its terminating 0 is accepted
    assert parse_dimacs("p cnf 2 1\n1 -2").clauses == ((1, -2),)


@pytest.mark.parametrize(
    "text, msg",
    [
        ("1 2 0\n", "line 1: a clause before the 'p cnf' header"),
        ("c only\n", "no 'p cnf"),
        ("p cnf 3\n1 0\n", "line 1: expected 'p cnf"),
        ("p cnf x 2\n", "line 1: the header's counts must be integers"),
        ("p cnf 3 1\n1 z 0\n", "line 2: 'z' is not an integer literal"),
        ("p cnf 3 1\nc\n1 4 0\n", "line 3: literal 4 but the header declares 3 variables"),
        ("p cnf 3 2\n1 2 0\n", "declares 2 clauses but the file has 1"),
        ("p cnf 3 0\n", "no clauses"),
        ("p cnf 0 0\n", "at least one variable"),
        ("p cnf 3 1\np cnf 3 1\n1 0\n", "line 2: a second 'p' header"),
    ],
)
def test_dimacs_errors_name_the_line(text, msg):
    with pytest.raises(InputError, match="f.cnf") as e:
        parse_dimacs(text, "f.cnf")
    assert msg in str(e.value)


def test_read_dimacs_file_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_dimacs(tmp_path / "missing.cnf")
    p = tmp_path / "bin.cnf"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not a text file"):
        read_dimacs(p)


def test_cnf_validation_and_simplification():
    with pytest.raises(InputError, match="n >= 1"):
        CNF(0, ((1,),))
    with pytest.raises(InputError, match="clause 1 has literal 0"):
        CNF(3, ((1, 0, 2),))
    with pytest.raises(InputError, match="literal 5"):
        CNF(3, ((5,),))
    f = CNF(3, ((1, 1, -2), (2, -2, 3), (3,)))
    s = f.simplified()
    # repeated literal merged, tautology dropped: same satisfying assignments
    assert s.clauses == ((1, -2), (3,))
    for a in itertools.product((False, True), repeat=3):
        assert f.satisfied_by(a) == s.satisfied_by(a)


# ----------------------------------------------------------- random formulas
def test_random_3sat_shape_and_seed():
    f = random_3sat(12, 51, seed=7)
    assert f.m == 51 and len(set(f.clauses)) == 51
    assert all(len({abs(v) for v in c}) == 3 for c in f.clauses)
    assert random_3sat(12, 51, seed=7) == f and random_3sat(12, 51, seed=8) != f


@pytest.mark.parametrize(
    "call, msg",
    [
        (lambda: random_3sat(2, 3), "n >= 3"),
        (lambda: random_3sat(0, 3), "n >= 3"),
        (lambda: random_3sat(4, 33), "cannot be met"),
        (lambda: planted_3sat(4, 29), "cannot be met"),
        (lambda: random_3sat(5, 0), "positive integer"),
        (lambda: clauses_for_ratio(10, 0.01), "gives 0 clauses"),
        (lambda: clauses_for_ratio(10, float("nan")), "positive number"),
        (lambda: random_formula(10, 10, False, seed=0, max_tries=5), "cannot be met"),
    ],
)
def test_bad_generator_parameters(call, msg):
    with pytest.raises(InputError, match=msg):
        call()


def test_planted_formulas_are_satisfied_by_the_plant():
    for s in range(5):
        f, a = planted_3sat(15, 90, seed=s)
        assert f.satisfied_by(a) and f.m == 90
        assert sat_solve(f) is not None


def test_sat_solver_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    verdicts = []
    for _ in range(60):
        n = int(rng.integers(5, 13))
        f = random_3sat(n, clauses_for_ratio(n, 4.26), seed=rng)
        a, b = sat_solve(f), brute_force_sat(f)
        assert (a is None) == (b is None)
        if a is not None:
            assert f.satisfied_by(a) and f.satisfied_by(b)
        verdicts.append(a is not None)
    assert 0 < sum(verdicts) < len(verdicts)  # both verdicts occur at the threshold


def test_random_formula_conditioning():
    for sat in (True, False):
        f, a = random_formula(10, 43, sat, seed=1)
        assert (brute_force_sat(f) is not None) == sat
        assert (a is not None) == sat


# ------------------------------------------------------------- the reduction
def _boolean_points(n: int) -> np.ndarray:
    return np.array(list(itertools.product((0.0, 1.0), repeat=n)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_reduction_counts_falsified_clauses_at_boolean_points(variant):
    # at a Boolean point the loss is the number of falsified clauses (D = 0)
    for seed in range(3):
        f = random_3sat(7, 30, seed=seed)
        net = sat3_instance(f, variant, ground_truth=False).net
        B = _boolean_points(7)
        y = net.forward(B).reshape(len(B), -1)
        falsified = np.array([f.n_falsified(b.astype(bool)) for b in B])
        np.testing.assert_allclose(y[:, 0], falsified, atol=1e-9)
        if variant == "lei4":
            np.testing.assert_allclose(y[:, 1], falsified, atol=1e-9)


@pytest.mark.parametrize("variant", VARIANTS)
def test_reduction_equals_the_closed_form_and_onnxruntime(variant, rng):
    f = random_3sat(8, 34, seed=5)
    inst = sat3_instance(f, variant, ground_truth=False)
    X = rng.uniform(inst.lo, inst.hi, size=(300, 8))
    F = sat_loss(f, X)
    y = inst.net.forward(X).reshape(300, -1)
    np.testing.assert_allclose(y[:, 0], F, atol=1e-12)
    y_ort = inst.net.run_onnxruntime(X).reshape(300, -1)
    np.testing.assert_allclose(y_ort[:, 0], F, atol=1e-5)


def _unsat_formula(n: int, seed: int) -> CNF:
    return random_formula(n, clauses_for_ratio(n, 4.26), False, seed=seed)[0]


def _sat_formula(n: int, seed: int) -> tuple[CNF, tuple[bool, ...]]:
    return random_formula(n, clauses_for_ratio(n, 4.26), True, seed=seed)


def _satisfied(f: CNF, A: np.ndarray) -> np.ndarray:
    """Whether each row of the Boolean matrix ``A`` satisfies ``f`` (independent of decode)."""
    ok = np.ones(len(A), dtype=bool)
    for c in f.clauses:
        ok &= np.any([A[:, abs(v) - 1] == (v > 0) for v in c], axis=0)
    return ok


def test_gap_theorem_on_samples(rng):
    # (iii): unsatisfiable => loss >= 1 everywhere; (ii): loss < 1 => rounding satisfies
    for seed in range(3):
        f = _unsat_formula(8, seed)
        X = np.concatenate([rng.uniform(0, 1, (20000, 8)), rng.uniform(0.4, 0.6, (5000, 8))])
        assert sat_loss(f, X).min() >= 1 - 1e-12
        g, a = _sat_formula(8, seed)
        # points near a satisfying assignment: every one with loss < 1 decodes to a model
        X = np.clip(np.asarray(a, float) + rng.normal(scale=0.3, size=(20000, 8)), 0, 1)
        L = sat_loss(g, X)
        ok = _satisfied(g, X >= 0.5)  # the decoded assignments, checked clause by clause
        assert np.sum(L < 1 - 1e-9) > 100
        # "< 1" in real arithmetic; the margin covers float rounding
        assert np.all(ok[L < 1 - 1e-9])
        # and a falsifying rounding always has loss >= 1
        assert (~ok).sum() > 100 and L[~ok].min() >= 1 - 1e-12


def test_free_variants_are_constant_outside_the_unit_box(rng):
    f = random_3sat(6, 26, seed=2)
    for variant in ("free", "lei4"):
        net = sat3_instance(f, variant, ground_truth=False).net
        X = rng.uniform(-5, 6, size=(500, 6))
        np.testing.assert_allclose(
            net.forward(X).reshape(500, -1)[:, 0], sat_loss(f, np.clip(X, 0, 1)), atol=1e-12
        )


@pytest.mark.parametrize("variant", VARIANTS)
def test_disguises_keep_the_function(variant, rng):
    f = random_3sat(8, 34, seed=9)
    plain = sat3_instance(f, variant, ground_truth=False)
    dis = sat3_instance(
        f, variant, rescale=True, permute=True, identity_layers=2, seed=4, ground_truth=False
    )
    X = rng.uniform(plain.lo, plain.hi, size=(400, 8))
    np.testing.assert_allclose(dis.net.forward(X), plain.net.forward(X), atol=1e-5)
    np.testing.assert_allclose(dis.net.run_onnxruntime(X), plain.net.forward(X), atol=1e-5)
    # the structure changed: two more layers, and no weight matrix is the plain one
    assert len(dis.net.graph.ops) == len(plain.net.graph.ops) + 4
    W_plain = [W for W, _, _ in sat_layers(f, variant)]
    W_dis = [o.attrs["weight"] for o in dis.net.graph.ops if o.op == "affine"]
    assert not any(
        a.shape == b.shape and np.allclose(a, b) for a in W_dis[:-1] for b in W_plain[:-1]
    )


def test_reduction_bad_input():
    f = CNF(3, ((1, -1, 2),))
    with pytest.raises(InputError, match="no clauses left"):
        sat3_instance(f)
    with pytest.raises(InputError, match="unknown 3SAT variant"):
        sat3_instance(random_3sat(5, 10), "deep")
    with pytest.raises(InputError, match="identity_layers"):
        sat3_instance(random_3sat(5, 10), identity_layers=-1)
    with pytest.raises(InputError, match="does not satisfy"):
        sat3_instance(CNF(3, ((1, 2, 3),)), assignment=(False, False, False))


# MILP verdict vs python-sat on a small sample (the full run is benchmarks/papers/sat3_agreement.py)
MILP_CASES = [
    (n, sat, variant, disguise)
    for (n, variant), sat, disguise in zip(
        [(6, "box"), (8, "free"), (10, "lei4"), (7, "box"), (9, "free"), (12, "box")],
        [True, False, True, False, True, False],
        [False, False, False, True, True, True],
        strict=True,
    )
] + [(10, True, "box", False), (10, False, "lei4", False)]


@pytest.mark.parametrize("n, sat, variant, disguise", MILP_CASES)
def test_milp_decides_satisfiability(n, sat, variant, disguise):
    f, a = random_formula(n, clauses_for_ratio(n, 4.26), sat, seed=100 + n)
    inst = sat3_instance(
        f, variant, rescale=disguise, permute=disguise, identity_layers=int(disguise), seed=n
    )
    assert inst.ground_truth["satisfiable"] == sat
    # tolerances well below the 1e-6 the bound is checked against: with HiGHS's default
    # feasibility tolerance (1e-6 on the big-M rows) its proven bound may lie up to ~1e-6 under
    # the exact optimum, and did on highspy 1.15.1 (bound 0.99999887, objective 0.99999987)
    tight = {"mip_feasibility_tolerance": 1e-9, "primal_feasibility_tolerance": 1e-9}
    r = inst.problem.solve("milp", time_limit=120, threads=1, gap=1e-8, abs_gap=1e-9, options=tight)
    assert r.status == netopt.Status.OPTIMAL
    if sat:
        assert r.objective <= 1e-5
        assert f.satisfied_by(decode(r.x))
        y = inst.net.run_onnxruntime(np.asarray(r.x).reshape(1, -1)).reshape(-1)
        assert np.max(np.abs(y - inst.target)) <= 1e-5
    else:
        assert r.bound >= 1 - 1e-6 and r.objective >= 1 - 1e-6


# ---------------------------------------------------------------- instance files
def test_instance_files_round_trip(tmp_path):
    f, a = planted_3sat(8, 30, seed=1)
    inst = sat3_instance(f, "lei4", assignment=a, rescale=True, seed=2)
    paths = inst.save(tmp_path)
    assert {p.suffix for p in paths.values()} == {".onnx", ".json", ".vnnlib", ".cnf"}
    d = json.loads(paths["json"].read_text())
    assert d["netopt_version"] == netopt.__version__
    assert d["params"]["seed"] == 2 and d["params"]["variant"] == "lei4"
    assert d["ground_truth"]["satisfiable"] is True and d["ground_truth"]["optimum"] == 0.0
    back = load_instance(paths["json"])
    p, q = inst.problem, back.problem
    np.testing.assert_array_equal(p.target, q.target)
    np.testing.assert_array_equal(p.domain.lo, q.domain.lo)
    np.testing.assert_array_equal(p.domain.hi, q.domain.hi)
    assert p.norm == q.norm
    assert read_dimacs(paths["cnf"]) == f
    # the planted assignment attains the optimum 0
    assert q.objective_of_input(np.asarray(back.ground_truth["x_star"])) <= 1e-5
    # the VNN-LIB file states the same box and target region
    prop = netopt.load_vnnlib(paths["vnnlib"])
    dj = prop.disjuncts[0]
    np.testing.assert_allclose(dj.lo, inst.lo)
    np.testing.assert_allclose(dj.hi, inst.hi)
    x = np.asarray(a, float)
    y = inst.net.forward(x[None]).reshape(-1)
    assert np.all(dj.C @ y <= dj.d)


def test_instance_load_errors(tmp_path):
    inst = mlp_instance((3, 8, 2), seed=0)
    paths = inst.save(tmp_path)
    paths["onnx"].write_bytes(mlp_instance((3, 8, 2), seed=1).model.SerializeToString())
    with pytest.raises(InputError, match="SHA-256 differs"):
        load_instance(paths["json"])
    d = json.loads(paths["json"].read_text())
    del d["region_tol"]
    (tmp_path / "partial.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="lacks \\['region_tol'\\]"):
        load_instance(tmp_path / "partial.json")
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="not a netopt instance"):
        load_instance(tmp_path / "x.json")
    d = json.loads(paths["json"].read_text())
    d["format_version"] = 99
    (tmp_path / "new.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="newer than this netopt"):
        load_instance(tmp_path / "new.json")


@pytest.mark.parametrize("sat", [True, False])
def test_vnnlib_verdict_is_satisfiability(tmp_path, sat):
    from netopt.vnnlib.check import check

    f, _ = random_formula(8, 34, sat, seed=11)
    paths = sat3_instance(f, "free").save(tmp_path)
    r = check(netopt.load(paths["onnx"]), paths["vnnlib"], time_limit=60, bab_time=1)
    assert r.verdict == ("sat" if sat else "unsat")
    if sat:
        assert r.confirmed and f.satisfied_by(decode(r.x))


# -------------------------------------------------------------- other families
def test_expansive_realizable_and_noisy():
    inst = expansive_instance((6, 30, 80), seed=3)
    z = np.asarray(inst.ground_truth["x_star"])
    assert inst.net.input_shape == (6,) and inst.net.output_shape == (80,)
    np.testing.assert_allclose(inst.net.forward(z[None]).reshape(-1), inst.target, atol=1e-12)
    np.testing.assert_allclose(
        inst.net.run_onnxruntime(z[None]).reshape(-1), inst.target, atol=1e-5
    )
    assert np.all(inst.lo <= z) and np.all(z <= inst.hi)
    # ReLU after every layer, no biases (the authors' generator)
    ops = [o.op for o in inst.net.graph.ops]
    assert ops.count("relu") == 2
    assert all(np.all(o.attrs["bias"] == 0) for o in inst.net.graph.ops if o.op == "affine")
    noisy = expansive_instance((6, 30, 80), seed=3, noise=0.01, noise_kind="gaussian", norm=2)
    e = noisy.ground_truth["noise_norm"]
    assert noisy.problem.objective_of_input(z) == pytest.approx(e, rel=1e-9)
    leaky = expansive_instance((4, 10, 20), seed=0, activation="leaky_relu")
    assert [o.op for o in leaky.net.graph.ops].count("leaky_relu") == 2
    with pytest.raises(InputError, match="widths"):
        expansive_instance((5,))
    with pytest.raises(InputError, match="noise"):
        expansive_instance((3, 5), noise=-1)


def test_mlp_targets(rng):
    r = mlp_instance((4, 12, 12, 2), seed=1, target="realizable")
    x = np.asarray(r.ground_truth["x_star"])
    assert r.problem.objective_of_input(x) <= 1e-12
    o = mlp_instance((4, 12, 12, 2), seed=1, target="outside")
    assert np.abs(np.asarray(o.ground_truth["x_outside"])).max() > 1
    u = mlp_instance((4, 12, 12, 2), seed=1, target="unreachable", certify=True, time_limit=60)
    lb_crown = mlp_instance((4, 12, 12, 2), seed=1, target="unreachable").ground_truth[
        "optimum_lower_bound"
    ]
    assert u.ground_truth["reachable"] is False and lb_crown > 0
    # the CROWN lower bound is sound on samples and below the MILP's certified optimum
    X = rng.uniform(-1, 1, size=(20000, 4))
    P = u.problem
    assert P.evaluate(u.net.forward(X)).min() >= lb_crown - 1e-9
    assert u.ground_truth["optimum"] >= lb_crown - 1e-6
    with pytest.raises(InputError, match="hidden layer"):
        mlp_instance((3, 2))
    with pytest.raises(InputError, match="target must be one of"):
        mlp_instance(target="far")


# ---------------------------------------------------------------------- CLI
def test_cli_gen_and_invert(tmp_path, capsys):
    from netopt.cli import main

    assert (
        main(
            [
                "gen",
                "sat3",
                "--vars",
                "7",
                "--kind",
                "unsat",
                "--count",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    js = sorted(tmp_path.glob("*.json"))
    assert len(js) == 2
    assert all(json.loads(p.read_text())["ground_truth"]["satisfiable"] is False for p in js)
    cnf = tmp_path / "f.cnf"
    random_3sat(6, 20, seed=0).save(cnf)
    assert main(["gen", "sat3", str(cnf), "--variant", "lei4", "--out", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g" / "f_lei4.vnnlib").exists()
    assert main(["gen", "expansive", "--widths", "3,8,16", "--out", str(tmp_path / "e")]) == 0
    assert (
        main(
            [
                "gen",
                "mlp",
                "--widths",
                "3,8,2",
                "--target",
                "unreachable",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["invert", str(js[0]), "--quiet", "--out", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "status     optimal" in out and "objective  1" in out


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["gen", "sat3", "--vars", "2"], "n >= 3"),
        (["gen", "sat3", "--vars", "5", "--ratio", "20"], "cannot be met"),
        (["gen", "sat3"], "give a FORMULA.cnf"),
        (["gen", "sat3", "--vars", "5", "--count", "0"], "--count"),
        (["gen", "expansive", "--widths", "3,x"], "expected integers"),
    ],
)
def test_cli_gen_errors(tmp_path, capsys, argv, msg):
    from netopt.cli import main

    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert msg in capsys.readouterr().err


def test_cli_gen_malformed_dimacs(tmp_path, capsys):
    from netopt.cli import main

    p = tmp_path / "bad.cnf"
    p.write_text("p cnf 3 1\n1 2 x 0\n")
    assert main(["gen", "sat3", str(p), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.cnf, line 2" in err and "'x'" in err
