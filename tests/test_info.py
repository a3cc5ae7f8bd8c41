"""pid_informations of numpy inputs (the native kernel, csrc/cpu/informations_cpu.cpp) against
the definitions through fastpid.info's entropy, against torch, and on gates with known values."""
import math

import numpy as np
import pytest

from fastpid.families import FAMILIES
from fastpid.info import entropy, mutual_information, pid_informations


def by_definition(P):
    """I(X1;Y), I(X2;Y), I(X1,X2;Y), H(Y) in bits from entropy() of the marginals."""
    n1, n2, ny = P.shape[-3:]
    p_x1y, p_x2y = P.sum(-2), P.sum(-3)
    joint = P.reshape(P.shape[:-3] + (n1 * n2, ny))
    return {
        "mi_x1": mutual_information(p_x1y),
        "mi_x2": mutual_information(p_x2y),
        "mi_joint": mutual_information(joint),
        "entropy_y": entropy(P.sum((-3, -2))),
    }


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 4), (7, 5, 9), (1, 6, 40)])
def test_native_informations_match_the_definitions(family, shape, rng):
    P = np.stack([FAMILIES[family](rng, *shape) for _ in range(6)]).reshape((2, 3) + shape)
    got, want = pid_informations(P), by_definition(P)
    for name in want:
        assert got[name].shape == (2, 3)
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-13)


def test_native_informations_match_torch(rng):
    torch = pytest.importorskip("torch")
    P = np.stack([FAMILIES["with_zeros"](rng, 4, 5, 3) for _ in range(10)])
    got, want = pid_informations(P, base=math.e), pid_informations(torch.tensor(P), base=math.e)
    for name in want:
        np.testing.assert_allclose(got[name], want[name].numpy(), rtol=0, atol=1e-13)


def test_informations_of_xor_and_copy():
    xor = np.zeros((2, 2, 2))
    for a in range(2):
        for b in range(2):
            xor[a, b, a ^ b] = 0.25
    r = pid_informations(xor)
    assert (float(r["mi_x1"]), float(r["mi_x2"]), float(r["mi_joint"]), float(r["entropy_y"])) == pytest.approx((0, 0, 1, 1), abs=1e-15)
    copy = np.zeros((2, 2, 4))
    for a in range(2):
        for b in range(2):
            copy[a, b, 2 * a + b] = 0.25
    r = pid_informations(copy)
    assert (float(r["mi_x1"]), float(r["mi_x2"]), float(r["mi_joint"]), float(r["entropy_y"])) == pytest.approx((1, 1, 2, 2), abs=1e-15)
