"""The solve of a validated float64 batch by one of fastpid's methods: the native kernels, the
default iteration caps, the hand-off between "exact" and "refine", and ``method="auto"``'s cost
model. Used by :func:`fastpid.decompose` (numpy and torch alike) and by the torch ops."""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _C

METHODS = ("auto", "exact", "refine", "proxy")
# Iteration caps per distribution. "exact": interior-point iterations (5 to 10 are typical;
# a run where the dual variable of a tiny marginal, 1e-13 or 1e-29 of the total, crawls 2 nats
# per iteration to its optimum needs 100 to 200: 9 of the 13 such stops at 100 iterations in
# the harsh sweep of 1.19 M draws, and the one stop of 100,000 structured draws, which took
# 104; results/robustness-sweep.json, robustness-structured.json). "refine": iterative-scaling
# steps (at most 200, see SCALING_ITERS) plus Newton steps.
DEFAULT_MAX_ITER = {"exact": 200, "refine": 1000, "proxy": 0}
SCALING_ITERS = 200  # refine: iterative-scaling steps before the Newton phase
# The method a distribution is handed to when the one asked for stops short of tol at its
# default cap (see hand_off).
HAND_OFF = {"exact": "refine", "refine": "exact"}
# "exact" takes a hand-off only where its dense Newton factor has at most this order
# (16.8 M doubles, 134 MB, for dense 64^3): beyond it, refine's answer stands as it is.
EXACT_HAND_OFF_ORDER = 4096


def native_solve(flat: np.ndarray, method: str, tol_nats: float, max_iter: int, coupling: bool, duals: bool, threads: int = 0):
    """Runs the native CPU kernel of ``method`` ("exact", "refine" or "proxy") on a validated
    (batch, n1, n2, ny) float64 array: a dict of per-distribution arrays (value, bound,
    converged, iterations, and coupling, dual1, dual2 when asked)."""
    if method == "exact":
        return _C.exact_cpu(flat, tol_nats, max_iter, coupling=coupling, duals=duals, threads=threads)
    if method == "refine":
        return _C.refine_cpu(flat, tol_nats, max_iter, coupling=coupling, duals=duals, threads=threads, scaling_iters=SCALING_ITERS)
    if method == "proxy":
        return _C.proxy_cpu(flat, tol_nats, coupling=coupling, duals=duals, threads=threads)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def solve_flat(flat: np.ndarray, method: str, tol_nats: float, max_iter: Optional[int], coupling: bool, duals: bool, threads: int = 0):
    """The native solve of ``method`` ("exact", "refine", "proxy" or "refine-then-exact": see
    choose_method) on a validated (batch, n1, n2, ny) float64 array. With ``max_iter=None``
    each distribution gets the method's default cap, and those left short of tol are handed to
    the other method (hand_off)."""
    if method == REFINE_THEN_EXACT:
        out = native_solve(flat, "refine", tol_nats, SCALING_ITERS, coupling, duals, threads)
        hand_off(out, flat, lambda sub: solve_flat(sub, "exact", tol_nats, max_iter, coupling, duals, threads))
        return out
    cap = DEFAULT_MAX_ITER[method] if max_iter is None else int(max_iter)
    out = native_solve(flat, method, tol_nats, cap, coupling, duals, threads)
    if max_iter is None and hand_off_allowed(method, flat.shape[1:]):
        other = HAND_OFF[method]
        hand_off(out, flat, lambda sub: native_solve(sub, other, tol_nats, DEFAULT_MAX_ITER[other], coupling, duals, threads))
    return out


def hand_off_allowed(method: str, shape) -> bool:
    """Whether distributions of ``shape`` (n1, n2, ny) that ``method`` leaves short of tol go to
    the other method: exact and refine hand to each other, exact only up to
    EXACT_HAND_OFF_ORDER."""
    if method not in HAND_OFF:
        return False
    n1, n2, ny = (int(n) for n in shape)
    return HAND_OFF[method] != "exact" or min(min(n1, n2) * ny, n1 * n2) <= EXACT_HAND_OFF_ORDER


