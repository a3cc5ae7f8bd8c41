"""More than two sources (docs/design.md section 7): the k-source union information
(:func:`union_information`) and the trivariate maximum-entropy decomposition
(``fastpid.decompose(P, sources=3)``, :class:`~fastpid.result.PID3Result`).

Both are built from optimal values of one program, max H_Q(Y | X_S) over the couplings Q with
P's (Xi, Y) marginals for the sources i in S: for |S| = 2 BROJA's program on the pair's
marginal, solved by decompose's bivariate solvers; for |S| >= 3 the native k-source
interior-point method (csrc/cpu/union_cpu.cpp). Each value comes with a certified gap and a dual
point; the terms are signed sums of the values and of P's own conditional entropies, so their
error is at most the sum of the gaps, and their gradient is, by the envelope theorem, the same
signed sum of -sum_i alpha_i(xi, y) and of the entropies' derivatives.

A batch goes a chunk at a time, as in decompose (_run.py): memory above the input is one chunk's
temporaries and the outputs; progress and Ctrl-C as there. Torch tensors (CPU or CUDA) are
solved on the CPU and their results returned on their device, differentiable.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _C, info
from ._backend import check_shape, is_torch, kind_of, unit_of
from ._run import ChunkPlan, Progress, ProgressArg, chunk_float64, normalised, threads_of, validate
from ._solve import choose_method, evenly_spaced, solve_flat
from .core import summation_rounding
from .result import TERMS3, PID3Result, UnionResult

# Interior-point iterations per distribution of the k-source solver: measured 8 to 28 on 560
# draws of every family of fastpid.families.FAMILIES3 up to 10x10x10x11 at tol 1e-10 nats; the
# cap is the bivariate "exact" one (_solve.DEFAULT_MAX_ITER).
UNION_MAX_ITER = 200
# The k-source solver's Newton system is dense, of order sum_i (values of Xi with P(xi, y) > 0
# over the labels y): per thread it holds the matrix (order^2 doubles, 512 MiB at 8192) and, on
# the CPU, its pair blocks with their places in it (up to about as much again), and factorises
# it (order^3 / 3 multiply-adds) per iteration.
UNION_MAX_ORDER = 8192
# The most sources the native k-source solver takes (kMaxSources, union.hpp).
MAX_SOURCES = 8
# The methods decompose(P, sources=3) takes: the pairwise problems by "exact" or "refine", or
# whichever "auto" predicts faster; the 3-source problem is always the interior-point method's.
METHODS3 = ("auto", "exact", "refine")
PAIRS = ((0, 1), (0, 2), (1, 2))


def _check_sources(sources, ndim: int, *, most: Optional[int] = None) -> int:
    if isinstance(sources, bool) or not isinstance(sources, (int, np.integer)):
        raise ValueError(f"sources must be an integer >= 2, got {sources!r}")
    sources = int(sources)
    if sources < 2 or (most is not None and sources > most):
        allowed = f"between 2 and {most}" if most is not None else ">= 2"
        raise ValueError(f"sources must be {allowed}, got {sources}")
    if ndim < sources + 1:
        raise ValueError(f"with sources={sources}, P must have shape (..., n1, ..., n{sources}, ny): at least {sources + 1} "
                         f"dimensions, got {ndim}")
    return sources


def newton_order(chunk, subset):
    """Per distribution of ``chunk`` (batch, n1, ..., nk, ny; numpy or torch): the number of
    entries (i, xi, y) with P(xi, y) > 0 over the sources i in ``subset``, the order of the
    k-source solver's Newton system (less its gauge)."""
    k = chunk.ndim - 2
    order = 0
    for i in subset:
        axes = tuple(1 + j for j in range(k) if j != i)
        order = order + (chunk.sum(axes) > 0).sum((1, 2))
    return order


