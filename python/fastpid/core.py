"""``decompose``: the public entry point of the BROJA partial information decomposition."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _C
from ._backend import check_shape, is_torch, to_batch, unit_of
from .info import pid_informations, pid_informations_nats
from .result import MEASURES, PIDResult

METHODS = ("auto", "exact", "refine", "proxy")
# Iteration caps per distribution. "exact": interior-point iterations (5 to 9 are typical).
# "refine": iterative-scaling steps (at most 200, see SCALING_ITERS) plus Newton steps.
DEFAULT_MAX_ITER = {"exact": 100, "refine": 1000, "proxy": 0}
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
    """The native solve of ``method`` (not "auto": see choose_method) on a validated (batch,
    n1, n2, ny) float64 array. With ``max_iter=None`` each distribution gets the method's
    default cap, and those left short of tol are handed to the other method (hand_off)."""
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


def choose_method(n1: int, n2: int, ny: int) -> str:
    """``method="auto"``: "exact" or "refine" for distributions of shape (n1, n2, ny), by the
    cost model of the two (see :data:`AUTO_REFINE_ABOVE`)."""
    return "refine" if exact_cost(n1, n2, ny) > AUTO_REFINE_ABOVE * refine_cost(n1, n2, ny) else "exact"


def exact_cost(n1: int, n2: int, ny: int) -> float:
    """Multiply-adds of one interior-point factorisation of a dense (n1, n2, ny) distribution:
    the cheaper of the two eliminations (csrc/cpu/exact_cpu.cpp, cost_on_sources and
    cost_on_cells, the cells' counted three times as dear)."""
    small, large = min(n1, n2), max(n1, n2)
    sources = (small * ny) ** 3 / 3 + large * (ny**3 / 3 + small * ny * ny * ny / 2)
    cells = 3.0 * ((n1 * n2) ** 3 / 3 + ny * 1.4 * (n1 + n2) ** 3 + ny * (n1 * n2) ** 2)
    return float(min(sources, cells))


def refine_cost(n1: int, n2: int, ny: int) -> float:
    """Multiply-adds of refine's work that grows fastest: its scaling steps over the dense
    arrays and the per-label Cholesky factors of its Newton steps."""
    small = min(n1, n2)
    return float(SCALING_ITERS * 3 * n1 * n2 * ny + 20 * ny * (small**3 / 3 + n1 * n2 * small))


# Calibrated in benchmarks/bench_size.py (results/auto_cpu.json): see choose_method.
AUTO_REFINE_ABOVE = 1.0


def atoms_from(value_nats, informations_nats):
    """PID atoms (nats) from max H_Q(Y|X1,X2) and the mutual informations of P.

    ``union`` = min_Q I_Q(X1,X2;Y) = H(Y) - max_Q H_Q(Y|X1,X2) = R + U1 + U2.
    """
    mi1, mi2, mi12 = informations_nats["mi_x1"], informations_nats["mi_x2"], informations_nats["mi_joint"]
    union = informations_nats["entropy_y"] - value_nats
    return {
        "redundancy": mi1 + mi2 - union,
        "unique1": union - mi2,
        "unique2": union - mi1,
        "synergy": mi12 - union,
    }


def result_from(value_nats, informations_nats, convert, *, bound, converged, iterations, unit, method, coupling=None) -> PIDResult:
    """The PIDResult of solved values: atoms from the value (see atoms_from), then
    ``convert`` applied to the list of the eight measures in nats, in the order of
    :data:`fastpid.result.MEASURES` (the four atoms, the three mutual informations, ``bound``),
    returning them as fields (unit, batch shape, library and device). ``converged``,
    ``iterations`` and ``coupling`` are passed as given."""
    atoms = atoms_from(value_nats, informations_nats)
    measures = [*atoms.values(), *(informations_nats[name] for name in ("mi_x1", "mi_x2", "mi_joint")), bound]
    return PIDResult(
        **dict(zip(MEASURES, convert(measures))),
        converged=converged, iterations=iterations, unit=unit, method=method, coupling=coupling,
    )


# The atoms are differences of a few quantities of at most H(Y) + |value| (nats), each a few
# float64 operations away from the solver's; this many units of the last place of that scale
# cover their evaluation and the conversion of unit (see output_bound).
EVALUATION_ULPS = 8


def output_bound(stacked, float32: bool):
    """The certified bound as returned, in the output unit: ``stacked`` holds the eight
    measures in the output unit in float64 (numpy or torch, shape (8, ...), MEASURES order).
    The solver's bound, plus EVALUATION_ULPS units of the last place of the atoms' scale, plus,
    for float32 results, the largest rounding of an atom to float32 (up to 6e-8 of it: 3e-7
    bits for a 5-bit atom); rounded up to float32 there. Without the last term a float32
    X1 = X2 = Y on 18 values came back with R off by 2.1e-7 bits and a bound of 8.9e-17."""
    atoms, informations, bound = stacked[:4], stacked[4:7], stacked[7]
    torch_input = not isinstance(stacked, np.ndarray)
    scale = abs(atoms).sum(0) + abs(informations).sum(0)
    honest = bound + EVALUATION_ULPS * np.finfo(np.float64).eps * scale
    if not float32:
        return honest
    if torch_input:
        import torch

        cast = atoms.to(torch.float32).to(torch.float64)
        honest = honest + (cast - atoms).abs().amax(0)
        single = honest.to(torch.float32)
        return torch.where(single.to(torch.float64) < honest, torch.nextafter(single, torch.full_like(single, float("inf"))), single)
    honest = honest + np.abs(atoms.astype(np.float32).astype(np.float64) - atoms).max(0)
    single = honest.astype(np.float32)
    return np.where(single.astype(np.float64) < honest, np.nextafter(single, np.float32(np.inf)), single)


def decompose(
    P: Any,
    *,
    method: str = "auto",
    tol: float = 1e-7,
    max_iter: Optional[int] = None,
    base=2,
    normalize: bool = False,
    return_coupling: bool = False,
    threads: Optional[int] = None,
) -> PIDResult:
    """BROJA partial information decomposition of one or many distributions P(X1, X2, Y).

    Args:
        P: numpy array or torch tensor of shape ``(..., n1, n2, ny)`` (any number of leading
            batch axes), float32 or float64, non-negative, each distribution summing to 1.
        method: ``"auto"`` (the default: "exact" or "refine", whichever the cost model of
            :func:`fastpid.core.choose_method` predicts faster for the shape; ``result.method``
            says which ran), ``"exact"`` (interior-point solve to the certified tolerance),
            ``"refine"`` (iterative scaling from the closed-form proxy, then a semismooth Newton
            augmented-Lagrangian method, memory linear in the size of P: the method for large
            alphabets) or ``"proxy"`` (the closed-form conditional-independence coupling, with
            its certified bound). With the default ``max_iter``, a distribution that "exact" or
            "refine" leaves short of tol is re-solved by the other one and the result with the
            smaller bound kept (its ``iterations`` count both).
        tol: certified accuracy to reach for every atom, in the unit of ``base``; each
            distribution stops on its own once its bound is below ``tol``.
        max_iter: iteration cap per distribution (default 100 for "exact", 1000 for
            "refine", counting its scaling and Newton steps, and the hand-off above); given
            explicitly, the method runs alone within it, and a distribution that hits it is
            reported with ``converged=False`` and its honest bound.
        base: logarithm base of the results: 2 (bits, default) or ``math.e`` (nats).
        normalize: accept counts or unnormalised weights and divide each distribution by its
            total; otherwise a total off 1 by more than 1e-6 is an error.
        return_coupling: also return the optimal coupling Q (same shape as ``P``).
        threads: OpenMP threads over the batch (default: all).

    Returns:
        PIDResult with fields of the batch shape, in the same library (numpy or torch),
        device and float dtype as ``P``.

    Raises:
        ValueError: bad input, naming the first bad distribution and the reason.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    unit, log_base = unit_of(base)
    if not (tol > 0):
        raise ValueError(f"tol must be positive, got {tol!r}")
    if max_iter is not None and int(max_iter) < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter!r}")
    if is_torch(P):
        return _decompose_torch(P, method, tol * log_base, max_iter, unit, log_base, normalize, return_coupling)
    flat, batch_shape, kind = to_batch(P, normalize=normalize)
    n1, n2, ny = flat.shape[1:]
    method = choose_method(n1, n2, ny) if method == "auto" else method

    out = solve_flat(flat, method, tol * log_base, max_iter, return_coupling, False, int(threads or 0))
    informations = pid_informations_nats(flat)

    def convert(measures):  # all at once: one division and one cast (results/exact_assembly_cpu.json)
        stacked = np.stack(measures).reshape((len(measures),) + batch_shape) / log_base
        bound = kind.wrap(output_bound(stacked, kind.dtype == np.float32))
        stacked = kind.wrap(stacked)
        return [stacked[i, ...] for i in range(len(measures) - 1)] + [bound]

    return result_from(
        out["value"], informations, convert, bound=out["bound"],
        converged=kind.wrap_index(out["converged"].reshape(batch_shape) & np.isfinite(out["value"]).reshape(batch_shape)),
        iterations=kind.wrap_index(out["iterations"].reshape(batch_shape)), unit=unit, method=method,
        coupling=kind.wrap(out["coupling"].reshape(batch_shape + (n1, n2, ny))) if return_coupling else None,
    )


def _decompose_torch(P, method, tol_nats, max_iter, unit, log_base, normalize, return_coupling):
    """decompose() for torch tensors: differentiable, on P's device, torch.compile-friendly."""
    import torch

    from . import torch_ops  # noqa: F401  (registers the fastpid:: ops)

    check_shape(tuple(P.shape))
    if not torch.compiler.is_compiling():
        # Full checks with messages naming the bad index; for CUDA tensors on the device.
        if P.is_cuda:
            torch_ops.check_cuda(P.reshape((-1,) + tuple(P.shape[-3:])), normalize=normalize, batch_shape=tuple(P.shape[:-3]))
        else:
            to_batch(P, normalize=normalize)
    out_dtype = P.dtype if P.dtype in (torch.float32, torch.float64) else torch.float64
    batch_shape = tuple(P.shape[:-3])
    n1, n2, ny = P.shape[-3:]
    Pd = P.to(torch.float64)
    if normalize:
        Pd = Pd / Pd.sum(dim=(-3, -2, -1), keepdim=True)
    # Zero cells get gradient 0 in every term (README, "Gradients"): the graph sees them as
    # constants, without changing any value.
    Pd = torch.where(Pd > 0, Pd, Pd.detach())
    flat = Pd.reshape(-1, n1, n2, ny).contiguous()
    method = choose_method(n1, n2, ny) if method == "auto" else method
    # max_iter -1: the method's default cap, with the hand-off (solve_flat)
    value, bound, converged, iterations, _, _, coupling = torch.ops.fastpid.solve(
        flat, tol_nats, -1 if max_iter is None else int(max_iter), method, return_coupling)
    informations = pid_informations(flat, base=np.e)

    def convert(measures):
        stacked = torch.stack([v.reshape(batch_shape) for v in measures]) / log_base
        bound = output_bound(stacked.detach(), out_dtype == torch.float32).to(out_dtype)
        return [stacked[i].to(out_dtype) for i in range(len(measures) - 1)] + [bound]

    return result_from(
        value, informations, convert, bound=bound, converged=(converged & torch.isfinite(value)).reshape(batch_shape),
        iterations=iterations.reshape(batch_shape), unit=unit, method=method,
        coupling=coupling.reshape(batch_shape + (n1, n2, ny)).to(out_dtype) if return_coupling else None,
    )
