"""fastpid on a Dask cluster: batches beyond one machine (the ``dask`` extra:
``pip install "fastpid[dask]"``).

    >>> import dask.array as da, fastpid.dask
    >>> P = da.from_zarr("histograms.zarr")            # (..., n1, n2, ny), chunked over the batch
    >>> lazy = fastpid.dask.decompose(P, tol=1e-7)    # a PIDResult of lazy dask arrays
    >>> r = fastpid.dask.compute(lazy)                # one pass over P: a PIDResult of numpy arrays

Each chunk of the batch is one task, solved by :func:`fastpid.decompose` on whichever worker
holds it; the work and its results are dask's to schedule, move and recompute: a worker lost in
the middle of a job has its tasks run again elsewhere (decompose is a pure function of its
chunk), and any ``dask.distributed`` cluster works, from a ``LocalCluster`` to a multi-machine
one (``Client("tcp://scheduler:8786")``) or one started on an HPC scheduler by dask-jobqueue
(README, "Large jobs"). Chunks of a few thousand distributions (tens of MB) keep the
scheduler's overhead, about 1 ms per task, negligible.

Each task runs its native kernels on ``threads=1`` unless told otherwise: a dask worker runs
one task per thread of its own, so the cores are used by the worker's threads
(``--nthreads``), and a task that also took every core would oversubscribe them.
"""
from __future__ import annotations

from typing import Any, Iterable, List

import numpy as np

from .result import MEASURES, MEASURES3, PID3Result, PIDResult


def _layout(sources: int):
    """(result class, its measures, a task's output columns: the measures, then converged and
    iterations) of decompose with ``sources``."""
    result_class, measures = (PID3Result, MEASURES3) if sources == 3 else (PIDResult, MEASURES)
    return result_class, measures, measures + ("converged", "iterations")


def _dask_array():
    try:
        import dask.array as da
    except ImportError as e:  # pragma: no cover - the message is the point
        raise ImportError('fastpid.dask needs dask: pip install "fastpid[dask]" (dask[array,distributed])') from e
    return da


def _solve_block(block: np.ndarray, kwargs: dict) -> np.ndarray:
    """One task: fastpid.decompose of a chunk (..., n1, n2, ny) (or (..., n1, n2, n3, ny) with
    sources=3), its results stacked along a last axis of columns in float64 (the chunk's batch
    shape, then the column: see _layout)."""
    from .core import decompose

    r = decompose(block, **kwargs)
    columns = _layout(kwargs.get("sources", 2))[2]
    return np.stack([np.asarray(getattr(r, name), dtype=np.float64) for name in columns], axis=-1)[..., None, :]


def decompose(P: Any, **kwargs):
    """:func:`fastpid.decompose` of a dask array ``P`` of shape ``(..., n1, n2, ny)`` (or
    ``(..., n1, n2, n3, ny)`` with ``sources=3``), chunked over its batch axes (its last axes are
    brought to one chunk each): a PIDResult (PID3Result) whose fields are lazy dask arrays of the
    batch shape, chunked as P's batch axes. Compute them together (:func:`compute`, or
    ``dask.compute(r.synergy, r.bound, ...)``) so that each chunk is solved once.

    Keyword arguments are decompose's (``method``, ``tol``, ``max_iter``, ``base``,
    ``normalize``, ``sources``, ``threads``: default 1 per task, see the module docstring), but not
    ``return_coupling`` (a coupling is as large as P: solve the chunks you need it for with
    fastpid.decompose) or ``progress`` (dask's dashboard and ``dask.diagnostics`` show it).
    ``result.method`` is the method asked for: with "auto" each chunk chooses its own.
    Inputs are checked in the tasks: a bad distribution raises its ValueError (with its index
    in the chunk) when the result is computed.
    """
    da = _dask_array()
    for name in ("return_coupling", "progress"):
        if kwargs.get(name):
            raise ValueError(f"fastpid.dask.decompose does not take {name}= (see its docstring)")
        kwargs.pop(name, None)
    kwargs.setdefault("threads", 1)
    kwargs["progress"] = False
    P = da.asarray(P)
    sources = kwargs.get("sources", 2)
    if isinstance(sources, bool) or sources not in (2, 3):
        raise ValueError(f"sources must be 2 or 3, got {sources!r}")
    core = sources + 1
    if P.ndim < core:
        raise ValueError(f"P must have shape (..., n1, ..., ny) with at least {core} dimensions for sources={sources}, "
                         f"got shape {P.shape}")
    if not (np.issubdtype(P.dtype, np.number) or P.dtype == bool) or np.issubdtype(P.dtype, np.complexfloating):
        raise ValueError(f"P must be a real numeric array, got dtype {P.dtype}")
    nd = P.ndim
    P = P.rechunk({axis: -1 for axis in range(nd - core, nd)})
    result_class, measures, columns = _layout(sources)
    from ._backend import unit_of

    unit, _ = unit_of(kwargs.get("base", 2))
    stacked = da.map_blocks(
        _solve_block, P, kwargs, dtype=np.float64, drop_axis=list(range(nd - core + 2, nd)),
        chunks=P.chunks[: nd - core] + ((1,), (len(columns),)),
    )[..., 0, :]
    out_dtype = P.dtype if P.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    fields = {name: stacked[..., i].astype(out_dtype) for i, name in enumerate(measures)}
    return result_class(
        **fields,
        converged=stacked[..., len(measures)].astype(bool),
        iterations=stacked[..., len(measures) + 1].astype(np.int32),
        unit=unit, method=kwargs.get("method", "auto"),
    )


def compute(result, **compute_kwargs):
    """The PIDResult (PID3Result) of numpy arrays of a lazy one (from :func:`decompose`), every
    field computed in one pass over the input (``dask.compute``; keyword arguments go to it)."""
    import dask

    result_class, _, names = _layout(3 if isinstance(result, PID3Result) else 2)
    values = dask.compute(*(getattr(result, name) for name in names), **compute_kwargs)
    return result_class(**dict(zip(names, values)), unit=result.unit, method=result.method)


def estimate(samples: Iterable, **kwargs) -> List[Any]:
    """Many independent :func:`fastpid.estimate` calls as dask tasks, one per item of
    ``samples`` (each a tuple ``(x1, x2, y)``, or ``(x1, x2, x3, y)`` for three sources, of
    arrays or of dask delayed objects that load them, e.g. one per group or time bin): a list
    of ``dask.delayed`` Estimate objects, in
    order. ``dask.compute(*fastpid.dask.estimate(groups))`` runs them on the current scheduler
    (a ``dask.distributed`` Client, once created, is used). Keyword arguments are estimate's;
    ``threads`` (of its solves) defaults to 1 per task."""
    import dask

    from .estimate import estimate as estimate_one

    kwargs.setdefault("threads", 1)
    kwargs["progress"] = False
    tasks = []
    for i, item in enumerate(samples):
        try:
            *xs, y = item
        except (TypeError, ValueError):
            xs = ()
        if len(xs) not in (2, 3):
            raise ValueError(f"samples[{i}] must be a tuple (x1, x2, y) or (x1, x2, x3, y)")
        three = {"x3": xs[2]} if len(xs) == 3 else {}
        tasks.append(dask.delayed(estimate_one, pure=True)(xs[0], xs[1], y, **three, **kwargs))
    return tasks


__all__ = ["decompose", "compute", "estimate"]