def hand_off(out: dict, batch, solve_other) -> None:
    """Re-solves the distributions of ``batch`` that ``out`` (a native solve's outputs, numpy
    or torch alike) left short of tol with ``solve_other`` (batch subset -> outputs of the
    same keys), and keeps, per distribution, the result with the smaller certified bound; the
    iterations of both count. In place.

    Why: each method has inputs it stalls on that the other solves in a few steps (measured:
    refine's augmented Lagrangian on near copies of a source, X2 = X1 up to flips of 1e-6 to
    1e-2, stalled on 62 of 200 draws; every one converged with the interior point); a stop
    short of tol is then a last resort, not the common case (results/structured_cpu.json)."""
    converged = out["converged"]
    short = np.flatnonzero(~converged.astype(bool)) if isinstance(converged, np.ndarray) else (~converged.bool()).nonzero().flatten()
    if len(short) == 0:
        return
    other = solve_other(batch[short])
    better = other["bound"] < out["bound"][short]
    chosen = short[better]
    for key in ("value", "bound", "converged", "coupling", "dual1", "dual2"):
        if key in out and key in other and len(out[key]) == len(out["value"]):
            out[key][chosen] = other[key][better]
    out["iterations"][short] += other["iterations"]


def structure_of(flat: np.ndarray):
    """Per distribution of ``flat`` (batch, n1, n2, ny): the multiply-adds of one interior-point
    factorisation (the cheaper of the two eliminations as csrc/cpu/exact_cpu.cpp counts them,
    cost_on_sources and cost_on_cells three times as dear) and the density, the fraction of the
    solvers' unknowns (entries whose two marginals are positive) where P itself is positive."""
    m1 = flat.sum(2) > 0  # (batch, n1, ny): the alpha variables
    m2 = flat.sum(1) > 0  # (batch, n2, ny): the beta variables
    if m2.sum() > m1.sum():  # the side with fewer variables is the Schur side
        m1, m2 = m2, m1
    f1, f2 = m1.astype(np.float64), m2.astype(np.float64)
    per_label = f2.sum(1)  # (batch, ny): betas per label
    k = f1.sum(2)  # (batch, n1): alphas per block
    triples_of_block = np.einsum("bxy,by->bx", f1, per_label)
    order = f2.sum((1, 2))
    sources = order**3 / 3 + (k**3 / 3 + k * k * triples_of_block + k * triples_of_block**2 / 2).sum(1)
    cells_count = (np.einsum("bxy,bzy->bxz", f1, f2) > 0).sum((1, 2)).astype(np.float64)
    alphas_per_label = f1.sum(1)
    cells = 3.0 * (cells_count**3 / 3 + (1.4 * (alphas_per_label + per_label) ** 3 + (alphas_per_label * per_label) ** 2).sum(1))
    return np.minimum(sources, cells), density_of(flat)


def density_of(flat: np.ndarray) -> np.ndarray:
    """Per distribution of ``flat`` (batch, n1, n2, ny): the fraction of the solvers' unknowns
    (entries whose two marginals are positive) where P itself is positive."""
    per_label = (flat.sum(2) > 0).sum(1) * (flat.sum(1) > 0).sum(1)  # (batch, ny)
    return np.count_nonzero(flat.reshape(len(flat), -1), axis=1) / np.maximum(per_label.sum(1), 1)


def refine_cost(n1: int, n2: int, ny: int) -> float:
    """Multiply-adds of refine's scaling phase on an (n1, n2, ny) distribution (its dense
    arrays, whatever the structure; SCALING_ITERS steps of three passes)."""
    return float(SCALING_ITERS * 3 * n1 * n2 * ny)


# method="auto" (choose_method), calibrated by benchmarks/bench_auto.py (results/auto_cpu.json:
# every case of bench_size, more dense cubes and structured inputs, the three timed in one run):
AUTO_REFINE_ABOVE = 60.0  # exact's work per factorisation over refine's scaling phase above
                          # which refine is faster on dense inputs
