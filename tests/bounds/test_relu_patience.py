"""When ReLU splitting gives up ("unpromising"): the closed share of the box's sign patterns
(:class:`~netopt.bounds.branch_search.TreeVolume`) and the rule that reads it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from netopt.bounds import branch_relu as br
from netopt.bounds.branch_search import TreeVolume
from netopt.control import Deadline


def _random_tree(rng: np.random.Generator, n_splits: int) -> list[int]:
    """The leaves' depths of a random binary tree of ``n_splits`` splits."""
    leaves = [0]
    for _ in range(n_splits):
        d = leaves.pop(int(rng.integers(len(leaves))))
        leaves += [d + 1, d + 1]
    return leaves


@pytest.mark.parametrize("seed", range(5))
def test_the_leaves_of_a_whole_tree_cover_the_box(seed):
    """A whole tree's leaves, closed in any order and batches, cover exactly 1; all but one
    leaf, 1 less that leaf's share."""
    rng = np.random.default_rng(seed)
    depths = np.array(_random_tree(rng, int(rng.integers(1, 400))))
    rng.shuffle(depths)
    v = TreeVolume()
    for t, part in enumerate(np.array_split(depths[1:], 7)):
        v.add(part, float(t))
    assert v.closed == pytest.approx(1.0 - 2.0 ** -depths[0], abs=1e-12)
    v.add(depths[:1], 8.0)
    assert v.closed == pytest.approx(1.0, abs=1e-12)
    assert v.seconds_left(9.0) == 0.0


def test_the_estimate_is_the_rest_at_the_last_half_s_pace():
    """Leaves closed at a steady pace after a slow start: the estimate takes the pace of the
    last half of the elapsed time only; with nothing closed in it, there is no end in sight."""
    v = TreeVolume()
    v.add([3], 1.0)  # 1/8 at 1 s
    for t in range(2, 11):
        v.add([6, 6], float(t))  # 1/32 a second from then on
    # at 10 s: the pace over 5-10 s is 5/32 in 5 s; 1 - 1/8 - 9/32 is left
    left = 1.0 - 1 / 8 - 9 / 32
    assert v.seconds_left(10.0) == pytest.approx(left / (1 / 32))
    assert TreeVolume().seconds_left(4.0) == np.inf
    v.add([], 30.0)  # (nothing closed after 10 s)
    assert v.seconds_left(30.0) == np.inf


def test_the_pace_is_over_the_last_half_even_between_closings():
    """A quarter closed at 1 s and another at 9 s: at 10 s the last half (5-10 s) gained a
    quarter, so the other half takes 10 s more (not the 18 s of the pace since 1 s)."""
    v = TreeVolume()
    v.add([2], 1.0)
    v.add([2], 9.0)
    assert v.seconds_left(10.0) == pytest.approx(10.0)


def _search(closed_share: float, pace: float, left: float, patience: float = 3.0):
    """What the rule reads: a search with ``closed_share`` of its domains closed, its closed
    volume growing at ``pace`` per second to 0.2 now (10 s in), ``left`` seconds left."""
    v = TreeVolume()
    v.add([], 0.0)
    for t in np.linspace(5.0, 10.0, 6):
        # 0.2 at 10 s, at ``pace`` per second from 5 s on
        target = 0.2 - pace * (10.0 - t)
        need = target - v.closed
        if need > 0:
            v.closed += need
            v.times.append(float(t))
            v.trail.append(v.closed)
    return SimpleNamespace(
        stats={"nodes": 1000, "leaves": int(closed_share * 1000)},
        patience=patience,
        dl=Deadline(left),
        volume=v,
    )


def test_a_search_gives_up_only_when_it_would_not_finish_in_the_time_left():
    """Past its patience with few domains closed, a search gives up where its pace would
    not end it within twice the time left; one that would goes on, and one closing enough
    domains or still within its patience (a tenth of what it was given) goes on too. With
    no time limit, the patience and the closed domains alone decide (the MILP comes next)."""
    rule = br._ReluSearch._unpromising
    # 0.8 left at 0.01 a second: 80 s
    assert rule(_search(0.05, 0.01, left=30.0), 10.0, given=40.0)
    assert not rule(_search(0.05, 0.01, left=45.0), 10.0, given=55.0)
    assert not rule(_search(0.15, 0.01, left=30.0), 10.0, given=40.0)  # closes enough
    assert not rule(_search(0.05, 0.01, left=30.0), 2.0, given=40.0)  # within 3 s
    assert not rule(_search(0.05, 0.01, left=30.0), 10.0, given=150.0)  # within 15 s
    assert rule(_search(0.05, 0.0, left=40.0), 10.0, given=50.0)  # nothing closed lately
    assert rule(_search(0.05, 0.01, left=np.inf), 10.0, given=np.inf)
    assert not rule(_search(0.05, 0.01, left=np.inf), 2.0, given=np.inf)
