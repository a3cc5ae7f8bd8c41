"""Families of joint distributions P(X1, X2, Y) used by the tests, the benchmarks and the demo.

Every generator returns a float64 numpy array of shape ``(n1, n2, ny)`` (or a batch
``(batch, n1, n2, ny)`` where noted) that sums to 1. Degenerate members (zero rows, columns
and labels, point masses, tiny probabilities) are on purpose: they are normal inputs.
"""
from __future__ import annotations

import numpy as np


def _gate(fn, n1=2, n2=2):
    outputs = {}
    for a in range(n1):
        for b in range(n2):
            outputs[(a, b)] = fn(a, b)
    ny = max(outputs.values()) + 1
    P = np.zeros((n1, n2, ny))
    for (a, b), y in outputs.items():
        P[a, b, y] += 1.0 / (n1 * n2)
    return P


def gates() -> dict:
    """Canonical gates with uniform independent inputs and their known BROJA atoms (bits):
    name -> (P, {"redundancy", "unique1", "unique2", "synergy"})."""
    and_or = {"redundancy": 0.311278124459, "unique1": 0.0, "unique2": 0.0, "synergy": 0.5}
    rdn = np.zeros((2, 2, 2))
    rdn[0, 0, 0] = rdn[1, 1, 1] = 0.5  # X1 = X2 = Y
    return {
        "xor": (_gate(lambda a, b: a ^ b), {"redundancy": 0.0, "unique1": 0.0, "unique2": 0.0, "synergy": 1.0}),
        "and": (_gate(lambda a, b: a & b), and_or),
        "or": (_gate(lambda a, b: a | b), and_or),
        "copy": (_gate(lambda a, b: 2 * a + b), {"redundancy": 0.0, "unique1": 1.0, "unique2": 1.0, "synergy": 0.0}),
        "rdn": (rdn, {"redundancy": 1.0, "unique1": 0.0, "unique2": 0.0, "synergy": 0.0}),
        "unq": (_gate(lambda a, b: a), {"redundancy": 0.0, "unique1": 1.0, "unique2": 0.0, "synergy": 0.0}),
        # Y = X1 + X2: I(X1X2;Y) = 1.5, I(Xi;Y) = 0.5, R = 0.5, U = 0, S = 1.
        "sum": (_gate(lambda a, b: a + b), {"redundancy": 0.5, "unique1": 0.0, "unique2": 0.0, "synergy": 1.0}),
    }


def dense(rng, n1, n2, ny, concentration=1.0):
    """Dirichlet-random dense distribution."""
    return rng.dirichlet(np.full(n1 * n2 * ny, concentration)).reshape(n1, n2, ny)


def sparse(rng, n1, n2, ny, keep=0.2):
    """Most cells exactly zero (a random ``keep`` fraction survives, at least one)."""
    mask = rng.random(n1 * n2 * ny) < keep
    mask[rng.integers(n1 * n2 * ny)] = True
    w = rng.random(n1 * n2 * ny) * mask
    return (w / w.sum()).reshape(n1, n2, ny)


def near_deterministic(rng, n1, n2, ny, noise=1e-6):
    """Y is a random function of (X1, X2), blurred by ``noise``."""
    P = np.zeros((n1, n2, ny))
    f = rng.integers(0, ny, size=(n1, n2))
    px = rng.dirichlet(np.ones(n1 * n2)).reshape(n1, n2)
    for a in range(n1):
        for b in range(n2):
            P[a, b, f[a, b]] = px[a, b]
    P = (1 - noise) * P + noise * dense(rng, n1, n2, ny)
    return P / P.sum()


def tiny(rng, n1, n2, ny, level=1e-12):
    """Dense, but about a third of the cells carry only ``level`` (relative) mass."""
    P = dense(rng, n1, n2, ny)
    small = rng.random(P.shape) < 0.35
    P[small] *= level
    return P / P.sum()


def with_zeros(rng, n1, n2, ny):
    """Dense with a zero X1 row, a zero X2 column and a zero-probability label (needs
    n1, n2, ny >= 2), plus scattered zero cells."""
    P = dense(rng, n1, n2, ny)
    P[rng.integers(n1), :, :] = 0
    P[:, rng.integers(n2), :] = 0
    P[:, :, rng.integers(ny)] = 0
    P[rng.random(P.shape) < 0.2] = 0
    if P.sum() == 0:
        P[0, 0, 0] = 1.0
    return P / P.sum()


def histogram(rng, n1=20, n2=20, ny=6, samples=1000, concentration=0.5):
    """Joint histogram of ``samples`` draws, like clustered embeddings of two modalities
    and a class label: very sparse at 20 x 20 x |Y| with about 1,000 samples."""
    base = dense(rng, n1, n2, ny, concentration)
    counts = rng.multinomial(samples, base.ravel()).reshape(n1, n2, ny)
    return counts / counts.sum()


FAMILIES = {
    "dense": dense,
    "sparse": sparse,
    "near_deterministic": near_deterministic,
    "tiny": tiny,
    "with_zeros": with_zeros,
    "histogram": lambda rng, n1, n2, ny: histogram(rng, n1, n2, ny, samples=50 * n1 * n2 * ny // 24 + 20),
}

def harsh(rng):
    """One draw of the harshest family we know (bench_robustness, tests/test_elimination.py):
    a shape of 1 to 4 per axis, entries from {0, 1e-12, 1e-9, 1e-6, 0.5, 1} times a uniform
    factor (exact zeros and probabilities over 12 orders of magnitude), normalised; None when
    every entry is 0 (about 1 draw in 200), so that a seed gives the same draws as before."""
    shape = tuple(int(n) for n in rng.integers(1, 5, 3))
    w = rng.choice([0.0, 1e-9, 1e-12, 1e-6, 1.0, 0.5], size=shape) * rng.random(shape)
    return w / w.sum() if w.sum() > 0 else None


__all__ = ["gates", "dense", "sparse", "near_deterministic", "tiny", "with_zeros", "histogram", "harsh", "FAMILIES"]
