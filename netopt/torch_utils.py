r"""Torch plumbing shared by the first-order methods: device, dtype, starts, objectives.

Everything here imports torch inside its functions, so importing this module costs nothing
without torch.

* :func:`require_torch`: a clear error (with the install command) when torch is missing;
* :func:`resolve_device` / :func:`resolve_dtype`: one default (CUDA when torch sees a device,
  else the CPU; float64 unless another dtype is asked for);
* :func:`batched_starts`: the starting rows of a batch (restarts of several problems);
* :data:`torch_objective`: the problems' objectives in torch, batched over rows, with their
  proximal maps, one rule per problem kind (registered with
  ``@torch_objective.register(ProblemClass)``);
* :class:`Adam`: the optimizer's steps without ``torch.optim`` (whose first use costs a second);

Objectives
----------
A batch has ``B`` rows; row ``i`` solves problem ``rows[i]`` (several rows per problem are
random restarts). Every objective is turned into a minimization (a maximized
:class:`~netopt.problems.OutputObjective` is negated). Outputs ``y`` and inputs ``x`` are flat,
``(B, n)``.

Proximal maps :math:`\operatorname{prox}_{\ell/\rho}(a) = \arg\min_z \ell(z) + \frac{\rho}{2}
\|z - a\|^2` (ADMM's output update (8)), with :math:`s = z - t`, :math:`\tilde a = a - t`:

* weighted 1-norm :math:`\sum_j w_j |s_j|`: :math:`s_j = \operatorname{sign}(\tilde a_j)
  \max(|\tilde a_j| - w_j / \rho, 0)` (soft thresholding);
* 2-norm: ADMM minimizes :math:`\frac12 \|w \odot s\|^2`, which has the same minimizers as
  :math:`\|w \odot s\|_2` (an inversion has no input term): :math:`s = \rho \tilde a / (w^2 +
  \rho)`;
* weighted inf-norm :math:`\max_j w_j |s_j|`: for a level :math:`\tau`, :math:`s_j =
  \operatorname{sign}(\tilde a_j) \min(|\tilde a_j|, \tau / w_j)`, and :math:`\tau \ge 0` is the
  root of the decreasing :math:`1 - \rho \sum_j w_j^{-1} (|\tilde a_j| - \tau / w_j)_+` (0 if
  that is :math:`\ge 0` at :math:`\tau = 0`), found by bisection; coordinates with
  :math:`w_j = 0` are free (:math:`s_j = \tilde a_j`);
* linear :math:`c^\top z`: :math:`z = a - c / \rho`;
* cross-entropy :math:`\operatorname{lse}(z) - z_c`: no closed form; damped Newton on the
  strongly convex :math:`\operatorname{lse}(z) - z_c + \frac{\rho}{2}\|z - a\|^2`, gradient
  :math:`p - e_c + \rho (z - a)`, Hessian :math:`\operatorname{diag}(p) - p p^\top + \rho I`
  (:math:`p = \operatorname{softmax}(z)`), from :math:`z = a` (or the previous iterate), with
  an Armijo backtracking line search over the steps :math:`1, 1/2, \dots, 2^{-11}` evaluated
  together.

The input term :math:`r(x) = \frac{\lambda}{2}\|x - x_{\mathrm{ref}}\|^2` (cross-entropy's L2)
has :math:`\operatorname{prox}_{r/\rho}(a) = (\rho a + \lambda x_{\mathrm{ref}}) / (\rho +
\lambda)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from netopt.errors import FormulationError, InputError, SolverUnavailableError
from netopt.problems import CrossEntropy, Feasibility, Inversion, OutputObjective, Problem

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "require_torch",
    "resolve_device",
    "resolve_dtype",
    "batched_starts",
    "torch_objective",
    "TorchObjective",
]

#: trial steps of the cross-entropy prox's line search: 1, 1/2, ..., 2^-(L-1)
_LINE_SEARCH = 12


#: how to install torch (the CPU wheel needs its own index)
PIP_TORCH = (
    "pip install torch (the CPU wheel: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu)"
)


def require_torch(who: str) -> None:
    """Raise :class:`SolverUnavailableError` when torch does not import; ``who`` needs it."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise SolverUnavailableError(
            f"{who} needs torch, which is not installed ({e}); {PIP_TORCH}"
        ) from None


