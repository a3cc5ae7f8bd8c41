"""Independent reference solver: the BROJA program written in CVXPY.

For tests and benchmarks only; needs the ``reference`` extra (``pip install fastpid[reference]``).
Two formulations:

* ``"strong"`` (default): variables only on entries with P(x1,y) > 0 and P(x2,y) > 0, and an
  explicit pair-marginal variable s(x1,x2) = sum_y Q, so that every exponential cone touches
  one entry of s (the fastest CVXPY formulation known to us).
* ``"common"``: the formulation common in the multimodal-learning literature: a full
  (n1, n2) variable per label and the pair marginal written as a sum inside every cone.
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


def _conditional_entropy(Q):
    """H_Q(Y|X1,X2) in nats of a coupling, negative rounding noise clipped to 0."""
    Q = np.clip(Q, 0.0, None)
    m = Q.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(Q > 0, Q * np.log(Q / np.where(m > 0, m, 1.0)), 0.0)
    return -float(terms.sum())


def max_conditional_entropy_cvxpy(P, *, solver="CLARABEL", formulation="strong", solver_options=None):
    """max_{Q in Delta_P} H_Q(Y|X1,X2) in nats for one distribution ``P`` of shape (n1, n2, ny).

    Returns ``(value, status)``.
    """
    cp = _cvxpy()
    build = {"strong": _problem_strong, "common": _problem_common}.get(formulation)
    if build is None:
        raise ValueError(f"formulation must be 'strong' or 'common', got {formulation!r}")
    P = np.asarray(P, dtype=float)
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

    def field(v):
        return np.asarray(v, dtype=float).reshape(batch_shape) / log_base

    # CVXPY certifies nothing: bound is NaN.
    return result_from(
        values, informations, field, bound=np.full(len(flat), np.nan), converged=ok.reshape(batch_shape),
        iterations=np.zeros(batch_shape, dtype=np.int32), unit=unit, method=f"cvxpy-{solver.lower()}-{formulation}",
    )


__all__ = ["decompose_cvxpy", "max_conditional_entropy_cvxpy"]
