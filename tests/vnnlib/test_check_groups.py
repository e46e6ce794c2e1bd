"""The check's turns when branch and bound searches several disjuncts at once (``groups``):
which searches and MILPs run, in which order, with branch and bound's answers scripted."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import mlp_net

import netopt.bounds.branch as nb
import netopt.vnnlib.check.decide as dc
from netopt.bounds.branch_search import BranchResult
from netopt.control import Deadline
from netopt.result import Status
from netopt.vnnlib.property import Disjunct, VnnlibProperty


def _run(monkeypatch, n_in: int, script: list, crown_closed=(), time_limit=1000.0):
    """``_check`` of three one-row disjuncts over one box, every phase but branch and bound
    and the MILP silenced; ``script[c]``: the (verdict, stopped) of each member at the c-th
    branch and bound call. Returns the calls made and the result."""
    net, _, _ = mlp_net([n_in, 6, 3], ["relu", None], seed=0)
    lo, hi = -np.ones(n_in), np.ones(n_in)
    E = np.zeros((0, n_in))
    djs = [
        Disjunct(lo, hi, E, np.zeros(0), np.eye(3)[i : i + 1], np.array([-100.0])) for i in range(3)
    ]
    prop = VnnlibProperty(None, n_in, 3, djs)
    mode = "relu" if n_in > nb.INPUT_SPLIT_MAX_DIM else "input"
    log: list = []

    def fake_bab(net, lo, hi, C, d, *, groups=None, **kw):
        ids = [int(np.argmax(c)) for c in C]  # the disjuncts searched (row i: disjunct i)
        members = list(dict.fromkeys(ids))
        spec = script[sum(1 for e in log if e[0] == "bab")][: len(members)]
        log.append(("bab", members))
        st = {"mode": mode, "nodes": 1}
        parts = [
            BranchResult(v, stats=dict(st), stopped=s, proof="P" if v == "unsat" else None)
            for v, s in spec
        ]
        for j, p in enumerate(parts):
            if p.verdict == "sat":
                return BranchResult("sat", x=np.zeros(n_in), stats=st, group=j)
        if groups is None:
            return parts[0]
        if all(p.verdict == "unsat" for p in parts):
            return BranchResult("unsat", stats=st, parts=parts)
        why = [p.stopped for p in parts if p.verdict != "unsat"]
        stopped = next((w for w in ("interrupted", "time limit") if w in why), why[0])
        return BranchResult("unknown", stats=st, stopped=stopped, parts=parts)

    class _Infeasible:
        verdict, status, solver, x = "unsat", Status.INFEASIBLE, "stub", None

    class _Milp:
        def __init__(self, net, C, d, domain):
            self.k = int(np.argmax(C[0]))

        def solve(self, *a, **k):
            log.append(("milp", self.k))
            return _Infeasible()

    closed = np.zeros(3, dtype=bool)
    closed[list(crown_closed)] = True
    monkeypatch.setattr(nb, "branch_and_bound", fake_bab)

    def crown_rows(net, dom, dj):
        # (as the pass says: closed with a one-leaf proof, or open)
        if closed[int(np.argmax(dj.C[0]))]:
            return np.full(len(dj.d), 1e9), "crown proof"
        return np.full(len(dj.d), -1e9), None

    monkeypatch.setattr(dc, "_crown_rows", crown_rows)
    monkeypatch.setattr(dc, "_crown_closed", lambda net, prop: closed)
    monkeypatch.setattr(dc, "_attack", lambda *a, **k: None)
    monkeypatch.setattr(dc, "_attack_all", lambda *a, **k: None)
    monkeypatch.setattr(dc, "_sat", lambda net, res, x, dj, k, ev=None: _found(res, k))
    monkeypatch.setattr(dc, "Feasibility", _Milp)
    res = dc._check(net, prop, Deadline(time_limit), 0, 0, 100.0, 1.0, None, {})
    return log, res


def _found(res, k):
    res.verdict = "sat"
    res.found = k
    return res


U, TL, NO = ("unsat", None), ("unknown", "time limit"), ("unknown", "unpromising")


def test_relu_disjuncts_go_to_one_search_and_each_keeps_its_proof(monkeypatch):
    log, res = _run(monkeypatch, 10, [[U, U, U]])
    assert log == [("bab", [0, 1, 2])]
    assert res.verdict == "unsat"
    assert {d["disjunct"]: d["proof"] for d in res.details} == {0: "P", 1: "P", 2: "P"}


def test_disjuncts_the_crown_pass_closes_are_left_to_their_own_turn(monkeypatch):
    log, res = _run(monkeypatch, 10, [[U, U]], crown_closed=[1])
    assert log == [("bab", [0, 2])] and res.verdict == "unsat"
    assert {d["disjunct"]: d["method"] for d in res.details}[1] == "crown"


def test_a_counterexample_of_another_member_answers_for_it(monkeypatch):
    log, res = _run(monkeypatch, 10, [[TL, ("sat", None), TL]])
    assert log == [("bab", [0, 1, 2])] and res.verdict == "sat" and res.found == 1


def test_a_relu_search_that_ended_for_good_is_not_searched_again(monkeypatch):
    """Disjunct 2's search gives up ("unpromising"), the others run out of their share: 0 and
    1 are retried together, 2 goes to the MILP on its own turn, never into a search again."""
    log, _ = _run(monkeypatch, 10, [[TL, TL, NO], [U, U]])
    assert log == [("bab", [0, 1, 2]), ("milp", 2), ("bab", [1, 0])]


def test_this_disjunct_s_own_stop_decides_its_retry(monkeypatch):
    """Disjunct 0's own search gives up while the others run out of time: 0 goes to the MILP
    at once, the others are retried together."""
    log, _ = _run(monkeypatch, 10, [[NO, TL, TL], [U, U]])
    assert log[:3] == [("bab", [0, 1, 2]), ("milp", 0), ("bab", [1, 2])]


@pytest.mark.parametrize("why", ["domain limit", "precision"])
def test_input_splitting_members_keep_their_own_turn(monkeypatch, why):
    """One input-splitting tree stopped for all (its stop is every part's): each member still
    gets a tree of its own turn, without the ones tried before."""
    stop = ("unknown", why)
    log, _ = _run(monkeypatch, 5, [[stop] * 3, [stop] * 2, [stop]])
    assert [e for e in log if e[0] == "bab"] == [("bab", [0, 1, 2]), ("bab", [1, 2]), ("bab", [2])]