def resolve_device(device: Any = None) -> torch.device:
    """``device`` as a torch device; ``None`` is cuda when available, else cpu."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"device {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r}: torch sees no CUDA device; use device='cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(
            f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s), "
            f"numbered from 0; use device='cuda'"
        )
    return dev


def resolve_dtype(dtype: Any = None) -> torch.dtype:
    """``dtype`` as a torch floating dtype (default float64)."""
    import torch

    if dtype is None:
        return torch.float64
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    table = {
        "float32": torch.float32,
        "float": torch.float32,
        "float64": torch.float64,
        "double": torch.float64,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }
    key = str(dtype).replace("torch.", "")
    if key not in table:
        raise InputError(
            f"dtype must be float32 or float64 (or a torch floating dtype), got {dtype!r}"
        )
    return table[key]


def out_of_memory_error() -> type:
    """torch's out-of-memory exception (``torch.OutOfMemoryError`` from torch 2.5,
    ``torch.cuda.OutOfMemoryError`` before)."""
    import torch

    return getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError


def batched_starts(problems: Sequence[Problem], R: int, start: Any, seed: int) -> np.ndarray:
    """(P * R, n) starting rows, ``R`` per problem: the user's points first, then uniform samples.

    Without a user point the first row is the box center, or (unbounded) the objective's own
    center (:meth:`TorchObjective.center`: the L2 reference of a cross-entropy, else 0).
    """
    out = []
    for p in problems:
        # one generator per problem, seeded alike: a problem gets the same starts whether it
        # is solved alone or in a batch
        rng = np.random.default_rng(seed)
        dom = p.domain
        user = []
        if start is not None:
            s = np.asarray(start, dtype=np.float64) if not isinstance(start, list) else None
            if s is not None and s.ndim == len(dom.shape):
                user = [s]
            else:
                user = [np.asarray(u, dtype=np.float64) for u in start]
            for u in user:
                if u.size != dom.lo.size:
                    raise InputError(
                        f"start has {u.size} entries; the network input has {dom.lo.size}"
                    )
        if dom.bounded:
            center = (dom.lo + dom.hi) / 2
        else:
            rule = torch_objective.find(type(p))
            center = np.zeros(dom.shape) if rule is None else rule.center(p)
        pts = [u.reshape(dom.shape) for u in user[:R]]
        if not pts:
            pts.append(center)
        if len(pts) < R:
            pts.extend(list(dom.sample(R - len(pts), rng)))
        out.extend(dom.project(q).reshape(-1) for q in pts)
    return np.stack(out)


class KindRules:
    """Rules keyed by problem class; a problem uses the rule of its nearest registered class."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._rules: dict[type, Any] = {}

    def register(self, kind: type) -> Callable[[Any], Any]:
        """Decorator: the rule of problem class ``kind``."""

        def deco(rule: Any) -> Any:
            if kind in self._rules:
                raise RuntimeError(f"{self.what} for {kind.__name__} registered twice")
            self._rules[kind] = rule
            return rule

        return deco

    def find(self, kind: type) -> Any:
        """The rule of ``kind`` (or of its nearest registered base class); None without one."""
        for k in kind.__mro__:
            if k in self._rules:
                return self._rules[k]
        return None

    def kinds(self) -> list[type]:
        """The problem classes with a rule."""
        return list(self._rules)


class TorchObjectiveRules(KindRules):
    """:data:`torch_objective`: ``torch_objective(problems, rows, dtype, device)`` builds the
    batched objective of ``problems`` (one kind) with the rule registered for their class."""

    def __call__(
        self,
        problems: Sequence[Problem],
        rows: np.ndarray,
        dtype: torch.dtype,
        device: torch.device,
    ) -> TorchObjective:
        rule = self.find(type(problems[0]))
        if rule is None:
            raise FormulationError(
                f"first-order methods have no torch objective for {type(problems[0]).__name__}"
            )
        return rule(problems, rows, dtype, device)


#: problem class -> its batched torch objective (a :class:`TorchObjective` subclass)
torch_objective = TorchObjectiveRules("torch objective")


