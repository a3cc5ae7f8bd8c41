"""The inputs users try first: gates on many values, copies, duplicated and functionally
dependent sources, near copies, float32. Their optima sit on faces of the polytope (many cells
at zero mass, degenerate dual points), where the solvers used to stop short (issue 25)."""
import numpy as np
import pytest

import fastpid
from fastpid import _C
from fastpid.families import STRUCTURED_KINDS, deterministic, dependent_sources, structured_case, structured_shape
from fastpid.info import entropy, pid_informations

ATOMS = ("redundancy", "unique1", "unique2", "synergy")
METHODS = ("auto", "exact", "refine")
TOL = 1e-7  # bits, the default


def solve_all(P, tol=TOL):
    """The default call and each method; every one must reach tol."""
    results = {}
    for method in METHODS:
        r = fastpid.decompose(P, method=method, tol=tol)
        assert np.all(r.converged), (method, float(np.max(r.bound)))
        assert np.all(r.bound <= tol), method
        results[method] = r
    return results


def assert_agree(results):
    """Every pair of results within the sum of their bounds, atom by atom."""
    rs = list(results.values())
    for a in rs:
        for b in rs:
            for atom in ATOMS:
                assert np.all(np.abs(getattr(a, atom) - getattr(b, atom)) <= a.bound + b.bound + 1e-12), (a.method, b.method, atom)


def assert_atoms(r, expected):
    for atom, value in expected.items():
        assert np.all(np.abs(getattr(r, atom) - value) <= r.bound + 1e-12), (r.method, atom, getattr(r, atom), value)


def bits_entropy(p):
    return float(entropy(np.asarray(p, dtype=np.float64).ravel(), base=2))


@pytest.mark.parametrize("n", range(2, 41))
def test_sum_gate_of_every_size_converges_with_every_method(n):
    # Y = X1 + X2, X1 and X2 uniform on n values: U1 = U2 = 0, R = I(Xi;Y), S = H(Y) - ... .
    # n = 16 to 32 used to stop after one interior-point iteration (bound 1.2e-4 bits at 16).
    P = deterministic(np.random.default_rng(0), n, n, 2 * n - 1, "sum", uniform=True)
    results = solve_all(P)
    assert_agree(results)
    for r in results.values():
        assert_atoms(r, {"unique1": 0.0, "unique2": 0.0})
        assert float(r.synergy) == pytest.approx(float(r.mi_joint - r.mi_x1), abs=float(r.bound) + 1e-12)


def test_sum_gate_of_16_values_in_few_iterations_on_the_sources_path():
    # The case on the elimination it failed on: the single-precision Schur update lost
    # its pivots; it is redone in double (exact_cpu.cpp, single_precision_kept_digits).
    P = deterministic(np.random.default_rng(0), 16, 16, 31, "sum", uniform=True)[None]
    out = _C.exact_cpu(P, TOL * np.log(2), 100, elimination=1, mixed_precision=True)
    assert out["converged"].all() and out["iterations"][0] <= 6, (out["iterations"], out["bound"])


@pytest.mark.parametrize("n, ny, uniform", [(2, 2, True), (5, 3, False), (8, 8, False), (12, 6, True), (20, 6, False), (30, 7, False)])
def test_duplicated_source_is_all_redundancy(n, ny, uniform, rng):
    # X2 = X1 (relabelled), P(x1, y) arbitrary: R = I(X1;Y), U1 = U2 = S = 0.
    for _ in range(3):
        P = dependent_sources(rng, n, n, ny, uniform)
        results = solve_all(P)
        assert_agree(results)
        for r in results.values():
            assert_atoms(r, {"unique1": 0.0, "unique2": 0.0, "synergy": 0.0, "redundancy": float(r.mi_x1)})


