r"""Branch and bound on batched (alpha/beta-)CROWN bounds, with a proof of every "unsat".

Decides whether some :math:`x` in a box :math:`[l, u]` has :math:`C f(x) \le d`, for a chain of
linear layers and (leaky) ReLUs. A *domain* is a piece of the problem: a sub-box (input
splitting) or the box with some ReLUs' signs fixed (ReLU splitting). Each round takes a batch of
open domains and

1. bounds every row of :math:`C f(x) - d` over each domain at once
   (:class:`~netopt.bounds.batched.ChainBounds`: CROWN, alpha-CROWN slopes warm-started from the
   parent, beta-CROWN multipliers of the split constraints), in torch on CUDA when present;
2. *closes* a domain when a row's lower bound is positive — but only after the rigorous float64
   bounds of :mod:`netopt.bounds.proof` (outward rounding, the search's slopes and multipliers
   clipped to their valid ranges) confirm it; a domain the float32 search closed and float64
   does not stays open and is split further;
3. tries the points the bounds point to (box centres, the corner minimizing the best row's
   linear bound) in the float64 reference interpreter: one with :math:`C f(x) \le d` ends the
   search ("sat");
4. splits the rest in two: along the input with the largest smear :math:`|\lambda_i|(u_i - l_i)`
   of the best row (input splitting, for networks of at most :data:`INPUT_SPLIT_MAX_DIM` inputs:
   ACAS Xu), or on an unstable ReLU, its two children fixing :math:`z \le 0` and
   :math:`z \ge 0` (ReLU splitting, wider inputs): of the units of the highest BaBSR scores
   (Bunel et al. 2020), the one whose children, bounded once, leave the least to close
   (filtered smart branching).

Input splitting goes depth first (memory stays bounded); ReLU splitting takes the domains of the
lowest bound first (the hardest, as beta-CROWN does). Every split and closed leaf is recorded, so
an "unsat" comes with a :class:`~netopt.bounds.proof.BabProof` that ``netopt verify`` re-checks
without this module, torch or a solver.

The two searches are :mod:`netopt.bounds.branch_input` and :mod:`netopt.bounds.branch_relu`, on
the shared state of :mod:`netopt.bounds.branch_search`; this module picks one per problem, and
its names (the searches' constants, :func:`split_halves`) are importable from here.

Why our own driver rather than alpha,beta-CROWN's: it is not a library with a stable API (it is a
configuration-driven program over auto_LiRPA), and none of the field's tools records its tree in a
form a third party can re-check — that record is the point here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from netopt.ir.chain_form import ChainForm

from netopt.bounds.branch_input import ATTACK_BOXES as ATTACK_BOXES
from netopt.bounds.branch_input import ATTACK_EVERY as ATTACK_EVERY
from netopt.bounds.branch_input import LOOKAHEAD as LOOKAHEAD
from netopt.bounds.branch_input import LOOKAHEAD_MIN_SMEAR as LOOKAHEAD_MIN_SMEAR
from netopt.bounds.branch_input import _InputSearch
from netopt.bounds.branch_relu import CPU_BATCH_BYTES as CPU_BATCH_BYTES
from netopt.bounds.branch_relu import RELU_FINISH_SLACK as RELU_FINISH_SLACK
from netopt.bounds.branch_relu import RELU_MIN_CLOSED as RELU_MIN_CLOSED
from netopt.bounds.branch_relu import RELU_PATIENCE as RELU_PATIENCE
from netopt.bounds.branch_relu import RELU_PATIENCE_SHARE as RELU_PATIENCE_SHARE
from netopt.bounds.branch_relu import _ReluSearch
from netopt.bounds.branch_search import BranchResult
from netopt.bounds.branch_search import split_halves as split_halves
from netopt.control import Deadline
from netopt.errors import FormulationError

__all__ = ["BranchResult", "branch_and_bound", "INPUT_SPLIT_MAX_DIM"]

#: Networks with at most this many inputs are split on their inputs, wider ones on ReLUs.
INPUT_SPLIT_MAX_DIM = 8


def branch_and_bound(
    net: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    *,
    time_limit: float | None = None,
    deadline: Deadline | None = None,
    mode: str = "auto",
    device: Any = None,
    dtype: Any = None,
    batch: int | None = None,
    alpha_iters: int | None = None,
    max_domains: int = 200_000,
    progress: Any = None,
    groups: np.ndarray | None = None,
    split_update: bool = True,
    floor_on_stop: bool = False,
    rates: tuple[float, float, float] | None = None,
    candidates: int | None = None,
) -> BranchResult | None:
    r"""Is there ``x`` in ``[lo, hi]`` with ``C f(x) <= d``? Branch and bound with proofs.

    Parameters
    ----------
    net : Network
    lo, hi : array
        The box (input shape or flat).
    C, d : array
        ``(k, n_out)`` and ``(k,)``: the output constraints (all must hold at a counterexample).
    time_limit : float, optional
        Seconds; or ``deadline``, a :class:`~netopt.control.Deadline` shared with a caller.
    mode : {"auto", "input", "relu"}
        What to split; "auto": inputs up to :data:`INPUT_SPLIT_MAX_DIM` coordinates, else ReLUs.
    device, dtype : optional
        Of the search (:class:`~netopt.bounds.batched.ChainBounds`; default CUDA when present,
        float32). The claims are float64's whatever these are.
    batch : int, optional
        Domains per round (default: sized to the device's memory).
    alpha_iters : int, optional
        ReLU splitting: Adam steps on the slopes and multipliers per domain and round
        (default :data:`~netopt.bounds.branch_search.RELU_ITERS`); the root always gets at
        least 20. Input splitting has its own schedule
        (:data:`~netopt.bounds.branch_input.ALPHA_ITERS`).
    max_domains : int
        Open domains kept at most; beyond it the search stops ("domain limit").
    groups : (k,) int array, optional
        Several disjuncts over the one box, ``groups[r]`` the disjunct of row ``r``
        (``0 .. G-1``). Is there ``x`` satisfying every row of *some* disjunct? Input
        splitting: one tree serves them all: a box's bounds (whose cost is mostly the
        activations', the same for every row) close it for each disjunct one of whose rows is
        positive, and it is split while any is open. ReLU splitting: a tree per disjunct, the
        trees grown in lockstep, each round's domains of all of them bounded in one call
        (:mod:`netopt.bounds.relu_lockstep`). A "sat" names its disjunct (``group``);
        otherwise ``parts`` holds each disjunct's result, an "unsat" with its own proof (the
        shared tree cut at that disjunct's leaves, or its own tree) — also when the search
        stops early.
    split_update : bool
        ReLU splitting: once it runs long, a second search whose domains' second-layer
        bounds follow their first-layer splits takes turns with it
        (:data:`~netopt.bounds.relu_turns.SPLIT_UPDATE_TURN`); False: the one search alone.
    floor_on_stop : bool
        ReLU splitting of one disjunct (no ``groups``): a search stopped by the time limit
        answers "unknown" with the proof of lowered rows ``C f(x) <= d + s`` (``s <= 0``,
        ``stats["floor_shift"]``) that its open domains close
        (:func:`~netopt.bounds.relu_floor.floor_open`), where one is proved.
    rates : (float, float, float), optional
        ReLU splitting of one disjunct (no ``groups``): Adam's learning rates of the slopes,
        the split multipliers and the rows' weights (default
        :data:`~netopt.bounds.branch_relu.RELU_RATES`).
    candidates : int, optional
        ReLU splitting of one disjunct: filtered smart branching's candidates per domain
        (default :data:`~netopt.bounds.branch_relu.FSB_CANDIDATES`; 1: BaBSR alone).

    Returns
    -------
    BranchResult, or None when the network has ops other than linear ones and (leaky) ReLUs,
    or (ReLU splitting) no chain form. A network with skip connections is searched in its
    chain form (:func:`netopt.ir.chain_form.chain_form`: the values a later layer reads
    carried through the layers between), and the proof says so.
    """
    from netopt.bounds.bab import batch_crown_of

    rt, cand = _tuning(rates, candidates)
    if not batch_crown_of(net).ok:
        return None
    dl = deadline if deadline is not None else Deadline(time_limit)
    lo = np.asarray(lo, dtype=np.float64).reshape(1, -1)
    hi = np.asarray(hi, dtype=np.float64).reshape(1, -1)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    n_in = lo.shape[1]
    if mode == "auto":
        mode = "input" if n_in <= INPUT_SPLIT_MAX_DIM else "relu"
    if mode not in ("input", "relu"):
        from netopt.errors import OptionError

        raise OptionError(f"branch_and_bound: mode must be 'auto', 'input' or 'relu', got {mode!r}")
    cb, form = None, ""
    view = chain_view(net, lo[0])
    if isinstance(view, ChainView):
        # skip connections: the search's float32 engines take the composed chain, its
        # float64 bounds and proofs the network's own ops (input splitting without a chain
        # form keeps the float64 bounds of the network as given)
        net, form = view, "chain"
    if mode == "relu":
        if view is None:
            return None
        try:
            from netopt.bounds.batched import ChainBounds

            cb = ChainBounds(getattr(net, "chain_graph", net.graph), device=device, dtype=dtype)
        except (FormulationError, ImportError):
            return None
    args = (dl, mode, batch, alpha_iters, max_domains, progress, device)
    if groups is not None and mode == "relu":
        return _relu_groups(net, cb, lo, hi, C, d, groups, args, form, split_update, batch)
    search_cls = _InputSearch if mode == "input" else _ReluSearch
    search = search_cls(net, cb, lo, hi, C, d, *args)
    search.form = form
    search.split_update = split_update
    search.floor_on_stop = floor_on_stop and mode == "relu"
    if mode == "relu":  # (several disjuncts, _relu_groups, keep the defaults)
        if rt is not None:
            search.rates = rt
        if cand is not None:
            search.candidates = cand
    if groups is not None:
        search.set_groups(groups)
    return search.run()


def _tuning(rates: Any, candidates: Any) -> tuple[tuple | None, int | None]:
    """``branch_and_bound``'s ``rates`` and ``candidates``, checked (an OptionError naming the
    value where they are not three positive finite numbers and a positive integer)."""
    from netopt.errors import OptionError

    rt = None
    if rates is not None:
        try:
            rt = tuple(float(r) for r in rates) if not isinstance(rates, str) else ()
        except (TypeError, ValueError):
            rt = ()
        if len(rt) != 3 or not all(math.isfinite(r) and r > 0 for r in rt):
            raise OptionError(
                f"branch_and_bound: rates must be three positive numbers, got {rates!r}"
            )
    if candidates is not None and (
        isinstance(candidates, bool)
        or not isinstance(candidates, int | np.integer)
        or candidates < 1
    ):
        raise OptionError(
            f"branch_and_bound: candidates must be a positive integer, got {candidates!r}"
        )
    return rt, None if candidates is None else int(candidates)


def _relu_groups(
    net: Any,
    cb: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    groups: np.ndarray,
    args: tuple,
    form: str,
    split_update: bool,
    batch: int | None,
) -> BranchResult:
    """ReLU splitting of several disjuncts over one box: a search per disjunct, with its own
    tree and proof, all in lockstep (:func:`~netopt.bounds.relu_lockstep.search_groups`: a
    round bounds every search's batch in one call). They share the box's root bounds; each
    takes the memory's batch over their number (a batch given is each one's), the patience
    of all of them, and ``max_domains`` for itself. ``floor_on_stop`` does not apply."""
    import time

    from netopt.bounds.branch_relu import RELU_PATIENCE
    from netopt.bounds.branch_search import group_rows
    from netopt.bounds.relu_lockstep import search_groups

    t0 = time.perf_counter()
    rows = group_rows(groups, len(C))
    searches: list = []
    for r in rows:
        s = _ReluSearch(net, cb, lo, hi, C[r], d[r], *args)
        s.form, s.split_update = form, split_update
        s.patience = RELU_PATIENCE * len(rows)  # (its rounds get a share of the time)
        if batch is None:
            s.batch = s.stats["batch"] = max(16, s.batch // len(rows))
        if searches:
            # the box's bounds, computed once
            s.root_pre, s.pre_rows = searches[0]._root_pre(), searches[0].pre_rows
        searches.append(s)
    return search_groups(searches, t0)


#: Chain views kept per network (one per box ``lo``; each holds its bounds' caches).
CHAIN_VIEWS = 4


class ChainView:
    """A network seen through its chain form on a box (:func:`netopt.ir.chain_form.chain_form`):
    ``graph`` is the form the rigorous float64 bounds and the proof's units take (the
    network's own ops, its activations merged per layer with the carries), ``chain_graph``
    the composed chain the search's bounds take (the same units), ``forward`` the network's
    own float64 pass."""

    def __init__(self, net: Any, form: ChainForm) -> None:
        self.net, self.graph, self.chain_graph = net, form.exact, form.chain
        self.input_shape = net.input_shape

    def forward(self, x: Any, **kw: Any) -> Any:
        return self.net.forward(x, **kw)


def chain_view(net: Any, lo: np.ndarray) -> Any:
    """``net`` itself when its graph is a chain (max pooling as ReLUs); a :class:`ChainView`
    of its chain form on boxes above ``lo`` when it has skip connections, kept on the network
    per ``lo`` (the searches of a property's disjuncts share its bounds' caches); None when
    it has no chain form."""
    from netopt.ir.chain_form import chain_form

    form = chain_form(net.graph, lo)
    if form is None:
        return None
    if form.chain is form.exact:  # a chain as given
        return net
    views = net.__dict__.setdefault("_chain_views", {})
    key = np.asarray(lo, dtype=np.float64).tobytes()
    view = views.get(key)
    if view is None or view.graph is not form.exact:
        while len(views) >= CHAIN_VIEWS:
            views.pop(next(iter(views)))
        view = views[key] = ChainView(net, form)
    return view
