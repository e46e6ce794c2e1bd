"""ReLU splitting's two searches in turns: the plain one and one whose domains' second-layer
bounds follow their first-layer splits (:mod:`netopt.bounds.split_update`).

Each search is a generator of rounds (:meth:`netopt.bounds.branch_relu._ReluSearch._rounds`);
:func:`in_turns` runs them by turns of domains and answers with the first to decide.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from netopt.bounds.branch_search import BranchResult, _Tree

#: A domain split on a first-layer unit gets its second layer's bounds recomputed with its
#: splits (:class:`~netopt.bounds.split_update.SecondLayerUpdate`, a low-rank update of the
#: root's CROWN rows), intersected with its parent's; False: the parent's bounds as they are.
#: Measured on MNIST 256x2 (a shifted image's disjuncts at eps 0.05): see RESULTS.
SPLIT_UPDATE = True
#: The update tightens most domains' bounds but changes the tree, for the better or the worse:
#: measured on the disjuncts of a shifted MNIST image at eps 0.05, one closes in 125 domains
#: with it and is open after 23000 without, another closes in 29017 without and is open after
#: 67000 with. So both searches run, in turns: the plain one alone for this many domains (the
#: easy trees close within it), then the one with the update for :data:`SPLIT_UPDATE_SHARE`
#: as many, then each for twice its last turn, until one decides
#: (:func:`in_turns`). Where the update helps it helps at once (the disjunct above:
#: 125 domains), so its turns are the shorter: the plain search's time grows by about a
#: quarter (measured: 24.4 -> 25.3 s on the disjunct the plain search decides above).
SPLIT_UPDATE_TURN = 1000
SPLIT_UPDATE_SHARE = 0.25

#: A search that stopped so leaves the decision to the other.
_OTHER_MAY = ("incomplete", "domain limit")


def in_turns(search: Any) -> Generator[Any, Any, BranchResult]:
    """Run a ReLU-splitting ``search`` to its verdict: alone where :data:`SPLIT_UPDATE` does not
    apply (switched off, ``search.split_update`` False, or one activation layer), else alone
    for :data:`SPLIT_UPDATE_TURN` domains and then in turns with a copy of it that updates its
    domains' second-layer bounds. The first to decide answers, with its tree and statistics
    (``split_update``: which one it was; ``other_nodes``: the domains the other bounded); one
    that stops "incomplete" or at the domain limit leaves the other to go on alone, and a stop
    for time, an interrupt or "unpromising" (the MILP is the better use of the time left) ends
    both. A turn ends with the round that passes its count, so the shares hold to a round.

    A generator, as the searches' rounds are: it passes their requests on to its driver
    (:func:`~netopt.bounds.relu_lockstep.serve`, or several searches in lockstep) and returns
    the verdict."""
    import copy

    plain = search._rounds()
    if not (SPLIT_UPDATE and search.split_update) or search.cb.n_act < 2:
        return (yield from plain)
    search._root_pre()  # (computed once, shared)
    twin = copy.copy(search)
    twin.stats = dict(search.stats)  # (no round has run yet: every counter is at zero)
    twin.tree = _Tree(search.n_groups)
    twin.updating = True
    turns = [
        (search, plain, SPLIT_UPDATE_TURN),
        (twin, twin._rounds(), max(1, int(SPLIT_UPDATE_SHARE * SPLIT_UPDATE_TURN))),
    ]
    k = 0
    while True:
        who, gen, budget = turns[k]
        stop = who.stats["nodes"] + budget
        res = None
        while res is None and who.stats["nodes"] < stop:
            res = yield from one_round(gen)
        if res is None:
            turns[k] = (who, gen, 2 * budget)
            k = (k + 1) % len(turns)
            continue
        other_nodes = (twin if who is search else search).stats["nodes"]
        if res.verdict == "unknown" and res.stopped in _OTHER_MAY and len(turns) == 2:
            # this one cannot finish, the other may: it goes on alone
            turns, k = [turns[1 - k]], 0
            continue
        if who is twin:
            # the answer's tree and statistics are the twin's
            search.tree, search.stats, search.found_group = twin.tree, twin.stats, twin.found_group
        search.stats["split_update"] = who is twin
        search.stats["other_nodes"] = other_nodes
        return res


def one_round(gen: Generator) -> Generator[Any, Any, BranchResult | None]:
    """One round of a search's rounds (passing its requests on): None at the round's
    end, or the search's verdict."""
    msg = None
    while True:
        try:
            y = gen.send(msg)
        except StopIteration as e:
            return e.value
        if y is None:
            return None
        msg = yield y
