"""Long and large jobs: chunked execution, progress, Ctrl-C, fork, threads, and fastpid.dask.

The memory and throughput goals are benchmarks (benchmarks/bench_large.py); these tests check
what must hold on any machine: a chunked call gives exactly the one-chunk answer, a bad
distribution in a later chunk is named by its index in the batch, Ctrl-C ends a call within a
second and leaves the process usable, a forked child computes, ``threads=1`` uses one core,
and a dask cluster gives the in-process values, also after losing a worker.
"""
import math
import multiprocessing
import os
import signal
import sys
import textwrap
import threading
import time
import tracemalloc
import types

import numpy as np
import pytest
from conftest import assert_ctrl_c_stops_the_call

import fastpid
from fastpid import _C, _run
from fastpid.result import MEASURES

torch = pytest.importorskip("torch")


def dense_batch(rng, batch, shape=(6, 5, 4), dtype=np.float64):
    P = rng.random((batch,) + shape) ** 3  # some near-zero cells
    return (P / P.sum(axis=(-3, -2, -1), keepdims=True)).astype(dtype)


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks of at most 7 distributions of 6x5x4, the first of 1 per thread."""
    monkeypatch.setattr(_run, "CHUNK_BYTES", 7 * (8 * 120 * 2 + 64))
    monkeypatch.setattr(_run, "FIRST_CHUNK_ROWS", 1)


def assert_same_result(a, b):
    for name in MEASURES + ("converged", "iterations"):
        x, y = getattr(a, name), getattr(b, name)
        x = x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)
        y = y.detach().numpy() if hasattr(y, "detach") else np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)


# --- chunks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["auto", "exact", "refine", "proxy"])
def test_chunked_call_equals_one_chunk(rng, monkeypatch, dtype, method):
    P = dense_batch(rng, 45, dtype=dtype).reshape(5, 9, 6, 5, 4)
    whole = fastpid.decompose(P, method=method, return_coupling=True)
    seen = []
    monkeypatch.setattr(_run, "CHUNK_BYTES", 7 * (8 * 120 * 2 + 64))
    monkeypatch.setattr(_run, "FIRST_CHUNK_ROWS", 1)
    chunked = fastpid.decompose(P, method=method, return_coupling=True, progress=lambda done, total: seen.append((done, total)))
    assert_same_result(whole, chunked)
    np.testing.assert_array_equal(whole.coupling, chunked.coupling)
    assert chunked.coupling.dtype == dtype
    # every chunk reported, each at most 7 distributions, the last one the whole batch
    done = [d for d, _ in seen]
    assert len(seen) >= 45 // 7 and done == sorted(done) and done[-1] == 45 and {t for _, t in seen} == {45}
    assert max(np.diff([0] + done)) <= 7


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_chunked_torch_call_equals_one_chunk_with_gradients(rng, monkeypatch, dtype):
    P0 = torch.from_numpy(dense_batch(rng, 30)).to(dtype)

    def run():
        P = P0.clone().requires_grad_(True)
        r = fastpid.decompose(P, normalize=True)
        (r.synergy.sum() + 0.5 * r.unique1.sum() - r.mi_joint.sum()).backward()
        return r, P.grad

    whole, grad_whole = run()
    monkeypatch.setattr(_run, "CHUNK_BYTES", 7 * (8 * 120 * 2 + 64))
    monkeypatch.setattr(_run, "FIRST_CHUNK_ROWS", 1)
    chunked, grad_chunked = run()
    assert_same_result(whole, chunked)
    assert grad_chunked.dtype == dtype
    torch.testing.assert_close(grad_whole, grad_chunked, rtol=0, atol=0)


def test_chunk_sizes_follow_the_measured_time(monkeypatch):
    # The first chunk is FIRST_CHUNK_ROWS per thread; the next ones aim at CHUNK_SECONDS from the
    # time measured so far, grow at most CHUNK_GROWTH-fold and never pass the memory cap.
    plan = _run.ChunkPlan(10_000, 120, False, threads=2)
    clock = [0.0]
    monkeypatch.setattr(_run, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    sizes = []
    for start, stop in plan:
        sizes.append(stop - start)
        clock[0] += (stop - start) * 1e-4  # 0.1 ms per distribution: 2500 per chunk wanted
    assert sizes[0] == 2 * _run.FIRST_CHUNK_ROWS == 32
    assert sizes[1:3] == [256, 2048] and set(sizes[3:-1]) == {2500}
    assert sum(sizes) == 10_000
    assert _run.ChunkPlan(10**9, 20 * 20 * 6, True, 1, timed=False).rows == _run.memory_rows(2400, True)
    assert _run.memory_rows(2400, True) * (8 * 2400 * 2 + 64) <= _run.CHUNK_BYTES


def test_bad_distribution_in_a_later_chunk_is_named_before_anything_is_solved(rng, monkeypatch, tiny_chunks):
    P = dense_batch(rng, 40).reshape(4, 10, 6, 5, 4)
    P[3, 7, 1, 1, 1] = -0.01
    solved = []
    monkeypatch.setattr(_run, "solve_flat", lambda *a, **k: solved.append(1))
    with pytest.raises(ValueError, match=r"P\[3, 7\].*negative"):
        fastpid.decompose(P)
    P[3, 7, 1, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"P\[3, 7\]"):
        fastpid.decompose(torch.from_numpy(P))
    assert solved == []


def test_peak_memory_above_the_input_is_one_chunk(rng, monkeypatch):
    # numpy allocations are traced: float32 input of 24 MB, chunks of 1 MiB: the call's peak above
    # the input is the chunk and the outputs (about 1.4 MB), not a copy of the batch (24 or 48 MB).
    monkeypatch.setattr(_run, "CHUNK_BYTES", 1 << 20)
    P = dense_batch(rng, 25_000, shape=(20, 20, 6), dtype=np.float32)
    for dtype in (np.float32, np.float64):
        P = P.astype(dtype)
        tracemalloc.start()
        try:
            r = fastpid.decompose(P, method="proxy")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert r.converged.dtype == bool and r.synergy.dtype == dtype
        assert peak < 0.1 * P.nbytes + (4 << 20), (dtype, peak, P.nbytes)


# --- progress -------------------------------------------------------------------------------

def test_progress_plain_bar_on_stderr_without_tqdm(rng, capsys, monkeypatch, tiny_chunks):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm fails: the plain bar
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    P = dense_batch(rng, 30)
    fastpid.decompose(P, progress=True)
    err = capsys.readouterr().err
    assert "fastpid: 30/30 distributions (100%)" in err and err.endswith("\n")
    fastpid.decompose(P, progress=False)
    fastpid.decompose(P)  # None: stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_progress_default_shows_only_predicted_long_calls_on_a_terminal(rng, capsys, monkeypatch, tiny_chunks):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(_run, "_stderr_is_terminal", lambda: True)
    P = dense_batch(rng, 30)
    fastpid.decompose(P)  # predicted far below PROGRESS_AFTER_SECONDS
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_run, "PROGRESS_AFTER_SECONDS", 0.0)
    fastpid.decompose(P)
    assert "30/30" in capsys.readouterr().err


def test_progress_argument_checked_and_passed_by_torch_and_estimate(rng):
    with pytest.raises(TypeError, match="progress"):
        fastpid.decompose(dense_batch(rng, 2), progress="yes")
    seen = []
    fastpid.decompose(torch.from_numpy(dense_batch(rng, 5)), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (5, 5)
    seen.clear()
    x1, x2 = rng.integers(0, 3, 400), rng.integers(0, 3, 400)
    fastpid.estimate(x1, x2, (x1 + x2) % 2, bias_correction="jackknife", groups=6,
                     progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 1), (7, 7)]  # the plug-in solve, then the full histogram and the jackknife's 6 groups


# --- Ctrl-C ---------------------------------------------------------------------------------

CTRL_C_CHILD = textwrap.dedent("""
    import signal, sys, time
    import numpy as np
    import fastpid
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the test runner ignores SIGINT
    library = sys.argv[1]
    rng = np.random.default_rng(1)
    P = rng.random((20000, 20, 20, 6), dtype=np.float32) ** 3
    P /= P.sum(axis=(1, 2, 3), keepdims=True)
    small = P[:50].astype(np.float64)
    expected = fastpid.decompose(small, method="exact")
    if library == "torch":
        import torch
        P = torch.from_numpy(P)
    print("ready", flush=True)
    try:
        fastpid.decompose(P, method="exact", tol=1e-9)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
    again = fastpid.decompose(small, method="exact")
    xor = np.zeros((2, 2, 2)); xor[0, 0, 0] = xor[0, 1, 1] = xor[1, 0, 1] = xor[1, 1, 0] = 0.25
    ok = np.array_equal(again.synergy, expected.synergy) and abs(fastpid.decompose(xor).synergy - 1) < 1e-7
    print("next call", "correct" if ok else "WRONG", flush=True)
