"""Independent reference solver: the BROJA program written in CVXPY.

For tests and benchmarks only; needs the ``reference`` extra (``pip install fastpid[reference]``).
Two formulations:

* ``"strong"`` (default): variables only on entries with P(x1,y) > 0 and P(x2,y) > 0, and an
  explicit pair-marginal variable s(x1,x2) = sum_y Q, so that every exponential cone touches
  one entry of s (the fastest CVXPY formulation known to us).
* ``"common"``: the formulation common in the multimodal-learning literature: a full
  (n1, n2) variable per label and the pair marginal written as a sum inside every cone.
* ``"dpp"``: :class:`CompiledProblem`, the strong program on the full support of one shape
  with the marginals as parameters, compiled once and re-solved per distribution (CVXPY's
  disciplined parametrized programming): the fairest CVXPY setup for a batch.
"""
from __future__ import annotations

import math

import numpy as np

from ._backend import to_batch, unit_of
from .core import result_from
from .info import pid_informations
from .result import PIDResult

# Tight tolerances, so the reference is accurate well below the 1e-6-bit level tests use.
CLARABEL_TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "max_iter": 500}


def _cvxpy():
    try:
        import cvxpy
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("fastpid.reference needs cvxpy: pip install 'fastpid[reference]'") from err
    return cvxpy


def _problem_strong(P, cp):
    import scipy.sparse as sp

    n1, n2, ny = P.shape
    p1, p2 = P.sum(1), P.sum(0)
    x1, x2, y = np.nonzero((p1[:, None, :] > 0) & (p2[None, :, :] > 0))
    cells, cell_of = np.unique(x1 * n2 + x2, return_inverse=True)
    T = len(x1)
    q = cp.Variable(T, nonneg=True)
    s = cp.Variable(len(cells), nonneg=True)
    spread = sp.csr_matrix((np.ones(T), (np.arange(T), cell_of)), shape=(T, len(cells)))
    rows1, inv1 = np.unique(x1 * ny + y, return_inverse=True)
    rows2, inv2 = np.unique(x2 * ny + y, return_inverse=True)
    A1 = sp.csr_matrix((np.ones(T), (inv1, np.arange(T))), shape=(len(rows1), T))
    A2 = sp.csr_matrix((np.ones(T), (inv2, np.arange(T))), shape=(len(rows2), T))
    constraints = [A1 @ q == p1.ravel()[rows1], A2 @ q == p2.ravel()[rows2], spread.T @ q == s]
    # sum Q log(Q / s) = -H_Q(Y | X1, X2)
    problem = cp.Problem(cp.Minimize(cp.sum(cp.rel_entr(q, spread @ s))), constraints)

    def coupling():
        Q = np.zeros(P.shape)
        Q[x1, x2, y] = q.value
        return Q

    return problem, coupling


def _problem_common(P, cp):
    n1, n2, ny = P.shape
    p1, p2 = P.sum(1), P.sum(0)
    Q = [cp.Variable((n1, n2), nonneg=True) for _ in range(ny)]
    pair = sum(Q)
    constraints = []
    for k in range(ny):
        constraints += [cp.sum(Q[k], axis=1) == p1[:, k], cp.sum(Q[k], axis=0) == p2[:, k]]
    objective = sum(cp.sum(cp.rel_entr(Q[k], pair)) for k in range(ny))
    problem = cp.Problem(cp.Minimize(objective), constraints)
    return problem, lambda: np.stack([Qk.value for Qk in Q], axis=-1)


