"""ReLU splitting's searches in lockstep (netopt.bounds.relu_lockstep): one bound call for
several searches' batches gives each the bounds of its own call, and searches run in lockstep
grow the trees they grow alone."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers.nets import mlp_net  # noqa: E402

from netopt.bounds.batched import ChainBounds  # noqa: E402
from netopt.bounds.relu_lockstep import BoundRequest, bound_all, merged  # noqa: E402


def _chain(seed: int):
    net, _, _ = mlp_net([4, 12, 10, 3], ["relu", "leaky_relu:0.1", None], seed=seed)
    cb = ChainBounds(net.graph, device="cpu", dtype=torch.float64)
    return net, cb


def _request(cb, rng, B: int, k: int, split_layers: tuple, lo, hi, with_init: bool):
    """A batch of ``B`` domains of the box, random splits in ``split_layers`` (multipliers
    only there), rows ``C`` (k, 3) and ``d``."""
    root = cb.alpha_crown(lo, hi, np.eye(3)[:1], np.zeros(1), iters=0)
    splits = []
    for j, (lj, uj) in enumerate(root.pre):
        s = torch.zeros((B, lj.shape[1]), dtype=torch.int8)
        if j in split_layers:
            unst = torch.nonzero(((lj < 0) & (uj > 0))[0]).reshape(-1)
            for b in range(B):
                pick = unst[torch.randperm(len(unst))[: max(1, len(unst) // 3)]]
                s[b, pick] = torch.as_tensor(rng.choice([-1, 1], len(pick)), dtype=torch.int8)
        splits.append(s)
    init = [sl.expand(B, -1).clone() * 0.5 for sl in root.slopes] if with_init else None
    betas = None
    if with_init:
        betas = [
            None
            if j not in split_layers
            # (with several rows, their combination's multipliers too)
            else torch.as_tensor(rng.uniform(0, 0.3, (B, k + (k > 1), s.shape[1])))
            * (s != 0)[:, None, :]
            for j, s in enumerate(splits)
        ]
    return BoundRequest(
        {"t_bound": 0.0},
        lo=np.broadcast_to(lo, (B, lo.shape[1])),
        hi=np.broadcast_to(hi, (B, hi.shape[1])),
        C=rng.normal(size=(k, 3)),
        d=rng.normal(size=k),
        splits=splits,
        iters=6,
        init=init,
        beta=True,
        init_betas=betas,
        pre=None,
        prev=[(a.expand(B, -1), b.expand(B, -1)) for a, b in root.pre],
        mix=k > 1,
        init_mix=None,
        rates=(0.25, 0.05, 0.1),
    )


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("seed", range(4))
def test_one_call_for_several_requests_gives_each_its_own_bounds(seed, k):
    """Requests of different rows, splits and multipliers (one with none in a layer where the
    other has some) bounded in one call: every field of each answer equals its own call's."""
    net, cb = _chain(seed)
    rng = np.random.default_rng(seed)
    lo, hi = -np.ones((1, 4)), np.ones((1, 4))
    reqs = {
        0: _request(cb, rng, 3, k, (0,), lo, hi, True),
        1: _request(cb, rng, 5, k, (0, 1), lo, hi, True),
        2: _request(cb, rng, 2, k, (1,), lo, hi, True),
    }
    assert len({r.key() for r in reqs.values()}) == 1
    got = bound_all(reqs, cb)
    assert merged(list(reqs.values())).size == 10
    for i, r in reqs.items():
        own = r.call(cb)
        g = got[i]
        assert g.lower.shape == own.lower.shape
        np.testing.assert_allclose(g.lower.detach(), own.lower.detach(), rtol=1e-9, atol=1e-9)
        for a, b in zip(g.slopes, own.slopes, strict=True):
            np.testing.assert_allclose(a.detach(), b.detach(), rtol=1e-9, atol=1e-9)
        for a, b in zip(g.betas, own.betas, strict=True):
            np.testing.assert_allclose(a.detach(), b.detach(), rtol=1e-9, atol=1e-9)
        for (a0, a1), (b0, b1) in zip(g.pre, own.pre, strict=True):
            np.testing.assert_allclose(a0, b0, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(a1, b1, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g.coef.detach(), own.coef.detach(), rtol=1e-9, atol=1e-9)
        if k > 1:
            np.testing.assert_allclose(g.mix.detach(), own.mix.detach(), rtol=1e-9, atol=1e-9)


def test_requests_of_other_shapes_are_bounded_apart():
    """A request with another number of rows (or none of the warm starts, or other learning
    rates) is not merged."""
    import dataclasses

    _, cb = _chain(0)
    rng = np.random.default_rng(0)
    lo, hi = -np.ones((1, 4)), np.ones((1, 4))
    a = _request(cb, rng, 3, 1, (0,), lo, hi, True)
    b = _request(cb, rng, 3, 2, (0,), lo, hi, True)
    c = _request(cb, rng, 3, 1, (0,), lo, hi, False)
    e = dataclasses.replace(a, stats={"t_bound": 0.0}, rates=(0.1, 0.02, 0.05))
    assert len({a.key(), b.key(), c.key(), e.key()}) == 4
    got = bound_all({0: a, 1: b, 2: c, 3: e}, cb)
    assert not np.allclose(got[3].lower.detach(), got[0].lower.detach())
    for i, r in enumerate((a, b, c, e)):
        np.testing.assert_allclose(
            got[i].lower.detach(), r.call(cb).lower.detach(), rtol=1e-9, atol=1e-9
        )


@pytest.mark.parametrize("turns", [False, True])
@pytest.mark.parametrize("seed", [2, 8, 10, 18])
def test_searches_in_lockstep_grow_the_trees_they_grow_alone(seed, turns, monkeypatch):
    """Disjuncts over one box (``branch_and_bound``'s ``groups``, ReLU splitting, float64
    search): each disjunct's verdict and proof tree in lockstep are those of its search alone
    (with ``turns``, each search's twin that updates its bounds taking turns from the first
    domain on). The disjuncts: a random chain's rows, empty by 10-30 % of their spread (trees
    of 5-39 domains alone), the same rows at half that margin, and their first row alone. Each
    proof is re-checked."""
    from test_branch import RELU_MARGIN, _instance

    import netopt.bounds.relu_turns as rt
    from netopt.bounds.branch import branch_and_bound
    from netopt.bounds.proof import check_proof

    if turns:
        monkeypatch.setattr(rt, "SPLIT_UPDATE_TURN", 1)
        monkeypatch.setattr(rt, "SPLIT_UPDATE_SHARE", 2.0)

    inst = _instance(seed, RELU_MARGIN)
    assert inst["opt"] > 0
    Cs = [inst["C"], inst["C"], inst["C"][:1]]
    ds = [inst["d"], inst["d"] + inst["opt"] / 2, inst["d"][:1]]
    groups = np.concatenate([[g] * len(c) for g, c in enumerate(Cs)])
    kw = dict(mode="relu", time_limit=30, dtype=torch.float64, device="cpu")
    box = (inst["net"], inst["lo"], inst["hi"])
    both = branch_and_bound(*box, np.concatenate(Cs), np.concatenate(ds), groups=groups, **kw)
    alone = [branch_and_bound(*box, c, dd, **kw) for c, dd in zip(Cs, ds, strict=True)]
    if both.verdict == "sat":
        # the lockstep stops at the first counterexample: its disjunct has one alone too
        assert alone[both.group].verdict == "sat"
        return
    assert both.stats["disjuncts_at_once"] == 3
    assert both.stats["nodes"] == sum(r.stats["nodes"] for r in alone)
    for part, r in zip(both.parts, alone, strict=True):
        assert part.verdict == r.verdict == "unsat"
        assert part.proof.nodes == r.proof.nodes
        assert part.stats["nodes"] == r.stats["nodes"]
        assert part.stats.get("split_update") == r.stats.get("split_update")
        assert check_proof(inst["net"].graph, part.proof).ok
    if turns:
        assert any(r.stats.get("split_update") for r in alone)


def test_lockstep_answers_each_request_once_and_stops_when_told():
    """Fake searches: one that ends at once, one with round ends between its requests, one
    that would run forever; each request is answered with its own bounds, and a stop closes
    the searches still running."""
    from netopt.bounds import relu_lockstep as rl

    _, cb = _chain(1)
    rng = np.random.default_rng(1)
    lo, hi = -np.ones((1, 4)), np.ones((1, 4))
    reqs = [_request(cb, rng, 2, 1, (0,), lo, hi, True) for _ in range(3)]
    seen: list = []
    closed: list = []

    def at_once():
        return "first"
        yield  # (a generator)

    def rounds():
        for _ in range(3):
            sb = yield reqs[1]
            seen.append(("b", float(sb.lower.sum())))
            yield None
            yield None
        return "second"

    def forever():
        try:
            while True:
                sb = yield reqs[2]
                seen.append(("c", float(sb.lower.sum())))
        finally:
            closed.append(True)

    out = rl.lockstep([at_once(), rounds(), forever()], cb, stop=lambda i, r: r == "second")
    assert out == ["first", "second", None] and closed == [True]
    own_b = float(reqs[1].call(cb).lower.sum())
    own_c = float(reqs[2].call(cb).lower.sum())
    assert [v for w, v in seen if w == "b"] == pytest.approx([own_b] * 3, rel=1e-9)
    # (round by round: "c" is closed before it takes its third answer)
    assert [v for w, v in seen if w == "c"] == pytest.approx([own_c] * 2, rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_one_branching_call_for_several_searches_picks_each_its_own_units(seed):
    """Searches' branching (BaBSR scores, then filtered smart branching's children) over their
    own rows and domains, in one call where their bounds have the same form: each gets the
    units (and runner-ups) of its own call."""
    from netopt.bounds.branch_relu import _ReluSearch
    from netopt.bounds.relu_lockstep import BranchRequest
    from netopt.control import Deadline

    net, cb = _chain(seed)
    rng = np.random.default_rng(seed)
    lo, hi = -np.ones((1, 4)), np.ones((1, 4))
    reqs = {}
    for i, B in enumerate((4, 7, 3, 5)):
        r = _request(cb, rng, B, 1, (0,), lo, hi, True)
        s = _ReluSearch(net, cb, lo, hi, r.C, r.d, Deadline(60), "relu", 64, None, 99, None, "cpu")
        r.beta = i != 2  # (a root round's bounds carry no multipliers: not stacked with these)
        sb = r.call(cb)
        kt = torch.as_tensor(np.sort(rng.choice(B, B - 1, replace=False)))
        reqs[i] = BranchRequest(s.stats, s, sb, kt, r.splits)
    keys = [r.key() for r in reqs.values()]
    assert keys[0] == keys[1] == keys[3] != keys[2]  # (three of them in one call)
    # a search of other filtered-smart-branching candidates is branched apart
    reqs[3].search.candidates += 1
    assert reqs[3].key() != keys[0]
    reqs[3].search.candidates -= 1
    got = bound_all(reqs, cb)
    for i, r in reqs.items():
        own = r.search._units(r.sb, r.kt, r.sp)
        assert len(got[i]) == len(own) == 6
        for a, b in zip(got[i], own, strict=True):
            np.testing.assert_array_equal(a, b)
        assert r.search.stats["t_branch"] > 0


def test_searches_stay_in_step_when_a_batch_closes_whole(monkeypatch):
    """Small batches (two domains): a search whose whole batch closes asks for its next bounds
    while the others ask for their branching; it waits, so that no step answers both kinds
    (and every call serves every search again). The trees are still those grown alone."""
    from test_branch import RELU_MARGIN, _instance

    from netopt.bounds import relu_lockstep as rl
    from netopt.bounds.branch import branch_and_bound

    steps: list = []
    real = rl.bound_all

    def spy(reqs, cb):
        steps.append({type(r).__name__ for r in reqs.values()})
        return real(reqs, cb)

    monkeypatch.setattr(rl, "bound_all", spy)
    inst = _instance(10, RELU_MARGIN)
    Cs = [inst["C"], inst["C"], inst["C"][:1]]
    ds = [inst["d"], inst["d"] + inst["opt"] / 2, inst["d"][:1]]
    groups = np.concatenate([[g] * len(c) for g, c in enumerate(Cs)])
    kw = dict(mode="relu", time_limit=30, dtype=torch.float64, device="cpu", batch=2)
    box = (inst["net"], inst["lo"], inst["hi"])
    both = branch_and_bound(*box, np.concatenate(Cs), np.concatenate(ds), groups=groups, **kw)
    assert len(steps) > 20 and all(len(kinds) == 1 for kinds in steps)
    alone = [branch_and_bound(*box, c, dd, **kw) for c, dd in zip(Cs, ds, strict=True)]
    assert [p.proof.nodes for p in both.parts] == [r.proof.nodes for r in alone]


def test_a_call_out_of_memory_is_answered_by_its_halves(monkeypatch):
    """Where the device runs out of memory on a request, its halves (and theirs) answer it:
    every field as the whole call's (each domain's bound is its own), a merged request's
    (rows per domain) too. A search whose calls run out of memory on more than 3 domains
    decides as it does without, halves its batch, counts the halvings, and its proof
    re-checks; out of memory on one domain is a clear error."""
    from dataclasses import fields

    from test_branch import RELU_MARGIN, _instance

    import netopt.bounds.branch_relu as br
    from netopt.bounds.branch import branch_and_bound
    from netopt.bounds.proof import check_proof
    from netopt.errors import SolveError
    from netopt.torch_utils import out_of_memory_error

    OOM = out_of_memory_error()
    net, cb = _chain(2)
    rng = np.random.default_rng(2)
    lo, hi = -np.ones((1, 4)), np.ones((1, 4))
    req = _request(cb, rng, 7, 2, (0, 1), lo, hi, True)
    two = merged(
        [_request(cb, rng, 3, 2, (0,), lo, hi, True), _request(cb, rng, 4, 2, (1,), lo, hi, True)]
    )
    wholes = [req.call(cb), two.call(cb)]
    real = ChainBounds.alpha_crown

    def tight(self, lo_, *a, **kw):
        if len(lo_) > 3:
            raise OOM("CUDA out of memory (as raised by torch)")
        return real(self, lo_, *a, **kw)

    def flat(v):
        if isinstance(v, (list, tuple)):
            return [t for x in v for t in flat(x)]
        return [] if v is None else [v]

    monkeypatch.setattr(ChainBounds, "alpha_crown", tight)
    for r, whole in zip([req, two], wholes, strict=True):
        got = r.call(cb)
        assert r.stats["oom_halved"] == 2  # 7 -> 3 + 4, and 4 -> 2 + 2
        for f in fields(whole):
            a, b = flat(getattr(got, f.name)), flat(getattr(whole, f.name))
            assert len(a) == len(b) > 0 or f.name == "mix", f.name
            for x, y in zip(a, b, strict=True):
                np.testing.assert_allclose(x.detach(), y.detach(), rtol=1e-9, atol=1e-12)

    inst = _instance(10, RELU_MARGIN)
    args = (inst["net"], inst["lo"], inst["hi"], inst["C"], inst["d"])
    kw = dict(mode="relu", time_limit=30, device="cpu", batch=16, split_update=False)
    monkeypatch.setattr(ChainBounds, "alpha_crown", real)
    plain = branch_and_bound(*args, **kw)
    monkeypatch.setattr(ChainBounds, "alpha_crown", tight)
    units = br._ReluSearch._units

    def tight_units(self, sb, kt, sp):
        if len(kt) > 3:
            raise OOM("CUDA out of memory (as raised by torch)")
        return units(self, sb, kt, sp)

    monkeypatch.setattr(br._ReluSearch, "_units", tight_units)
    r = branch_and_bound(*args, **kw)
    assert plain.verdict == r.verdict == "unsat"
    assert r.stats["oom_halved"] > 0 and r.stats["batch"] < 16
    assert check_proof(inst["net"].graph, r.proof).ok

    def none(self, *a, **k):
        raise OOM("CUDA out of memory (as raised by torch)")

    monkeypatch.setattr(ChainBounds, "alpha_crown", none)
    with pytest.raises(SolveError, match="out of memory on cpu bounding a single domain"):
        branch_and_bound(*args, **kw)


def test_a_cuda_batch_counts_the_memory_torch_holds_cached_as_free(monkeypatch):
    """On CUDA the batch takes half of the memory free to torch: the driver's free memory and
    what torch holds cached but unused (earlier searches' in the same process), so that later
    searches' batches do not shrink toward the minimum."""
    from types import SimpleNamespace

    from netopt.bounds.branch_relu import _batch_size

    mb = 2**20
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda dev: (100 * mb, 1000 * mb))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda dev: 300 * mb)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda dev: 60 * mb)
    cb = SimpleNamespace(device=torch.device("cuda"))
    assert _batch_size(cb, mb // 10) == (100 + 300 - 60) // 2 * 10
