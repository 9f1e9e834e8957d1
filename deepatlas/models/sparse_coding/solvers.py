"""Batched sparse-coding solvers on torch: ISTA, FISTA, coordinate descent and OMP.

Every solver codes a whole batch of signals at once. For a signal ``x`` (a row of ``X``) and a
dictionary ``D`` of shape ``(n_atoms, n_features)`` (scikit-learn's convention: one atom per row,
reconstruction ``z @ D``) the lasso solvers minimise, per signal::

    ½‖x − z D‖² + α‖z‖₁

so ``alpha`` means what scikit-learn's ``transform_alpha`` means. OMP instead keeps a fixed number
of non-zeros and minimises ``‖x − z D‖²`` greedily.

The lasso solvers share one stopping rule, applied signal by signal: every ``check_every``
iterations each signal's duality gap is computed (primal minus dual at the dual point
``θ = s·r``, the residual scaled into the feasible set ``‖D θ‖_∞ ≤ α``), and a signal is done when
its gap is at most ``tol`` times the mean of its own objective and the batch's mean objective.
Done signals leave the batch, so the hard ones do not keep the easy ones iterating. The gap
bounds the distance to the optimum, so with ``tol=1e-4`` the mean objective is within about
0.01 % of the best possible, and no signal with an objective near the batch's typical one is off
by more. With ``α = 0`` (least squares) there is no such dual point and the rule becomes
stationarity: ``‖D r‖_∞ ≤ tol·‖D x‖_∞``.

All four work on the Gram matrix ``G = D Dᵀ`` and the correlations ``C = X Dᵀ``, so an iteration
costs one ``(B, K) @ (K, K)`` product (a coordinate-descent sweep: one rank-1 update per atom of
its working set) whatever the signal length.

References
----------
- Daubechies, Defrise & De Mol (2004), "An iterative thresholding algorithm for linear inverse
  problems with a sparsity constraint" (ISTA).
- Beck & Teboulle (2009), "A fast iterative shrinkage-thresholding algorithm for linear inverse
  problems" (FISTA).
- O'Donoghue & Candès (2015), "Adaptive restart for accelerated gradient schemes" (the
  per-signal momentum restart used by FISTA here).
- Friedman, Hastie & Tibshirani (2010), "Regularization paths for generalized linear models via
  coordinate descent" (cyclic coordinate descent with soft thresholding, covariance updates,
  active sets).
- Johnson & Guestrin (2015), "Blitz: a principled meta-algorithm for scaling sparse
  optimization"; Massias, Gramfort & Salmon (2018), "Celer: a fast solver for the Lasso with dual
  extrapolation" (working sets checked by the duality gap).
- Pati, Rezaiifar & Krishnaprasad (1993), "Orthogonal matching pursuit"; Rubinstein, Zibulevsky &
  Elad (2008), "Efficient implementation of the K-SVD algorithm using batch orthogonal matching
  pursuit" (OMP on the Gram matrix).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.nn.functional import softshrink

from deepatlas.errors import InputError

SOLVERS = ("fista", "ista", "cd", "omp")


class SolverResult(NamedTuple):
    """What a solver returns: the codes, how many iterations it ran, and whether the stopping
    rule was met (``gap`` is the final relative duality gap; NaN for OMP)."""

    codes: torch.Tensor  # (B, K)
    n_iter: int
    converged: bool
    gap: float


# ---- shared pieces ----------------------------------------------------------------------------
def soft_threshold(v: torch.Tensor, t) -> torch.Tensor:
    """``sign(v)·max(|v| − t, 0)``, written as ``v − clamp(v, −t, t)`` (two kernels)."""
    return v - v.clamp(-t, t)


def lasso_objective(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-signal objective ``½‖x − z D‖² + α‖z‖₁``; shape (B,)."""
    R = X - Z @ D  # (B, F)
    return 0.5 * (R * R).sum(1) + alpha * Z.abs().sum(1)


