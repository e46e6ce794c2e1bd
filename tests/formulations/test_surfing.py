"""Surfing (Song, Fan & Lafferty 2019): the sequence checks, Algorithm 1, the generator helper."""

from __future__ import annotations

import numpy as np
import pytest

import netopt
from netopt.formulations.surfing import surf
from netopt.instances.digits_generator import train_generator_with_checkpoints
from netopt.network import check_same_architecture

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def mlp(widths: list[int], seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).double()


def to_net(m: torch.nn.Module) -> netopt.Network:
    k = next(x for x in m.modules() if isinstance(x, torch.nn.Linear)).in_features
    return netopt.from_torch(m, torch.zeros(1, k, dtype=torch.float64), exporter="torchscript")


def path_modules(T: int = 4, widths=(3, 24, 24, 12)) -> list[torch.nn.Module]:
    """A made-up 'training path': theta_t interpolates two random nets, so f changes slowly."""
    a, b = mlp(list(widths), 0), mlp(list(widths), 1)
    mods = []
    for t in range(T + 1):
        m = mlp(list(widths), 0)
        with torch.no_grad():
            for pm, pa, pb in zip(m.parameters(), a.parameters(), b.parameters(), strict=True):
                pm.copy_((1 - t / T) * pa + (t / T) * pb)
        mods.append(m)
    return mods


@pytest.fixture(scope="module")
def seq() -> list[netopt.Network]:
    return [to_net(m) for m in path_modules()]


def test_architecture_mismatch_names_the_first_index():
    nets = [to_net(mlp([3, 16, 8], s)) for s in range(2)] + [
        to_net(mlp([3, 20, 8], 2)),
        to_net(mlp([3, 24, 8], 3)),
    ]
    with pytest.raises(netopt.InputError, match=r"networks\[2\].*op 0.*'affine'.*shapes"):
        check_same_architecture(nets)
    with pytest.raises(netopt.InputError, match=r"networks\[2\]"):
        surf(nets, np.zeros(8), steps_per_stage=1)
    # a different depth is caught too, and the same architecture passes
    deeper = to_net(mlp([3, 16, 16, 8], 4))
    with pytest.raises(netopt.InputError, match=r"networks\[1\].*IR ops"):
        check_same_architecture([nets[0], deeper])
    check_same_architecture(nets[:2])


def test_bad_entries_and_budgets_refused(seq):
    with pytest.raises(netopt.InputError, match=r"networks\[1\] is a int"):
        surf([seq[0], 3], np.zeros(12))
    with pytest.raises(netopt.InputError, match="2 entries for 5 networks"):
        surf(seq, np.zeros(12), steps_per_stage=[1, 2])
    with pytest.raises(netopt.InputError, match="empty"):
        surf([], np.zeros(12))


def test_paths_networks_and_modules_agree(seq, tmp_path):
    paths = []
    for i, n in enumerate(seq):
        p = tmp_path / f"theta_{i}.onnx"
        p.write_bytes(n.onnx_bytes)
        paths.append(p)
    y = seq[-1].forward(np.array([0.3, -0.5, 0.8]))
    kw = dict(steps_per_stage=20, lr=0.05, seed=3, dtype="float64")
    r_net = surf(seq, y, **kw)
    r_path = surf(paths, y, **kw)
    r_str = surf([str(p) for p in paths], y, **kw)
    r_mod = surf(path_modules(), y, **kw)
    for r in (r_path, r_str, r_mod):
        np.testing.assert_allclose(r.x, r_net.x, rtol=1e-10, atol=1e-12)
        assert r.objective == pytest.approx(r_net.objective, rel=1e-9, abs=1e-14)


def test_planted_problem_is_solved_and_rechecked(seq):
    z_star = np.array([0.6, -0.4, 0.9])
    y = seq[-1].forward(z_star)
    r = surf(seq, y, steps_per_stage=300, lr=0.02, seed=0, dtype="float64", restarts=4)
    assert r.status == netopt.Status.FEASIBLE
    # the objective is the float64 ||G_T(x) - y||_2 on the LAST network
    prob = netopt.Inversion(seq[-1], y, norm=2)
    assert r.objective == prob.objective_of_input(r.x)
    np.testing.assert_array_equal(r.y, seq[-1].forward(r.x))
    assert r.objective < 1e-5 * np.linalg.norm(y)
    assert np.linalg.norm(seq[-1].forward(r.x) - y) < 1e-5 * np.linalg.norm(y)
    assert len(r.extra["objectives"]) == 4
    assert r.objective == min(r.extra["objectives"])
    # the norm only changes what is reported
    r1 = surf(seq, y, steps_per_stage=300, lr=0.02, seed=0, dtype="float64", restarts=4, norm=1)
    assert r1.objective == pytest.approx(np.abs(seq[-1].forward(r1.x) - y).sum(), rel=1e-12)


