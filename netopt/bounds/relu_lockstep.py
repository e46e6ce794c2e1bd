r"""ReLU splitting's heavy calls, and several searches run in lockstep with their calls merged.

A ReLU-splitting search (:meth:`netopt.bounds.branch_relu._ReluSearch._rounds`) does not make
its two heavy calls of a round itself: it yields a :class:`BoundRequest` (the arguments of
:meth:`~netopt.bounds.batched.ChainBounds.alpha_crown` for its batch of domains) and is sent
the :class:`~netopt.bounds.spec_bound.SpecBound`, then a :class:`BranchRequest` (the units to
split in the domains it keeps: BaBSR's scores and filtered smart branching's children) and is
sent the units. :func:`serve` answers one search's requests one by one; :func:`lockstep` runs
several searches (the disjuncts of one property, each with its own rows, tree and proof) in
step and answers each kind of request of all of them in one call.

Why: on a CPU a call's cost is mostly fixed while the batches are small (MNIST 256x2, 20
steps: 30 ms for one domain, 54 ms for 25, 102 ms for 100, 243 ms for 400), and a
classifier's nine disjuncts take nine small trees. Merging changes no result: the domains'
parameters are optimized independently (the objective is a sum over domains and Adam's steps
are elementwise) and each domain's units are chosen from its own bounds (up to rounding:
filtered smart branching takes a shortcut through the units stable on every domain of its
call), so each search grows the tree it grows alone with the same batch size, up to float32
rounding (``tests/bounds/test_relu_lockstep.py``).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

__all__ = ["BoundRequest", "BranchRequest", "lockstep", "serve"]


@dataclass
class BoundRequest:
    """One round's call of :meth:`~netopt.bounds.batched.ChainBounds.alpha_crown` (its
    arguments by name; ``C`` ``(k, n_out)`` and ``d`` ``(k,)`` are the search's rows);
    ``stats``: the search's, whose ``t_bound`` the call's seconds go to."""

    stats: dict
    lo: np.ndarray
    hi: np.ndarray
    C: np.ndarray
    d: np.ndarray
    splits: list
    iters: int
    init: list | None
    beta: bool
    init_betas: list | None
    pre: list | None
    prev: list | None
    mix: bool
    init_mix: Any
    #: Adam's learning rates of the slopes, the multipliers and the rows' weights
    rates: tuple[float, float, float]

    #: the statistic its seconds go to
    clock = "t_bound"

    @property
    def size(self) -> int:
        return int(self.lo.shape[0])

    def key(self) -> tuple:
        """Requests with the same key are bounded in one call."""
        return (
            "bound",
            self.C.shape,
            self.lo.shape[1],
            self.iters,
            self.beta,
            self.mix,
            self.init is None,
            self.init_betas is None,
            self.pre is None,
            self.prev is None,
            self.init_mix is None,
            self.rates,
        )

    def call(self, cb: Any) -> Any:
        t = time.perf_counter()
        try:
            return halving(self, cb)
        finally:
            self.stats[self.clock] = self.stats.get(self.clock, 0.0) + time.perf_counter() - t

    def cut(self, a: int, b: int) -> BoundRequest:
        """The request for its domains ``a:b`` (same rows and settings)."""
        per = self.C.ndim == 3  # (a merged request: rows per domain)
        return replace(
            self,
            lo=self.lo[a:b],
            hi=self.hi[a:b],
            C=self.C[a:b] if per else self.C,
            d=self.d[a:b] if per else self.d,
            splits=_cut_list(self.splits, a, b),
            init=_cut_list(self.init, a, b),
            init_betas=_cut_list(self.init_betas, a, b),
            pre=_cut_list(self.pre, a, b),
            prev=_cut_list(self.prev, a, b),
            init_mix=_cut_list(self.init_mix, a, b),
        )

    def _call(self, cb: Any) -> Any:
        return cb.alpha_crown(
            self.lo,
            self.hi,
            self.C,
            self.d,
            self.splits,
            iters=self.iters,
            init=self.init,
            beta=self.beta,
            init_betas=self.init_betas,
            pre=self.pre,
            prev=self.prev,
            mix=self.mix,
            init_mix=self.init_mix,
            lr=self.rates[0],
            lr_beta=self.rates[1],
            lr_mix=self.rates[2],
        )


@dataclass
class BranchRequest:
    """One round's choice of the units to split (``search._units(sb, kt, sp)``: BaBSR's
    scores and filtered smart branching's children over the domains ``kt`` of ``sb``);
    ``stats``: the search's, whose ``t_branch`` the call's seconds go to."""

    stats: dict
    search: Any
    sb: Any
    kt: Any
    sp: list
    #: the choice takes the search's rows (filtered smart branching's children bounded by
    #: full passes): answered alone
    own_rows: bool = False

    clock = "t_branch"

    @property
    def size(self) -> int:
        return int(self.kt.shape[0])

    def key(self) -> tuple:
        s = self.search
        rows = id(s) if self.own_rows else None
        return (
            "branch",
            id(s.cb),
            s.lo.tobytes(),
            s.hi.tobytes(),
            rows,
            _form(self.sb),
            s.candidates,
        )

    def call(self, cb: Any) -> Any:
        t = time.perf_counter()
        try:
            return halving(self, cb)
        finally:
            self.stats[self.clock] = self.stats.get(self.clock, 0.0) + time.perf_counter() - t

    def cut(self, a: int, b: int) -> BranchRequest:
        """The choice for the domains ``kt[a:b]`` (each domain's is its own)."""
        return replace(self, kt=self.kt[a:b])

    def _call(self, cb: Any) -> Any:
        return self.search._units(self.sb, self.kt, self.sp)


def halving(req: Any, cb: Any) -> Any:
    """``req``'s answer; where the device runs out of memory, its halves' answers joined, each
    halved again as needed (a domain's bound and choice are its own, whatever the batch:
    ``tests/bounds/test_relu_lockstep.py``, up to rounding). Each halving is counted in
    ``stats["oom_halved"]`` (the search then halves its batch as often). Out of memory on one
    domain is a :class:`~netopt.errors.SolveError`. Only torch's own out-of-memory exception
    (:func:`~netopt.torch_utils.out_of_memory_error`) is caught: a failure the driver reports
    otherwise is raised as it is."""
    import torch

    from netopt.errors import SolveError
    from netopt.torch_utils import out_of_memory_error

    try:
        return req._call(cb)
    except out_of_memory_error():
        pass
    # (out of the except block: the failed call's tensors are freed with its traceback)
    if req.size < 2:
        what = "bounding" if isinstance(req, BoundRequest) else "choosing the split of"
        raise SolveError(
            f"ReLU splitting ran out of memory on {cb.device} {what} a single domain; free "
            "the device, or search on another (device='cpu')"
        )
    if cb.device.type == "cuda":
        torch.cuda.empty_cache()
    req.stats["oom_halved"] = req.stats.get("oom_halved", 0) + 1
    h = req.size // 2
    parts = [halving(req.cut(0, h), cb), halving(req.cut(h, req.size), cb)]
    return _cat(parts) if isinstance(parts[0], tuple) else _stack(parts)


def _cut_list(v: Any, a: int, b: int) -> Any:
    """Rows ``a:b`` of a tensor, or of each tensor of nested lists and tuples (None kept)."""
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return type(v)(_cut_list(x, a, b) for x in v)
    return v[a:b]


def serve(gen: Generator, cb: Any) -> Any:
    """Run a search's generator to its verdict, answering each request with its own call."""
    msg = None
    while True:
        try:
            y = gen.send(msg)
        except StopIteration as e:
            return e.value
        msg = None if y is None else y.call(cb)


def lockstep(gens: list[Generator], cb: Any, stop: Any = None) -> list:
    """Run several searches' generators in step, their requests of a step answered together
    (:func:`bound_all`), each to its verdict.

    ``stop(i, verdict)``: True ends them all at once (the others' verdicts stay None), e.g.
    at a counterexample. Returns the verdicts, in order."""
    out: list = [None] * len(gens)
    msgs: list = [None] * len(gens)
    done = [False] * len(gens)
    live = list(range(len(gens)))
    waiting: dict[int, Any] = {}  # requests not answered yet
    try:
        while live:
            for i in live:
                if i in waiting:
                    continue
                msg = msgs[i]
                while True:
                    try:
                        y = gens[i].send(msg)
                    except StopIteration as e:
                        out[i], done[i] = e.value, True
                        break
                    if y is not None:
                        waiting[i] = y
                        break
                    msg = None  # a round's end: on to the next request
                if done[i] and stop is not None and stop(i, out[i]):
                    return out
            live = [i for i in live if not done[i]]
            if not live:
                break
            # the branching requests first: a search whose batch all closed asks for its next
            # bounds while the others branch, and waits for them (else the searches drift
            # out of step, and no call serves them all again)
            now = {i: r for i, r in waiting.items() if isinstance(r, BranchRequest)} or waiting
            msgs = [None] * len(gens)
            for i, ans in bound_all(now, cb).items():
                msgs[i] = ans
                del waiting[i]
        return out
    finally:
        for i, g in enumerate(gens):
            if not done[i]:
                g.close()  # (stopped, or an error in a bound call)


def bound_all(reqs: dict[int, Any], cb: Any) -> dict[int, Any]:
    """Each request's answer, those of the same key in one call (:func:`merged`), whose
    seconds (stacking and cutting included) go to their searches' statistics by their shares
    of its domains."""
    by: dict[tuple, list[int]] = {}
    for i, r in reqs.items():
        by.setdefault(r.key(), []).append(i)
    out: dict[int, Any] = {}
    for ids in by.values():
        if len(ids) == 1:
            out[ids[0]] = reqs[ids[0]].call(cb)
            continue
        t = time.perf_counter()
        parts = [reqs[i] for i in ids]
        one = merged(parts)
        got = one.call(cb)
        for r in parts:  # (each search halves its batch after a halved call)
            if one.stats.get("oom_halved"):
                r.stats["oom_halved"] = r.stats.get("oom_halved", 0) + one.stats["oom_halved"]
        total = sum(r.size for r in parts)
        off = 0
        for i, r in zip(ids, parts, strict=True):
            out[i] = _cut(got, off, off + r.size)
            off += r.size
        secs = time.perf_counter() - t
        for r in parts:
            r.stats[r.clock] = r.stats.get(r.clock, 0.0) + secs * r.size / max(total, 1)
    return out


def merged(reqs: list) -> Any:
    """One request for the domains of all ``reqs`` (same key): batches stacked; a bound
    request's domains each with its search's rows (``C`` ``(B, k, n_out)``, ``d`` ``(B, k)``),
    a branch request's bounds and split signs stacked (its first search's ``_units`` serves
    all: the same network and box)."""
    import torch

    if isinstance(reqs[0], BranchRequest):
        sbs = [r.sb for r in reqs]
        offs = np.cumsum([0] + [len(sb.lower) for sb in sbs])
        return BranchRequest(
            {},
            reqs[0].search,
            _stack(sbs),
            torch.cat([r.kt + int(o) for r, o in zip(reqs, offs[:-1], strict=True)]),
            _cat([r.sp for r in reqs]),
        )

    r0 = reqs[0]
    return BoundRequest(
        {},
        lo=np.concatenate([r.lo for r in reqs]),
        hi=np.concatenate([r.hi for r in reqs]),
        C=np.concatenate([np.broadcast_to(r.C, (r.size, *r.C.shape)) for r in reqs]),
        d=np.concatenate([np.broadcast_to(r.d, (r.size, len(r.d))) for r in reqs]),
        splits=_cat([r.splits for r in reqs]),
        iters=r0.iters,
        init=_cat([r.init for r in reqs]),
        beta=r0.beta,
        init_betas=_cat(_zero_filled([r.init_betas for r in reqs], [r.size for r in reqs])),
        pre=_cat([r.pre for r in reqs]),
        prev=_cat([r.prev for r in reqs]),
        mix=r0.mix,
        init_mix=_cat([r.init_mix for r in reqs]),
        rates=r0.rates,
    )


def _zero_filled(lists: list, sizes: list[int]) -> list:
    """Each search's multipliers per layer, with zeros in a layer where one has none (no
    domain of it split there) and another has some."""
    import torch

    if lists[0] is None:
        return lists
    out = [list(ls) for ls in lists]
    for j in range(len(out[0])):
        like = next((ls[j] for ls in out if ls[j] is not None), None)
        for ls, n in zip(out, sizes, strict=True):
            if like is not None and ls[j] is None:
                ls[j] = torch.zeros((n, *like.shape[1:]), dtype=like.dtype, device=like.device)
    return out


def _cut(got: Any, a: int, b: int) -> Any:
    """The domains ``a:b`` of an answer: a :class:`~netopt.bounds.spec_bound.SpecBound`'s
    fields, or each array of a tuple (the units to split)."""

    if isinstance(got, tuple):
        return _cut_list(got, a, b)
    return type(got)(**{f.name: _cut_list(getattr(got, f.name), a, b) for f in fields(got)})


def _form(sb: Any) -> tuple:
    """What must agree for :class:`~netopt.bounds.spec_bound.SpecBound` to be stacked: each
    field's absence, list length and shape past the domains (a root round has no
    multipliers; several rows, one more for their combination)."""

    def form(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, (list, tuple)):
            return tuple(form(x) for x in v)
        return tuple(v.shape[1:])

    return tuple(form(getattr(sb, f.name)) for f in fields(sb))


def _stack(sbs: list) -> Any:
    """Several :class:`~netopt.bounds.spec_bound.SpecBound` as one, domains stacked."""
    return type(sbs[0])(
        **{f.name: _cat([getattr(sb, f.name) for sb in sbs]) for f in fields(sbs[0])}
    )


def _cat(vs: list) -> Any:
    """The searches' values of one field stacked along the domains: tensors (or numpy arrays:
    the units to split) concatenated, lists and tuples (per layer, bound pairs) element by
    element, None where the first is None (requests and bounds of one key: then all are)."""
    import torch

    v0 = vs[0]
    if v0 is None:
        return None
    if isinstance(v0, tuple):
        return tuple(_cat(list(x)) for x in zip(*vs, strict=True))
    if isinstance(v0, list):
        return [_cat(list(x)) for x in zip(*vs, strict=True)]
    return np.concatenate(vs) if isinstance(v0, np.ndarray) else torch.cat(vs)


def search_groups(searches: list, t0: float | None = None) -> Any:
    """Several ReLU-splitting searches over one box (a property's disjuncts, each with its
    rows) in lockstep (:func:`lockstep`), to one answer in
    :func:`~netopt.bounds.branch.branch_and_bound`'s form for ``groups``: "sat" at the first
    counterexample (``group``: its search), else ``parts`` (each search's verdict, an "unsat"
    with its own proof, and its search's statistics) and "unsat" only when every part is; the
    answer's statistics are all the searches' summed. ``t0``: when the run began (its
    ``seconds``), if before this call."""
    from netopt.bounds.branch_search import BranchResult
    from netopt.bounds.relu_turns import in_turns

    t0 = time.perf_counter() if t0 is None else t0
    got = lockstep(
        [in_turns(s) for s in searches], searches[0].cb, stop=lambda i, r: r.verdict == "sat"
    )
    secs = time.perf_counter() - t0
    for s, r in zip(searches, got, strict=True):
        if r is not None:
            s.finish(r, secs)  # (its statistics, and an "unsat"'s proof)
    stats = _summed([s.stats for s in searches], secs)
    for i, r in enumerate(got):
        if r is not None and r.verdict == "sat":
            return BranchResult("sat", x=r.x, stats=stats, group=i)
    # (no counterexample: every search ran to its verdict)
    parts = [BranchResult(r.verdict, proof=r.proof, stats=r.stats, stopped=r.stopped) for r in got]
    if all(p.verdict == "unsat" for p in parts):
        return BranchResult("unsat", stats=stats, parts=parts)
    why = [p.stopped for p in parts if p.verdict != "unsat"]
    stopped = next((w for w in ("interrupted", "time limit") if w in why), why[0])
    return BranchResult("unknown", stats=stats, stopped=stopped, parts=parts)


def _summed(all_stats: list[dict], seconds: float) -> dict:
    """The searches' statistics as one: counts and seconds summed, the depth and the
    halvings for memory the largest, the closed share the smallest."""
    out: dict = {}
    for st in all_stats:
        for k, v in st.items():
            if k not in out:
                out[k] = v
            elif isinstance(v, bool):
                out[k] = out[k] or v  # (split_update: some search's update answered)
            elif k == "depth":
                out[k] = max(out[k], v)
            elif k == "closed_share":
                out[k] = min(out[k], v)  # (the least closed search's)
            elif k == "oom_halved":
                out[k] = max(out[k], v)  # (a merged call's halvings count for each search)
            elif isinstance(v, (int, float)):  # (batch: the merged call's at most)
                out[k] = out[k] + v
    out["seconds"] = seconds
    out["domains_per_s"] = out.get("nodes", 0) / max(seconds, 1e-9)
    out["disjuncts_at_once"] = len(all_stats)
    return out
