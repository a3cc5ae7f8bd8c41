"""``decompose``: the public entry point of the BROJA partial information decomposition."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._backend import as_flat, check_shape, is_torch, unit_of
from ._run import CURRENT_PROGRESS, ProgressArg, solve_batch, threads_of
from .result import MEASURES, PIDResult

from ._solve import (  # noqa: F401  (re-exported: the public home of the method names and caps)
    AUTO_SAMPLE, DEFAULT_MAX_ITER, EXACT_HAND_OFF_ORDER, HAND_OFF, METHODS, REFINE_THEN_EXACT, SCALING_ITERS,
    choose_method, density_of, evenly_spaced, hand_off, hand_off_allowed, native_solve, refine_cost, solve_flat,
    structure_of,
)


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
# Sums over the entries of P that an atom of decompose is a signed combination of: the
# coupling's entropy and its cells' (the solver's value), and H(X1,X2,Y), H(X1,X2), H(X1,Y),
# H(X1), H(X2,Y), H(X2), H(Y) (the informations).
ENTROPY_SUMS = 9


def summation_rounding(entries: int, sums: int, log_base: float) -> float:
    """What rounding can leave in a signed combination of ``sums`` entropy-like sums over
    ``entries`` terms each, in the unit of ``log_base``: each sum is at most log(entries) nats
    and is off by about sqrt(entries) units of the last place of that (random rounding; 16 + 2
    sqrt(entries) of them here). Without it the uniform 30x30x2 came back with atoms 1.4e-13
    bits from their exact 0 and a bound of 1e-27: the solver's gap is exact there, its
    evaluation is not."""
    entries = max(int(entries), 1)
    return np.finfo(np.float64).eps * (16 + 2 * np.sqrt(entries)) * sums * np.log(entries) / log_base


def output_bound(stacked, float32: bool, rounding: float, n_atoms: int = 4):
    """The certified bound as returned, in the output unit: ``stacked`` holds the measures in
    the output unit in float64 (numpy or torch, shape (m, ...)): the ``n_atoms`` atoms (or
    terms) first, then the other quantities they were computed from, then the solver's bound
    (MEASURES order for decompose's eight: ``n_atoms`` = 4).
    The solver's bound, plus ``rounding`` (summation_rounding: the evaluation of the entropies
    behind the atoms, in the output unit), plus EVALUATION_ULPS units of the last place of the
    atoms' scale, plus, for float32 results, the largest rounding of an atom to float32 (up to
    6e-8 of it: 3e-7 bits for a 5-bit atom); rounded up to float32 there. Without the last term
    a float32 X1 = X2 = Y on 18 values came back with R off by 2.1e-7 bits and a bound of
    8.9e-17."""
    atoms, informations, bound = stacked[:n_atoms], stacked[n_atoms:-1], stacked[-1]
    torch_input = not isinstance(stacked, np.ndarray)
    scale = abs(atoms).sum(0) + abs(informations).sum(0)
    honest = bound + rounding + EVALUATION_ULPS * np.finfo(np.float64).eps * scale
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


# The native kernels count iterations in a 32-bit int.
MAX_ITER_LIMIT = 2**31 - 1


def _check_torch_input(P) -> None:
    """Clear errors for the torch tensors fastpid cannot take: without data (meta, fake), or
    inside a torch.func transform (grad, vmap, jacrev), which the native op does not support."""
    import torch

    if torch.compiler.is_compiling():  # traced with fake tensors: the eager call checked the real ones
        return
    if P.device.type == "meta":
        raise ValueError("P is a meta tensor (shape only, no data): fastpid needs the values of P")
    try:
        from torch._C._functorch import is_batchedtensor, is_gradtrackingtensor
    except ImportError:  # pragma: no cover - torch without functorch's internals
        return
    if is_batchedtensor(P) or is_gradtrackingtensor(P):
        raise ValueError("fastpid.decompose does not run inside torch.func transforms (grad, vmap, jacrev): batch the "
                         "distributions along P's leading axes instead of vmap, and use .backward() or "
                         "torch.autograd.grad instead of torch.func.grad")


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
    progress: ProgressArg = None,
    sources: int = 2,
):
    """BROJA partial information decomposition of one or many distributions P(X1, X2, Y)
    (``sources=2``, the default), or the trivariate maximum-entropy decomposition of
    P(X1, X2, X3, Y) (``sources=3``).

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
        max_iter: iteration cap per distribution (default 200 for "exact", 1000 for
            "refine", counting its scaling and Newton steps, and the hand-off above); given
            explicitly, the method runs alone within it, and a distribution that hits it is
            reported with ``converged=False`` and its honest bound.
        base: logarithm base of the results: 2 (bits, default) or ``math.e`` (nats).
        normalize: accept counts or unnormalised weights and divide each distribution by its
            total; otherwise a total off 1 by more than 1e-6 is an error.
        return_coupling: also return the optimal coupling Q (same shape as ``P``).
        threads: CPU threads of the native kernels (default None: all; in a process forked
            from one that had used them, 1, see README "Large jobs").
        progress: ``True`` shows a progress bar on stderr (tqdm when installed), ``False``
            none, a callable ``progress(done, total)`` is called as the batch goes; the
            default ``None`` shows the bar for calls predicted to take more than a few seconds
            when stderr is a terminal.
        sources: 2 (BROJA) or 3: P of shape ``(..., n1, n2, n3, ny)`` and a
            :class:`~fastpid.result.PID3Result` of the eight terms (synergy, redundancy,
            unique1..3, shared12, shared13, shared23; README "More than two sources"), each
            within ``bound`` <= tol. ``method`` then picks the pairwise problems' solver
            ("auto", "exact" or "refine"); ``return_coupling`` is not available. For more
            sources, :func:`fastpid.union_information` gives the union information and synergy.

    The batch is solved a chunk at a time (memory above the input: one chunk's temporaries,
    64 MiB, plus the outputs), and Ctrl-C stops a call within about a second with
    KeyboardInterrupt.

    Returns:
        PIDResult (PID3Result for ``sources=3``) with fields of the batch shape, in the same
        library (numpy or torch), device and float dtype as ``P``.

    Raises:
        ValueError: bad input, naming the first bad distribution and the reason.
    """
    if isinstance(sources, bool) or sources not in (2, 3):
        more = " (for more sources, fastpid.union_information gives the union information and synergy)"
        raise ValueError(f"sources must be 2 or 3, got {sources!r}" + (more if isinstance(sources, int) and sources > 3 else ""))
    if sources == 3:
        if return_coupling:
            raise ValueError("return_coupling is not available with sources=3")
        from .sources import decompose3

        if is_torch(P):
            _check_torch_input(P)
        return decompose3(P, method=method, tol=tol, max_iter=max_iter, base=base, normalize=normalize, threads=threads,
                          progress=progress)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    unit, log_base = unit_of(base)
    if not (tol > 0):
        raise ValueError(f"tol must be positive, got {tol!r}")
    if max_iter is not None and not 0 <= int(max_iter) <= MAX_ITER_LIMIT:
        raise ValueError(f"max_iter must be between 0 and {MAX_ITER_LIMIT:,} (0: the certified start point), got {max_iter!r}")
    threads = threads_of(threads)
    if is_torch(P):
        _check_torch_input(P)
        return _decompose_torch(P, method, tol * log_base, max_iter, unit, log_base, normalize, return_coupling, threads,
                                progress)
    if np.ma.isMaskedArray(P):
        raise ValueError("P is a masked array: a masked entry has no probability; fill it (P.filled(0.0)) or drop it first")
    flat, batch_shape, kind = as_flat(P)
    n1, n2, ny = flat.shape[1:]
    out = solve_batch(flat, method, tol * log_base, max_iter, batch_shape=batch_shape, normalize=normalize,
                      coupling_dtype=kind.dtype if return_coupling else None, threads=threads, progress=progress)
    informations = dict(zip(INFORMATIONS, out["informations"].T))

    def convert(measures):  # all at once: one division and one cast (results/exact_assembly_cpu.json)
        stacked = np.stack(measures).reshape((len(measures),) + batch_shape) / log_base
        bound = kind.wrap(output_bound(stacked, kind.dtype == np.float32, summation_rounding(n1 * n2 * ny, ENTROPY_SUMS, log_base)))
        stacked = kind.wrap(stacked)
        return [stacked[i, ...] for i in range(len(measures) - 1)] + [bound]

    return result_from(
        out["value"], informations, convert, bound=out["bound"],
        converged=kind.wrap_index(out["converged"].reshape(batch_shape) & np.isfinite(out["value"]).reshape(batch_shape)),
        iterations=kind.wrap_index(out["iterations"].reshape(batch_shape)), unit=unit, method=out["method"],
        coupling=out["coupling"].reshape(batch_shape + (n1, n2, ny)) if return_coupling else None,
    )


# The columns of the informations the native kernels and fastpid::decompose return.
INFORMATIONS = ("mi_x1", "mi_x2", "mi_joint", "entropy_y")


def _decompose_torch(P, method, tol_nats, max_iter, unit, log_base, normalize, return_coupling, threads, progress):
    """decompose() for torch tensors, through the fastpid::decompose op: differentiable, on P's
    device, a chunk at a time, torch.compile-friendly."""
    import torch

    from . import torch_ops

    check_shape(tuple(P.shape))
    if P.is_complex():
        raise ValueError(f"P must be real, got dtype {P.dtype}")
    out_dtype = P.dtype if P.dtype in (torch.float32, torch.float64) else torch.float64
    batch_shape = tuple(P.shape[:-3])
    n1, n2, ny = P.shape[-3:]
    flat = P.reshape(-1, n1, n2, ny).to(out_dtype)  # a view, unless P is of another dtype
    compiling = torch.compiler.is_compiling()
    if not compiling:
        # Checked here (and again in the op, which torch.compile runs without this) so that the
        # sample auto looks at is valid; messages name the bad index.
        torch_ops.validate(flat, normalize=normalize, batch_shape=batch_shape)
    if method == "auto":  # the data is looked at only where the shape leaves the choice open
        method = choose_method((n1, n2, ny), None if compiling else lambda: torch_ops.sample_of(flat))
    # The op's schema takes no callables: it reads the progress argument from a context
    # variable (not under torch.compile, which cannot trace one; the op reports as for None).
    token = None if compiling else CURRENT_PROGRESS.set(progress)
    try:
        value, bound, converged, iterations, informations, _, _, coupling = torch.ops.fastpid.decompose(
            flat, tol_nats, -1 if max_iter is None else int(max_iter), method, return_coupling, normalize, threads)
    finally:
        if token is not None:
            CURRENT_PROGRESS.reset(token)

    def convert(measures):
        stacked = torch.stack([v.reshape(batch_shape) for v in measures]) / log_base
        rounding = summation_rounding(n1 * n2 * ny, ENTROPY_SUMS, log_base)
        bound = output_bound(stacked.detach(), out_dtype == torch.float32, rounding).to(out_dtype)
        return [stacked[i].to(out_dtype) for i in range(len(measures) - 1)] + [bound]

    return result_from(
        value, dict(zip(INFORMATIONS, informations.unbind(1))), convert, bound=bound,
        converged=(converged & torch.isfinite(value)).reshape(batch_shape), iterations=iterations.reshape(batch_shape),
        unit=unit, method=method, coupling=coupling.reshape(batch_shape + (n1, n2, ny)) if return_coupling else None,
    )