class CompiledProblem:
    """The "strong" program for one shape (n1, n2, ny) with the marginals P(x1, y) and
    P(x2, y) as CVXPY parameters: compiled once (DPP), then re-solved for each distribution of
    that shape, the fairest way to use CVXPY on a batch. Variables cover every entry, so a
    distribution's zeros are enforced by its marginals rather than by the structure.

        solver = CompiledProblem((20, 20, 6))
        value, status = solver.max_conditional_entropy(P)   # nats
    """

    def __init__(self, shape, *, solver="CLARABEL", solver_options=None):
        import scipy.sparse as sp

        cp = _cvxpy()
        n1, n2, ny = self.shape = tuple(int(v) for v in shape)
        self.solver, self.options = solver, dict(solver_options or {})
        # Clarabel with its own defaults, then (only when the caller gave no options) a
        # stronger static regularisation: on rare sparse draws whose zero rows leave many
        # variables pinned at 0, the default stops at "optimal_inaccurate" and 1e-7 solves it
        # (a re-solve with other options reuses the compiled problem).
        self._attempts = [self.options]
        if solver == "CLARABEL" and solver_options is None:
            self._attempts.append({"static_regularization_constant": 1e-7})
        x1, x2, y = (a.ravel() for a in np.meshgrid(np.arange(n1), np.arange(n2), np.arange(ny), indexing="ij"))
        T = n1 * n2 * ny
        self._q = cp.Variable(T, nonneg=True)
        s = cp.Variable(n1 * n2, nonneg=True)
        spread = sp.csr_matrix((np.ones(T), (np.arange(T), x1 * n2 + x2)), shape=(T, n1 * n2))
        A1 = sp.csr_matrix((np.ones(T), (x1 * ny + y, np.arange(T))), shape=(n1 * ny, T))
        A2 = sp.csr_matrix((np.ones(T), (x2 * ny + y, np.arange(T))), shape=(n2 * ny, T))
        self._p1 = cp.Parameter(n1 * ny, nonneg=True)
        self._p2 = cp.Parameter(n2 * ny, nonneg=True)
        constraints = [A1 @ self._q == self._p1, A2 @ self._q == self._p2, spread.T @ self._q == s]
        self._problem = cp.Problem(cp.Minimize(cp.sum(cp.rel_entr(self._q, spread @ s))), constraints)
        assert self._problem.is_dcp(dpp=True)

    def max_conditional_entropy(self, P):
        """max_{Q in Delta_P} H_Q(Y|X1,X2) in nats; returns ``(value, status)``."""
        cp = _cvxpy()
        P = np.asarray(P, dtype=float)
        if P.shape != self.shape:
            raise ValueError(f"this problem was compiled for shape {self.shape}, got {P.shape}")
        self._p1.value = P.sum(1).ravel()
        self._p2.value = P.sum(0).ravel()
        status = "not solved"
        for options in self._attempts:
            try:
                self._problem.solve(solver=self.solver, **options)
            except cp.error.SolverError as err:
                status = str(err)
                continue
            status = self._problem.status
            if status == "optimal":
                return _conditional_entropy(self._q.value.reshape(self.shape)), "optimal"
        return math.nan, "failed: " + status


_COMPILED = {}  # (shape, solver, options) -> CompiledProblem, for formulation="dpp"


def _conditional_entropy(Q):
    """H_Q(Y|X1,X2) in nats of a coupling, negative rounding noise clipped to 0."""
    Q = np.clip(Q, 0.0, None)
    m = Q.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(Q > 0, Q * np.log(Q / np.where(m > 0, m, 1.0)), 0.0)
    return -float(terms.sum())


def max_conditional_entropy_cvxpy(P, *, solver="CLARABEL", formulation="strong", solver_options=None):
    """max_{Q in Delta_P} H_Q(Y|X1,X2) in nats for one distribution ``P`` of shape (n1, n2, ny).

    ``formulation``: "strong", "common", or "dpp" (the strong program compiled once per shape
    with the marginals as parameters, see :class:`CompiledProblem`; solved with the solver's
    own options, default tolerances unless given, and a fall-back only when none are given). Returns ``(value, status)``.
    """
    cp = _cvxpy()
    P = np.asarray(P, dtype=float)
    if formulation == "dpp":
        key = (P.shape, solver, tuple(sorted((solver_options or {}).items())))
        if key not in _COMPILED:
            _COMPILED[key] = CompiledProblem(P.shape, solver=solver, solver_options=solver_options)
        return _COMPILED[key].max_conditional_entropy(P)
    build = {"strong": _problem_strong, "common": _problem_common}.get(formulation)
    if build is None:
        raise ValueError(f"formulation must be 'strong', 'common' or 'dpp', got {formulation!r}")
    attempts = [(build, dict(solver_options or {}))]
    if solver == "CLARABEL" and solver_options is None:
        # Tight tolerances first. Clarabel occasionally stops short ("optimal_inaccurate")
        # on near-deterministic inputs or sparse histograms; its default tolerances, and then
        # the other formulation, have solved every such case we met.
        attempts = [(build, dict(CLARABEL_TIGHT)), (build, {}), (_problem_common, {})]
    status = "not solved"
    for make, options in attempts:
        problem, coupling = make(P, cp)
        try:
            problem.solve(solver=solver, **options)
        except cp.error.SolverError:
            continue
        status = problem.status
        if status == "optimal":
            # The objective evaluated at the solver's coupling (CVXPY's own problem.value can
            # be inf when a cell is a rounding error below zero).
            value = _conditional_entropy(coupling())
            if math.isfinite(value):
                return value, status
    return math.nan, "failed: " + status


