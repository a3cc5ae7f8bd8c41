"""More than two sources: fastpid.decompose(P, sources=3) (the trivariate maximum-entropy
decomposition) and fastpid.union_information(P, sources=k), checked on the three-input gates
whose terms are known, against the CVXPY reference on every family of fastpid.families.FAMILIES3,
on the identities of the definitions, and as torch functions (gradients, float32 bounds)."""
import itertools
import math

import numpy as np
import pytest

import fastpid
from fastpid.families import FAMILIES3, gates3
from fastpid.result import TERMS3

GATE_TOL = 1e-9  # bits: the acceptance for the gates whose terms are known


KNOWN = gates3()  # name -> (P, the terms that are not 0, in bits)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_gates_with_known_terms(name):
    P, nonzero = KNOWN[name]
    r = fastpid.decompose(P, sources=3, tol=1e-10)
    assert bool(r.converged) and float(r.bound) <= 1e-10
    for term in TERMS3:
        assert float(getattr(r, term)) == pytest.approx(nonzero.get(term, 0.0), abs=GATE_TOL), (name, term)
    assert float(r.mi_joint) == pytest.approx(sum(nonzero.values()), abs=1e-12)


def test_xor_of_three_is_synergy_that_every_pairwise_decomposition_misses():
    P = KNOWN["xor3"][0]
    for drop in range(3):
        assert float(fastpid.decompose(P.sum(axis=drop)).mi_joint) == pytest.approx(0.0, abs=1e-12)
    u = fastpid.union_information(P, sources=3, tol=1e-10)
    assert float(u.synergy) == pytest.approx(1.0, abs=GATE_TOL) and float(u.union) == pytest.approx(0.0, abs=GATE_TOL)