def duality_gaps(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-signal primal objective and duality gap, both of shape (B,).

    The dual point is the residual scaled into the feasible set, ``θ = s·r`` with
    ``s = min(1, α / ‖D r‖_∞)``; its dual value is ``⟨x, θ⟩ − ½‖θ‖²``.
    """
    R = X - Z @ D  # (B, F) residuals
    rr = (R * R).sum(1)
    primal = 0.5 * rr + alpha * Z.abs().sum(1)
    corr = (R @ D.T).abs().amax(1)  # (B,) ‖D r‖_∞
    scale = (alpha / corr.clamp_min(1e-30)).clamp(max=1.0)
    dual = scale * (X * R).sum(1) - 0.5 * scale * scale * rr
    return primal, primal - dual


class _ActiveSet:
    """The shared stopping rule, applied signal by signal.

    A signal is finished when ``gap_i ≤ tol · ½(P_i + P̄)`` (``P̄``: the mean of the latest
    objectives of the whole batch), or below a floor at the working precision. Summed over the
    batch this bounds the total gap by about ``tol`` times the total objective, while a nearly
    empty signal (tiny ``P_i``) is not held to a gap that only rounding could resolve. Finished
    codes go to ``out`` and the solver drops those rows. With ``α = 0`` the test is stationarity,
    ``‖D r‖_∞ ≤ tol·‖D x‖_∞``.
    """

    def __init__(self, X: torch.Tensor, D: torch.Tensor, alpha: float, tol: float, C: torch.Tensor):
        self.X, self.D, self.alpha, self.tol = X, D, alpha, tol
        self.rows = torch.arange(len(X), device=X.device)  # (B_active,) indices still being solved
        self.out = torch.zeros_like(C)  # (B, K)
        eps = torch.finfo(X.dtype).eps
        self.floor = 50 * eps * (X * X).sum(1)  # (B,) a gap below this is rounding noise
        self.latest = 0.5 * (X * X).sum(1)  # (B,) latest objective of each signal (z = 0 at start)
        self.ref = C.abs().amax(1) if C.shape[1] else torch.zeros(len(X), dtype=X.dtype, device=X.device)
        self.primal_sum = 0.0
        self.gap_sum = 0.0

    @property
    def done(self) -> bool:
        return len(self.rows) == 0

    def check(self, Z: torch.Tensor, final: bool = False) -> torch.Tensor | None:
        """Retire the finished rows of ``Z`` (the active codes, (B_active, K)); return the mask of
        rows to keep, or ``None`` when all of them stay."""
        X = self.X[self.rows]
        if self.alpha > 0:
            primal, gap = duality_gaps(X, self.D, Z, self.alpha)
            self.latest[self.rows] = primal
            scale = 0.5 * (primal + self.latest.mean())
            finished = gap <= self.tol * scale + self.floor[self.rows]
        else:
            R = X - Z @ self.D  # (B_active, F)
            primal = 0.5 * (R * R).sum(1)
            gap = torch.zeros_like(primal)
            finished = (R @ self.D.T).abs().amax(1) <= self.tol * self.ref[self.rows]
        if final:
            finished = torch.ones_like(finished)
        if not bool(finished.any()):
            return None
        self.out[self.rows[finished]] = Z[finished]
        self.primal_sum += float(primal[finished].sum())
        self.gap_sum += float(gap[finished].sum())
        keep = ~finished
        self.rows = self.rows[keep]
        return keep

    def result(self, n_iter: int, converged: bool) -> SolverResult:
        rel = self.gap_sum / max(self.primal_sum, 1e-30) if self.alpha > 0 else 0.0
        return SolverResult(self.out, n_iter, converged, rel)


def gram_lipschitz(G: torch.Tensor) -> float:
    """Largest eigenvalue of ``G = D Dᵀ``: the Lipschitz constant of the smooth part's gradient."""
    return float(torch.linalg.eigvalsh(G.double()).max()) * 1.0001 + 1e-12


def _prepare(X: torch.Tensor, D: torch.Tensor, init: torch.Tensor | None):
    G = D @ D.T  # (K, K)
    C = X @ D.T  # (B, K)
    Z = torch.zeros_like(C) if init is None else init.clone().to(C)
    return G, C, Z


def _iterate(step, state: list[torch.Tensor], codes_of, active: _ActiveSet, max_iter: int, check_every: int):
    """Run ``state = step(state)`` until every signal meets the rule or ``max_iter`` is reached.

    ``state`` holds tensors whose first dimension is the active signals (``codes_of(state)`` picks
    the codes out of it); finished signals are dropped from all of them at each check.
    """
    it = 0
    for it in range(1, max_iter + 1):
        state = step(state)
        if it % check_every == 0:
            keep = active.check(codes_of(state))
            if active.done:
                return active.result(it, True)
            if keep is not None:
                state = [s[keep] for s in state]
    active.check(codes_of(state), final=True)
    return active.result(it, False)


# ---- ISTA / FISTA -----------------------------------------------------------------------------
def ista(
    X: torch.Tensor,
    D: torch.Tensor,
    alpha: float,
    *,
    max_iter: int = 1000,
    tol: float = 1e-4,
    check_every: int = 10,
    init: torch.Tensor | None = None,
) -> SolverResult:
    """Proximal gradient descent with step ``1/L``: ``z ← soft(z − (z G − c)/L, α/L)``."""
    G, C, Z = _prepare(X, D, init)
    L = gram_lipschitz(G)
    # z − (zG − c)/L = z (I − G/L) + c/L: one fused matrix product per iteration.
    S = torch.eye(len(G), dtype=G.dtype, device=G.device) - G / L  # (K, K)
    thr = alpha / L

    def step(state):
        Z, b = state
        return [soft_threshold(torch.addmm(b, Z, S), thr), b]

    active = _ActiveSet(X, D, alpha, tol, C)
    return _iterate(step, [Z, C / L], lambda s: s[0], active, max_iter, check_every)


def fista(
    X: torch.Tensor,
    D: torch.Tensor,
    alpha: float,
    *,
    max_iter: int = 1000,
    tol: float = 1e-4,
    check_every: int = 10,
    init: torch.Tensor | None = None,
    restart: bool = True,
) -> SolverResult:
    """ISTA's step taken at an extrapolated point ``y = z + ((t−1)/t')(z − z_prev)``.

    With ``restart`` each signal's momentum resets when it points uphill (the gradient test of
    O'Donoghue & Candès), which keeps the fast rate where the lasso is locally strongly convex.
    """
    G, C, Z = _prepare(X, D, init)
    L = gram_lipschitz(G)
    S = torch.eye(len(G), dtype=G.dtype, device=G.device) - G / L  # (K, K)
    thr = alpha / L

    def step(state):
        Z, Y, t, b = state  # codes, extrapolated point, (B, 1) momentum, c/L
        Z_new = soft_threshold(torch.addmm(b, Y, S), thr)
        move = Z_new - Z  # (B, K)
        t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_new
        if restart:
            # (y − z_new)·(z_new − z) > 0: the momentum pushed against the descent direction.
            uphill = ((Y - Z_new) * move).sum(1, keepdim=True) > 0
            t_new = torch.where(uphill, torch.ones_like(t_new), t_new)
            beta = torch.where(uphill, torch.zeros_like(beta), beta)
        return [Z_new, Z_new + beta * move, t_new, b]

    t0 = torch.ones(len(C), 1, dtype=C.dtype, device=C.device)
    active = _ActiveSet(X, D, alpha, tol, C)
    return _iterate(step, [Z, Z, t0, C / L], lambda s: s[0], active, max_iter, check_every)


# ---- coordinate descent -------------------------------------------------------------------------
def _working_set(ZT: torch.Tensor, rhoT: torch.Tensor, G: torch.Tensor, diag: torch.Tensor, alpha: float):
    """The atoms each signal's next sweeps visit: its support plus the atoms that violate the
    optimality condition ``|ρ_k| ≤ α`` (the only zero codes a coordinate step would move).

    Works atom-major: ``ZT`` and ``rhoT`` are (K, B). Returns ``W``, the scale ``d`` (the diagonal
    of ``G`` on the set, 1 on padding), the mask ``vf`` (1 on real entries, 0 on padding; None
    when there is none), the coupling ``H`` with ``H[j, k] = −G[W_k, W_j] / G[W_j, W_j]`` for
    ``k ≠ j`` (zero on the diagonal and on padding), the partial correlations ``q`` (m, B) and the
    scaled codes ``u = d·z`` (m, B). Two layouts, whichever moves less memory:

    - per signal (``W`` of shape (m, B): signal ``b``'s atoms first, in order, padded below) with
      ``H`` gathered per signal, (m, m, B), when that is small;
    - otherwise every signal sweeps the union of the sets (``W`` of shape (m,)) with one shared
      ``H`` of shape (m, m, 1). A superset of a signal's own set is still exact coordinate descent.
    """
    K, B = ZT.shape
    alive = (diag > 0)[:, None]  # (K, 1) an all-zero atom never enters a code
    member = ((ZT != 0) | (rhoT.abs() > alpha)) & alive  # (K, B)
    counts = member.sum(0)  # (B,)
    m = int(counts.max()) if B else 0  # 0: nothing can move (e.g. a large alpha)
    if B * m * m > _GATHER_LIMIT:  # one set for all: the union
        W = member.any(1).nonzero().squeeze(1)  # (m,)
        m = len(W)
        d = diag[W][:, None]  # (m, 1)
        H = G[W[:, None], W[None, :]].div_(d).neg_()  # (m_j, m_k): −G_kj / G_jj, G symmetric
        H.fill_diagonal_(0.0)
        zw = ZT if m == K else ZT[W]  # (m, B)
        q = (rhoT if m == K else rhoT[W]).addcmul(d, zw)  # (m, B) correlation without atom j's own part
        return W, d, None, H[:, :, None], q, zw * d
    W = torch.argsort((~member).to(torch.uint8), dim=0, stable=True)[:m]  # (m, B) members first
    valid = torch.arange(m, device=ZT.device)[:, None] < counts  # (m, B)
    vf = valid.to(ZT.dtype)
    d = torch.where(valid, diag[W], torch.ones_like(vf))  # (m, B)
    H = G.reshape(-1)[W[:, None, :] * K + W[None, :, :]]  # (m_j, m_k, B): G[W_jb, W_kb]
    H.div_(d[:, None, :]).mul_(vf[:, None, :] * vf[None, :, :]).neg_()
    H.diagonal(dim1=0, dim2=1).zero_()
    zw = ZT.gather(0, W) * vf  # (m, B)
    q = (rhoT.gather(0, W) + d * zw) * vf  # (m, B)
    return W, d, vf, H, q, zw * d


_GATHER_LIMIT = 1 << 18  # per-signal coupling of at most this many entries (1 MiB of float32)


def coordinate_descent(
    X: torch.Tensor,
    D: torch.Tensor,
    alpha: float,
    *,
    max_iter: int = 1000,
    tol: float = 1e-4,
    check_every: int = 10,
    init: torch.Tensor | None = None,
) -> SolverResult:
    """Cyclic coordinate descent on working sets, one atom at a time for all active signals.

    The exact minimiser along atom ``k`` is ``z_k = soft(q_k, α) / G_kk`` with
    ``q_k = c_k − Σ_{j≠k} G_kj z_j``, the correlation of the residual without atom ``k``'s own
    part (the covariance update of Friedman et al., 2010). Three choices make the sweeps cheap:

    - **Working sets.** Between two checks each signal sweeps only its own atoms: those with a
      non-zero code and those whose zero code violates ``|ρ_k| ≤ α`` (the others would not
      move). The sets are rebuilt from the full correlations ``ρ = c − z G`` at every check, so
      an atom that starts to violate enters there, and the stopping rule is always the full
      problem's duality gap. This is the active-set strategy of glmnet (Friedman et al., 2010)
      and of the working-set solvers (Johnson & Guestrin, 2015, "Blitz: a principled
      meta-algorithm for scaling sparse optimization"; Massias, Gramfort & Salmon, 2018,
      "Celer: a fast solver for the Lasso with dual extrapolation").
    - **Scaled codes.** A sweep keeps ``u = G_kk z`` and the partial correlations ``q``; a
      coordinate step is then ``u_k ← soft(q_k, α)`` and ``q ← q + H_k (u_k − u_k^old)`` with
      ``H_k = −G_{·k} / G_kk`` gathered once per working set: three vector operations over the
      batch per atom, whatever the number of atoms outside the set.
    - **Fresh correlations.** ``q`` is recomputed from ``c − z G`` at every check, so rounding
      does not build up over a long run.

    ``n_iter`` counts sweeps (of each signal's working set).
    """
    G, C, Z = _prepare(X, D, init)
    diag = G.diagonal()  # (K,)
    active = _ActiveSet(X, D, alpha, tol, C)
    CT, ZT = C.T.contiguous(), Z.T.contiguous()  # (K, B): atom-major, each update touches rows
    it = 0
    while True:
        rhoT = CT - G @ ZT  # (K, B) correlations of the residuals with every atom
        W, d, vf, H, q, u = _working_set(ZT, rhoT, G, diag, alpha)
        U = list(u.unbind(0))  # m tensors (B_active,): scaled codes, rebound (never copied) below
        rows = list(zip(q.unbind(0), H.unbind(0)))  # views, unpacked once: q_j and H_j per atom
        sweeps = min(check_every - it % check_every, max_iter - it)
        for _ in range(sweeps):
            for j, (qj, hj) in enumerate(rows):
                v = softshrink(qj, alpha)  # new u_j
                q.addcmul_(hj, v - U[j])  # q_k −= G_kj δz_j for the other atoms k (q_j itself: H_jj = 0)
                U[j] = v
        it += sweeps
        zw = (torch.stack(U) if U else torch.zeros_like(q)).div_(d)  # (m, B_active)
        if vf is None:
            ZT = zw if len(W) == len(ZT) else torch.zeros_like(ZT).index_copy_(0, W, zw)
        else:
            ZT = torch.zeros_like(ZT).scatter_add_(0, W, zw.mul_(vf))  # padding adds zeros
        if it >= max_iter and it % check_every:
            active.check(ZT.T, final=True)
            return active.result(it, False)
        keep = active.check(ZT.T, final=False)
        if active.done:
            return active.result(it, True)
        if keep is not None:
            ZT, CT = ZT[:, keep], CT[:, keep]
        if it >= max_iter:
            active.check(ZT.T, final=True)
            return active.result(it, False)


# ---- OMP ----------------------------------------------------------------------------------------
def omp(X: torch.Tensor, D: torch.Tensor, n_nonzero: int) -> SolverResult:
    """Orthogonal matching pursuit with ``n_nonzero`` atoms per signal.

    Each step adds the atom most correlated with the residual, then refits the least-squares
    coefficients on the support, ``coef = G[S, S]⁻¹ c[S]``; everything goes through ``G`` and
    ``C``, batched over signals (batch OMP).
    """
    G = D @ D.T  # (K, K)
    C = X @ D.T  # (B, K)
    B, K = C.shape
    rows = torch.arange(B, device=C.device)
    idx = torch.zeros(B, n_nonzero, dtype=torch.long, device=C.device)  # (B, s) chosen atoms
    corr = C  # (B, K) correlations of the residuals
    chosen = torch.zeros(B, K, dtype=torch.bool, device=C.device)
    ridge = 1e-7 * float(G.diagonal().mean()) if K else 0.0
    Z = torch.zeros_like(C)
    for s in range(n_nonzero):
        k = corr.abs().masked_fill_(chosen, -1.0).argmax(1)  # (B,) never the same atom twice
        idx[:, s] = k
        chosen[rows, k] = True
        sup = idx[:, : s + 1]  # (B, s+1)
        Gs = G[sup[:, :, None], sup[:, None, :]]  # (B, s+1, s+1)
        Gs.diagonal(dim1=1, dim2=2).add_(ridge)
        coef = torch.linalg.solve(Gs, C.gather(1, sup))  # (B, s+1)
        Z = torch.zeros_like(C).scatter_(1, sup, coef)
        corr = torch.addmm(C, Z, G, alpha=-1.0)  # c − z G
    return SolverResult(Z, n_nonzero, True, math.nan)


# ---- one entry point ----------------------------------------------------------------------------
def check_dictionary(D: torch.Tensor, n_features: int) -> None:
    """One-line errors for a dictionary that cannot code signals of ``n_features`` values."""
    if D.ndim != 2:
        raise InputError(
            f"dictionary must be a 2-D array of shape (n_atoms, n_features). Got shape {tuple(D.shape)} instead."
        )
    if D.shape[1] != n_features:
        raise InputError(
            f"dictionary atoms have {D.shape[1]} features, but X has {n_features} features; "
            "they must match (dictionary shape is (n_atoms, n_features))."
        )
    if not bool(torch.isfinite(D).all()):
        raise InputError("dictionary contains NaN or inf values.")


def sparse_encode(
    X: torch.Tensor,
    D: torch.Tensor,
    *,
    solver: str = "fista",
    alpha: float = 1.0,
    n_nonzero: int | None = None,
    max_iter: int = 1000,
    tol: float = 1e-4,
    init: torch.Tensor | None = None,
) -> SolverResult:
    """Code the rows of ``X`` (B, F) over ``D`` (K, F) with one of :data:`SOLVERS`.

    >>> import torch
    >>> D = torch.eye(3)
    >>> sparse_encode(torch.tensor([[2.0, 0.5, -3.0]]), D, alpha=1.0).codes
    tensor([[ 1.,  0., -2.]])
    """
    if solver not in SOLVERS:
        raise InputError(f"solver must be one of {', '.join(map(repr, SOLVERS))}. Got {solver!r} instead.")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise InputError(f"alpha must be a float >= 0. Got {alpha!r} instead.")
    check_dictionary(D, X.shape[1])
    if solver == "omp":
        k = n_nonzero if n_nonzero is not None else max(1, X.shape[1] // 10)
        if not isinstance(k, int) or k < 1:
            raise InputError(f"n_nonzero must be a positive int. Got {k!r} instead.")
        if k > D.shape[0]:
            raise InputError(f"n_nonzero ({k}) must be at most the number of atoms ({D.shape[0]}).")
        return omp(X, D, k)
    fn = {"ista": ista, "fista": fista, "cd": coordinate_descent}[solver]
    return fn(X, D, float(alpha), max_iter=max_iter, tol=tol, init=init)


__all__ = [
    "SOLVERS",
    "SolverResult",
    "soft_threshold",
    "lasso_objective",
    "duality_gaps",
    "gram_lipschitz",
    "ista",
    "fista",
    "coordinate_descent",
    "omp",
    "check_dictionary",
    "sparse_encode",
]