def decompose_cvxpy(P, *, solver="CLARABEL", formulation="strong", base=2, normalize=False, solver_options=None) -> PIDResult:
    """BROJA PID of ``P`` (shape ``(..., n1, n2, ny)``) solved with CVXPY, one distribution
    at a time. Returns a numpy :class:`PIDResult`; ``bound`` is NaN (CVXPY certifies nothing)
    and ``converged`` is the solver reporting an optimal status."""
    unit, log_base = unit_of(base)
    flat, batch_shape, _ = to_batch(P, normalize=normalize)
    values = np.empty(len(flat))
    ok = np.zeros(len(flat), dtype=bool)
    for i, dist in enumerate(flat):
        values[i], status = max_conditional_entropy_cvxpy(dist, solver=solver, formulation=formulation, solver_options=solver_options)
        ok[i] = status == "optimal"
    informations = pid_informations(flat, base=math.e)

    def convert(measures):
        return [np.asarray(v, dtype=float).reshape(batch_shape) / log_base for v in measures]

    # CVXPY certifies nothing: bound is NaN.
    return result_from(
        values, informations, convert, bound=np.full(len(flat), np.nan), converged=ok.reshape(batch_shape),
        iterations=np.zeros(batch_shape, dtype=np.int32), unit=unit, method=f"cvxpy-{solver.lower()}-{formulation}",
    )


# --- more than two sources (docs/design.md section 7) ------------------------------------------

def _entropy_nats(p) -> float:
    p = np.asarray(p, dtype=float).ravel()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _conditional_entropy_of(P) -> float:
    """H_P(Y | all the other axes) in nats; the target is the last axis."""
    P = np.asarray(P, dtype=float)
    return _entropy_nats(P) - _entropy_nats(P.sum(-1))


def max_union_entropy_cvxpy(P, *, solver="CLARABEL", fallbacks=True):
    """max H_Q(Y | X1..Xk) in nats over the couplings Q with every (Xi, Y) marginal of ``P``
    (shape (n1, ..., nk, ny), k >= 1), by CVXPY: variables only where every P(xi, y) > 0, one
    explicit cell mass s(x1..xk) per cell, one exponential cone per entry. For k = 2 this is
    BROJA's program (:func:`max_conditional_entropy_cvxpy`). Returns ``(value, status)``.

    With ``fallbacks`` (the reference): Clarabel at tight tolerances, then at its defaults, the
    cell masses summed inside the cones instead, ECOS and SCS, until one reports "optimal" (NaN
    and "failed: ..." otherwise). Without: one solve at the solver's default tolerances, its
    value returned with whatever status it reports ("optimal_inaccurate" included): how a user
    calls it, which bench_three times."""
    import scipy.sparse as sp

    cp = _cvxpy()
    P = np.asarray(P, dtype=float)
    k, ny = P.ndim - 1, P.shape[-1]
    if k < 1:
        raise ValueError(f"P must have shape (n1, ..., nk, ny) with k >= 1, got {P.shape}")
    if k == 1:
        return _conditional_entropy_of(P), "optimal"  # one source: the coupling is P itself
    if k == 2 and solver == "CLARABEL" and fallbacks:
        return max_conditional_entropy_cvxpy(P)  # BROJA's, with its fall-backs
    marginals = [P.sum(axis=tuple(j for j in range(k) if j != i)) for i in range(k)]  # (ni, ny) each
    allowed = np.ones(P.shape, dtype=bool)
    for i, m in enumerate(marginals):
        shape = [1] * k + [ny]
        shape[i] = P.shape[i]
        allowed &= (m > 0).reshape(shape)
    index = np.nonzero(allowed)
    T = len(index[0])
    cell_id = np.ravel_multi_index(index[:k], P.shape[:k])
    cells, cell_of = np.unique(cell_id, return_inverse=True)
    spread = sp.csr_matrix((np.ones(T), (np.arange(T), cell_of)), shape=(T, len(cells)))
    marginal_rows = []
    for i, m in enumerate(marginals):
        rows, inverse = np.unique(index[i] * ny + index[k], return_inverse=True)
        marginal_rows.append((sp.csr_matrix((np.ones(T), (inverse, np.arange(T))), shape=(len(rows), T)), m.ravel()[rows]))

    def build(explicit_masses):
        """A fresh problem (a CVXPY problem solved once and solved again with other options
        reported the first solve's "optimal_inaccurate" in 0.01 s, where a fresh one was
        "optimal"): the cell masses as variables s of their own (the strong form), or as the
        sums of q inside every cone (the common form)."""
        q = cp.Variable(T, nonneg=True)
        constraints = [A @ q == target for A, target in marginal_rows]
        if explicit_masses:
            s = cp.Variable(len(cells), nonneg=True)
            constraints.append(spread.T @ q == s)
            mass = spread @ s
        else:
            mass = spread @ (spread.T @ q)
        return cp.Problem(cp.Minimize(cp.sum(cp.rel_entr(q, mass))), constraints), q

    status = "not solved"
    # Clarabel tight, then at its defaults, then the common form; where it stops short
    # ("optimal_inaccurate", met on small degenerate programs: near-deterministic targets,
    # tiny entries), ECOS when installed and SCS to high accuracy.
    attempts = [(True, solver, dict(CLARABEL_TIGHT) if solver == "CLARABEL" else {}), (True, solver, {})] if fallbacks else [(True, solver, {})]
    if solver == "CLARABEL" and fallbacks:
        attempts += [(False, solver, {}), (True, "ECOS", {"abstol": 1e-10, "reltol": 1e-10, "feastol": 1e-10}),
                     (True, "SCS", {"eps": 1e-10, "max_iters": 200_000})]
    for explicit, name, options in attempts:
        if name not in cp.installed_solvers():
            continue
        problem, q = build(explicit)
        try:
            problem.solve(solver=name, **options)
        except cp.error.SolverError:
            continue
        status = problem.status
        if status == "optimal" or (not fallbacks and status == "optimal_inaccurate"):
            Q = np.zeros(P.shape)
            Q[index] = np.clip(q.value, 0.0, None)
            return _conditional_entropy_of(Q), status
    return math.nan, "failed: " + status