AUTO_DENSE = 0.5          # density from which refine's Newton phase is reliably fast
AUTO_LABELS_PER_CELL = 50  # dense inputs with this many labels per source cell: refine
AUTO_PROBE_ABOVE = 25.0   # on sparse inputs, the work ratio above which refine's scaling phase
                          # (at most 1/25 of one exact factorisation) is tried first
AUTO_SAMPLE = 64          # distributions of a batch whose structure auto looks at
REFINE_THEN_EXACT = "refine-then-exact"  # refine's scaling phase, then exact where it is short


def choose_method(shape, sample=None) -> str:
    """``method="auto"``: "exact" or "refine" for a batch of distributions of ``shape`` (n1,
    n2, ny). ``sample()`` returns some of them (float64 numpy, (k, n1, n2, ny)); it is called
    only where the shape leaves the choice open. Measured (results/auto_cpu.json): refine is
    the faster method on dense inputs whose interior-point factorisation costs far more than
    refine's scaling phase (dense 40^3: 0.14 s against 0.55, 64^3: 0.74 against 8.6; dense
    32^3 and 128 x 128 x 16 are about even) and on dense inputs with many labels per cell of
    the sources (4 x 4 x 1000 by 10 to 15%, 2 x 2 x 500 by 2x; 4 x 4 x 100 and 300 are even);
    exact everywhere else, sparse inputs
    above all (a 64^3 histogram of 20,000 samples: 6.8 s against 22 s; 20 x 20 histograms: 2x
    to 25x faster). Not seen by the rule: refine is faster on some large deterministic
    structures, which its scaling phase alone can certify (a duplicated source 40^3: 6 ms against
    0.37 s) or its Newton phase solves in a few steps (a 40 x 40 sum gate: 34 ms against 0.5 s).
    So:

    - dense inputs (density >= AUTO_DENSE) with ny >= AUTO_LABELS_PER_CELL n1 n2: "refine"
      (density_of only, which costs little on these small sources);
    - dense inputs whose exact work exceeds AUTO_REFINE_ABOVE times refine's scaling phase:
      "refine";
    - sparse inputs whose exact work exceeds AUTO_PROBE_ABOVE times refine's scaling phase:
      "refine-then-exact", refine's scaling phase (certified every 25 steps) and exact for the
      distributions it leaves short of tol, which costs a few percent of exact's time where the
      phase does not certify them (the sum gate above);
    - otherwise "exact".
    """
    n1, n2, ny = (int(n) for n in shape)
    small, large = min(n1, n2), max(n1, n2)
    scaling = refine_cost(n1, n2, ny)
    many_labels = ny >= AUTO_LABELS_PER_CELL * n1 * n2
    # structure_of's count for a distribution with every entry positive, the most there can be
    sources = (small * ny) ** 3 / 3 + large * (ny**3 / 3 + ny * ny * small * ny + ny * (small * ny) ** 2 / 2)
    cells = 3.0 * ((n1 * n2) ** 3 / 3 + ny * (1.4 * (n1 + n2) ** 3 + (n1 * n2) ** 2))
    worst = min(sources, cells)
    if worst <= AUTO_REFINE_ABOVE * scaling and not many_labels:
        return "exact"
    if sample is None:  # no look at the data (torch.compile): as if dense
        return "refine"
    some = sample()
    if len(some) == 0:
        return "exact"
    if many_labels:  # the cost model is not needed, nor its price (tens of microseconds)
        return "refine" if float(np.mean(density_of(some))) >= AUTO_DENSE else "exact"
    cost, density = (float(np.mean(v)) for v in structure_of(some))
    if density < AUTO_DENSE:
        return REFINE_THEN_EXACT if cost > AUTO_PROBE_ABOVE * scaling else "exact"
    return "refine" if cost > AUTO_REFINE_ABOVE * scaling else "exact"


def evenly_spaced(batch, count: int = AUTO_SAMPLE):
    """At most ``count`` distributions of ``batch`` (first axis), evenly spaced."""
    return batch[np.unique(np.linspace(0, len(batch) - 1, min(count, len(batch))).astype(np.int64))] if len(batch) else batch
