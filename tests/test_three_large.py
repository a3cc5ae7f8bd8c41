"""Long and large jobs with three sources (decompose(P, sources=3), union_information): a chunked
call gives the one-chunk answer, a bad distribution in a later chunk is named before anything
is solved, progress is reported, Ctrl-C ends a long call within a second and leaves the process
usable, and a forked child computes."""
import multiprocessing
import textwrap

import numpy as np
import pytest
from conftest import assert_ctrl_c_stops_the_call

import fastpid
from fastpid import _C, _run
from fastpid.result import MEASURES3


def batch3(rng, batch, shape=(4, 3, 3, 3)):
    P = rng.random((batch,) + shape) ** 3
    return P / P.sum(axis=(-4, -3, -2, -1), keepdims=True)


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks of at most 5 distributions of 4x3x3x3, the first of 1 per thread."""
    monkeypatch.setattr(_run, "CHUNK_BYTES", 5 * (8 * 108 + 64))
    monkeypatch.setattr(_run, "FIRST_CHUNK_ROWS", 1)


def test_chunked_call_equals_one_chunk(rng, monkeypatch):
    P = batch3(rng, 23)
    whole = fastpid.decompose(P, sources=3)
    union = fastpid.union_information(P, sources=3)
    calls = []
    monkeypatch.setattr(_run, "CHUNK_BYTES", 5 * (8 * 108 + 64))
    monkeypatch.setattr(_run, "FIRST_CHUNK_ROWS", 1)
    chunked = fastpid.decompose(P, sources=3, progress=lambda done, total: calls.append((done, total)))
    for name in MEASURES3 + ("converged", "iterations"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)
    np.testing.assert_array_equal(fastpid.union_information(P, sources=3).union, union.union)
    assert len(calls) >= 5 and calls[-1] == (23, 23) and all(a[0] < b[0] for a, b in zip(calls, calls[1:]))


def test_bad_distribution_in_a_later_chunk_is_named_first(rng, tiny_chunks):
    P = batch3(rng, 30)
    P[27, 0, 0, 0, 0] = np.nan
    solved = []
    with pytest.raises(ValueError, match=r"P\[27\] \(batch index 27\) contains NaN"):
        fastpid.decompose(P, sources=3, progress=lambda done, total: solved.append(done))
    assert solved == []


CTRL_C_CHILD = textwrap.dedent("""
    import signal, sys, time
    import numpy as np
    import fastpid
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(1)
    P = rng.random((3000, 10, 10, 10, 4)) ** 3
    P /= P.sum(axis=(1, 2, 3, 4), keepdims=True)
    xor = np.zeros((2, 2, 2, 2))
    for a in range(2):
        for b in range(2):
            for c in range(2):
                xor[a, b, c, a ^ b ^ c] = 1 / 8
    print("ready", flush=True)
    try:
        fastpid.decompose(P, sources=3, tol=1e-9)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
    ok = abs(float(fastpid.decompose(xor, sources=3).synergy) - 1) < 1e-9
    print("next call", "correct" if ok else "WRONG", flush=True)
""")


def test_ctrl_c_ends_a_long_call_within_a_second():
    assert_ctrl_c_stops_the_call(CTRL_C_CHILD)


def _terms_in_child(P):
    return fastpid.decompose(P, sources=3).synergy, _C.forked_child(), _C.max_threads()


def test_fork_pool_after_a_batched_call(rng):
    P = batch3(rng, 40)
    parent = fastpid.decompose(P, sources=3, threads=0)  # libgomp's pool is live in the parent
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_terms_in_child, np.split(P, 4)).get(timeout=120)
    np.testing.assert_array_equal(np.concatenate([s for s, _, _ in results]), parent.synergy)
    assert all(forked and threads == 1 for _, forked, threads in results)


def test_dask_decompose_three_sources_equals_in_process(rng):
    dask = pytest.importorskip("dask")
    import dask.array as da

    import fastpid.dask

    P = batch3(rng, 12).reshape(3, 4, 4, 3, 3, 3)
    lazy = fastpid.dask.decompose(da.from_array(P, chunks=(1, 2, 4, 3, 3, 3)), sources=3)
    assert isinstance(lazy, fastpid.PID3Result) and lazy.batch_shape == (3, 4)
    with dask.config.set(scheduler="threads"):
        got = fastpid.dask.compute(lazy)
    want = fastpid.decompose(P, sources=3)
    for name in MEASURES3 + ("converged", "iterations"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    with pytest.raises(ValueError, match="sources must be 2 or 3"):
        fastpid.dask.decompose(da.from_array(P), sources=4)


def test_dask_estimate_three_sources_equals_in_process(rng):
    dask = pytest.importorskip("dask")

    import fastpid.dask

    groups = [tuple(rng.integers(0, 3, 400) for _ in range(3)) + (rng.integers(0, 2, 400),) for _ in range(3)]
    with dask.config.set(scheduler="threads"):
        results = dask.compute(*fastpid.dask.estimate(groups, bias_correction=None, warn=False))
    for got, (x1, x2, x3, y) in zip(results, groups):
        want = fastpid.estimate(x1, x2, y, x3=x3, bias_correction=None, warn=False)
        assert got.values == want.values and set(got.values) >= {"synergy", "shared12", "unique3"}
    with pytest.raises(ValueError, match=r"samples\[1\].*\(x1, x2, x3, y\)"):
        fastpid.dask.estimate([groups[0], (1, 2)])
