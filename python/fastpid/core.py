"""``decompose``: the public entry point of the BROJA partial information decomposition."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _C
from ._backend import check_shape, is_torch, to_batch, unit_of
from .info import pid_informations, pid_informations_nats
from .result import MEASURES, PIDResult

METHODS = ("exact", "refine", "proxy")
# Iteration caps per distribution. "exact": interior-point iterations (5 to 9 are typical).
# "refine": iterative-scaling steps (at most 200, see SCALING_ITERS) plus Newton steps.
DEFAULT_MAX_ITER = {"exact": 100, "refine": 1000, "proxy": 0}
SCALING_ITERS = 200  # refine: iterative-scaling steps before the Newton phase


def solve_flat(flat: np.ndarray, method: str, tol_nats: float, max_iter: int, coupling: bool, duals: bool, threads: int = 0):
    """Runs the native CPU kernel of ``method`` on a validated (batch, n1, n2, ny) float64 array."""
    if method == "exact":
        return _C.exact_cpu(flat, tol_nats, max_iter, coupling=coupling, duals=duals, threads=threads)
    if method == "refine":
        return _C.refine_cpu(flat, tol_nats, max_iter, coupling=coupling, duals=duals, threads=threads, scaling_iters=SCALING_ITERS)
    if method == "proxy":
        return _C.proxy_cpu(flat, tol_nats, coupling=coupling, duals=duals, threads=threads)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


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


def decompose(
    P: Any,
    *,
    method: str = "exact",
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
        method: ``"exact"`` (interior-point solve to the certified tolerance; the default),
            ``"refine"`` (iterative scaling from the closed-form proxy, then a semismooth Newton
            augmented-Lagrangian method, memory linear in the size of P: the method for large
            alphabets and for CUDA tensors) or ``"proxy"`` (the closed-form conditional-
            independence coupling, with its certified bound).
        tol: certified accuracy to reach for every atom, in the unit of ``base``; each
            distribution stops on its own once its bound is below ``tol``.
        max_iter: iteration cap per distribution (default 100 for "exact", 1000 for
            "refine", counting its scaling and Newton steps); a distribution that hits it is
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
    if max_iter is None:
        max_iter = DEFAULT_MAX_ITER[method]
    if int(max_iter) < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter!r}")
    if is_torch(P):
        return _decompose_torch(P, method, tol * log_base, int(max_iter), unit, log_base, normalize, return_coupling)
    flat, batch_shape, kind = to_batch(P, normalize=normalize)
    n1, n2, ny = flat.shape[1:]

    out = solve_flat(flat, method, tol * log_base, int(max_iter), return_coupling, False, int(threads or 0))
    informations = pid_informations_nats(flat)

    def convert(measures):  # all at once: one division and one cast (results/exact_assembly_cpu.json)
        stacked = kind.wrap(np.stack(measures).reshape((len(measures),) + batch_shape) / log_base)
        return [stacked[i, ...] for i in range(len(measures))]

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
    value, bound, converged, iterations, _, _, coupling = torch.ops.fastpid.solve(flat, tol_nats, max_iter, method, return_coupling)
    informations = pid_informations(flat, base=np.e)

    def convert(measures):
        return [(v / log_base).reshape(batch_shape).to(out_dtype) for v in measures]

    return result_from(
        value, informations, convert, bound=bound, converged=(converged & torch.isfinite(value)).reshape(batch_shape),
        iterations=iterations.reshape(batch_shape), unit=unit, method=method,
        coupling=coupling.reshape(batch_shape + (n1, n2, ny)).to(out_dtype) if return_coupling else None,
    )
