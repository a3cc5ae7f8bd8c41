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


# --------------------------------------------------------------------------------------
# Every method of the benchmark suite behind one signature: solve(name, P) -> atoms (bits).
# --------------------------------------------------------------------------------------
ATOMS = ("redundancy", "unique1", "unique2", "synergy")


def _fastpid(method):
    def run(P, **options):
        import fastpid

        r = fastpid.decompose(P, method=method, **options)
        return {**{a: float(getattr(r, a)) for a in ATOMS}, "bound": float(r.bound)}

    return run


def _cvxpy(solver, formulation):
    def run(P):
        from fastpid.reference import decompose_cvxpy

        # Each solver's own default tolerances: how users call it.
        r = decompose_cvxpy(P, solver=solver, formulation=formulation, solver_options={})
        return {a: float(getattr(r, a)) for a in ATOMS}

    return run


def _dit(P):
    import dit
    from dit.pid import PID_BROJA

    idx = np.nonzero(P)
    outcomes = [tuple(int(i) for i in t) for t in zip(*idx)]
    d = dit.Distribution(outcomes, [float(v) for v in P[idx]])
    r = PID_BROJA(d, [[0], [1]], [2])
    return {
        "redundancy": float(r.get_pi(((0,), (1,)))), "unique1": float(r.get_pi(((0,),))),
        "unique2": float(r.get_pi(((1,),))), "synergy": float(r.get_pi(((0, 1),))),
    }


def _paper(P):
    return decompose_fastpid_paper(P)[0]


def _fastpid_three(P, **options):
    import fastpid
    from fastpid.result import TERMS3

    r = fastpid.decompose(P, sources=3, **options)
    return {**{t: float(getattr(r, t)) for t in TERMS3}, "bound": float(r.bound)}


def _cvxpy_three(fallbacks):
    def run(P):
        from fastpid.reference import TERMS3, decompose3_cvxpy

        r = decompose3_cvxpy(P, fallbacks=fallbacks)
        return {**{t: float(r[t]) for t in TERMS3}, "status": r["status"]}

    return run


METHODS = {
    "fastpid exact": _fastpid("exact"),
    "fastpid refine": _fastpid("refine"),
    "fastpid proxy": _fastpid("proxy"),
    "cvxpy clarabel strong": _cvxpy("CLARABEL", "strong"),
    "cvxpy clarabel dpp": _cvxpy("CLARABEL", "dpp"),
    "cvxpy clarabel common": _cvxpy("CLARABEL", "common"),
    "cvxpy scs strong": _cvxpy("SCS", "strong"),
    "cvxpy ecos strong": _cvxpy("ECOS", "strong"),
    "dit broja": _dit,
    "fastpid paper": _paper,
    # three sources (bench_three): the eight terms of the trivariate decomposition
    "fastpid three": _fastpid_three,
    "cvxpy clarabel three": _cvxpy_three(True),  # the reference: tight, with its fall-backs
    "cvxpy clarabel three defaults": _cvxpy_three(False),  # one solve per program at Clarabel's defaults
}
REQUIRES = {"cvxpy": ("cvxpy",), "dit": ("dit",), "paper": ("torch",), "ecos": ("ecos",), "scs": ("scs",)}


def available(name):
    """None if the method can run here, else why not (a peer not installed is skipped, never faked)."""
    import importlib.util

    for key, modules in REQUIRES.items():
        if key in name:
            for m in modules:
                if importlib.util.find_spec(m) is None:
                    return f"{m} is not installed"
    return None


PREPARE = {"cvxpy": ("cvxpy", "clarabel", "fastpid.reference"), "dit": ("dit", "dit.pid"), "paper": ("torch",)}
# Methods whose first call on a shape compiles a problem that later calls reuse (CVXPY's DPP
# formulation, the marginals as parameters): called once before the clock starts, so the time
# is that of one solve in a batch of many distributions of one shape.
WARM_UP = ("cvxpy clarabel dpp",)


def _child(name, P, queue, options):
    import importlib
    import time

    try:
        # Imports happen before the clock starts: a peer is timed solving, not loading.
        for key, modules in PREPARE.items():
            if key in name:
                for m in modules:
                    importlib.import_module(m)
        if name in WARM_UP:
            METHODS[name](P, **options)
        start = time.perf_counter()
        atoms = METHODS[name](P, **options)
        queue.put(("ok", time.perf_counter() - start, atoms))
    except Exception as err:  # reported, not hidden
        queue.put(("error", 0.0, f"{type(err).__name__}: {err}"))


def solve_with_limit(name, P, limit_s, **options):
    """Runs one method on one distribution in a child process, timed inside the child.
    Returns (status, seconds, atoms-or-message); status "timeout" after limit_s. ``options``
    go to the method (fastpid's: decompose's keyword arguments; their atoms carry "bound")."""
    import multiprocessing as mp

    # spawn, not fork: a child forked after OpenMP (fastpid, torch) has started its thread
    # pool can stall in it; every child starts clean and imports before its clock starts.
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, P, queue, options))
    proc.start()
    proc.join(limit_s)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return "timeout", limit_s, f"> {limit_s:g} s"
    if queue.empty():
        return "error", 0.0, f"exit code {proc.exitcode}"
    return queue.get()
