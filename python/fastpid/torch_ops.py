"""fastpid's solver as torch custom ops, with exact gradients.

``torch.ops.fastpid.solve(P, tol, max_iter, method, coupling)`` returns, for P of shape
(batch, n1, n2, ny) float64, ``(value, bound, converged, iterations, dual1, dual2, Q)``:
``value`` = max_Q H_Q(Y|X1,X2) in nats and the optimal dual point (alpha, beta) that the
backward op ``torch.ops.fastpid.decompose_backward`` turns into the gradient

    d value / d P(x1, x2, y) = -(alpha(x1, y) + beta(x2, y))          (envelope theorem)

No iteration is unrolled: the memory kept for backward is the dual point,
O(batch x (n1 + n2) x ny), plus a reference to P (which autograd keeps anyway).

Conventions (see README, "Gradients"):
* cells where P is exactly 0 get gradient 0 in every term: the derivative along directions
  that keep zero cells at zero (the log terms' derivative is unbounded there);
* where the optimal dual point is not unique, the interior-point solver returns a point near
  the analytic centre of the optimal face: one valid element of the superdifferential;
* gradients are with respect to the entries of P as given; with ``normalize=True`` the
  division by the total is part of the autograd graph, so they are with respect to the
  unnormalised weights.

CUDA tensors are accepted. With a CUDA build, every method runs as a CUDA kernel on the current
stream (the kernel bodies of csrc/include/fastpid, which the CPU tests run through the team
executor), and so does the backward op: nothing of the solve goes through the host. The input
checks are one reduction on the device and one copy of a few numbers to the host.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from . import _C
from . import _run
from ._backend import bad_distributions, check_flat, raise_bad_distribution
from ._solve import DEFAULT_MAX_ITER, HAND_OFF, REFINE_THEN_EXACT, SCALING_ITERS, hand_off, hand_off_allowed, solve_flat

Outputs = Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]
CUDA_METHODS = ("proxy", "refine", "exact", REFINE_THEN_EXACT)


def _cuda_build() -> bool:
    return bool(_C.build_info()["cuda"])


@torch.library.custom_op("fastpid::solve", mutates_args=())
def solve(P: Tensor, tol: float, max_iter: int, method: str, coupling: bool) -> Outputs:
    """Solve every distribution of P (batch, n1, n2, ny), float64; tol in nats."""
    if P.dtype != torch.float64 or P.dim() != 4:
        raise ValueError("fastpid::solve expects a float64 tensor of shape (batch, n1, n2, ny)")
    cap = None if max_iter < 0 else max_iter  # -1: the default cap, with the hand-off (core.solve_flat)
    if P.is_cuda and method in CUDA_METHODS and _cuda_build():
        check_cuda(P)  # again here: torch.compile does not run the checks in decompose()
        return solve_cuda(P, method, tol, cap, coupling)
    host = P.detach().to("cpu").contiguous().numpy()
    # Validated here as well as in decompose(), because torch.compile does not run the
    # Python-side checks before the op.
    check_flat(host)
    out = solve_flat(host, method, tol, cap, coupling=coupling, duals=True)
    q = out["coupling"] if coupling else np.zeros((0,))
    results = (out["value"], out["bound"], out["converged"], out["iterations"], out["dual1"], out["dual2"], q)
    return tuple(torch.from_numpy(np.ascontiguousarray(r)).to(P.device) for r in results)


def check_cuda(P: Tensor, normalize: bool = False, batch_shape=(), offset: int = 0) -> None:
    """The input checks of check_flat for a CUDA batch (batch, ...), without copying it to the
    host: the per-distribution checks reduced on the device to, per check, whether any
    distribution fails it, the first that does, and that one's total; one copy of those 12
    numbers; the ValueError names the first bad distribution (its index in the batch plus
    ``offset``, for a chunk) and the reason as on the CPU."""
    flat = P.detach().reshape(P.shape[0], -1)
    total = flat.sum(1)
    masks = torch.stack(bad_distributions((~torch.isfinite(flat)).any(1), (flat < 0).any(1), total, normalize))
    first = masks.to(torch.uint8).argmax(1)
    summary = torch.cat([masks.any(1).to(torch.float64), first.to(torch.float64), total[first].to(torch.float64)]).cpu()
    checks = len(masks)
    for check in range(checks):
        if summary[check]:
            i = offset + int(summary[checks + check])
            raise_bad_distribution(check, i, batch_shape, float(summary[2 * checks + check]))


def solve_cuda(P: Tensor, method: str, tol: float, max_iter, coupling: bool) -> Outputs:
    """launch_cuda with core.solve_flat's caps and hand-off: with max_iter None, the
    distributions left short of tol are handed to the other method's kernel (one copy of their
    count to the host; skipped while a CUDA graph is being captured, which allows none)."""
    first, cap, other = method, DEFAULT_MAX_ITER[method] if max_iter is None else max_iter, HAND_OFF.get(method)
    if method == REFINE_THEN_EXACT:
        first, cap, other = "refine", SCALING_ITERS, "exact"
    out = launch_cuda(P, first, tol, cap, coupling)
    handed = method == REFINE_THEN_EXACT or (max_iter is None and hand_off_allowed(method, P.shape[1:]))
    if handed and not torch.cuda.is_current_stream_capturing():
        keys = ("value", "bound", "converged", "iterations", "dual1", "dual2", "coupling")
        result = dict(zip(keys, out))

        def solve_other(sub):
            return dict(zip(keys, launch_cuda(sub.contiguous(), other, tol, DEFAULT_MAX_ITER[other] if max_iter is None else max_iter, coupling)))

        hand_off(result, P, solve_other)
        out = tuple(result[k] for k in keys)
    return out


# At most this many blocks per launch when set (tests and compute-sanitizer runs: a batch
# larger than the grid makes every block walk several distributions with one workspace).
MAX_CUDA_BLOCKS = None


def cuda_launch_plan(method: str, P: Tensor) -> dict:
    """How ``method`` is launched on the CUDA batch P (batch, n1, n2, ny): blocks, threads per
    block, workspace doubles per block, and the compiled kernel's registers and local (spill)
    bytes per thread (benchmarks record it with their timings)."""
    B, n1, n2, ny = P.shape
    blocks, threads, per_block = _cuda_plan(method, P.device.index, B, n1, n2, ny)
    if MAX_CUDA_BLOCKS:
        blocks = min(blocks, MAX_CUDA_BLOCKS)
    info = dict(_C.cuda_kernel_info(method))
    return {"blocks": blocks, "threads": threads, "workspace_doubles_per_block": per_block, **info}


@lru_cache(maxsize=256)
def _cuda_plan(method: str, device_index: int, batch: int, n1: int, n2: int, ny: int):
    """Launch geometry (blocks, threads, workspace doubles per block), computed once per shape
    and device so that a launch makes no query of the device (it can be captured in a graph)."""
    with torch.cuda.device(device_index):
        return _C.cuda_plan(method, batch, n1, n2, ny)


def launch_cuda(P: Tensor, method: str, tol: float, max_iter: int, coupling: bool) -> Outputs:
    """A CUDA kernel body of the library on every distribution of P (validated), enqueued on the
    current stream: outputs and workspace from torch's allocator, no synchronisation, no copy to
    the host (tests/test_cuda.py captures it in a CUDA graph)."""
    B, n1, n2, ny = P.shape
    with torch.cuda.device(P.device):
        Pc = P.detach().contiguous()
        empty = lambda *shape, dtype=torch.float64: torch.empty(shape, dtype=dtype, device=P.device)  # noqa: E731
        value, bound = empty(B), empty(B)
        converged, iterations = empty(B, dtype=torch.uint8), empty(B, dtype=torch.int32)
        dual1, dual2 = empty(B, n1, ny), empty(B, n2, ny)
        q = empty(B, n1, n2, ny) if coupling else empty(0)
        blocks, threads, per_block = _cuda_plan(method, P.device.index, B, n1, n2, ny)
        if MAX_CUDA_BLOCKS:
            blocks = min(blocks, MAX_CUDA_BLOCKS)
        workspace = empty(blocks * per_block)
        _C.cuda_launch(method, Pc.data_ptr(), B, n1, n2, ny, tol, max_iter, SCALING_ITERS, value.data_ptr(),
                       bound.data_ptr(), converged.data_ptr(), iterations.data_ptr(), q.data_ptr() if coupling else 0,
                       dual1.data_ptr(), dual2.data_ptr(), workspace.data_ptr(), blocks, threads, per_block,
                       torch.cuda.current_stream(P.device).cuda_stream)
    return value, bound, converged.bool(), iterations, dual1, dual2, q


@solve.register_fake
def _solve_fake(P, tol, max_iter, method, coupling):
    B, n1, n2, ny = P.shape
    return (
        P.new_empty(B), P.new_empty(B), P.new_empty(B, dtype=torch.bool), P.new_empty(B, dtype=torch.int32),
        P.new_empty(B, n1, ny), P.new_empty(B, n2, ny), P.new_empty((B, n1, n2, ny) if coupling else (0,)),
    )


@torch.library.custom_op("fastpid::decompose_backward", mutates_args=())
def decompose_backward(grad_value: Tensor, P: Tensor, dual1: Tensor, dual2: Tensor) -> Tensor:
    """Gradient of the solved value w.r.t. P from the saved dual point (see module doc)."""
    if P.device.type == "cpu":
        grad = _C.value_grad_cpu(
            grad_value.detach().contiguous().numpy(), P.detach().contiguous().numpy(),
            dual1.detach().contiguous().numpy(), dual2.detach().contiguous().numpy(),
        )
        return torch.from_numpy(grad)
    if P.is_cuda and _cuda_build():
        B, n1, n2, ny = P.shape
        with torch.cuda.device(P.device):
            grad = torch.empty((B, n1, n2, ny), dtype=torch.float64, device=P.device)
            g, p, d1, d2 = (t.detach().contiguous() for t in (grad_value, P, dual1, dual2))
            _C.cuda_value_grad(g.data_ptr(), p.data_ptr(), d1.data_ptr(), d2.data_ptr(), grad.data_ptr(), B, n1, n2, ny,
                               torch.cuda.current_stream(P.device).cuda_stream)
        return grad
    # Other devices: the same formula in torch operations (one pass over P).
    g = -(grad_value[:, None, None, None] * (dual1[:, :, None, :] + dual2[:, None, :, :]))
    return torch.where(P > 0, g, torch.zeros_like(g))


@decompose_backward.register_fake
def _decompose_backward_fake(grad_value, P, dual1, dual2):
    return torch.empty_like(P)


def _setup_context(ctx, inputs, output):
    P = inputs[0]
    ctx.save_for_backward(P, output[4], output[5])


def _backward(ctx, grad_value, *unused):
    P, dual1, dual2 = ctx.saved_tensors
    if grad_value is None:
        return None, None, None, None, None
    return decompose_backward(grad_value.contiguous(), P, dual1, dual2), None, None, None, None


torch.library.register_autograd("fastpid::solve", _backward, setup_context=_setup_context)


# fastpid::decompose: what fastpid.decompose runs for a torch tensor. Unlike fastpid::solve it
# takes P as given (float32 or float64, any totals: divided out, or with `normalize` divided out
# inside the graph), returns the mutual informations too, and goes a chunk at a time (_run): the
# memory it needs above P is one chunk's temporaries and the outputs, and what autograd keeps for
# backward is P itself (the caller's tensor, not a copy) and the dual point.
DecomposeOutputs = Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]


@torch.library.custom_op("fastpid::decompose", mutates_args=())
def decompose_op(P: Tensor, tol: float, max_iter: int, method: str, coupling: bool, normalize: bool,
                 threads: int) -> DecomposeOutputs:
    """(value, bound, converged, iterations, informations (batch, 4: I(X1;Y), I(X2;Y),
    I(X1,X2;Y), H(Y), nats), dual1, dual2, Q (in P's dtype; empty unless ``coupling``)) of every
    distribution of P (batch, n1, n2, ny); tol in nats; max_iter -1: the default caps with the
    hand-off."""
    if P.dtype not in (torch.float32, torch.float64) or P.dim() != 4:
        raise ValueError("fastpid::decompose expects a float32 or float64 tensor of shape (batch, n1, n2, ny)")
    cap = None if max_iter < 0 else max_iter
    if P.is_cuda and _cuda_build():
        return _decompose_cuda(P, tol, cap, method, coupling, normalize)
    host = P.detach().to("cpu").contiguous().numpy()
    out = _run.solve_batch(host, method, tol, cap, normalize=normalize, coupling_dtype=host.dtype if coupling else None,
                           duals=True, threads=threads, progress=_run.CURRENT_PROGRESS.get())
    q = out["coupling"] if coupling else np.zeros((0,), dtype=host.dtype)
    keys = ("value", "bound", "converged", "iterations", "informations", "dual1", "dual2")
    return tuple(torch.from_numpy(out[k]).to(P.device) for k in keys) + (torch.from_numpy(q).to(P.device),)


def validate(flat: Tensor, normalize: bool, batch_shape=()) -> None:
    """The input checks of a batch (batch, n1, n2, ny) a chunk at a time, on its device:
    ValueError naming the first bad distribution and the reason."""
    if flat.is_cuda:
        rows = _run.memory_rows(int(np.prod(flat.shape[1:])), False)
        for start in range(0, len(flat), rows):
            check_cuda(flat[start:start + rows], normalize=normalize, batch_shape=batch_shape, offset=start)
    else:
        _run.validate(flat.detach().numpy(), batch_shape, normalize)


def sample_of(flat: Tensor) -> np.ndarray:
    """The distributions of a (validated) batch that method="auto" looks at, as float64 numpy,
    normalised."""
    return _run.normalised(_run.chunk_float64(_run.evenly_spaced(flat.detach()).cpu().numpy(), 0, None))


def informations_torch(p: Tensor) -> Tensor:
    """I(X1;Y), I(X2;Y), I(X1,X2;Y), H(Y) in nats (batch, 4) of the distributions p (batch, n1,
    n2, ny) in torch operations (on p's device; informations_cpu's formulas)."""
    def h(q, dims):
        return -(q * torch.log(torch.where(q > 0, q, torch.ones_like(q)))).sum(dim=dims)

    p_x1y, p_x2y, p_y = p.sum(2), p.sum(1), p.sum((1, 2))
    h_y = h(p_y, (1,))
    return torch.stack([
        h(p_x1y.sum(2), (1,)) + h_y - h(p_x1y, (1, 2)),
        h(p_x2y.sum(2), (1,)) + h_y - h(p_x2y, (1, 2)),
        h(p.sum(3), (1, 2)) + h_y - h(p, (1, 2, 3)),
        h_y,
    ], dim=1)


def _decompose_cuda(P: Tensor, tol: float, cap, method: str, coupling: bool, normalize: bool) -> DecomposeOutputs:
    """fastpid::decompose on a CUDA tensor: solve_cuda a chunk at a time (each chunk converted
    to float64, checked and normalised on the device), outputs allocated once."""
    B, n1, n2, ny = P.shape
    with torch.cuda.device(P.device):
        empty = lambda *shape, dtype=torch.float64: torch.empty(shape, dtype=dtype, device=P.device)  # noqa: E731
        outs = [empty(B), empty(B), empty(B, dtype=torch.bool), empty(B, dtype=torch.int32), empty(B, 4),
                empty(B, n1, ny), empty(B, n2, ny), empty(B, n1, n2, ny, dtype=P.dtype) if coupling else empty(0, dtype=P.dtype)]
        if method == "auto":
            method = _run.choose_method((n1, n2, ny), lambda: sample_of(P))
        # Timing a launch would measure its enqueue only: chunks for memory alone.
        for start, stop in _run.ChunkPlan(B, n1 * n2 * ny, coupling, 1, timed=False):
            chunk = P[start:stop].detach().to(torch.float64)
            check_cuda(chunk, normalize=normalize, offset=start)
            chunk = chunk / chunk.sum(dim=(1, 2, 3), keepdim=True)
            solved = solve_cuda(chunk.contiguous(), method, tol, cap, coupling)
            for target, value in zip(outs[:4] + outs[5:7], solved[:6]):
                target[start:stop] = value
            if coupling:
                outs[7][start:stop] = solved[6]
            outs[4][start:stop] = informations_torch(chunk)
    return tuple(outs)


@decompose_op.register_fake
def _decompose_fake(P, tol, max_iter, method, coupling, normalize, threads):
    B, n1, n2, ny = P.shape
    f64 = dict(dtype=torch.float64)
    return (
        P.new_empty(B, **f64), P.new_empty(B, **f64), P.new_empty(B, dtype=torch.bool), P.new_empty(B, dtype=torch.int32),
        P.new_empty(B, 4, **f64), P.new_empty(B, n1, ny, **f64), P.new_empty(B, n2, ny, **f64),
        P.new_empty((B, n1, n2, ny) if coupling else (0,)),
    )


@torch.library.custom_op("fastpid::decompose_grad", mutates_args=())
def decompose_grad(grad_value: Tensor, grad_informations: Tensor, P: Tensor, dual1: Tensor, dual2: Tensor,
                   normalize: bool, threads: int) -> Tensor:
    """Gradient of fastpid::decompose's value and informations with respect to P (in P's dtype),
    a chunk at a time: pid_grad_cpu on ``threads`` CPU threads (its docstring has the formula),
    the same formula in torch operations elsewhere."""
    grad = torch.empty_like(P)
    B, n1, n2, ny = P.shape
    rows = _run.memory_rows(n1 * n2 * ny, True)
    for start in range(0, B, rows):
        stop = min(B, start + rows)
        parts = [t[start:stop].detach() for t in (grad_value, grad_informations, P, dual1, dual2)]
        if P.device.type == "cpu":
            g, gi, p, d1, d2 = (np.ascontiguousarray(t.numpy(), dtype=np.float64) for t in parts)
            grad[start:stop] = torch.from_numpy(_C.pid_grad_cpu(g, gi, p, d1, d2, normalize, threads))
        else:
            grad[start:stop] = pid_grad_torch(*(t.to(torch.float64) for t in parts), normalize)
    return grad


def pid_grad_torch(grad_value: Tensor, grad_informations: Tensor, P: Tensor, dual1: Tensor, dual2: Tensor,
                   normalize: bool) -> Tensor:
    """pid_grad_cpu's formula in torch operations (float64, on P's device)."""
    total = P.sum(dim=(1, 2, 3), keepdim=True)
    p = P / total

    def log(q):
        return torch.log(torch.where(q > 0, q, torch.ones_like(q)))

    p_x1y, p_x2y = p.sum(2), p.sum(1)
    log_y = log(p.sum((1, 2)))[:, None, None, :]
    g1, g2, g12, gh = (grad_informations[:, i, None, None, None] for i in range(4))
    d = -grad_value[:, None, None, None] * (dual1[:, :, None, :] + dual2[:, None, :, :])
    d = d + g1 * (log(p_x1y)[:, :, None, :] - log(p_x1y.sum(2))[:, :, None, None] - log_y - 1)
    d = d + g2 * (log(p_x2y)[:, None, :, :] - log(p_x2y.sum(2))[:, None, :, None] - log_y - 1)
    d = d + g12 * (log(p) - log(p.sum(3))[..., None] - log_y - 1) - gh * (log_y + 1)
    d = torch.where(p > 0, d, torch.zeros_like(d))
    if normalize:
        d = d - (d * p).sum(dim=(1, 2, 3), keepdim=True)
    return d / total


@decompose_grad.register_fake
def _decompose_grad_fake(grad_value, grad_informations, P, dual1, dual2, normalize, threads):
    return torch.empty_like(P)


def _decompose_setup_context(ctx, inputs, output):
    ctx.normalize, ctx.threads = inputs[5], inputs[6]
    ctx.save_for_backward(inputs[0], output[5], output[6])


def _decompose_backward(ctx, grad_value, _bound, _converged, _iterations, grad_informations, *unused):
    P, dual1, dual2 = ctx.saved_tensors
    if grad_value is None and grad_informations is None:
        return (None,) * 7
    B = P.shape[0]
    if grad_value is None:
        grad_value = torch.zeros(B, dtype=torch.float64, device=P.device)
    if grad_informations is None:
        grad_informations = torch.zeros(B, 4, dtype=torch.float64, device=P.device)
    grad = decompose_grad(grad_value.contiguous(), grad_informations.contiguous(), P, dual1, dual2, ctx.normalize,
                          ctx.threads)
    return (grad,) + (None,) * 6


torch.library.register_autograd("fastpid::decompose", _decompose_backward, setup_context=_decompose_setup_context)
