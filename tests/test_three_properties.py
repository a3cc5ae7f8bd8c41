"""Property tests of the trivariate decomposition and the k-source union information
(hypothesis): the identities of the definitions and the symmetries, on random small
distributions with exact zeros and entries down to 1e-6 of the largest."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import fastpid
from fastpid.result import TERMS3

TOL = 1e-8  # bits


@st.composite
def distributions3(draw, max_side=3, smallest=1e-6):
    shape = tuple(draw(st.integers(1, max_side)) for _ in range(4))
    weights = draw(arrays(np.float64, shape, elements=st.one_of(st.just(0.0), st.floats(smallest, 1.0), st.floats(smallest, 1.0))))
    if weights.sum() <= 0:
        weights[tuple(draw(st.integers(0, n - 1)) for n in shape)] = 1.0
    return weights / weights.sum()


SETTINGS = settings(max_examples=80, deadline=None)


@SETTINGS
@given(distributions3())
def test_terms_identities_and_signs(P):
    r = fastpid.decompose(P, sources=3, tol=TOL)
    assert bool(r.converged) and float(r.bound) <= TOL
    terms = {t: float(getattr(r, t)) for t in TERMS3}
    assert sum(terms.values()) == pytest.approx(float(r.mi_joint), abs=1e-12)
    for i, (a, b) in enumerate((("shared12", "shared13"), ("shared12", "shared23"), ("shared13", "shared23"))):
        assert terms["redundancy"] + terms[f"unique{i + 1}"] + terms[a] + terms[b] == pytest.approx(
            float(getattr(r, f"mi_x{i + 1}")), abs=1e-12)
    for t in ("synergy", "unique1", "unique2", "unique3"):
        assert terms[t] >= -float(r.bound), t
    assert float(r.mi_joint) >= max(float(r.mi_x12), float(r.mi_x13), float(r.mi_x23)) - 1e-12


@SETTINGS
@given(distributions3())
def test_swapping_two_sources_swaps_their_terms(P):
    r = fastpid.decompose(P, sources=3, tol=TOL)
    s = fastpid.decompose(P.transpose(1, 0, 2, 3), sources=3, tol=TOL)
    swapped = {"unique1": "unique2", "unique2": "unique1", "shared13": "shared23", "shared23": "shared13"}
    slack = float(r.bound + s.bound)
    for t in TERMS3:
        assert float(getattr(s, swapped.get(t, t))) == pytest.approx(float(getattr(r, t)), abs=slack), t


@SETTINGS
@given(distributions3())
def test_union_information_is_the_decompositions_synergy(P):
    r = fastpid.decompose(P, sources=3, tol=TOL)
    u = fastpid.union_information(P, sources=3, tol=TOL)
    assert bool(u.converged)
    assert float(u.synergy) == pytest.approx(float(r.synergy), abs=float(u.bound + r.bound))
    assert float(u.union) + float(u.synergy) == pytest.approx(float(u.mi_joint), abs=1e-12)
    assert float(u.mi_joint) == pytest.approx(float(r.mi_joint), abs=1e-12)
    # the union of the three is at least what any one source tells
    assert float(u.union) >= float(np.max(u.mi_sources)) - float(u.bound) - 1e-12