def union_information_cvxpy(P, *, base=2, solver="CLARABEL") -> dict:
    """The k-source union information of one distribution ``P`` (shape (n1, ..., nk, ny)):
    ``union`` = H(Y) - max H_Q(Y | X1..Xk), ``synergy`` = I(X1..Xk; Y) - union, ``mi_joint`` =
    I(X1..Xk; Y), and ``status``, in the unit of ``base``. For k = 2, union = R + U1 + U2."""
    _, log_base = unit_of(base)
    P = np.asarray(P, dtype=float)
    value, status = max_union_entropy_cvxpy(P, solver=solver)
    entropy_y = _entropy_nats(P.sum(axis=tuple(range(P.ndim - 1))))
    mi = entropy_y - _conditional_entropy_of(P)
    union = entropy_y - value
    return {"union": union / log_base, "synergy": (mi - union) / log_base, "mi_joint": mi / log_base, "status": status}


# The eight terms of the trivariate decomposition, with MAXENT3D_PID's names.
TERMS3 = {"synergy": "CI", "redundancy": "SI", "unique1": "UIX", "unique2": "UIY", "unique3": "UIZ",
          "shared12": "UIXY", "shared13": "UIXZ", "shared23": "UIYZ"}


def decompose3_cvxpy(P, *, base=2, solver="CLARABEL", fallbacks=True) -> dict:
    """The trivariate maximum-entropy decomposition (Chicharro 2017) of one distribution ``P``
    of shape (n1, n2, n3, ny), by CVXPY: the eight terms of :data:`TERMS3`, ``mi_joint``, and
    ``status`` ("optimal" when all four programs were solved). From the 3-source union problem
    and BROJA's problem on each pair's marginal (docs/design.md section 7). ``fallbacks`` as in
    :func:`max_union_entropy_cvxpy`."""
    _, log_base = unit_of(base)
    P = np.asarray(P, dtype=float)
    if P.ndim != 4:
        raise ValueError(f"P must have shape (n1, n2, n3, ny), got {P.shape}")
    h123, status = max_union_entropy_cvxpy(P, solver=solver, fallbacks=fallbacks)
    statuses = [status]
    pair = {}
    for (i, j), drop in (((0, 1), 2), ((0, 2), 1), ((1, 2), 0)):
        pair[(i, j)], status = max_union_entropy_cvxpy(P.sum(axis=drop), solver=solver, fallbacks=fallbacks)
        statuses.append(status)
    single = {i: _conditional_entropy_of(P.sum(axis=tuple(a for a in range(3) if a != i))) for i in range(3)}
    h_all = _conditional_entropy_of(P)
    mi = _entropy_nats(P.sum(axis=(0, 1, 2))) - h_all
    terms = {
        "synergy": h123 - h_all,
        "unique1": pair[(1, 2)] - h123, "unique2": pair[(0, 2)] - h123, "unique3": pair[(0, 1)] - h123,
        "shared12": h123 + single[2] - pair[(0, 2)] - pair[(1, 2)],
        "shared13": h123 + single[1] - pair[(0, 1)] - pair[(1, 2)],
        "shared23": h123 + single[0] - pair[(0, 1)] - pair[(0, 2)],
    }
    terms["redundancy"] = mi - sum(terms.values())
    out = {name: value / log_base for name, value in terms.items()}
    out["mi_joint"] = mi / log_base
    out["status"] = "optimal" if all(s == "optimal" for s in statuses) else "; ".join(statuses)
    return out


__all__ = ["CompiledProblem", "TERMS3", "decompose3_cvxpy", "decompose_cvxpy", "max_conditional_entropy_cvxpy",
           "max_union_entropy_cvxpy", "union_information_cvxpy"]
