"""``netopt check --certificate`` writes an unsat verdict's certificate, which ``netopt verify
CERT MODEL --property FILE`` re-checks (its branch-and-bound proofs in float64): exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from helpers.nets import NETS, require_nets

import netopt
from netopt.cli import main
from netopt.instances._onnx import mlp_onnx

PROPERTY = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 -1.0))
(assert (<= X_0 1.0))
(assert (>= X_1 -1.0))
(assert (<= X_1 1.0))
(assert (<= Y_0 (- Y_1 LIMIT)))
"""


def _files(d: Path) -> tuple[Path, Path, Path]:
    """A seeded 2-16-16-2 ReLU chain, an unsat property on it and a sat one."""
    rng = np.random.default_rng(3)
    widths = [2, 16, 16, 2]
    Ws = [
        rng.normal(size=(o, i)) / np.sqrt(i) for i, o in zip(widths[:-1], widths[1:], strict=True)
    ]
    bs = [rng.normal(scale=0.1, size=o) for o in widths[1:]]
    model = d / "chain.onnx"
    onnx.save(mlp_onnx(Ws, bs, ["relu", "relu", None], dtype=np.float64), model)
    g = np.linspace(-1, 1, 301)
    X = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    y = netopt.load(model).forward(X)
    m = y[:, 0] - y[:, 1]
    unsat, sat = d / "unsat.vnnlib", d / "sat.vnnlib"
    unsat.write_text(PROPERTY.replace("LIMIT", repr(-float(m.min() - 0.05))))  # below every margin
    sat.write_text(PROPERTY.replace("LIMIT", repr(-float(np.median(m)))))
    return model, unsat, sat


def test_check_certificate_then_verify(tmp_path, capsys):
    model, unsat, sat = _files(tmp_path)
    cert = tmp_path / "c.json"
    assert main(["check", str(model), str(unsat), "--certificate", str(cert)]) == 20
    out = capsys.readouterr().out
    assert f"certificate written to {cert}" in out
    c = json.loads(cert.read_text())
    assert c["kind"] == "unsat" and "proof" in c["evidence"]["disjuncts"][0]
    assert main(["verify", str(cert), str(model), "--property", str(unsat)]) == 0
    out = capsys.readouterr().out
    assert "[FAILED]" not in out and out.rstrip().endswith("verified")
    assert "branch-and-bound proof re-checked" in out
    # without the property a note says where the disjuncts come from; still re-checked
    assert main(["verify", str(cert), str(model)]) == 0
    assert "taken from the certificate" in capsys.readouterr().out
    # against another property: the disjuncts differ
    assert main(["verify", str(cert), str(model), "--property", str(sat)]) == 1
    assert "NOT verified" in capsys.readouterr().out


def test_no_certificate_for_a_sat_verdict(tmp_path, capsys):
    model, _, sat = _files(tmp_path)
    cert = tmp_path / "c.json"
    assert main(["check", str(model), str(sat), "--certificate", str(cert)]) == 10
    assert "no certificate written: the verdict is sat" in capsys.readouterr().out
    assert not cert.exists()


def test_instances_write_a_certificate_per_unsat_instance(tmp_path, capsys):
    model, unsat, sat = _files(tmp_path)
    csv = tmp_path / "instances.csv"
    csv.write_text("chain.onnx,unsat.vnnlib,60\nchain.onnx,sat.vnnlib,60\n")
    certs = tmp_path / "certs"
    args = ["check", "--instances", str(csv), "--results", str(tmp_path / "r.csv")]
    assert main([*args, "--certificate", str(certs)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in certs.iterdir()) == ["chain__unsat.json"]
    rc = main(["verify", str(certs / "chain__unsat.json"), str(model), "--property", str(unsat)])
    assert rc == 0


def test_acasxu_property_1_certificate_round_trip(tmp_path, capsys):
    require_nets()
    model = NETS / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx"
    prop = NETS / "acasxu" / "prop_1.vnnlib"
    cert = tmp_path / "acas.json"
    assert main(["check", str(model), str(prop), "--certificate", str(cert)]) == 20
    assert main(["verify", str(cert), str(model), "--property", str(prop)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("verified") and "[solver-attested" not in out


def test_max_pool_network_certificate_is_a_proof(tmp_path, capsys):
    """Marabou's conv_mp1 (Conv, ReLU, MaxPool, Gemm, ReLU, Gemm): a robustness property at a
    radius the one CROWN pass leaves open, decided by ReLU splitting on the max pool's ReLU form
    (the open disjuncts' trees in lockstep, each with its own proof); its certificate is
    re-checked as a proof (it was solver-attested before the ReLU form)."""
    require_nets()
    model = NETS / "marabou" / "conv_mp1.onnx"
    net = netopt.load(model)
    x0 = np.random.default_rng(0).uniform(0, 1, net.input_shape).reshape(-1)
    y = net.forward(x0.reshape(1, *net.input_shape)).reshape(-1)
    label, eps = int(y.argmax()), 0.1
    lines = [f"(declare-const X_{j} Real)" for j in range(x0.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(y.size)]
    for j, v in enumerate(x0):
        lines += [
            f"(assert (>= X_{j} {float(v - eps)!r}))",
            f"(assert (<= X_{j} {float(v + eps)!r}))",
        ]
    other = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(y.size) if j != label)
    prop = tmp_path / "robust.vnnlib"
    prop.write_text("\n".join(lines) + f"\n(assert (or {other}))\n")
    cert = tmp_path / "mp.json"
    assert main(["check", str(model), str(prop), "--certificate", str(cert)]) == 20
    # the disjuncts the CROWN pass leaves open: their ReLU-splitting trees in lockstep
    assert "unsat by BaB (relu splits, " in capsys.readouterr().out
    c = json.loads(cert.read_text())
    assert all("proof" in dj for dj in c["evidence"]["disjuncts"])
    assert main(["verify", str(cert), str(model), "--property", str(prop)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("verified") and "[solver-attested" not in out
