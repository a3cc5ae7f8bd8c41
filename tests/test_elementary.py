"""The vectorisable exp and log of the CPU kernels (csrc/include/fastpid/elementary.hpp)
against numpy's (libm's): within 1 ulp over the whole range, subnormals and special values
included."""
import numpy as np
import pytest

from fastpid import _C


def ulps(got, ref):
    """|got - ref| in units of the spacing of doubles at ref (the smallest subnormal at 0)."""
    return np.abs(got - ref) / np.spacing(np.abs(ref))


def test_exp_within_one_ulp_over_its_range():
    rng = np.random.default_rng(7)
    x = np.concatenate([
        rng.uniform(-750.0, 712.0, 400_000),           # the whole range, over/underflow included
        rng.uniform(-1.0, 1.0, 200_000) * 2.0 ** -rng.integers(0, 60, 200_000),  # near 0
        rng.uniform(-745.2, -708.0, 200_000),          # subnormal results
        -np.abs(rng.standard_normal(200_000)) * 20,    # the solver's arguments: z - max z <= 0
    ])
    with np.errstate(over="ignore"):
        got, ref = _C.elementary("exp", x), np.exp(x)
    finite = np.isfinite(ref) & (ref > 0)
    assert ulps(got[finite], ref[finite]).max() <= 1.0
    assert np.array_equal(got[~finite], ref[~finite])


def test_log_within_one_ulp_over_its_range():
    rng = np.random.default_rng(8)
    bits = rng.integers(0, 0x7FF0000000000000, 600_000, dtype=np.int64)  # every positive finite double
    x = np.concatenate([
        bits.view(np.float64),
        1.0 + rng.uniform(-1e-3, 1e-3, 200_000),  # near 1, where log is small
        rng.uniform(0.0, 1.0, 200_000),           # probabilities
    ])
    got, ref = _C.elementary("log", x), np.log(x)
    assert ulps(got, ref).max() <= 1.0


@pytest.mark.parametrize("x, exp, log", [
    (0.0, 1.0, -np.inf), (1.0, np.e, 0.0), (np.inf, np.inf, np.inf), (-np.inf, 0.0, np.nan),
    (np.nan, np.nan, np.nan), (-1.0, np.exp(-1.0), np.nan), (5e-324, 1.0, np.log(5e-324)),
    (-745.2, 0.0, np.nan), (-745.1, 5e-324, np.nan), (709.8, np.inf, np.log(709.8)),
])
def test_special_values(x, exp, log):
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(_C.elementary("exp", np.array([x])), [exp])
        np.testing.assert_array_equal(_C.elementary("log", np.array([x])), [log])


def test_unknown_function_is_an_error():
    with pytest.raises(ValueError, match="exp' or 'log"):
        _C.elementary("sin", np.zeros(1))
