import numpy as np
import pytest

import fastpid
from fastpid.families import gates

GATES = gates()


@pytest.mark.parametrize("name", sorted(GATES))
@pytest.mark.parametrize("method", ["exact", "refine"])
def test_gate_values(name, method):
    P, expected = GATES[name]
    r = fastpid.decompose(P, method=method, tol=1e-9)
    assert bool(r.converged)
    assert float(r.bound) <= 1e-9
    for atom, value in expected.items():
        assert float(getattr(r, atom)) == pytest.approx(value, abs=2e-9), atom


def test_gate_batch_matches_single():
    names = sorted(n for n in GATES if GATES[n][0].shape == (2, 2, 2))
    batch = np.stack([GATES[n][0] for n in names])
    r = fastpid.decompose(batch)
    for i, n in enumerate(names):
        for atom, value in GATES[n][1].items():
            assert float(getattr(r, atom)[i]) == pytest.approx(value, abs=1e-6)


def test_nats():
    P, expected = GATES["xor"]
    r = fastpid.decompose(P, base=np.e)
    assert r.unit == "nats"
    assert float(r.synergy) == pytest.approx(np.log(2), abs=1e-7)


def test_coupling_is_feasible_and_attains_value():
    P, _ = GATES["and"]
    r = fastpid.decompose(P, return_coupling=True, tol=1e-10)
    Q = r.coupling
    np.testing.assert_allclose(Q.sum(1), P.sum(1), atol=1e-15)
    np.testing.assert_allclose(Q.sum(0), P.sum(0), atol=1e-15)
    assert (Q >= 0).all()
    # I_Q(X1,X2;Y) = R + U1 + U2
    mi_q = fastpid.info.pid_informations(Q)["mi_joint"]
    assert float(mi_q) == pytest.approx(float(r.redundancy + r.unique1 + r.unique2), abs=1e-12)


def test_proxy_is_certified_upper_bound_on_union():
    P, _ = GATES["and"]
    exact = fastpid.decompose(P, tol=1e-10)
    proxy = fastpid.decompose(P, method="proxy")
    # The proxy's coupling is feasible: its union information is >= the optimum, within its bound.
    union_exact = float(exact.mi_joint - exact.synergy)
    union_proxy = float(proxy.mi_joint - proxy.synergy)
    assert union_proxy >= union_exact - 1e-9
    assert union_proxy - union_exact <= float(proxy.bound) + 1e-9
    assert int(proxy.iterations) == 0
