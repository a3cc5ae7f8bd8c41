"""The k-source solver's kernel body as the GPU runs it (union.hpp with union_team_algebra.hpp),
on the CPU test executor: teams of 1 to 256 fibers, each phase in a shuffled rank order, a
simulated grid smaller than the batch. It computes what the OpenMP driver (the CPU algebra)
computes, within both certified bounds, on every family of FAMILIES3 and on 2, 4 and 5 sources;
a body whose ranks disagreed on a barrier would make the executor raise."""
import numpy as np
import pytest

from fastpid import _C
from fastpid.families import FAMILIES3

# nats: 1e-7 bits, the default. At 1e-9 nats both algebras can stop short on degenerate inputs,
# at the floor of double precision (a duplicated source, 3x2x2x4: 5.5e-9 nats on the CPU, 1.2e-9
# to 5.7e-9 on teams of 1, 7 and 32; one 3x3x2x3 draw 1.3e-9 on a team of 7 where the CPU's
# rounding reached 8e-11), as for the bivariate kernels.
TOL = 6.9e-8


def batch_of(rng, family, shape, count=3):
    return np.stack([FAMILIES3[family](rng, *shape) for _ in range(count)])


def assert_agree(team, cpu):
    assert team["converged"].all(), team["bound"]
    # (+ 1e-12: the native bounds leave out the rounding of the sums that evaluate them, which
    # the Python layer adds: two exact optima, bounds 0, came out 4e-13 apart)
    np.testing.assert_array_less(np.abs(team["value"] - cpu["value"]), team["bound"] + cpu["bound"] + 1e-12)
    # the dual points certify the same optimum: both within their bounds of each other's value
    assert np.isfinite(team["dual"]).sum() == np.isfinite(cpu["dual"]).sum()


@pytest.mark.parametrize("team_size", [1, 7, 32])
@pytest.mark.parametrize("family", sorted(FAMILIES3))
def test_team_body_matches_the_cpu_on_every_family(family, team_size, rng):
    shape = tuple(int(n) for n in rng.integers(2, 5, 3)) + (int(rng.integers(2, 5)),)
    P = batch_of(rng, family, shape)
    cpu = _C.union_cpu(P, TOL, 200, 1)
    team = _C.union_team_executor(P, TOL, 200, team_size, seed=team_size, workers=2)
    assert_agree(team, cpu)


@pytest.mark.parametrize("shape", [(3, 4, 3), (2, 2, 3, 2, 2), (2, 3, 2, 2, 2, 3), (1, 4, 1, 2)])
def test_team_body_on_two_to_five_sources(shape, rng):
    P = rng.dirichlet(np.full(int(np.prod(shape)), 0.4), size=4).reshape((4,) + shape)
    cpu = _C.union_cpu(P, TOL, 200, 1)
    for team_size in (1, 32, 256):
        assert_agree(_C.union_team_executor(P, TOL, 200, team_size, seed=1, workers=3), cpu)


def test_a_grid_smaller_than_the_batch_reuses_each_workspace(rng):
    P = batch_of(rng, "lifted_structured", (3, 3, 2, 3), count=7)
    cpu = _C.union_cpu(P, TOL, 200, 1)
    for workers in (1, 2, 7):
        assert_agree(_C.union_team_executor(P, TOL, 200, 7, seed=workers, workers=workers), cpu)


def test_gates_on_the_team_body():
    from fastpid.families import gates3

    for name, (P, known) in gates3().items():
        out = _C.union_team_executor(P[None], 1e-12, 200, 32, seed=5, workers=1)
        h_y = -sum(p * np.log(p) for p in P.sum(axis=(0, 1, 2)) if p > 0)
        union_bits = (h_y - out["value"][0]) / np.log(2)
        want = sum(known.values()) - known.get("synergy", 0.0)  # everything but the synergy of the three
        assert union_bits == pytest.approx(want, abs=1e-9), name