class TorchObjective:
    """The batched objective of ``problems`` on rows ``rows`` (problem index of each row).

    Subclasses (one per problem kind, registered in :data:`torch_objective`) set their data in
    :meth:`setup` and implement :meth:`output_value` and, for ADMM, :meth:`prox_output`.

    Parameters
    ----------
    problems : list of Problem
        One network, one kind (checked by the formulation).
    rows : array of int, shape (B,)
    dtype, device : torch dtype and device
    """

    #: a short name of the objective (``"norm"``, ``"linear"``, ...)
    kind: ClassVar[str] = ""

    def __init__(
        self,
        problems: Sequence[Problem],
        rows: np.ndarray,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        import torch

        self.problems = list(problems)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.B = len(self.rows)
        self.dtype, self.device = dtype, device
        self.lo = self.stack([p.domain.lo for p in self.problems])
        self.hi = self.stack([p.domain.hi for p in self.problems])
        self.bounded_lo = bool(torch.isfinite(self.lo).all())
        self.bounded_hi = bool(torch.isfinite(self.hi).all())
        self.has_box = bool(torch.isfinite(self.lo).any() or torch.isfinite(self.hi).any())
        self.l2 = 0.0
        self.x_ref = None
        self.setup(self.problems[0])

    def stack(self, arrays: list[np.ndarray]) -> torch.Tensor:
        """One flattened row per batch row from the per-problem ``arrays``."""
        import torch

        a = np.stack([np.asarray(arrays[r], dtype=np.float64).reshape(-1) for r in self.rows])
        return torch.tensor(a, dtype=self.dtype, device=self.device)

    def setup(self, p0: Problem) -> None:
        """Read the kind's data from the problems (``p0`` is the first)."""

    @classmethod
    def center(cls, problem: Problem) -> np.ndarray:
        """The first start of an unbounded problem without a user start (default 0)."""
        return np.zeros(problem.domain.shape)

    # ----------------------------------------------------------------- values
    def output_value(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The (minimized) output term :math:`\\ell(y)` of every row, ``(B,)``."""
        raise NotImplementedError

    def input_value(self, x: torch.Tensor) -> torch.Tensor:
        """The input term :math:`r(x)` (the L2 regularizer; 0 when there is none)."""
        import torch

        if self.l2 == 0.0:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return 0.5 * self.l2 * ((x - self.x_ref) ** 2).sum(dim=1)

    def value(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The whole (minimized) objective of every row."""
        return self.output_value(y) + self.input_value(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Onto the box (the identity where a side is infinite)."""
        import torch

        if not self.has_box:
            return x
        return torch.maximum(torch.minimum(x, self.hi), self.lo)

    # ----------------------------------------------------------------- proxes
    def prox_input(self, a: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        """:math:`\\operatorname{prox}_{r/\\rho}(a)` (the box is handled by the input block)."""
        if self.l2 == 0.0:
            return a
        return (rho * a + self.l2 * self.x_ref) / (rho + self.l2)

    def prox_output(
        self,
        a: torch.Tensor,
        rho: torch.Tensor,
        newton_iters: int = 30,
        z0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:math:`\\operatorname{prox}_{\\ell/\\rho}(a)` row by row (module docstring).

        ``z0`` warm-starts an iterative prox (ADMM passes the previous output iterate, which is
        close once the iterations settle).
        """
        raise FormulationError(
            f"ADMM has no output update for a {type(self.problems[0]).__name__} objective"
        )


@torch_objective.register(Inversion)
class NormObjective(TorchObjective):
    """Inversion: the weighted 1-, 2- or inf-norm of ``y - target``."""

    kind = "norm"

    def setup(self, p0: Problem) -> None:
        self.p = float(p0.norm)
        self.target = self.stack([p.target for p in self.problems])
        self.weights = self.stack([p.weights for p in self.problems])

    def output_value(self, y: torch.Tensor) -> torch.Tensor:
        import torch

        r = self.weights * (y - self.target)
        if self.p == 1.0:
            return r.abs().sum(dim=1)
        if self.p == 2.0:
            # vector_norm's backward is 0 (a subgradient) at r = 0, never NaN
            return torch.linalg.vector_norm(r, dim=1)
        return r.abs().amax(dim=1)

    def prox_output(
        self,
        a: torch.Tensor,
        rho: torch.Tensor,
        newton_iters: int = 30,
        z0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        import torch

        at = a - self.target
        w = self.weights
        if self.p == 1.0:
            s = torch.sign(at) * torch.clamp(at.abs() - w / rho, min=0.0)
        elif self.p == 2.0:
            s = rho * at / (w * w + rho)
        else:
            s = self._prox_inf(at, w, rho)
        return self.target + s

    @staticmethod
    def _prox_inf(at: torch.Tensor, w: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        import torch

        pos = w > 0
        winv = torch.where(pos, 1.0 / torch.where(pos, w, torch.ones_like(w)), torch.zeros_like(w))
        mag = at.abs()

        def g(tau: torch.Tensor) -> torch.Tensor:
            return 1.0 - rho[:, 0] * (winv * torch.clamp(mag - tau[:, None] * winv, min=0.0)).sum(1)

        hi = torch.where(pos, w * mag, torch.zeros_like(mag)).amax(dim=1)
        lo = torch.zeros_like(hi)
        # g is continuous, decreasing, g(hi) = 1 > 0: bisection keeps g(lo) < 0 <= g(hi)
        for _ in range(60 if at.dtype == torch.float64 else 30):
            mid = 0.5 * (lo + hi)
            neg = g(mid) < 0
            lo = torch.where(neg, mid, lo)
            hi = torch.where(neg, hi, mid)
        tau = torch.where(g(torch.zeros_like(hi)) >= 0, torch.zeros_like(hi), hi)
        cap = tau[:, None] * winv
        return torch.where(pos, torch.sign(at) * torch.minimum(mag, cap), at)


@torch_objective.register(OutputObjective)
class LinearObjective(TorchObjective):
    """OutputObjective: :math:`c^\\top y + c_0`, negated for a maximization."""

    kind = "linear"

    def setup(self, p0: Problem) -> None:
        sign = 1.0 if p0.sense == "min" else -1.0
        self.c = sign * self.stack([p.c for p in self.problems])
        self.c0 = sign * self.stack([np.array([p.constant]) for p in self.problems])[:, 0]

    def output_value(self, y: torch.Tensor) -> torch.Tensor:
        return (y * self.c).sum(dim=1) + self.c0

    def prox_output(
        self,
        a: torch.Tensor,
        rho: torch.Tensor,
        newton_iters: int = 30,
        z0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return a - self.c / rho


@torch_objective.register(Feasibility)
class FeasibilityObjective(TorchObjective):
    """Feasibility: the largest violation :math:`\\max_i (C y - d)_i` (no proximal map)."""

    kind = "feasibility"

    def setup(self, p0: Problem) -> None:
        import torch

        shapes = {p.C.shape for p in self.problems}
        if len(shapes) != 1:
            raise InputError("a batch of Feasibility problems must share the shape of C")
        C = np.stack([self.problems[r].C for r in self.rows])
        self.C = torch.tensor(C, dtype=self.dtype, device=self.device)
        self.d = self.stack([p.d for p in self.problems])

    def output_value(self, y: torch.Tensor) -> torch.Tensor:
        import torch

        return (torch.bmm(self.C, y.unsqueeze(2)).squeeze(2) - self.d).amax(dim=1)


@torch_objective.register(CrossEntropy)
class CrossEntropyObjective(TorchObjective):
    """CrossEntropy: :math:`\\operatorname{lse}(y) - y_c` plus the L2 input term."""

    kind = "cross_entropy"

    def setup(self, p0: Problem) -> None:
        import torch

        self.label = torch.tensor(
            [self.problems[r].label for r in self.rows], device=self.device, dtype=torch.long
        )
        self.l2 = float(p0.l2)
        self.x_ref = self.stack([p.x_ref for p in self.problems])

    @classmethod
    def center(cls, problem: Problem) -> np.ndarray:
        return problem.x_ref

    def output_value(self, y: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.logsumexp(y, dim=1) - y.gather(1, self.label[:, None])[:, 0]

    def prox_output(
        self,
        a: torch.Tensor,
        rho: torch.Tensor,
        newton_iters: int = 30,
        z0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self._prox_ce(a, rho, newton_iters, z0)

    def _prox_ce(
        self,
        a: torch.Tensor,
        rho: torch.Tensor,
        iters: int,
        z0: torch.Tensor | None,
        early_exit: bool | None = None,
    ) -> torch.Tensor:
        import torch

        onehot = torch.zeros_like(a)
        onehot.scatter_(1, self.label[:, None], 1.0)

        def f(z: torch.Tensor) -> torch.Tensor:
            # z is (B, n) or (L, B, n): the prox objective of every row (and step)
            return (
                torch.logsumexp(z, -1)
                - (z * onehot).sum(-1)
                + 0.5 * rho[:, 0] * ((z - a) ** 2).sum(-1)
            )

        z = a.clone() if z0 is None else z0.clone()
        # below this gradient the objective's change is under the dtype's resolution
        tol = 1e-12 if a.dtype == torch.float64 else 1e-5
        # the backtracking line search tries every step 1, 1/2, ..., 2^-(L-1) at once (an
        # (L, B, n) evaluation, cheap for a logit vector) and keeps the largest that satisfies
        # Armijo; no host sync per halving. A row where none does (rounding at the optimum)
        # does not move.
        steps = None
        # on a GPU every .item() is a device sync: run the fixed number of steps there; on the
        # CPU the early exits are free and save the remaining steps
        check = a.device.type == "cpu" if early_exit is None else early_exit
        eps4 = 4 * torch.finfo(a.dtype).eps
        for _ in range(iters):
            p = torch.softmax(z, dim=1)
            grad = p - onehot + rho * (z - a)
            if check and float(grad.abs().max()) <= tol:
                break
            # H = A - p p^T with A = diag(p + rho): Sherman-Morrison, elementwise. The
            # denominator 1 - sum p^2 / (p + rho) > 1 - sum p = 0, so H^{-1} always exists.
            ainv = 1.0 / (p + rho)
            q = p * ainv
            denom = 1.0 - (p * q).sum(1, keepdim=True)
            d = -(grad * ainv + q * (q * grad).sum(1, keepdim=True) / denom)
            slope = (grad * d).sum(1)  # < 0: H is positive definite
            f0 = f(z)
            if check:
                # the predicted decrease is below the objective's rounding: converged as far
                # as the dtype resolves
                if bool((-slope <= eps4 * (1.0 + f0.abs())).all()):
                    break
                # near the solution the full step passes: try it alone first
                zt = z + d
                if bool((f(zt) <= f0 + 1e-4 * slope).all()):
                    z = zt
                    continue
            if steps is None:
                steps = 0.5 ** torch.arange(_LINE_SEARCH, dtype=a.dtype, device=a.device)[:, None]
            fc = f(z[None] + steps[:, :, None] * d[None])  # (L, B)
            ok = fc <= f0 + 1e-4 * steps * slope
            first = torch.argmax(ok.to(torch.int8), dim=0)  # the first (largest) accepted step
            t = torch.where(ok.any(dim=0), steps[first, 0], torch.zeros_like(f0))
            z = z + t[:, None] * d
        return z


class Adam:
    r"""Adam (Kingma & Ba 2015) on parameter groups ``[{"params": [...], "lr": ...}]``, with
    torch's default constants and its update :math:`p \leftarrow p - \frac{lr}{1 - \beta_1^t}
    \, m / (\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon)`.

    Written here rather than taken from ``torch.optim``: the first ``torch.optim.Adam`` of a
    process imports ``torch._dynamo`` (0.95 s measured on the 2-core CPU, as long as torch's
    own import), which a ``netopt check`` of one MNIST property paid on top of its 2-20 s, and
    each of its steps cost about 1 ms of overhead on alpha/beta-CROWN's small tensors
    (:class:`netopt.bounds.batched.ChainBounds`).
    """

    def __init__(self, groups: list[dict], betas: tuple[float, float] = (0.9, 0.999)) -> None:
        import torch

        self.groups = [(list(g["params"]), float(g["lr"])) for g in groups]
        self.b1, self.b2, self.eps, self.t = betas[0], betas[1], 1e-8, 0
        self.m = [[torch.zeros_like(p) for p in ps] for ps, _ in self.groups]
        self.v = [[torch.zeros_like(p) for p in ps] for ps, _ in self.groups]

    def zero_grad(self) -> None:
        for ps, _ in self.groups:
            for p in ps:
                p.grad = None

    def select(self, idx: Any) -> None:
        """Keep the rows ``idx`` (of the first dimension) of every parameter and its moments,
        as though the optimizer had run on those rows alone (the update is elementwise). The
        parameters become new leaf tensors: read them back from ``groups``."""
        import torch

        with torch.no_grad():
            self.groups = [
                ([p.detach()[idx].requires_grad_(True) for p in ps], lr) for ps, lr in self.groups
            ]
            self.m = [[m[idx] for m in ms] for ms in self.m]
            self.v = [[v[idx] for v in vs] for vs in self.v]

    def step(self) -> None:
        import torch

        self.t += 1
        c1, c2 = 1 - self.b1**self.t, math.sqrt(1 - self.b2**self.t)
        with torch.no_grad():
            for (ps, lr), ms, vs in zip(self.groups, self.m, self.v, strict=True):
                for p, m, v in zip(ps, ms, vs, strict=True):
                    if p.grad is None:
                        continue
                    g = p.grad
                    m.mul_(self.b1).add_(g, alpha=1 - self.b1)
                    v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
                    p.addcdiv_(m, (v.sqrt() / c2).add_(self.eps), value=-lr / c1)