""")


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_ctrl_c_ends_a_long_call_within_a_second(library):
    assert_ctrl_c_stops_the_call(CTRL_C_CHILD, library)


# --- processes, fork and threads ------------------------------------------------------------

def _synergy_in_child(P):
    return fastpid.decompose(P).synergy, _C.forked_child(), _C.max_threads()


def test_fork_pool_after_a_batched_call(rng):
    P = dense_batch(rng, 400)
    parent = fastpid.decompose(P, threads=0)  # all threads: libgomp's pool is live in the parent
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_synergy_in_child, np.split(P, 4)).get(timeout=120)
    np.testing.assert_array_equal(np.concatenate([s for s, _, _ in results]), parent.synergy)
    assert all(forked and threads == 1 for _, forked, threads in results)
    assert not _C.forked_child()


class _Histograms(torch.utils.data.Dataset):
    def __init__(self, P):
        self.P = P

    def __len__(self):
        return len(self.P)

    def __getitem__(self, i):
        return fastpid.decompose(self.P[i:i + 1]).synergy[0]


def test_torch_dataloader_workers_call_decompose(rng):
    P = torch.from_numpy(dense_batch(rng, 16))
    expected = fastpid.decompose(P).synergy
    loader = torch.utils.data.DataLoader(_Histograms(P), batch_size=4, num_workers=2, timeout=120)
    got = torch.cat(list(loader))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_threads_1_uses_one_core(rng, library):
    if _C.max_threads() < 2:
        pytest.skip("one core: nothing to tell apart")
    P = dense_batch(rng, 3000, shape=(12, 12, 6))
    if library == "torch":
        P = torch.from_numpy(P).requires_grad_(True)
    wall, cpu = time.perf_counter(), time.process_time()
    r = fastpid.decompose(P, method="exact", threads=1)
    if library == "torch":
        r.synergy.sum().backward()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert wall > 0.3, "too short a call to measure"
    assert cpu / wall <= 1.2, (cpu, wall)


def test_gil_released_during_a_solve(rng):
    P = dense_batch(rng, 3000, shape=(12, 12, 6))
    worker = threading.Thread(target=fastpid.decompose, args=(P,), kwargs=dict(method="exact", threads=1))
    gaps, last = [], time.perf_counter()
    worker.start()
    began = last
    while worker.is_alive():
        time.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    assert last - began > 0.3, "too short a call to measure"
    assert max(gaps) < 0.2, max(gaps)  # this thread ran throughout the solve


def test_threads_argument_checked(rng):
    with pytest.raises(ValueError, match="threads"):
        fastpid.decompose(dense_batch(rng, 2), threads=-1)


# --- pid_grad_cpu against the same formula in torch operations -----------------------------

@pytest.mark.parametrize("normalize", [False, True])
def test_pid_grad_cpu_matches_the_torch_formula(rng, normalize):
    from fastpid.torch_ops import pid_grad_torch

    P = dense_batch(rng, 20, shape=(4, 3, 5))
    P[3, 1, :, :] = 0.0  # zero cells and a zero marginal
    P[5] = 0.0
    P[5, 0, 0, 0] = 1.0  # a point mass
    P = P / P.sum(axis=(1, 2, 3), keepdims=True) * (1.3 if normalize else 1.0)
    out = fastpid.decompose(torch.from_numpy(P), normalize=True)
    assert out.converged.all()
    host = _run.solve_batch(P, "exact", 1e-9, None, normalize=True, duals=True)
    g, gi = rng.standard_normal(20), rng.standard_normal((20, 4))
    native = _C.pid_grad_cpu(g, gi, P, host["dual1"], host["dual2"], normalize, 1)
    formula = pid_grad_torch(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (g, gi, P, host["dual1"], host["dual2"])),
                             normalize).numpy()
    assert np.isfinite(native).all()
    np.testing.assert_allclose(native, formula, rtol=1e-12, atol=1e-12)
    if not normalize:  # (with it, a zero cell's gradient is the normalisation's -sum(d p) / total)
        assert (native[P == 0] == 0).all()


# --- dask ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_decompose_equals_in_process(rng, dask_client):
    import dask.array as da

    import fastpid.dask

    P = dense_batch(rng, 600, shape=(5, 4, 3))
    P[::7, 0] = 0.0  # zero rows of X1
    P = (P / P.sum(axis=(1, 2, 3), keepdims=True)).reshape(3, 200, 5, 4, 3)
    lazy = fastpid.dask.decompose(da.from_array(P, chunks=(1, 50, 5, 4, 3)), base=math.e, tol=1e-9)
    assert "<lazy (3, 200)>" in repr(lazy)
    r = fastpid.dask.compute(lazy)
    ref = fastpid.decompose(P, base=math.e, tol=1e-9)
    for name in MEASURES:
        np.testing.assert_allclose(getattr(r, name), getattr(ref, name), rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(r.converged, ref.converged)
    assert r.converged.dtype == bool and r.synergy.shape == (3, 200) and r.unit == "nats"
    # float32 in, float32 out
    r32 = fastpid.dask.compute(fastpid.dask.decompose(da.from_array(P.astype(np.float32), chunks=(1, 100, 5, 4, 3))))
    assert r32.synergy.dtype == np.float32


def test_dask_bad_input(rng, dask_client):
    import dask.array as da

    import fastpid.dask

    with pytest.raises(ValueError, match="return_coupling"):
        fastpid.dask.decompose(da.ones((4, 2, 2, 2)) / 8, return_coupling=True)
    with pytest.raises(ValueError, match="3 dimensions"):
        fastpid.dask.decompose(da.ones((4, 2)))
    P = dense_batch(rng, 20)
    P[13, 0, 0, 0] = -1.0
    lazy = fastpid.dask.decompose(da.from_array(P, chunks=(10, 6, 5, 4)))
    with pytest.raises(ValueError, match=r"P\[3\].*negative"):  # index within its chunk
        fastpid.dask.compute(lazy)


def _worker_pids(client):
    return client.run(os.getpid)


def test_dask_worker_killed_mid_job_is_recomputed(rng, dask_client):
    import dask.array as da
    from dask.distributed import wait

    import fastpid.dask

    # about 5 s of work on one worker, made on the workers (a seeded dask generator) so that the
    # graph stays small; the reference sees the same numbers
    P = da.random.default_rng(int(rng.integers(2**31))).random((40_000, 8, 8, 4), chunks=(1000, 8, 8, 4)) ** 3
    P = P / P.sum(axis=(1, 2, 3), keepdims=True)
    ref = fastpid.decompose(P.compute(), method="exact")
    lazy = fastpid.dask.decompose(P, method="exact")
    futures = dask_client.compute([lazy.synergy, lazy.redundancy, lazy.bound, lazy.converged])
    # once the job is under way, kill one worker process outright (SIGKILL: no clean shutdown)
    deadline = time.monotonic() + 60
    while not any(dask_client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    victim = sorted(_worker_pids(dask_client).values())[0]
    assert not any(f.done() for f in futures), "the job ended before the worker was killed"
    os.kill(victim, signal.SIGKILL)
    wait(futures, timeout=180)
    synergy, redundancy, bound, converged = dask_client.gather(futures)
    np.testing.assert_array_equal(synergy, ref.synergy)
    np.testing.assert_array_equal(redundancy, ref.redundancy)
    np.testing.assert_array_equal(bound, ref.bound)
    assert converged.all()
    assert victim not in _worker_pids(dask_client).values()  # the nanny started a new worker


def test_dask_estimate_many_groups(rng, dask_client):
    import dask

    import fastpid.dask

    groups = [(rng.integers(0, 3, 300), rng.integers(0, 3, 300), rng.integers(0, 2, 300)) for _ in range(4)]
    tasks = fastpid.dask.estimate(groups, bias_correction="jackknife", groups=5, warn=False)
    results = dask.compute(*tasks)
    for got, (x1, x2, y) in zip(results, groups):
        expected = fastpid.estimate(x1, x2, y, bias_correction="jackknife", groups=5, warn=False)
        assert got.values == expected.values and got.intervals == expected.intervals
    with pytest.raises(ValueError, match=r"samples\[0\]"):
        fastpid.dask.estimate([(1, 2)])
