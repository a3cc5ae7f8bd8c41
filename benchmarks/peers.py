"""Peer PID solvers, for comparison only.

``fastpid_paper``: our own implementation of the solver of the FastPID paper (Tang et al.
2025, arXiv 2509.20840) from its description: Adam (lr 0.1) over softmax logits of Q, each
step projecting Q onto the marginal constraints with 10 unrolled Sinkhorn rounds per label,
minimising I_Q(X1,X2;Y), until the objective changes by less than 1e-5 or 2000 steps.
Its result is detached (no gradients) and its coupling only approximately feasible.
"""
from __future__ import annotations

import math

import numpy as np

from fastpid.core import atoms_from
from fastpid.info import pid_informations


def _sinkhorn(Q, p1, p2, rounds):
    # Q: (n1, n2, ny) positive; p1: (n1, ny), p2: (n2, ny) target marginals per label.
    for _ in range(rounds):
        Q = Q * (p1 / Q.sum(1).clamp_min(1e-300))[:, None, :]
        Q = Q * (p2 / Q.sum(0).clamp_min(1e-300))[None, :, :]
    return Q


def fastpid_paper(P, *, lr=0.1, sinkhorn_rounds=10, tol=1e-5, max_steps=2000, seed=0):
    """Returns (max_Q H_Q(Y|X1,X2) estimate in nats, steps)."""
    import torch

    torch.manual_seed(seed)
    P = torch.as_tensor(np.asarray(P, dtype=np.float64))
    p1, p2 = P.sum(1), P.sum(0)
    logits = torch.zeros_like(P, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    previous = math.inf
    steps = 0
    for steps in range(1, max_steps + 1):
        Q = _sinkhorn(torch.softmax(logits.reshape(-1), 0).reshape(P.shape), p1, p2, sinkhorn_rounds)
        m = Q.sum(-1, keepdim=True)
        # minimise I_Q(X1,X2;Y) <=> minimise -H_Q(Y|X1,X2) = sum Q log(Q / m)
        objective = (Q * (torch.log(Q.clamp_min(1e-300)) - torch.log(m.clamp_min(1e-300)))).sum()
        opt.zero_grad()
        objective.backward()
        opt.step()
        value = float(objective.detach())
        if abs(previous - value) < tol:
            break
        previous = value
    return -value, steps


def decompose_fastpid_paper(P, **kwargs):
    """Atoms (bits) from the FastPID-paper solver for one distribution."""
    value, steps = fastpid_paper(P, **kwargs)
    inf = pid_informations(np.asarray(P, dtype=float), base=math.e)
    atoms = atoms_from(value, inf)
    return {k: v / math.log(2) for k, v in atoms.items()}, steps