def test_each_stage_starts_where_the_last_ended(seq):
    z0 = np.array([1.0, -1.0, 0.5])
    y = seq[-1].forward(np.zeros(3))
    r = surf(seq, y, steps_per_stage=[5, 4, 3, 2, 1], init=z0, dtype="float64", lr=0.05)
    h = r.extra["surfing"]
    assert [s["steps"] for s in h] == [5, 4, 3, 2, 1] and r.extra["budgets"] == [5, 4, 3, 2, 1]
    np.testing.assert_array_equal(h[0]["z_start"], z0)
    for prev, cur in zip(h[:-1], h[1:], strict=True):
        np.testing.assert_array_equal(cur["z_start"], prev["z_end"])
        assert not np.array_equal(cur["z_end"], cur["z_start"])  # each stage did move
    np.testing.assert_array_equal(r.x, h[-1]["z_end"])
    # each stage lowers its own network's loss
    assert all(s["loss_end"] < s["loss_start"] for s in h)


@pytest.mark.parametrize("optimizer", ["adam", "gd"])
def test_one_network_is_plain_descent(seq, optimizer):
    net = seq[-1]
    y = net.forward(np.array([0.2, 0.1, -0.3]))
    K, lr, seed = 150, 0.01, 7
    r = surf([net], y, steps_per_stage=K, lr=lr, seed=seed, optimizer=optimizer, dtype="float64")
    # the same start (seeded N(0, I)) and K plain steps of torch's optimizer
    z = torch.tensor(np.random.default_rng(seed).standard_normal((1, 3)), requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr) if optimizer == "adam" else torch.optim.SGD([z], lr=lr)
    g, yt = net.torch_module(dtype=torch.float64, device="cpu"), torch.tensor(y)
    for _ in range(K):
        opt.zero_grad()
        (0.5 * (g(z) - yt).pow(2).sum()).backward()
        opt.step()
    np.testing.assert_allclose(r.x, z.detach().numpy()[0], rtol=0, atol=1e-12)


def test_box_is_respected(seq):
    y = seq[-1].forward(np.array([0.9, 0.9, 0.9]))
    r = surf(seq, y, steps_per_stage=30, lr=0.1, box=(-0.5, 0.5), dtype="float64")
    assert np.all(np.abs(r.x) <= 0.5) and r.problem.domain.contains(r.x)
    assert all(np.all(np.abs(s["z_end"]) <= 0.5) for s in r.extra["surfing"])


def test_tiny_generator_checkpoints(tmp_path):
    paths = train_generator_with_checkpoints(
        tmp_path, latent=3, hidden=12, epochs=1, seed=0, n_checkpoints=4
    )
    assert [p.name for p in paths] == [f"theta_{i:03d}.onnx" for i in range(4)]
    nets = [netopt.load(p) for p in paths]
    check_same_architecture(nets)
    assert nets[0].input_shape == (3,) and nets[0].output_shape == (64,)
    assert [o.op for o in nets[0].graph.ops] == ["affine", "relu", "affine", "relu", "affine"]
    # theta_0 is the untrained initialization: training moved the weights
    w0, wT = (n.graph.ops[-1].attrs["weight"] for n in (nets[0], nets[-1]))
    assert not np.allclose(w0, wT)
    steps = [
        int(line.split()[1]) for line in (tmp_path / "steps.txt").read_text().split("\n")[1:-1]
    ]
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == 29  # 1797 digits / 64
    # seeded: a second run writes the same files
    again = train_generator_with_checkpoints(
        tmp_path / "b", latent=3, hidden=12, epochs=1, seed=0, n_checkpoints=4
    )
    assert again[-1].read_bytes() == paths[-1].read_bytes()
    r = surf(paths, nets[-1].forward(np.zeros(3)), steps_per_stage=5)
    assert np.isfinite(r.objective)


def test_registered_method_is_surf(seq):
    """``Inversion(net_T, y).solve("surfing", path=[...])`` is :func:`surf` over path + net_T."""
    y = seq[-1].forward(np.array([0.3, -0.2, 0.1]))
    kw = dict(steps_per_stage=20, lr=0.05, seed=3, dtype="float64", restarts=2)
    direct = surf(seq, y, box=(-1.0, 1.0), **kw)
    prob = netopt.Inversion(seq[-1], y, norm=2, box=(-1.0, 1.0))
    via = prob.solve("surfing", path=seq[:-1], **kw)
    assert via.formulation == "surfing" and via.status == netopt.Status.FEASIBLE
    np.testing.assert_array_equal(via.x, direct.x)
    assert via.objective == direct.objective == prob.objective_of_input(via.x)
    # a per-coordinate box cannot be projected onto by the stages: refused before any work
    lo = np.array([-1.0, -0.5, -1.0])
    uneven = netopt.Inversion(seq[-1], y, box=(lo, np.ones(3)))
    with pytest.raises(netopt.FormulationError, match="one lo and one hi"):
        uneven.solve("surfing", path=seq[:-1], **kw)
    with pytest.raises(netopt.IncompatibleBackendError, match="no solver"):
        prob.solve("surfing", "highs", path=seq[:-1], **kw)
