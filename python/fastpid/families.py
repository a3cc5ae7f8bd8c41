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


# ---------------------------------------------------------------------------------------
# Structured inputs: what users try first (gates, copies, functions of the sources, duplicated
# and near-copied sources). Their optima sit on faces of the polytope, with many cells at zero
# mass and degenerate dual points: this is where solvers break, not on random draws.

def _sources(rng, n1, n2, uniform):
    """P(x1, x2): uniform, or random (Dirichlet) marginals."""
    if uniform:
        return np.full((n1, n2), 1.0 / (n1 * n2))
    return rng.dirichlet(np.full(n1 * n2, rng.choice([0.3, 1.0, 3.0]))).reshape(n1, n2)


def _source_target(rng, n, ny, uniform):
    """P(x, y) of one source and the target: uniform, or random."""
    if uniform:
        return np.full((n, ny), 1.0 / (n * ny))
    return rng.dirichlet(np.full(n * ny, rng.choice([0.1, 0.5, 1.0]))).reshape(n, ny)


# Deterministic targets Y = f(X1, X2) on value grids a (x1) and b (x2) and a random table f; see
# deterministic() for how values become labels.
TARGETS = {
    "sum": lambda a, b, f: a + b,
    "difference": lambda a, b, f: a - b + b.max(initial=0),
    "product": lambda a, b, f: a * b,
    "min": lambda a, b, f: np.minimum(a, b),
    "max": lambda a, b, f: np.maximum(a, b),
    "parity": lambda a, b, f: (a + b) % 2,
    "function": lambda a, b, f: f[a, b],
    "copy1": lambda a, b, f: a,                      # Y = X1
    "copy_pair": lambda a, b, f: a * (b.max(initial=0) + 1) + b,  # Y = (X1, X2)
}


def deterministic(rng, n1, n2, ny, target="sum", uniform=True, flip=0.0):
    """Y = f(X1, X2) for a target of :data:`TARGETS` (labels folded modulo ny, unused labels
    zero), X1 and X2 uniform or with random joint marginals; with ``flip`` > 0 the label is
    replaced by a uniformly random one with that probability (a near-deterministic target)."""
    a, b = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    f = rng.integers(0, ny, size=(n1, n2))
    # The distinct values of f, in increasing order, are the labels (a product's values are not
    # contiguous), folded modulo ny.
    y = np.unique(np.asarray(TARGETS[target](a, b, f)), return_inverse=True)[1].reshape(n1, n2) % ny
    P = np.zeros((n1, n2, ny))
    P[a, b, y] = _sources(rng, n1, n2, uniform)
    if flip > 0:
        P = (1 - flip) * P + flip * P.sum(2, keepdims=True) / ny
    return P / P.sum()


def _relabelled(rng, n1, n2):
    """g: values of X1 -> values of X2, a random bijection where n1 == n2, else a random map
    onto as many values of X2 as it can reach."""
    if n1 == n2:
        return rng.permutation(n2)
    g = rng.integers(0, n2, size=n1)
    g[: min(n1, n2)] = rng.permutation(n2)[: min(n1, n2)]
    return rng.permutation(g)


def dependent_sources(rng, n1, n2, ny, uniform=False, flip=0.0):
    """X2 = g(X1), with P(x1, y) uniform or random: for n1 == n2 a duplicated source (g a
    bijection), else a function of it. With ``flip`` > 0, X2 is replaced by a uniformly random
    other value with that probability: a near copy."""
    pxy = _source_target(rng, n1, ny, uniform)
    g = _relabelled(rng, n1, n2)
    channel = np.zeros((n1, n2))  # P(x2 | x1)
    channel[np.arange(n1), g] = 1.0
    if flip > 0 and n2 > 1:
        channel = (1 - flip) * channel + flip * (1 - channel) / (n2 - 1)
    P = pxy[:, None, :] * channel[:, :, None]
    return P / P.sum()


STRUCTURED_KINDS = tuple(TARGETS) + ("noisy_function", "duplicate", "dependent", "near_copy", "histogram", "mixture")


