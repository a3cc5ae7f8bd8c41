"""The native k-source union solver (_C.union_cpu: union.hpp with the CPU algebra, behind
fastpid.union_information and decompose(sources=3)): its certificate is honest against the CVXPY
reference on 2 to 5 sources, it equals BROJA for two, and it is exact on gates."""
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
        out = _C.union_cpu(P[None], 6.9e-8, 2000)
        value, bound = float(out["value"][0]), float(out["bound"][0])
        want = max_union_entropy_cvxpy(P)[0]
        assert value <= want + CVXPY_SLACK, (shape, kind)          # a feasible coupling's entropy
        assert want - value <= bound + CVXPY_SLACK, (shape, kind)  # within its certified gap
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