@pytest.mark.parametrize("n1, n2, ny", [(4, 2, 3), (9, 4, 5), (20, 7, 6), (38, 23, 6)])
def test_functionally_dependent_source(n1, n2, ny, rng):
    # X2 = g(X1): I(X1X2;Y) = I(X1;Y), so S = 0, U2 = 0, R = I(X2;Y), U1 = I(X1;Y) - I(X2;Y).
    for _ in range(3):
        P = dependent_sources(rng, n1, n2, ny, uniform=False)
        results = solve_all(P)
        assert_agree(results)
        for r in results.values():
            assert_atoms(r, {"unique2": 0.0, "synergy": 0.0, "redundancy": float(r.mi_x2), "unique1": float(r.mi_x1 - r.mi_x2)})


@pytest.mark.parametrize("n1, n2", [(2, 2), (3, 5), (8, 8), (7, 11)])
@pytest.mark.parametrize("uniform", [True, False])
def test_copy_gates(n1, n2, uniform, rng):
    # Y = X1: S = U2 = 0, R = I(X1;X2), U1 = H(X1|X2). Y = (X1, X2): the only coupling is P
    # itself, so S = 0, R = I(X1;X2), U1 = H(X1|X2), U2 = H(X2|X1).
    for target, ny in (("copy1", n1), ("copy_pair", n1 * n2)):
        P = deterministic(rng, n1, n2, ny, target, uniform)
        joint = P.sum(2)
        h12, h1, h2 = bits_entropy(joint), bits_entropy(joint.sum(1)), bits_entropy(joint.sum(0))
        expected = {"synergy": 0.0, "redundancy": h1 + h2 - h12, "unique1": h12 - h2}
        expected["unique2"] = 0.0 if target == "copy1" else h12 - h1
        results = solve_all(P)
        assert_agree(results)
        for r in results.values():
            assert_atoms(r, {k: v for k, v in expected.items()})


@pytest.mark.parametrize("flip", [1e-6, 1e-5, 1e-4, 1e-3, 1e-2])
@pytest.mark.parametrize("n, ny", [(8, 8), (20, 6)])
def test_near_copies(flip, n, ny, rng):
    # X2 = X1 except with probability `flip`: refine's augmented Lagrangian stalled here (6 to
    # 10% of 8x8x8 draws, and at 20x20x6 with flips of 1e-3 neither method reached tol).
    P = np.stack([dependent_sources(rng, n, n, ny, uniform=False, flip=flip) for _ in range(4)])
    assert_agree(solve_all(P))


def test_every_structured_kind_converges(rng):
    for kind in STRUCTURED_KINDS:
        for _ in range(3):
            P, about = structured_case(rng, *structured_shape(rng, kind, largest=16), kind=kind)
            r = fastpid.decompose(P)
            assert bool(r.converged), (about, float(r.bound))


def test_hand_off_between_methods_rescues_a_stall():
    # refine alone stalls on this near copy (its Newton phase's line search finds no descent);
    # decompose(method="refine") hands the distribution to the interior point, which solves it,
    # and counts both methods' iterations.
    for seed in range(40):  # a deterministic search for a draw refine alone leaves short
        P = dependent_sources(np.random.default_rng(seed), 6, 6, 5, uniform=False, flip=2e-5)[None]
        alone = _C.refine_cpu(P, TOL * np.log(2), 1000)
        if not alone["converged"].all():
            break
    else:
        pytest.skip("no draw of the 40 stalls refine alone")
    r = fastpid.decompose(P, method="refine")
    assert r.converged.all() and r.bound[0] < alone["bound"][0]
    assert r.iterations[0] > alone["iterations"][0]
    # with max_iter given, the method runs alone, within it
    capped = fastpid.decompose(P, method="refine", max_iter=1000)
    assert not capped.converged.all() and capped.iterations[0] <= 1000
    assert float(capped.bound[0]) == pytest.approx(alone["bound"][0] / np.log(2), rel=0.05)