def check_newton_order(chunk, subset, offset: int = 0, batch_shape=()) -> None:
    """Refuses a chunk (numpy or torch) of which a distribution's k-source Newton system would
    exceed UNION_MAX_ORDER, naming it (``offset``: the chunk's first batch index), before any
    work; counting the (xi, y) that occur costs a pass over P, so only where the order's bound
    sum_i n_i ny is above the limit."""
    if sum(chunk.shape[1 + i] for i in subset) * chunk.shape[-1] <= UNION_MAX_ORDER or len(chunk) == 0:
        return
    order = newton_order(chunk, subset)
    i = int(order.argmax())
    if int(order[i]) > UNION_MAX_ORDER:
        from ._backend import _batch_index

        raise ValueError(
            f"{_batch_index(offset + i, batch_shape)} (batch index {offset + i}): the {len(subset)}-source problem's Newton "
            f"system would have order {int(order[i]):,} (the pairs (source, value, label) with P(xi, y) > 0), more than "
            f"{UNION_MAX_ORDER:,}: it needs about 16 * order^2 bytes per thread; use fewer values per source or fewer labels")


def max_entropy(chunk: np.ndarray, subset, tol_nats: float, max_iter: Optional[int], method: str, *,
                duals: bool = False, threads: int = 0, offset: int = 0, batch_shape=()) -> dict:
    """max H_Q(Y | X_subset) in nats of every distribution of ``chunk`` (batch, n1, ..., nk,
    ny), normalised, over the couplings Q with its (Xi, Y) marginals for i in ``subset`` (at
    least two sources): BROJA's program on the pair's marginal by ``method`` ("exact",
    "refine" or "refine-then-exact", as _solve.solve_flat) for two, the k-source solver beyond
    (``tol_nats`` one number, or one per distribution for the k-source solver).
    Returns numpy arrays over the chunk: value, bound, converged, iterations and, with
    ``duals``, dual (batch, sum_{i in subset} ni * ny: the alphas source by source, -inf where
    P(xi, y) = 0). ``offset`` and ``batch_shape`` name a distribution in errors."""
    k = chunk.ndim - 2
    drop = tuple(1 + i for i in range(k) if i not in subset)
    marginal = np.ascontiguousarray(chunk.sum(axis=drop)) if drop else chunk
    if len(subset) == 2:
        out = solve_flat(marginal, method, float(np.min(tol_nats)), max_iter, False, duals, threads)
        if duals:
            out["dual"] = np.concatenate([out.pop("dual1").reshape(len(marginal), -1),
                                          out.pop("dual2").reshape(len(marginal), -1)], axis=1)
        return out
    check_newton_order(chunk, subset, offset, batch_shape)
    out = _C.union_cpu(marginal, np.broadcast_to(np.asarray(tol_nats, dtype=np.float64), (len(marginal),)),
                       UNION_MAX_ITER if max_iter is None else int(max_iter), threads)
    if not duals:
        del out["dual"]
    return out


def conditional_entropies(p, subsets) -> Dict[tuple, Any]:
    """H(Y | X_S) in nats of every distribution of ``p`` (batch, n1, ..., nk, ny), numpy or
    torch (differentiable), for each subset S of source indices in ``subsets`` (``()``: H(Y)).
    A float64 numpy batch goes through the native kernel (one pass per subset, vectorised
    logs: 1.2 -> 0.1 ms of a 10x10x10x4 decomposition)."""
    if isinstance(p, np.ndarray):
        masks = [sum(1 << i for i in subset) for subset in subsets]
        joint = _C.subset_entropies_cpu(np.ascontiguousarray(p, dtype=np.float64), masks)
        return {tuple(subset): joint[:, n, 0] - joint[:, n, 1] for n, subset in enumerate(subsets)}
    k = p.ndim - 2
    out = {}
    for subset in subsets:
        drop = tuple(1 + i for i in range(k) if i not in subset)
        joint = p.sum(drop) if drop else p  # numpy and torch alike
        h = info.entropy(joint, axes=tuple(range(1, joint.ndim)), base=math.e)
        if subset:
            h = h - info.entropy(joint.sum(-1), axes=tuple(range(1, joint.ndim - 1)), base=math.e)
        out[tuple(subset)] = h
    return out


# A result's bound is the sum of its problems' bounds. Every problem but the last (the pairs of
# a trivariate decomposition, which the bivariate solvers take far below tol in a step or two
# more) is solved to this share of tol; the last (the 3-source problem, the dearest: its
# iterations converge linearly at the end) to the rest. Fixed shares, so that the problems can
# run at once and a distribution's answer never depends on the others in its batch. Measured
# on a 10x10x10x4 histogram of 5,000 samples: the 3-source problem took 16 iterations at
# tol / 4, 13 at 5/8 tol and at tol.
LEAD_SHARE = 1 / 8