def _log_uniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def structured_case(rng, n1, n2, ny, kind=None):
    """One draw of the structured family of shape (n1, n2, ny) and what it is:
    ``(P, {"kind": ..., parameters})``. ``kind`` (one of :data:`STRUCTURED_KINDS`, random
    when None):

    - a deterministic target of :data:`TARGETS` (sum, difference, product, min, max, parity, a
      random function, the copies Y = X1 and Y = (X1, X2)), uniform or random inputs;
    - ``noisy_function``: a random function whose label flips with probability 1e-6 to 1e-1;
    - ``duplicate`` (X2 = X1 relabelled; n2 is set to n1) and ``dependent`` (X2 = g(X1)), with
      P(x1, y) uniform or random;
    - ``near_copy``: X2 = X1 relabelled except with a flip probability from 1e-6 to 1e-1;
    - ``histogram``: counts of 200 to 50,000 samples of another kind (as probabilities);
    - ``mixture``: another kind plus a dense part of relative mass 1e-4 to 1e-1.

    The kinds whose shape is fixed by their definition (duplicate) keep the requested shape by
    folding or zero padding instead; every draw has shape (n1, n2, ny) and sums to 1.
    """
    kind = kind if kind is not None else STRUCTURED_KINDS[rng.integers(len(STRUCTURED_KINDS))]
    uniform = bool(rng.integers(2))
    if kind in TARGETS:
        return deterministic(rng, n1, n2, ny, kind, uniform), {"kind": kind, "uniform": uniform}
    if kind == "noisy_function":
        flip = _log_uniform(rng, 1e-6, 1e-1)
        return deterministic(rng, n1, n2, ny, "function", uniform, flip), {"kind": kind, "uniform": uniform, "flip": flip}
    if kind in ("duplicate", "dependent"):
        return dependent_sources(rng, n1, n2, ny, uniform), {"kind": kind if n1 == n2 else "dependent", "uniform": uniform}
    if kind == "near_copy":
        flip = _log_uniform(rng, 1e-6, 1e-1)
        return dependent_sources(rng, n1, n2, ny, uniform, flip), {"kind": kind, "uniform": uniform, "flip": flip}
    inner_kinds = [k for k in STRUCTURED_KINDS if k not in ("histogram", "mixture")]
    inner, about = structured_case(rng, n1, n2, ny, inner_kinds[rng.integers(len(inner_kinds))])
    if kind == "histogram":
        samples = int(_log_uniform(rng, 200, 50_000))
        counts = rng.multinomial(samples, inner.ravel()).reshape(inner.shape)
        return counts / counts.sum(), {"kind": kind, "samples": samples, "of": about}
    if kind == "mixture":
        weight = _log_uniform(rng, 1e-4, 1e-1)
        P = (1 - weight) * inner + weight * dense(rng, n1, n2, ny)
        return P / P.sum(), {"kind": kind, "dense_weight": weight, "of": about}
    raise ValueError(f"kind must be one of {STRUCTURED_KINDS}, got {kind!r}")


def structured(rng, n1, n2, ny, kind=None):
    """A draw of the structured family (see :func:`structured_case`), the distribution only."""
    return structured_case(rng, n1, n2, ny, kind)[0]