def test_two_sources_union_is_decompose():
    rng = np.random.default_rng(2)
    P = np.stack([FAMILIES3["lifted_structured"](rng, 4, 5, 1, 3)[:, :, 0] for _ in range(6)])
    r = fastpid.decompose(P)
    u = fastpid.union_information(P, sources=2)
    # the same solver's values: equal up to the rounding of the informations' evaluation
    np.testing.assert_allclose(u.union, r.redundancy + r.unique1 + r.unique2, rtol=0, atol=1e-14)
    np.testing.assert_allclose(u.synergy, r.synergy, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(u.iterations, r.iterations)
    assert (np.abs(u.bound - r.bound) <= 1e-14).all()
    np.testing.assert_allclose(u.mi_sources, np.stack([r.mi_x1, r.mi_x2], -1), atol=1e-14)


def test_identities_on_every_family():
    rng = np.random.default_rng(3)
    for name, family in FAMILIES3.items():
        for _ in range(3):
            shape = tuple(int(n) for n in rng.integers(2, 6, 3)) + (int(rng.integers(2, 6)),)
            P = family(rng, *shape)
            r = fastpid.decompose(P, sources=3)
            assert bool(r.converged) and float(r.bound) <= 1e-7, (name, shape)
            total = sum(float(getattr(r, t)) for t in TERMS3)
            assert total == pytest.approx(float(r.mi_joint), abs=1e-12), name
            # I(Xi;Y) = redundancy + unique_i + the two shared terms of i
            for i, (a, b) in enumerate((("shared12", "shared13"), ("shared12", "shared23"), ("shared13", "shared23"))):
                parts = float(r.redundancy) + float(getattr(r, f"unique{i + 1}")) + float(getattr(r, a)) + float(getattr(r, b))
                assert parts == pytest.approx(float(getattr(r, f"mi_x{i + 1}")), abs=1e-12), (name, i)
            # synergy and the unique terms are differences of nested maxima: never below 0
            for t in ("synergy", "unique1", "unique2", "unique3"):
                assert float(getattr(r, t)) >= -float(r.bound), (name, t)


def test_a_constant_third_source_gives_the_bivariate_decomposition():
    rng = np.random.default_rng(4)
    for _ in range(5):
        P2 = FAMILIES3["lifted_structured"](rng, 4, 3, 1, 3)[:, :, 0]
        P = np.zeros((4, 3, 2, 3))
        P[:, :, 1] = P2
        r, pid = fastpid.decompose(P, sources=3), fastpid.decompose(P2)
        slack = float(r.bound + pid.bound)
        for three, two in (("synergy", "synergy"), ("unique1", "unique1"), ("unique2", "unique2"), ("shared12", "redundancy")):
            assert abs(float(getattr(r, three)) - float(getattr(pid, two))) <= slack, three
        for t in ("unique3", "shared13", "shared23", "redundancy"):
            assert abs(float(getattr(r, t))) <= slack, t


def test_permuting_sources_permutes_the_terms():
    rng = np.random.default_rng(5)
    P = FAMILIES3["lifted_dense"](rng, 3, 4, 2, 3)
    base = fastpid.decompose(P, sources=3)
    for perm in itertools.permutations(range(3)):
        r = fastpid.decompose(P.transpose(perm + (3,)), sources=3)
        # new source j is old source perm[j]
        def old(term):
            if term.startswith("unique"):
                return f"unique{perm[int(term[-1]) - 1] + 1}"
            if term.startswith("shared"):
                pair = sorted(perm[int(c) - 1] + 1 for c in term[-2:])
                return f"shared{pair[0]}{pair[1]}"
            return term
        for t in TERMS3:
            assert float(getattr(r, t)) == pytest.approx(float(getattr(base, old(t))), abs=float(r.bound + base.bound)), (perm, t)


def test_batches_and_units():
    rng = np.random.default_rng(6)
    P = np.stack([FAMILIES3["function3_majority"](rng, 3, 3, 3, 3) for _ in range(6)]).reshape(2, 3, 3, 3, 3, 3)
    r = fastpid.decompose(P, sources=3)
    assert r.batch_shape == (2, 3) and r.bound.shape == (2, 3) and r.converged.all()
    one = fastpid.decompose(P[1, 2], sources=3)
    assert float(r.synergy[1, 2]) == pytest.approx(float(one.synergy), abs=1e-12)
    nats = fastpid.decompose(P, sources=3, base=math.e)
    # the same terms, each within its bounds (tol is in each call's unit: the solves differ)
    assert (np.abs(nats.synergy - r.synergy * math.log(2)) <= nats.bound + r.bound * math.log(2)).all()
    assert nats.unit == "nats" and r.unit == "bits"
    counts = P * 1000
    np.testing.assert_allclose(fastpid.decompose(counts, sources=3, normalize=True).synergy, r.synergy, atol=1e-9)
    assert "PID3Result" in repr(r) and set(TERMS3) <= set(r.to_dict())


def test_float32_bound_covers_the_rounding_of_the_returned_terms():
    rng = np.random.default_rng(7)
    for name in ("function3_sum", "duplicate3", "lifted_near_deterministic"):
        P = FAMILIES3[name](rng, 5, 4, 3, 6)
        exact = fastpid.decompose(P, sources=3, tol=1e-11)
        single = fastpid.decompose(P.astype(np.float32), sources=3)
        assert single.synergy.dtype == np.float32 and single.bound.dtype == np.float32
        for t in TERMS3:
            assert abs(float(getattr(single, t)) - float(getattr(exact, t))) <= float(single.bound) + float(exact.bound), (name, t)


def test_union_of_more_sources_never_falls():
    rng = np.random.default_rng(8)
    P = rng.dirichlet(np.full(3**4 * 2, 0.5)).reshape(3, 3, 3, 3, 2)
    four = fastpid.union_information(P, sources=4)
    three = fastpid.union_information(P.sum(axis=3), sources=3)
    assert bool(four.converged) and four.mi_sources.shape == (4,)
    assert float(four.union) >= float(three.union) - float(four.bound + three.bound)
    assert float(four.synergy) >= -float(four.bound)
    five = fastpid.union_information(rng.dirichlet(np.ones(2**5 * 3)).reshape(2, 2, 2, 2, 2, 3), sources=5)
    assert bool(five.converged) and 0 <= float(five.union) <= float(five.mi_joint) + 1e-9


def test_bad_input_is_refused_with_reasons():
    P = KNOWN["xor3"][0]
    with pytest.raises(ValueError, match="sources must be 2 or 3"):
        fastpid.decompose(P, sources=4)
    with pytest.raises(ValueError, match="union_information"):
        fastpid.decompose(P, sources=4)
    with pytest.raises(ValueError, match="at least 4 dimensions"):
        fastpid.decompose(P[0], sources=3)
    with pytest.raises(ValueError, match="return_coupling"):
        fastpid.decompose(P, sources=3, return_coupling=True)
    with pytest.raises(ValueError, match="method must be one of"):
        fastpid.decompose(P, sources=3, method="proxy")
    with pytest.raises(ValueError, match="sources must be"):
        fastpid.union_information(P, sources=1)
    with pytest.raises(ValueError, match="sources must be"):
        fastpid.union_information(P, sources=True)
    with pytest.raises(ValueError, match="sources must be between 2 and 8, got 9"):
        fastpid.union_information(np.full((2,) * 10, 1 / 1024), sources=9)
    bad = np.stack([P, P])
    bad[1, 0, 0, 0, 0] = -0.1
    with pytest.raises(ValueError, match=r"P\[1\].*negative"):
        fastpid.decompose(bad, sources=3)
    with pytest.raises(ValueError, match="not normalised"):
        fastpid.union_information(P * 2, sources=3)
    # (100 + 100 + 2) * 41 = 8,282 alphas where every label occurs (P[1]); 202 where one does
    many = np.stack([np.full((100, 100, 2, 41), 1 / 820000)] * 2)
    many[0] = 0
    many[0, ..., 0] = 1 / 20000
    with pytest.raises(ValueError, match=r"P\[1\] \(batch index 1\): the 3-source problem's Newton system would have order 8,282"):
        fastpid.union_information(many, sources=3, max_iter=0)
    # the same check on a tensor, as the CUDA path runs it before its launch
    torch = pytest.importorskip("torch")
    from fastpid.sources import check_newton_order

    with pytest.raises(ValueError, match=r"P\[1\] \(batch index 1\): the 3-source problem's Newton system would have order 8,282"):
        check_newton_order(torch.from_numpy(many), range(3), 0, (2,))
    check_newton_order(torch.from_numpy(many[:1]), range(3))  # 202: allowed


def test_bound_is_honest_against_the_cvxpy_reference():
    pytest.importorskip("cvxpy")
    from fastpid.reference import decompose3_cvxpy

    rng = np.random.default_rng(9)
    slack = 2e-6  # bits: the reference's own accuracy on these programs
    for name, family in FAMILIES3.items():
        shape = tuple(int(n) for n in rng.integers(2, 4, 3)) + (int(rng.integers(2, 4)),)
        P = family(rng, *shape)
        ref = decompose3_cvxpy(P)
        if ref["status"] != "optimal":
            continue
        r = fastpid.decompose(P, sources=3)
        for t in TERMS3:
            assert abs(float(getattr(r, t)) - ref[t]) <= float(r.bound) + slack, (name, shape, t)


def test_four_sources_against_the_cvxpy_reference():
    pytest.importorskip("cvxpy")
    from fastpid.reference import union_information_cvxpy

    rng = np.random.default_rng(10)
    for concentration in (1.0, 0.2):
        P = rng.dirichlet(np.full(3**4 * 2, concentration)).reshape(3, 3, 3, 3, 2)
        ref = union_information_cvxpy(P)
        u = fastpid.union_information(P, sources=4)
        assert abs(float(u.union) - ref["union"]) <= float(u.bound) + 2e-6
        assert abs(float(u.synergy) - ref["synergy"]) <= float(u.bound) + 2e-6


# --- torch ---------------------------------------------------------------------------------

def test_torch_gradients_are_the_envelope_derivatives():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    P0 = rng.dirichlet(np.full(3 * 3 * 2 * 3, 5.0)).reshape(3, 3, 2, 3)  # no tiny entries: finite differences hold
    P = torch.tensor(P0, requires_grad=True)
    r = fastpid.decompose(P, sources=3, tol=1e-12, base=math.e)
    assert r.synergy.dtype == torch.float64 and r.bound.shape == ()
    eps = 1e-6
    for t in TERMS3:
        (grad,) = torch.autograd.grad(getattr(r, t), P, retain_graph=True)
        direction = rng.normal(size=P0.shape)
        direction -= direction.mean()  # along the simplex

        def value(Q):
            return float(getattr(fastpid.decompose(Q, sources=3, tol=1e-13, base=math.e), t))

        numeric = (value(P0 + eps * direction) - value(P0 - eps * direction)) / (2 * eps)
        assert float((grad.numpy() * direction).sum()) == pytest.approx(numeric, abs=2e-6), t
    u = fastpid.union_information(P, sources=3, tol=1e-12, base=math.e)
    (grad,) = torch.autograd.grad(u.union, P)
    direction = rng.normal(size=P0.shape)
    direction -= direction.mean()
    numeric = (float(fastpid.union_information(P0 + eps * direction, sources=3, tol=1e-13, base=math.e).union)
               - float(fastpid.union_information(P0 - eps * direction, sources=3, tol=1e-13, base=math.e).union)) / (2 * eps)
    assert float((grad.numpy() * direction).sum()) == pytest.approx(numeric, abs=2e-6)


def test_torch_results_match_numpy_and_keep_dtype():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    P = np.stack([FAMILIES3["lifted_histogram"](rng, 4, 3, 3, 4) for _ in range(3)])
    got = fastpid.decompose(torch.tensor(P, dtype=torch.float32), sources=3)
    want = fastpid.decompose(P.astype(np.float32), sources=3)
    assert got.synergy.dtype == torch.float32 and got.converged.dtype == torch.bool
    for t in TERMS3 + ("bound",):
        np.testing.assert_allclose(getattr(got, t).numpy(), getattr(want, t), rtol=0, atol=1e-6)
    zero = np.zeros_like(P[0])
    zero[..., 0] = 1 / zero[..., 0].size
    grad_ok = torch.tensor(zero, requires_grad=True)
    r = fastpid.decompose(grad_ok, sources=3)  # deterministic Y: every entry but label 0 is zero
    r.synergy.backward()
    assert torch.isfinite(grad_ok.grad).all() and (grad_ok.grad[..., 1:] == 0).all()


def test_the_cuda_path_on_the_cpu(monkeypatch):
    """The CUDA path of decompose(sources=3) and union_information (sources._DeviceSolved) run on
    CPU tensors, with the kernels' launches replaced by their CPU executors: the k-source
    kernel's body through the team executor (a team of 32, two simulated blocks), the pairs'
    by the bivariate solver. It gives the CPU path's terms, within their bounds, and its
    gradients (tests/test_cuda.py runs the real launches where there is a GPU)."""
    torch = pytest.importorskip("torch")
    import fastpid.sources as sources
    import fastpid.torch_ops as torch_ops
    from fastpid import _C
    from fastpid._solve import solve_flat

    def union_on_team(p, tol_nats, max_iter, batch_shape):
        out = _C.union_team_executor(p.numpy(), tol_nats, sources.UNION_MAX_ITER if max_iter is None else max_iter, 32, seed=3,
                                     workers=2)
        return tuple(torch.as_tensor(out[key]) for key in ("value", "bound", "converged", "iterations", "dual"))

    def pairs_on_cpu(marginal, method, tol, max_iter, coupling):
        out = solve_flat(marginal.numpy(), method, tol, max_iter, coupling, True)
        return tuple(torch.as_tensor(out[key]) for key in ("value", "bound", "converged", "iterations", "dual1", "dual2")) + (None,)

    rng = np.random.default_rng(13)
    P = np.stack([FAMILIES3["lifted_structured"](rng, 3, 4, 2, 3) for _ in range(4)])
    want = fastpid.decompose(torch.tensor(P, requires_grad=True), sources=3)
    monkeypatch.setattr(sources, "_on_device", lambda P: True)
    monkeypatch.setattr(sources, "_union_cuda", union_on_team)
    monkeypatch.setattr(torch_ops, "solve_cuda", pairs_on_cpu)
    X = torch.tensor(P, requires_grad=True)
    got = fastpid.decompose(X, sources=3)
    for t in TERMS3:
        assert (torch.abs(getattr(got, t) - getattr(want, t)) <= got.bound + want.bound).all(), t
    assert got.converged.all() and got.method == "exact"
    got.synergy.sum().backward()
    assert torch.isfinite(X.grad).all()
    u = fastpid.union_information(torch.tensor(P), sources=3)
    assert (torch.abs(u.synergy - want.synergy) <= u.bound + want.bound).all()
    with pytest.raises(ValueError, match=r"P\[2\].*negative"):
        bad = torch.tensor(P)
        bad[2, 0, 0, 0, 0] = -1
        fastpid.decompose(bad, sources=3)
