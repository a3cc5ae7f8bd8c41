"""Backward vs forward: the cost of gradients through fastpid.decompose, and the memory kept
for backward compared with unrolling an iterative solver through autograd.

    python -m benchmarks.bench_grad [--quick]

Forward: decompose a batch of 20x20x6 histograms (torch, float64, requires_grad). Backward:
d(sum of synergies)/dP. The memory kept for backward is measured as the bytes of every tensor
the whole autograd graph saves (saved_tensors_hooks; for fastpid that includes the mutual-
information terms), for fastpid and for the FastPID paper's iteration
unrolled through autograd (10 Sinkhorn rounds per step) at 10, 100 and 1000 steps on one
distribution. Writes results/grad[-quick].json.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import fastpid
from fastpid.families import histogram

from .harness import machine, progress, table, time_call, write_json
from .peers import _sinkhorn


def saved_bytes(fn):
    total = []

    def pack(t):
        total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(total)


def unrolled(P, steps):
    """The paper's objective evaluated after `steps` differentiable Adam-free updates: the
    graph holds every Sinkhorn round of every step."""
    logits = torch.zeros_like(P, requires_grad=True)
    p1, p2 = P.sum(1), P.sum(0)
    x = logits
    for _ in range(steps):
        Q = _sinkhorn(torch.softmax(x.reshape(-1), 0).reshape(P.shape), p1, p2, 10)
        m = Q.sum(-1, keepdim=True)
        obj = (Q * (torch.log(Q.clamp_min(1e-300)) - torch.log(m.clamp_min(1e-300)))).sum()
        (g,) = torch.autograd.grad(obj, x, create_graph=True)
        x = x - 0.1 * g
    return obj


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(4)
    n = 100 if args.quick else 1000
    P = torch.tensor(np.stack([histogram(rng, 20, 20, 6, samples=1000) for _ in range(n)]))
    # check: gradients agree with central differences along a random tangent direction, at an
    # interior point (sparse histograms sit where the optimum may not be differentiable)
    from fastpid.families import dense

    Pq = torch.tensor(dense(rng, 20, 20, 6, concentration=5.0)[None], requires_grad=True)
    (g,) = torch.autograd.grad(fastpid.decompose(Pq, tol=1e-11).synergy.sum(), Pq)
    d = torch.randn_like(Pq) * Pq.detach()  # relative perturbation, tangent to the simplex
    d -= d.sum() * Pq.detach() / Pq.detach().sum()
    h = 1e-4
    fd = (fastpid.decompose(Pq.detach() + h * d, tol=1e-12).synergy - fastpid.decompose(Pq.detach() - h * d, tol=1e-12).synergy) / (2 * h)
    analytic = float((g * d).sum())
    assert abs(analytic - float(fd.sum())) < 1e-6 * max(1.0, abs(analytic)), "gradient check failed"

    def forward():
        Pg = P.clone().requires_grad_(True)
        return Pg, fastpid.decompose(Pg).synergy.sum()

    progress("forward")
    t_fwd = time_call(lambda: forward(), repeats=3, warmup=1)["median_s"]
    progress("backward")
    backward_times = []
    for _ in range(5):  # a fresh graph each time; only backward() is on the clock
        Pg, loss = forward()
        start = time.perf_counter()
        loss.backward()
        backward_times.append(time.perf_counter() - start)
    t_bwd = statistics.median(backward_times)
    _, fastpid_bytes = saved_bytes(lambda: fastpid.decompose(P[:1].clone().requires_grad_(True)).synergy)
    iters = int(fastpid.decompose(P[:1]).iterations[0])
    memory = [{"method": f"fastpid (exact, {iters} interior-point iterations)", "bytes_saved": fastpid_bytes}]
    for steps in ([10, 100] if args.quick else [10, 100, 1000]):
        progress(f"unrolled {steps}")
        _, b = saved_bytes(lambda: unrolled(P[0], steps))
        memory.append({"method": f"unrolled Sinkhorn-Adam, {steps} steps", "bytes_saved": b})
    payload = {"machine": machine(), "batch": n, "forward_s": t_fwd, "backward_s": t_bwd, "backward_over_forward": t_bwd / t_fwd,
               "memory_one_distribution": memory}
    path = write_json("grad-quick.json" if args.quick else "grad.json", payload)
    print(f"batch of {n} 20x20x6 histograms: forward {t_fwd:.3f} s, backward {t_bwd:.4f} s "
          f"(backward / forward = {t_bwd / t_fwd:.3f})")
    print(table(memory, ["method", "bytes_saved"], {"bytes_saved": ",d"}))
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
