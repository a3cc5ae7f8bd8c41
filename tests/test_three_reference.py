"""The CVXPY reference for more than two sources (fastpid.reference: the k-source union problem
and the trivariate maximum-entropy decomposition): the values every native k-source solver will
be checked against, themselves checked on the gates whose decomposition is known and on the
identities of the definitions."""
import itertools

import numpy as np
import pytest

pytest.importorskip("cvxpy")
from fastpid import decompose
from fastpid.reference import TERMS3, decompose3_cvxpy, decompose_cvxpy, union_information_cvxpy

TOL = 1e-6  # bits: CVXPY's accuracy on these small programs


def gate3(function, n=2):
    """P(x1, x2, x3, y) with uniform independent inputs on n values and y = function(x1, x2, x3)."""
    outputs = {function(*x) for x in itertools.product(range(n), repeat=3)}
    labels = {v: k for k, v in enumerate(sorted(outputs))}
    P = np.zeros((n, n, n, len(labels)))
    for x in itertools.product(range(n), repeat=3):
        P[x + (labels[function(*x)],)] += 1.0 / n**3
    return P


def test_xor_of_three_is_all_synergy_which_pairwise_pid_misses():
    P = gate3(lambda a, b, c: a ^ b ^ c)
    terms = decompose3_cvxpy(P)
    assert terms["status"] == "optimal"
    assert terms["synergy"] == pytest.approx(1.0, abs=TOL)
    for name in TERMS3:
        if name != "synergy":
            assert terms[name] == pytest.approx(0.0, abs=TOL), name
    for drop in range(3):  # every pair: no information at all about Y, so no synergy either
        pairwise = decompose(P.sum(axis=drop))
        assert float(pairwise.synergy) == pytest.approx(0.0, abs=1e-7)
    assert union_information_cvxpy(P)["synergy"] == pytest.approx(1.0, abs=TOL)


@pytest.mark.parametrize("name, function, expected", [
    ("copy1", lambda a, b, c: a, {"unique1": 1.0}),
    ("and3", lambda a, b, c: a & b & c, None),
    ("majority", lambda a, b, c: int(a + b + c >= 2), None),
    # X1 xor X2 with X3 irrelevant: no (Xi, Y) pair carries anything, so all of it is synergy
    # over the sources' union (CI), as for the xor of three
    ("xor12", lambda a, b, c: a ^ b, {"synergy": 1.0}),
])
def test_three_input_gates(name, function, expected):
    P = gate3(function)
    terms = decompose3_cvxpy(P)
    assert terms["status"] == "optimal"
    assert sum(terms[t] for t in TERMS3) == pytest.approx(terms["mi_joint"], abs=1e-12)
    for t, value in (expected or {}).items():
        assert terms[t] == pytest.approx(value, abs=TOL), (name, t)
    if name in ("copy1", "xor12"):
        assert all(abs(terms[t]) < TOL for t in TERMS3 if t not in expected)
    if name in ("and3", "majority"):  # symmetric in the three inputs
        for group in (("unique1", "unique2", "unique3"), ("shared12", "shared13", "shared23")):
            assert max(terms[t] for t in group) - min(terms[t] for t in group) < TOL, (name, group)


def test_two_sources_are_broja():
    rng = np.random.default_rng(3)
    for _ in range(4):
        P = rng.dirichlet(np.ones(3 * 4 * 3)).reshape(3, 4, 3)
        got = union_information_cvxpy(P)
        want = decompose_cvxpy(P)
        assert got["union"] == pytest.approx(float(want.redundancy + want.unique1 + want.unique2), abs=TOL)
        assert got["synergy"] == pytest.approx(float(want.synergy), abs=TOL)
        assert got["synergy"] == pytest.approx(float(decompose(P, tol=1e-9).synergy), abs=TOL)


def test_a_constant_third_source_gives_the_bivariate_decomposition():
    rng = np.random.default_rng(4)
    P2 = rng.dirichlet(np.ones(3 * 3 * 2)).reshape(3, 3, 2)
    terms = decompose3_cvxpy(P2[:, :, None, :])
    pid = decompose(P2, tol=1e-9)
    for name, value in (("synergy", pid.synergy), ("unique1", pid.unique1), ("unique2", pid.unique2), ("shared12", pid.redundancy)):
        assert terms[name] == pytest.approx(float(value), abs=TOL), name
    for name in ("unique3", "shared13", "shared23", "redundancy"):
        assert terms[name] == pytest.approx(0.0, abs=TOL), name


def test_permuting_sources_permutes_the_terms():
    rng = np.random.default_rng(5)
    P = rng.dirichlet(np.ones(2 * 3 * 2 * 2)).reshape(2, 3, 2, 2)
    base = decompose3_cvxpy(P)
    swapped = decompose3_cvxpy(P.transpose(1, 0, 2, 3))  # X1 <-> X2
    renamed = {"unique1": "unique2", "unique2": "unique1", "shared13": "shared23", "shared23": "shared13"}
    for name in TERMS3:
        assert swapped[renamed.get(name, name)] == pytest.approx(base[name], abs=TOL), name


def test_four_sources_run():
    rng = np.random.default_rng(6)
    P = rng.dirichlet(np.ones(3**4 * 2)).reshape(3, 3, 3, 3, 2)
    got = union_information_cvxpy(P)
    assert got["status"] == "optimal"
    assert -TOL <= got["synergy"] <= got["mi_joint"] + TOL
    # more sources can only lower the union problem's maximum: the union information of the
    # four is at least that of any three of them
    three = union_information_cvxpy(P.sum(axis=3))
    assert got["union"] >= three["union"] - TOL