def test_float32_bounds_cover_the_rounding_of_the_results(rng):
    # X1 = X2 = Y uniform on 18 values: R = log2(18) = 4.17 bits, whose float32 rounding (2.1e-7
    # bits) the bound used to ignore (bound 8.9e-17, converged).
    P = np.zeros((18, 18, 18))
    P[np.arange(18), np.arange(18), np.arange(18)] = 1 / 18
    r = fastpid.decompose(P.astype(np.float32))
    assert r.bound.dtype == np.float32
    assert abs(float(r.redundancy) - np.log2(18)) <= float(r.bound)  # 1/18 in float32 is uniform still
    # 1,000 structured and near-deterministic float32 inputs, against the float64 truth
    inputs = []
    for i in range(1000):
        kind = STRUCTURED_KINDS[i % len(STRUCTURED_KINDS)]
        if i % 4 == 3:
            P = fastpid.families.near_deterministic(rng, 16, 16, 8, noise=10.0 ** rng.uniform(-7, -2))
        else:
            P = structured_case(rng, 6, 5, 7, kind)[0]
        inputs.append(P)
    near = np.stack([P for P in inputs if P.shape == (16, 16, 8)])
    small = np.stack([P for P in inputs if P.shape == (6, 5, 7)])
    for batch in (near, small):
        single_input = batch.astype(np.float32)
        truth = fastpid.decompose(single_input.astype(np.float64), tol=1e-10)  # the same distributions
        single = fastpid.decompose(single_input)
        assert truth.converged.all()
        for atom in ATOMS:
            err = np.abs(getattr(single, atom).astype(np.float64) - getattr(truth, atom))
            assert np.all(err <= single.bound.astype(np.float64) + truth.bound), atom


def test_float32_bound_for_torch_tensors():
    torch = pytest.importorskip("torch")
    P = np.zeros((18, 18, 18))
    P[np.arange(18), np.arange(18), np.arange(18)] = 1 / 18
    single = torch.tensor(P, dtype=torch.float32)
    r = fastpid.decompose(single)
    assert r.bound.dtype == torch.float32
    truth = fastpid.decompose(single.numpy().astype(np.float64), tol=1e-12)
    for atom in ATOMS:
        assert abs(float(getattr(r, atom)) - float(getattr(truth, atom))) <= float(r.bound) + float(truth.bound), atom


def test_auto_chooses_by_shape_and_density(rng):
    from fastpid.core import choose_method

    dense64 = fastpid.families.dense(rng, 64, 64, 64)
    hist = fastpid.families.histogram(rng, 20, 20, 6)
    sparse64 = fastpid.families.histogram(rng, 64, 64, 64, samples=20000)
    assert choose_method(hist.shape, lambda: hist[None]) == "exact"
    assert choose_method(dense64.shape, lambda: dense64[None]) == "refine"
    assert choose_method(sparse64.shape, lambda: sparse64[None]) == "refine-then-exact"
    # many labels per cell of the sources (ny >= AUTO_LABELS_PER_CELL n1 n2 = 800): refine;
    # fewer: exact, whose factorisation is small there
    r = fastpid.decompose(fastpid.families.dense(rng, 4, 4, 1000))
    assert r.method == "refine" and bool(r.converged)
    assert fastpid.decompose(fastpid.families.dense(rng, 4, 4, 200)).method == "exact"
    assert fastpid.decompose(hist).method == "exact"


def test_estimate_of_duplicated_samples_converges(rng):
    x = rng.integers(0, 20, 3000)
    y = (x + rng.integers(0, 3, 3000)) % 6
    est = fastpid.estimate(x, x, y)
    assert est.converged, est.notes
    assert not any("stopped short" in n for n in est.notes)
    assert est.values["synergy"] == pytest.approx(0.0, abs=1e-6)


def test_estimate_reports_solves_that_stop_short(rng):
    x1, x2 = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    est = fastpid.estimate(x1, x2, (x1 + x2) % 3, tol=1e-300)  # no solve can certify 1e-300 bits
    assert not est.converged
    note = [n for n in est.notes if "stopped short" in n]
    assert note and "largest certified bound" in note[0]
    assert est.to_dict()["converged"] is False
