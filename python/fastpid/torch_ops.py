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

CUDA tensors are accepted; the exact solve then runs on the host (one copy each way) until
the CUDA solver lands.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from . import _C
from ._backend import check_flat

Outputs = Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]


@torch.library.custom_op("fastpid::solve", mutates_args=())
def solve(P: Tensor, tol: float, max_iter: int, method: str, coupling: bool) -> Outputs:
    """Solve every distribution of P (batch, n1, n2, ny), float64; tol in nats."""
    if P.dtype != torch.float64 or P.dim() != 4:
        raise ValueError("fastpid::solve expects a float64 tensor of shape (batch, n1, n2, ny)")
    host = P.detach().to("cpu").contiguous().numpy()
    # Validated here as well as in decompose(), because torch.compile does not run the
    # Python-side checks before the op.
    check_flat(host)
    if method == "exact":
        out = _C.exact_cpu(host, tol, max_iter, coupling=coupling, duals=True)
    elif method == "proxy":
        out = _C.proxy_cpu(host, tol, coupling=coupling, duals=True)
    else:
        raise ValueError(f"method must be 'exact' or 'proxy', got {method!r}")
    q = out["coupling"] if coupling else np.zeros((0,))
    results = (out["value"], out["bound"], out["converged"], out["iterations"], out["dual1"], out["dual2"], q)
    return tuple(torch.from_numpy(np.ascontiguousarray(r)).to(P.device) for r in results)


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
