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
from ._backend import bad_distributions, check_flat, raise_bad_distribution
from .core import DEFAULT_MAX_ITER, HAND_OFF, REFINE_THEN_EXACT, SCALING_ITERS, hand_off, hand_off_allowed, solve_flat

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


def check_cuda(P: Tensor, normalize: bool = False, batch_shape=()) -> None:
    """The input checks of check_flat for a CUDA batch (batch, ...), without copying it to the
    host: the per-distribution checks reduced on the device to, per check, whether any
    distribution fails it, the first that does, and that one's total; one copy of those 12
    numbers; the ValueError names the first bad distribution and the reason as on the CPU."""
    flat = P.detach().reshape(P.shape[0], -1)
    total = flat.sum(1)
    masks = torch.stack(bad_distributions((~torch.isfinite(flat)).any(1), (flat < 0).any(1), total, normalize))
    first = masks.to(torch.uint8).argmax(1)
    summary = torch.cat([masks.any(1).to(torch.float64), first.to(torch.float64), total[first].to(torch.float64)]).cpu()
    checks = len(masks)
    for check in range(checks):
        if summary[check]:
            i = int(summary[checks + check])
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