def structured_shape(rng, kind, largest=40):
    """A shape for ``kind`` from 2x2x2 up to ``largest`` values per source (log-uniform per
    axis), with the labels the kind's definition needs where it fixes them (a sum gate of n
    values has 2n - 1 labels; Y = (X1, X2) has n1 n2, kept to at most 2 * largest - 1)."""
    n1, n2 = (int(round(_log_uniform(rng, 2, largest))) for _ in range(2))
    if kind == "duplicate":
        n2 = n1
    labels = {"sum": n1 + n2 - 1, "difference": n1 + n2 - 1, "min": min(n1, n2), "max": max(n1, n2), "parity": 2,
              "copy1": n1, "copy_pair": n1 * n2}
    if kind == "product":
        while (ny := len(np.unique(np.outer(np.arange(n1), np.arange(n2))))) > 2 * largest - 1:
            n1, n2 = max(2, n1 - 1), max(2, n2 - 1)
    elif kind in labels:
        ny = labels[kind]
    else:
        ny = int(round(_log_uniform(rng, 2, 2 * largest - 1)))
    if kind == "copy_pair" and ny > 2 * largest - 1:  # keep Y = (X1, X2) a copy: fewer values
        n1 = max(2, int(np.sqrt(2 * largest - 1)))
        n2 = max(2, (2 * largest - 1) // n1)
        ny = n1 * n2
    return n1, n2, ny


FAMILIES = {
    "dense": dense,
    "sparse": sparse,
    "near_deterministic": near_deterministic,
    "tiny": tiny,
    "with_zeros": with_zeros,
    "histogram": lambda rng, n1, n2, ny: histogram(rng, n1, n2, ny, samples=50 * n1 * n2 * ny // 24 + 20),
    "structured": structured,  # a random kind of structured_case
}

def _gate3(fn, n=2):
    """P(x1, x2, x3, y): uniform independent inputs on n values, y = fn(x1, x2, x3) (labels: the
    distinct outputs in increasing order)."""
    import itertools

    grid = list(itertools.product(range(n), repeat=3))
    labels = {v: k for k, v in enumerate(sorted({fn(*x) for x in grid}))}
    P = np.zeros((n, n, n, len(labels)))
    for x in grid:
        P[x + (labels[fn(*x)],)] += 1.0 / n**3
    return P


def gates3() -> dict:
    """Three-input gates whose trivariate maximum-entropy terms are known (bits): name -> (P,
    the terms that are not 0). xor of three and X1 xor X2 (X3 irrelevant): 1 bit of synergy of
    the three; copies of one, of all three (Y = (X1, X2, X3)), a bit three sources copy
    (redundancy) and one only X1 and X2 copy (X3 independent: shared12)."""
    three_copies = np.zeros((2, 2, 2, 2))
    three_copies[0, 0, 0, 0] = three_copies[1, 1, 1, 1] = 0.5
    two_copies = np.zeros((2, 2, 2, 2))
    for y in range(2):
        two_copies[y, y, :, y] = 0.25
    return {
        "xor3": (_gate3(lambda a, b, c: a ^ b ^ c), {"synergy": 1.0}),
        "xor12": (_gate3(lambda a, b, c: a ^ b), {"synergy": 1.0}),
        "copy1": (_gate3(lambda a, b, c: a), {"unique1": 1.0}),
        "copy_all": (_gate3(lambda a, b, c: 4 * a + 2 * b + c), {"unique1": 1.0, "unique2": 1.0, "unique3": 1.0}),
        "rdn3": (three_copies, {"redundancy": 1.0}),
        "shared12": (two_copies, {"shared12": 1.0}),
    }


def _three_inputs(rng, n1, n2, n3, uniform):
    """P(x1, x2, x3): uniform, or random (Dirichlet)."""
    shape = (n1, n2, n3)
    return np.full(shape, 1.0 / (n1 * n2 * n3)) if uniform else rng.dirichlet(np.ones(n1 * n2 * n3)).reshape(shape)


def function3(rng, n1, n2, n3, ny, target="function", flip=None):
    """Y = f(X1, X2, X3), uniform or random inputs: ``target`` "sum" ((x1 + x2 + x3) mod ny:
    xor of three for binary inputs), "min", "majority" (the most frequent value, ties to the
    least), "copy1" (Y = X1 mod ny) or "function" (a random f); with probability ``flip`` (None:
    0 or log-uniform from 1e-6 to 1e-1 at random) Y is replaced by a uniform label."""
    a, b, c = np.meshgrid(np.arange(n1), np.arange(n2), np.arange(n3), indexing="ij")
    table = {"sum": lambda: a + b + c, "min": lambda: np.minimum(np.minimum(a, b), c),
             "majority": lambda: np.where((a == b) | (a == c), a, np.where(b == c, b, np.minimum(np.minimum(a, b), c))),
             "copy1": lambda: a, "function": lambda: rng.integers(0, ny, (n1, n2, n3))}
    y = table[target]() % ny
    if flip is None:
        flip = 0.0 if rng.integers(2) else _log_uniform(rng, 1e-6, 1e-1)
    inputs = _three_inputs(rng, n1, n2, n3, bool(rng.integers(2)))
    P = inputs[..., None] * ((1 - flip) * (np.arange(ny) == y[..., None]) + flip / ny)
    return P / P.sum()


def _lifted(family):
    """A bivariate family's draw of shape (n1, n2 n3, ny) read as (n1, n2, n3, ny): X2 and X3
    the two halves of its second source."""
    return lambda rng, n1, n2, n3, ny: FAMILIES[family](rng, n1, n2 * n3, ny).reshape(n1, n2, n3, ny)


def duplicate3(rng, n1, n2, n3, ny):
    """A structured bivariate draw P(x1, x2, y) with X3 = g(X1) (a random map of X1's values
    onto n3 values, a relabelled copy where n3 == n1)."""
    P2 = structured(rng, n1, n2, ny)
    g = rng.permutation(n1) % n3 if n3 >= n1 else rng.integers(0, n3, n1)
    P = np.zeros((n1, n2, n3, ny))
    P[np.arange(n1), :, g, :] = P2
    return P


def constant3(rng, n1, n2, n3, ny):
    """A structured bivariate draw P(x1, x2, y) with a constant third source (its first value)."""
    P = np.zeros((n1, n2, n3, ny))
    P[:, :, 0, :] = structured(rng, n1, n2, ny)
    return P


def harsh(rng):
    """One draw of the harshest family we know (bench_robustness, tests/test_elimination.py):
    a shape of 1 to 4 per axis, entries from {0, 1e-12, 1e-9, 1e-6, 0.5, 1} times a uniform
    factor (exact zeros and probabilities over 12 orders of magnitude), normalised; None when
    every entry is 0 (about 1 draw in 200), so that a seed gives the same draws as before."""
    shape = tuple(int(n) for n in rng.integers(1, 5, 3))
    w = rng.choice([0.0, 1e-9, 1e-12, 1e-6, 1.0, 0.5], size=shape) * rng.random(shape)
    return w / w.sum() if w.sum() > 0 else None


# Three-source families of shape (n1, n2, n3, ny): every bivariate family lifted (X2 and X3
# the halves of its second source), deterministic targets of the three, a source duplicated
# and a constant source.
FAMILIES3 = {
    **{f"lifted_{name}": _lifted(name) for name in FAMILIES},
    **{f"function3_{target}": (lambda target: lambda rng, n1, n2, n3, ny: function3(rng, n1, n2, n3, ny, target))(target)
       for target in ("sum", "min", "majority", "copy1", "function")},
    "duplicate3": duplicate3,
    "constant3": constant3,
}

__all__ = ["gates", "dense", "sparse", "near_deterministic", "tiny", "with_zeros", "histogram", "harsh", "FAMILIES",
           "TARGETS", "STRUCTURED_KINDS", "deterministic", "dependent_sources", "structured", "structured_case", "structured_shape",
           "FAMILIES3", "function3", "duplicate3", "constant3", "gates3"]