class _DeviceSolved:
    """What _Chunked computes, for a CUDA batch on its device: the k-source problems by the
    CUDA kernel of union.hpp (union_team_algebra.hpp), the pairs by the bivariate CUDA kernels
    (torch_ops.solve_cuda), the entropies by torch; one launch per problem over the whole batch
    (the kernels bound their workspace by the device's free memory). values, bounds, converged,
    iterations and entropies come back to the host (a few numbers per distribution, for the
    bound and the results' fields), the dual points stay on the device."""

    def __init__(self, flat, problems, subsets, tol_nats, max_iter, method, *, progress, batch_shape, normalize):
        import torch

        from . import torch_ops

        batch = len(flat)
        torch_ops.validate(flat.reshape(batch, -1), normalize, batch_shape)
        p = flat.detach().to(torch.float64)
        p = p / p.sum(dim=tuple(range(1, p.dim())), keepdim=True)
        tols = _problem_tols(problems, tol_nats)
        self.values, self.bounds, self.converged, self.duals = {}, {}, {}, {}
        self.iterations = np.zeros(batch, dtype=np.int64)
        self.methods = {}
        k = p.dim() - 2
        for s in problems:
            drop = tuple(1 + i for i in range(k) if i not in s)
            marginal = (p.sum(drop) if drop else p).contiguous()
            if len(s) == 2:
                pair_method = "refine" if method == "refine" else "exact"
                value, bound, converged, iterations, dual1, dual2, _ = torch_ops.solve_cuda(marginal, pair_method, tols[s], max_iter, False)
                dual = torch.cat([dual1.reshape(batch, -1), dual2.reshape(batch, -1)], 1)
                self.methods[s] = pair_method
            else:
                value, bound, converged, iterations, dual = _union_cuda(marginal, tols[s], max_iter, batch_shape)
                self.methods[s] = "exact"
            self.values[s], self.bounds[s] = value.double().cpu().numpy(), bound.double().cpu().numpy()
            self.converged[s] = converged.bool().cpu().numpy()
            self.iterations += iterations.cpu().numpy().astype(np.int64)
            self.duals[s] = dual
        with torch.no_grad():
            self.entropies = {s: h.cpu().numpy() for s, h in conditional_entropies(p, subsets).items()}
        Progress(progress, batch).update(batch, 0.0)

    def method(self) -> str:
        return _method_name(self.methods)


def _union_cuda(p, tol_nats: float, max_iter: Optional[int], batch_shape):
    """The k-source CUDA kernel on the normalised CUDA batch p (batch, n1, ..., nk, ny):
    (value, bound, converged, iterations, dual) on its device, enqueued on the current stream."""
    import torch

    batch, dims = len(p), tuple(int(n) for n in p.shape[1:])
    check_newton_order(p, range(len(dims) - 1), 0, batch_shape)
    with torch.cuda.device(p.device):
        empty = lambda *shape, dtype=torch.float64: torch.empty(shape, dtype=dtype, device=p.device)  # noqa: E731
        full = sum(dims[:-1]) * dims[-1]
        value, bound, dual = empty(batch), empty(batch), empty(batch, full)
        converged, iterations = empty(batch, dtype=torch.uint8), empty(batch, dtype=torch.int32)
        tol = torch.full((batch,), float(tol_nats), dtype=torch.float64, device=p.device)
        blocks, threads, per_block = _C.cuda_union_plan(list(dims), batch)
        from .torch_ops import MAX_CUDA_BLOCKS  # the tests' and sanitizers' cap on the grid

        if MAX_CUDA_BLOCKS:
            blocks = min(blocks, MAX_CUDA_BLOCKS)
        workspace = empty(blocks * per_block)
        _C.cuda_union_launch(p.data_ptr(), list(dims), batch, tol.data_ptr(), UNION_MAX_ITER if max_iter is None else int(max_iter),
                             value.data_ptr(), bound.data_ptr(), converged.data_ptr(), iterations.data_ptr(), dual.data_ptr(),
                             workspace.data_ptr(), blocks, threads, per_block, torch.cuda.current_stream(p.device).cuda_stream)
    return value, bound, converged, iterations, dual


