"""The native k-source union solver (_C.union_cpu: union.hpp with the CPU algebra, behind
fastpid.union_information and decompose(sources=3)): its certificate is honest against the CVXPY
reference on 2 to 5 sources with either elimination of its Newton systems, it equals BROJA for
two, and it is exact on gates."""
import itertools

import numpy as np
import pytest

from fastpid import _C, decompose

pytest.importorskip("cvxpy")
from fastpid.reference import max_union_entropy_cvxpy

CVXPY_SLACK = 2e-8  # nats: the reference's own accuracy on these programs


@pytest.mark.parametrize("shape", [(3, 3, 2), (4, 5, 3), (2, 2, 2, 2), (3, 3, 3, 2), (4, 3, 2, 3), (2, 3, 2, 2, 2)])
def test_certificate_is_honest_against_cvxpy(shape):
    rng = np.random.default_rng(sum(shape))
    for kind in ("dense", "sparse"):
        alpha = np.ones(int(np.prod(shape))) if kind == "dense" else np.full(int(np.prod(shape)), 0.1)
        P = rng.dirichlet(alpha).reshape(shape)
        want = max_union_entropy_cvxpy(P)[0]
        for elimination in ("dense", "source"):
            out = _C.union_cpu(P[None], 6.9e-8, 2000, elimination=elimination)
            value, bound = float(out["value"][0]), float(out["bound"][0])
            assert value <= want + CVXPY_SLACK, (shape, kind, elimination)          # a feasible coupling's entropy
            assert want - value <= bound + CVXPY_SLACK, (shape, kind, elimination)  # within its certified gap
            assert bound < 1e-6 and out["iterations"][0] > 0


def test_two_sources_give_broja():
    rng = np.random.default_rng(9)
    P = rng.dirichlet(np.ones(4 * 5 * 3)).reshape(4, 5, 3)
    out = _C.union_cpu(P[None], 6.9e-8, 2000)
    r = decompose(P, base=np.e, tol=1e-10)
    union = float(r.redundancy + r.unique1 + r.unique2)
    entropy_y = -(P.sum((0, 1)) * np.log(P.sum((0, 1)))).sum()
    assert abs((entropy_y - out["value"][0]) - union) <= out["bound"][0] + 1e-9


def test_xor_of_three_is_exact():
    P = np.zeros((2, 2, 2, 2))
    for a, b, c in itertools.product(range(2), repeat=3):
        P[a, b, c, a ^ b ^ c] = 1 / 8
    out = _C.union_cpu(P[None], 1e-12, 100)
    assert bool(out["converged"][0]) and out["value"][0] == pytest.approx(np.log(2), abs=1e-12)


def test_certificate_against_a_tighter_solve_on_near_deterministic_inputs():
    """Every certified value is within its bound of a 1e-12-nat solve of the same distribution.
    Near-deterministic inputs (entries of 3e-10) leave the rounding's deficits at the rounding
    noise of marginals already met; the k-source rounding once divided their product by one
    source's noise to the power k - 1 and certified a coupling 1.8e-9 nats above the optimum
    with a negative gap (the first draw below, found by comparing the CPU and team algebras)."""
    from fastpid.families import FAMILIES3

    rng = np.random.default_rng(660)
    shape = tuple(int(n) for n in rng.integers(2, 5, 3)) + (int(rng.integers(2, 5)),)
    draws = [FAMILIES3["lifted_near_deterministic"](rng, *shape)]
    rng = np.random.default_rng(17)
    for family in ("lifted_near_deterministic", "function3_min", "function3_majority", "lifted_structured", "duplicate3"):
        for _ in range(12):
            shape = tuple(int(n) for n in rng.integers(2, 5, 3)) + (int(rng.integers(2, 5)),)
            draws.append(FAMILIES3[family](rng, *shape))
    for P in draws:
        loose = _C.union_cpu(P[None], 6.9e-8, 200)
        tight = _C.union_cpu(P[None], 1e-12, 400)
        assert abs(loose["value"][0] - tight["value"][0]) <= loose["bound"][0] + tight["bound"][0] + 1e-12, P.shape


@pytest.mark.parametrize("shape", [(3, 4, 2, 3), (2, 3, 5, 2), (5, 2, 3, 4), (2, 4, 3, 2, 3)])
def test_both_eliminations_agree_on_every_family(shape, rng):
    """The Newton systems factorised densely and on the source with the most unknowns (first,
    middle or last: the matrix's rows permuted) give the same optimum, within both bounds, on
    every family of FAMILIES3 (three sources) and on sparse Dirichlet draws (four)."""
    from fastpid.families import FAMILIES3

    draws = {"dirichlet 0.3": lambda: rng.dirichlet(np.full(int(np.prod(shape)), 0.3)).reshape(shape)}
    if len(shape) == 4:
        draws = {family: (lambda make=make: make(rng, *shape)) for family, make in FAMILIES3.items()}
    for family, draw in sorted(draws.items()):
        P = np.stack([draw(), draw()])
        dense = _C.union_cpu(P, 1e-9, 300, 1, elimination="dense")
        source = _C.union_cpu(P, 1e-9, 300, 1, elimination="source")
        assert source["converged"].all() and dense["converged"].all(), (family, source["bound"], dense["bound"])
        np.testing.assert_array_less(np.abs(dense["value"] - source["value"]), dense["bound"] + source["bound"] + 1e-12)
    with pytest.raises(ValueError, match="elimination"):
        _C.union_cpu(P, 1e-9, 300, 1, elimination="cells")