def _method_name(methods: dict) -> str:
    """What solved the problems: "exact", "refine" or both joined by "+"."""
    names = {"refine" if m.startswith("refine") else "exact" for m in methods.values()}
    return "+".join(sorted(names)) if names else "exact"


def _problem_tols(problems, tol_nats: float) -> dict:
    """Each problem's tolerance: LEAD_SHARE of tol for all but the last, the rest for the last."""
    return {s: tol_nats * (LEAD_SHARE if n < len(problems) - 1 else 1 - LEAD_SHARE * (len(problems) - 1))
            for n, s in enumerate(problems)}


# Entries of P from which a small chunk's problems run at once (_Chunked): below it handing them
# to the pool costs more than it saves (one distribution, 2 threads, AMD EPYC, one after another
# against at once: 5x5x5x3 0.80 against 0.99 ms, 6x6x6x4 1.10 against 1.20; 10x10x10x4 3.52
# against 3.02, 20x20x20x4 29.3 against 26.8).
CONCURRENT_ENTRIES = 2000
_POOL = {"pid": None, "pool": None}


def _problem_pool() -> ThreadPoolExecutor:
    """The thread that runs a small chunk's dearest problem while the caller's thread solves the
    others (see _Chunked): kept between calls (starting a thread costs more than a small
    decomposition's pairs), made anew in a forked child."""
    if _POOL["pid"] != os.getpid():
        _POOL.update(pid=os.getpid(), pool=ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastpid"))
    return _POOL["pool"]


class _Chunked:
    """The optimal values, their certificates and P's conditional entropies that a result is
    built from, for a validated batch solved a chunk at a time (module docstring). Per
    distribution the problems' bounds sum to at most ``tol_nats`` when each converged (see
    LEAD_SHARE).

    A chunk of fewer distributions than threads (one distribution: the common call) cannot keep
    the threads busy with one problem at a time, so there the dearest problem (the last) runs on
    a pool thread while this one solves the others, one thread each (the native solvers release
    the GIL): on 2 cores a 10x10x10x4 decomposition takes the 3-source problem's time instead
    of it plus the three pairs'."""

    def __init__(self, flat, problems, subsets, tol_nats, max_iter, method, *, duals, threads, progress, batch_shape,
                 normalize):
        batch, k = len(flat), flat.ndim - 2
        validate(flat, batch_shape, normalize)
        self.values = {s: np.empty(batch) for s in problems}
        self.bounds = {s: np.empty(batch) for s in problems}
        self.converged = {s: np.empty(batch, dtype=bool) for s in problems}
        self.iterations = np.zeros(batch, dtype=np.int64)
        self.duals = {s: np.empty((batch, sum(flat.shape[1 + i] for i in s) * flat.shape[-1])) for s in problems} if duals else {}
        self.entropies = {s: np.empty(batch) for s in subsets}
        self.methods: Dict[tuple, str] = {}
        tols = _problem_tols(problems, tol_nats)
        available = threads or _C.max_threads()
        plan = ChunkPlan(batch, int(np.prod(flat.shape[1:])), False, threads)
        report = Progress(progress, batch)
        try:
            for start, stop in plan:
                chunk = normalised(chunk_float64(flat, start, stop))

                def solve(s, threads):
                    if s not in self.methods:
                        self.methods[s] = self._method_for(chunk, s, method, k)
                    return max_entropy(chunk, s, tols[s], max_iter, self.methods[s], duals=duals, threads=threads,
                                       offset=start, batch_shape=batch_shape)

                entropies = None
                if len(problems) > 1 and stop - start < available and chunk[0].size >= CONCURRENT_ENTRIES and not _C.forked_child():
                    # the dearest (last) problem on a pool thread, as early as it can start, and
                    # the others, the pairs' method choice and P's entropies here meanwhile: one
                    # hand-over (one per problem took 0.45 ms of a 10x10x10x4 call's 0.84 of Python)
                    if problems[-1] not in self.methods:
                        self.methods[problems[-1]] = self._method_for(chunk, problems[-1], method, k)
                    dearest = _problem_pool().submit(solve, problems[-1], 1)
                    solved = {s: solve(s, 1) for s in problems[:-1]}
                    entropies = conditional_entropies(chunk, subsets)
                    solved[problems[-1]] = dearest.result()
                else:
                    solved = {s: solve(s, threads) for s in problems}
                for s, out in solved.items():
                    self.values[s][start:stop] = out["value"]
                    self.bounds[s][start:stop] = out["bound"]
                    self.converged[s][start:stop] = out["converged"]
                    self.iterations[start:stop] += out["iterations"]
                    if duals:
                        self.duals[s][start:stop] = out["dual"]
                for s, h in (entropies or conditional_entropies(chunk, subsets)).items():
                    self.entropies[s][start:stop] = h
                report.update(stop, plan.predicted_seconds())
        finally:
            report.close()

    @staticmethod
    def _method_for(chunk, subset, method, k):
        """The bivariate method of a pair's problem ("auto": chosen on the first chunk's
        marginals); "exact" names the k-source solver's interior-point method."""
        if len(subset) != 2 or method != "auto":
            return "exact" if len(subset) != 2 else method
        drop = tuple(1 + i for i in range(k) if i not in subset)
        shape = tuple(chunk.shape[1 + i] for i in subset) + (chunk.shape[-1],)
        return choose_method(shape, lambda: np.ascontiguousarray(evenly_spaced(chunk).sum(axis=drop)))

    def method(self) -> str:
        return _method_name(self.methods)


def _host_view(P):
    """``P`` as a numpy array (a view where P is a CPU tensor or numpy array)."""
    if is_torch(P):
        import torch

        host = P.detach()
        if host.device.type != "cpu":
            host = host.to("cpu")
        if host.dtype not in (torch.float32, torch.float64):
            host = host.to(torch.float64)
        return host.numpy()
    if np.ma.isMaskedArray(P):
        raise ValueError("P is a masked array: a masked entry has no probability; fill it (P.filled(0.0)) or drop it first")
    arr = np.asarray(P)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"P must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"P must be real, got dtype {arr.dtype}")
    return arr


def _torch_probabilities(P, core_rank: int, normalize: bool):
    """P (batch shape then ``core_rank`` axes) as float64 probabilities of shape (batch,
    ...core), differentiable as decompose's results are: divided by each total (through the
    division where ``normalize``, else with the total held constant), zero cells held at zero."""
    import torch

    flat = P.reshape((-1,) + tuple(P.shape[P.ndim - core_rank:])).to(torch.float64)
    total = flat.sum(dim=tuple(range(1, flat.ndim)), keepdim=True)
    # decompose's convention: the derivative along directions that keep zero cells at zero, so
    # a zero cell's gradient is only what reaches it through the total
    kept = torch.where(flat > 0, flat, flat.detach())
    return kept / (total if normalize else total.detach())


def _envelope_class():
    """The autograd Function of an optimal value (built on first use: torch is optional)."""
    global _Envelope
    if _Envelope is None:
        import torch

        class Envelope(torch.autograd.Function):
            """value(p) = max H_Q(Y | X_S) with the derivative -sum_i alpha_i(xi, y) in p(x, y)
            at the certificate's dual point (envelope theorem), 0 where p is 0 (decompose's
            convention: the derivative along directions that keep zero cells at zero). p of
            shape (batch, n_i for i in S, ny); dual (batch, sum_i n_i ny), source by source."""

            @staticmethod
            def forward(ctx, p, value, dual):
                ctx.save_for_backward(p, dual)
                return value.clone()

            @staticmethod
            def backward(ctx, grad):
                p, dual = ctx.saved_tensors
                batch, ny, k = p.shape[0], p.shape[-1], p.ndim - 2
                slope = torch.zeros_like(p)
                offset = 0
                for i in range(k):
                    n = p.shape[1 + i]
                    shape = [batch] + [1] * k + [ny]
                    shape[1 + i] = n
                    slope = slope + dual[:, offset:offset + n * ny].reshape(shape)
                    offset += n * ny
                scale = grad.reshape((batch,) + (1,) * (p.ndim - 1))
                return torch.where(p > 0, -slope, torch.zeros_like(slope)) * scale, None, None

        _Envelope = Envelope
    return _Envelope


_Envelope = None


def _differentiable_values(p, solved: _Chunked, problems):
    """The optimal values as functions of the torch probabilities ``p`` (batch, n1..nk, ny)."""
    import torch

    k = p.ndim - 2
    envelope = _envelope_class()
    values = {}
    for s in problems:
        drop = tuple(1 + i for i in range(k) if i not in s)
        marginal = p.sum(drop) if drop else p
        value = torch.as_tensor(solved.values[s], device=p.device)
        dual = torch.as_tensor(solved.duals[s], device=p.device)
        values[s] = envelope.apply(marginal, value, dual)
    return values


def _check_common(tol, max_iter) -> None:
    from .core import MAX_ITER_LIMIT

    if not (tol > 0):
        raise ValueError(f"tol must be positive, got {tol!r}")
    if max_iter is not None and not 0 <= int(max_iter) <= MAX_ITER_LIMIT:
        raise ValueError(f"max_iter must be between 0 and {MAX_ITER_LIMIT:,} (0: the certified start point), got {max_iter!r}")


def _outputs(quantities: dict, plain: dict, terms: Tuple[str, ...], bound_nats, kind, log_base: float, batch_shape,
             rounding: float) -> dict:
    """The result's fields in the output unit, P's library, dtype and device: each of
    ``quantities`` (nats over the flat batch; torch tensors stay differentiable), and "bound":
    the solvers' ``bound_nats`` made honest for the returned numbers by decompose's
    output_bound over the ``terms`` (and the scale of every quantity in ``plain``, the same
    values in numpy), and ``rounding`` (core.summation_rounding, in the output unit)."""
    from .core import output_bound

    float32 = str(kind.dtype).endswith("float32")
    rows = [np.asarray(plain[n], dtype=np.float64) for n in terms]
    rows += [np.asarray(v, dtype=np.float64) for n, v in plain.items() if n not in terms] + [bound_nats]
    bound = output_bound(np.stack(rows) / log_base, float32, rounding, n_atoms=len(terms))
    fields = {}
    for name, q in quantities.items():
        shape = batch_shape + tuple(q.shape[1:])
        fields[name] = (q / log_base).reshape(shape).to(kind.dtype) if kind.torch else kind.wrap((q / log_base).reshape(shape))
    fields["bound"] = kind.wrap(bound).reshape(batch_shape)  # (wrap makes a 0-d array 1-d)
    return fields


def _converged(bound_nats, tol_nats: float, finite) -> np.ndarray:
    return (bound_nats <= tol_nats) & finite


def _on_device(P) -> bool:
    """Whether P is a CUDA tensor that the CUDA kernels solve (a CUDA build of fastpid)."""
    return is_torch(P) and P.is_cuda and bool(_C.build_info()["cuda"])


def _prepare(P, sources: int, *, most=None):
    """(k, batch_shape, flat) after the shape checks: flat (batch, n1..nk, ny) a view of P on
    the host, or of a CUDA tensor on its device when the CUDA kernels solve it (_on_device)."""
    if _on_device(P):
        if P.is_complex():
            raise ValueError(f"P must be real, got dtype {P.dtype}")
        host_like = P
    else:
        host_like = _host_view(P)
    k = _check_sources(sources, host_like.ndim, most=most)
    check_shape(tuple(host_like.shape), min_rank=k + 1)
    batch_shape = tuple(host_like.shape[: host_like.ndim - k - 1])
    return k, batch_shape, host_like.reshape((-1,) + tuple(host_like.shape[host_like.ndim - k - 1:]))


def union_information(
    P: Any,
    *,
    sources: int,
    tol: float = 1e-7,
    max_iter: Optional[int] = None,
    base=2,
    normalize: bool = False,
    threads: Optional[int] = None,
    progress: ProgressArg = None,
) -> UnionResult:
    """The k-source union information and synergy of one or many distributions
    P(X1, ..., Xk, Y) (docs/design.md section 7).

    ``union`` = H(Y) - max H_Q(Y | X1..Xk) over the couplings Q with P's (Xi, Y) marginals (the
    information about Y that every joint distribution of the sources with the same
    single-source relations to Y carries), and ``synergy`` = I(X1..Xk; Y) - union (what only
    the sources' joint relation adds). For k = 2 they are decompose's R + U1 + U2 and S.

    Args:
        P: numpy array or torch tensor (CPU or CUDA; solved on the CPU) of shape
            ``(..., n1, ..., nk, ny)``, float32 or float64, non-negative, each distribution
            summing to 1.
        sources: k, 2 <= k <= 8, the number of source axes before the target's.
        tol: certified accuracy to reach for ``union`` and ``synergy``, in the unit of ``base``.
        max_iter: interior-point iteration cap per distribution (default 200; for k = 2
            decompose's default and hand-off).
        base, normalize, threads, progress: as in :func:`fastpid.decompose`.

    Returns:
        :class:`~fastpid.result.UnionResult`, fields of the batch shape (``mi_sources``: (..., k)),
        in P's library, dtype and device; differentiable for torch tensors.

    Raises:
        ValueError: bad input (naming the first bad distribution), or a problem whose Newton
            system would exceed UNION_MAX_ORDER.
    """
    unit, log_base = unit_of(base)
    _check_common(tol, max_iter)
    threads = threads_of(threads)
    k, batch_shape, flat = _prepare(P, sources, most=MAX_SOURCES)
    everything = tuple(range(k))
    subsets = [(), everything] + [(i,) for i in range(k)]
    kind = kind_of(P)
    if _on_device(P):
        solved = _DeviceSolved(flat, [everything], subsets, tol * log_base, max_iter, "auto", progress=progress,
                               batch_shape=batch_shape, normalize=normalize)
    else:
        solved = _Chunked(flat, [everything], subsets, tol * log_base, max_iter, "auto", duals=kind.torch, threads=threads,
                          progress=progress, batch_shape=batch_shape, normalize=normalize)

    def measures(value, h, stack):
        return {"union": h[()] - value, "synergy": value - h[everything], "mi_joint": h[()] - h[everything],
                "entropy_y": h[()], "mi_sources": stack([h[()] - h[(i,)] for i in range(k)], -1)}

    plain = measures(solved.values[everything], solved.entropies, np.stack)
    if kind.torch:
        import torch

        p = _torch_probabilities(P, k + 1, normalize)
        quantities = measures(_differentiable_values(p, solved, [everything])[everything], conditional_entropies(p, subsets),
                              torch.stack)
    else:
        quantities = plain
    scale = dict(plain, value=solved.values[everything])
    del scale["mi_sources"]
    # the value (2 sums) and H(X, Y), H(X), H(Y, Xi), H(Xi), H(Y): the entropy-like sums over the entries
    rounding = summation_rounding(int(np.prod(flat.shape[1:])), 2 + 2 + 2 * k + 1, log_base)
    fields = _outputs(quantities, scale, ("union", "synergy"), solved.bounds[everything], kind, log_base, batch_shape, rounding)
    finite = np.isfinite(solved.values[everything])
    return UnionResult(
        **fields,
        converged=kind.wrap_index(_converged(solved.bounds[everything], tol * log_base, finite)).reshape(batch_shape),
        iterations=kind.wrap_index(solved.iterations.astype(np.int32)).reshape(batch_shape),
        sources=k, unit=unit, method=solved.method(),
    )


def terms3(values: dict, h: dict) -> dict:
    """The eight terms and the informations of the trivariate maximum-entropy decomposition in
    nats, from the optimal values (``values[S]`` = max H(Y | X_S) for S the three sources and
    each pair) and P's conditional entropies (``h[S]`` = H(Y | X_S), ``h[()]`` = H(Y)); numpy or
    torch alike (docs/design.md section 7)."""
    v123 = values[(0, 1, 2)]
    terms = {
        "synergy": v123 - h[(0, 1, 2)],
        "unique1": values[(1, 2)] - v123,
        "unique2": values[(0, 2)] - v123,
        "unique3": values[(0, 1)] - v123,
        "shared12": v123 + h[(2,)] - values[(0, 2)] - values[(1, 2)],
        "shared13": v123 + h[(1,)] - values[(0, 1)] - values[(1, 2)],
        "shared23": v123 + h[(0,)] - values[(0, 1)] - values[(0, 2)],
    }
    mi_joint = h[()] - h[(0, 1, 2)]
    # I(X;Y) minus the seven: H(Y) - max H(Y|X123) + sum of the pairs' max - sum_i H(Y|Xi)
    terms["redundancy"] = h[()] - v123 + values[(0, 1)] + values[(0, 2)] + values[(1, 2)] - h[(0,)] - h[(1,)] - h[(2,)]
    out = {name: terms[name] for name in TERMS3}
    out.update({"mi_x1": h[()] - h[(0,)], "mi_x2": h[()] - h[(1,)], "mi_x3": h[()] - h[(2,)],
                "mi_x12": h[()] - h[(0, 1)], "mi_x13": h[()] - h[(0, 2)], "mi_x23": h[()] - h[(1, 2)], "mi_joint": mi_joint})
    return out


def decompose3(P, *, method: str = "auto", tol: float = 1e-7, max_iter: Optional[int] = None, base=2, normalize: bool = False,
               threads: Optional[int] = None, progress: ProgressArg = None) -> PID3Result:
    """``fastpid.decompose(P, sources=3)``: the trivariate maximum-entropy decomposition of
    P of shape (..., n1, n2, n3, ny) (see decompose and :class:`~fastpid.result.PID3Result`).
    ``bound`` is the sum of the four problems' bounds: each pair's solved to tol / 8, the
    3-source problem to 5/8 tol (LEAD_SHARE)."""
    if method not in METHODS3:
        raise ValueError(f"with sources=3, method must be one of {METHODS3} (the pairwise problems' method; the 3-source "
                         f"problem is always the interior-point method's), got {method!r}")
    unit, log_base = unit_of(base)
    _check_common(tol, max_iter)
    threads = threads_of(threads)
    k, batch_shape, flat = _prepare(P, 3)
    problems = list(PAIRS) + [(0, 1, 2)]  # the 3-source problem last: see LEAD_SHARE
    subsets = [(), (0,), (1,), (2,)] + list(PAIRS) + [(0, 1, 2)]
    kind = kind_of(P)
    tol_nats = tol * log_base
    if _on_device(P):
        solved = _DeviceSolved(flat, problems, subsets, tol_nats, max_iter, method, progress=progress, batch_shape=batch_shape,
                               normalize=normalize)
    else:
        solved = _Chunked(flat, problems, subsets, tol_nats, max_iter, method, duals=kind.torch, threads=threads,
                          progress=progress, batch_shape=batch_shape, normalize=normalize)
    plain = terms3(solved.values, solved.entropies)
    if kind.torch:
        p = _torch_probabilities(P, 4, normalize)
        quantities = terms3(_differentiable_values(p, solved, problems), conditional_entropies(p, subsets))
    else:
        quantities = plain
    bound_nats = sum(solved.bounds[s] for s in problems)
    scale = dict(plain, **{f"value{''.join(map(str, s))}": solved.values[s] for s in problems}, entropy_y=solved.entropies[()])
    # the four values (2 sums each) and H(X_S, Y), H(X_S) of the eight subsets S
    rounding = summation_rounding(int(np.prod(flat.shape[1:])), 2 * len(problems) + 2 * len(subsets), log_base)
    fields = _outputs(quantities, scale, TERMS3, bound_nats, kind, log_base, batch_shape, rounding)
    finite = np.logical_and.reduce([np.isfinite(solved.values[s]) for s in problems])
    return PID3Result(
        **fields,
        converged=kind.wrap_index(_converged(bound_nats, tol_nats, finite)).reshape(batch_shape),
        iterations=kind.wrap_index(np.minimum(solved.iterations, np.iinfo(np.int32).max).astype(np.int32)).reshape(batch_shape),
        unit=unit, method=solved.method(),
    )


__all__ = ["union_information", "terms3", "UNION_MAX_ITER", "UNION_MAX_ORDER", "METHODS3"]
