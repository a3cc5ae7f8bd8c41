"""CUDA tests: run only with a CUDA GPU and a CUDA build of fastpid (marked `cuda`).

Every method runs as a CUDA kernel (the kernel bodies the CPU tests run through the team
executor, tests/test_team.py), and so does the backward op.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastpid  # noqa: E402
from fastpid.families import FAMILIES, gates, histogram  # noqa: E402

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
]
ATOMS = ("redundancy", "unique1", "unique2", "synergy")
KERNELS = ("proxy", "refine", "exact")


def requires_cuda_build():
    if not fastpid.build_info()["cuda"]:
        pytest.skip("fastpid was built without CUDA")


def family_batch(rng, family, shape, count=7):
    return np.stack([FAMILIES[family](rng, *shape) for _ in range(count)])


@pytest.mark.parametrize("method", KERNELS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 5, 1), (3, 4, 5), (20, 20, 6), (48, 40, 16)])
def test_cuda_matches_cpu(method, family, shape, rng):
    requires_cuda_build()
    if family == "with_zeros" and min(shape) < 2:
        pytest.skip("family needs every axis >= 2")
    batch = family_batch(rng, family, shape, count=3 if shape[0] > 40 else 7)
    # exact: 1e-9 bits, above the level where about 3.5% of histograms stall on both devices
    # (1.0e-10 to 1.8e-10 nats, tests/test_team.py)
    tol = 1e-9 if method == "exact" else 1e-10
    P = torch.tensor(batch)
    cpu = fastpid.decompose(P, method=method, tol=tol)
    gpu = fastpid.decompose(P.cuda(), method=method, tol=tol)
    assert gpu.synergy.device.type == "cuda" and gpu.synergy.dtype == torch.float64
    if method == "proxy":  # the same closed form: equal up to the order of the reductions
        for atom in ATOMS + ("bound",):
            torch.testing.assert_close(getattr(gpu, atom).cpu(), getattr(cpu, atom), atol=1e-12, rtol=0)
        return
    # Both executors converge to the same optimum within their bounds; CPU and CUDA agree to 1e-9 bits.
    assert bool(cpu.converged.all()) == bool(gpu.converged.all())
    for atom in ATOMS:
        torch.testing.assert_close(getattr(gpu, atom).cpu(), getattr(cpu, atom), atol=1e-9, rtol=0)


@pytest.mark.parametrize("method", KERNELS)
def test_cuda_float32_in_float32_out(method, rng):
    requires_cuda_build()
    batch = torch.tensor(family_batch(rng, "histogram", (10, 8, 4)), dtype=torch.float32)
    gpu = fastpid.decompose(batch.cuda(), method=method, normalize=True, tol=1e-7)
    cpu = fastpid.decompose(batch, method=method, normalize=True, tol=1e-7)
    for atom in ATOMS:
        assert getattr(gpu, atom).dtype == torch.float32
        torch.testing.assert_close(getattr(gpu, atom).cpu(), getattr(cpu, atom), atol=2e-6, rtol=0)


@pytest.mark.parametrize("method", KERNELS)
def test_cuda_non_contiguous_and_side_stream(method, rng):
    requires_cuda_build()
    batch = torch.tensor(family_batch(rng, "dense", (4, 3, 5), count=6)).cuda()
    view = batch.transpose(1, 2)  # non-contiguous (X1 and X2 swapped)
    assert not view.is_contiguous()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        r = fastpid.decompose(view, method=method, tol=1e-10)
    stream.synchronize()
    cpu = fastpid.decompose(view.cpu(), method=method, tol=1e-10)
    for atom in ATOMS:
        torch.testing.assert_close(getattr(r, atom).cpu(), getattr(cpu, atom), atol=1e-9, rtol=0)


@pytest.mark.parametrize("method", KERNELS)
def test_cuda_batch_with_one_bad_distribution_names_it(method, rng):
    requires_cuda_build()
    batch = torch.tensor(family_batch(rng, "dense", (3, 3, 2), count=5)).cuda()
    batch[3, 1, 1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"P\[3\].*NaN"):
        fastpid.decompose(batch, method=method)
    batch[3, 1, 1, 0] = -0.5
    with pytest.raises(ValueError, match=r"P\[3\].*negative"):
        fastpid.decompose(batch, method=method)


@pytest.mark.parametrize("method", ["exact", "refine"])
def test_cuda_coupling_is_feasible(method, rng):
    requires_cuda_build()
    P = torch.tensor(family_batch(rng, "histogram", (12, 9, 5), count=4)).cuda()
    r = fastpid.decompose(P, method=method, return_coupling=True, tol=1e-10)
    Q = r.coupling
    assert Q.device.type == "cuda" and (Q >= 0).all()
    torch.testing.assert_close(Q.sum(2), P.sum(2), atol=1e-15, rtol=0)
    torch.testing.assert_close(Q.sum(1), P.sum(1), atol=1e-15, rtol=0)


def test_gate_on_cuda():
    # A CUDA tensor always gives CUDA results.
    P = torch.tensor(gates()["xor"][0]).cuda()
    for method in ("exact", "refine", "proxy"):
        r = fastpid.decompose(P, method=method)
        assert r.synergy.device.type == "cuda"
    assert float(fastpid.decompose(P, method="refine").synergy) == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("method", KERNELS)
def test_cuda_gradcheck_and_opcheck(method, rng):
    requires_cuda_build()
    P = torch.tensor(FAMILIES["dense"](rng, 3, 3, 2), device="cuda", requires_grad=True)
    tol = {"refine": 1e-13, "exact": 1e-12, "proxy": 1e-9}[method]
    if method != "proxy":
        assert torch.autograd.gradcheck(lambda p: fastpid.decompose(p, method=method, tol=tol, normalize=True).synergy,
                                        (P,), eps=1e-6, atol=1e-5)
    from fastpid import torch_ops  # noqa: F401

    torch.library.opcheck(torch.ops.fastpid.solve.default, (P.detach()[None], tol, 1000, method, False))


@pytest.mark.parametrize("method", KERNELS)
def test_large_batch(method, rng):
    requires_cuda_build()
    batch = torch.tensor(np.stack([histogram(rng, 20, 20, 6) for _ in range(64)])).cuda()
    big = batch.repeat(20000 // 64 + 1, 1, 1, 1)[:20000]
    r = fastpid.decompose(big, method=method, tol=1e-5)
    small = fastpid.decompose(batch.cpu(), method=method, tol=1e-5)
    torch.testing.assert_close(r.synergy[:64].cpu(), small.synergy, atol=2e-5, rtol=0)
    # every copy of a distribution gets the same answer, whichever block solved it
    torch.testing.assert_close(r.synergy.reshape(-1, 64)[:-1], r.synergy[:64].expand(20000 // 64, 64), atol=0, rtol=0)


def test_backward_runs_on_the_device_and_matches_the_cpu(rng):
    requires_cuda_build()
    from fastpid import torch_ops  # noqa: F401

    P = torch.tensor(family_batch(rng, "with_zeros", (4, 3, 5), count=6))
    g = torch.tensor(rng.normal(size=6))
    cpu = torch.ops.fastpid.solve(P, 1e-10, 100, "exact", False)
    dev = torch.ops.fastpid.solve(P.cuda(), 1e-10, 100, "exact", False)
    grad_cpu = torch.ops.fastpid.decompose_backward(g, P, cpu[4], cpu[5])
    grad_dev = torch.ops.fastpid.decompose_backward(g.cuda(), P.cuda(), dev[4], dev[5])
    assert grad_dev.device.type == "cuda"
    assert (grad_dev.cpu()[P == 0] == 0).all()
    # the same formula on the two devices' dual points (which agree to the solver's accuracy)
    torch.testing.assert_close(grad_dev.cpu(), grad_cpu, atol=1e-6, rtol=0)
    # on the same dual point, the kernel and the CPU loop agree exactly
    same = torch.ops.fastpid.decompose_backward(g.cuda(), P.cuda(), cpu[4].cuda(), cpu[5].cuda())
    torch.testing.assert_close(same.cpu(), grad_cpu, atol=0, rtol=0)


@pytest.mark.parametrize("method", KERNELS)
def test_solve_is_host_free_cuda_graph_capture(method, rng):
    # The launch (workspace and outputs from torch, the kernel on the current stream) is captured
    # in a CUDA graph: capture fails on any synchronisation or host copy. The input checks (one
    # small copy) run before; the graph replays the whole solve on new data with no host work.
    requires_cuda_build()
    from fastpid.torch_ops import launch_cuda

    P = torch.tensor(family_batch(rng, "histogram", (20, 20, 6), count=64)).cuda()
    launch_cuda(P, method, 1e-9, 100, False)  # warm-up outside the capture (plan, allocator)
    torch.cuda.synchronize()
    static = P.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = launch_cuda(static, method, 1e-9, 100, False)
    fresh = torch.tensor(family_batch(rng, "histogram", (20, 20, 6), count=64)).cuda()
    static.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    direct = launch_cuda(fresh, method, 1e-9, 100, False)
    torch.testing.assert_close(outputs[0], direct[0], atol=0, rtol=0)


def test_cuda_hand_off_between_methods():
    # refine's kernel alone stalls on some near copies; decompose hands them to the exact kernel
    # on the device, as on the CPU (core.hand_off); with max_iter given, no hand-off
    requires_cuda_build()
    from fastpid.families import dependent_sources

    P = torch.tensor(np.stack([dependent_sources(np.random.default_rng(s), 6, 6, 5, uniform=False, flip=2e-5) for s in range(40)]))
    alone = fastpid.decompose(P.cuda(), method="refine", max_iter=1000)
    handed = fastpid.decompose(P.cuda(), method="refine")
    assert bool(handed.converged.all()), float(handed.bound.max())
    short = ~alone.converged
    assert bool((handed.iterations[short] > alone.iterations[short]).all())


@pytest.mark.parametrize("method", KERNELS)
def test_cuda_grid_smaller_than_the_batch(method, rng):
    # every block walks several distributions with one workspace (as compute-sanitizer checks it)
    requires_cuda_build()
    from fastpid import torch_ops

    P = torch.tensor(family_batch(rng, "structured", (9, 7, 5), count=9))
    full = fastpid.decompose(P.cuda(), method=method, tol=1e-9)
    torch_ops.MAX_CUDA_BLOCKS = 2
    try:
        walked = fastpid.decompose(P.cuda(), method=method, tol=1e-9)
    finally:
        torch_ops.MAX_CUDA_BLOCKS = None
    for atom in ATOMS + ("bound",):
        torch.testing.assert_close(getattr(walked, atom), getattr(full, atom), atol=0, rtol=0)


@pytest.mark.parametrize("method", KERNELS)
def test_cuda_launch_plan_is_reported(method):
    requires_cuda_build()
    from fastpid import torch_ops

    plan = torch_ops.cuda_launch_plan(method, torch.zeros((300, 20, 20, 6), dtype=torch.float64, device="cuda"))
    assert 0 < plan["registers"] <= 255 and plan["threads"] <= plan["max_threads"] and plan["blocks"] >= 1
    assert plan["workspace_doubles_per_block"] > 0


def test_cuda_float32_bound_covers_rounding():
    requires_cuda_build()
    P = np.zeros((18, 18, 18))
    P[np.arange(18), np.arange(18), np.arange(18)] = 1 / 18
    single = torch.tensor(P, dtype=torch.float32)
    r = fastpid.decompose(single.cuda())
    assert r.bound.dtype == torch.float32 and r.bound.device.type == "cuda"
    assert abs(float(r.redundancy) - np.log2(18)) <= float(r.bound)


def test_three_sources_on_cuda_tensors(rng):
    """decompose(P, sources=3) and union_information on CUDA tensors: solved on the CPU (no
    k-source kernel yet), results and gradients on the device, equal to the CPU tensor's."""
    from fastpid.families import FAMILIES3
    from fastpid.result import TERMS3

    P = np.stack([FAMILIES3["lifted_histogram"](rng, 4, 3, 3, 4) for _ in range(5)])
    cpu = torch.tensor(P, requires_grad=True)
    gpu = torch.tensor(P, device="cuda", requires_grad=True)
    r_cpu, r_gpu = fastpid.decompose(cpu, sources=3), fastpid.decompose(gpu, sources=3)
    for t in TERMS3 + ("bound",):
        assert getattr(r_gpu, t).device.type == "cuda"
        np.testing.assert_allclose(getattr(r_gpu, t).cpu().detach().numpy(), getattr(r_cpu, t).detach().numpy(), rtol=0, atol=1e-12)
    r_cpu.synergy.sum().backward()
    r_gpu.synergy.sum().backward()
    assert gpu.grad.device.type == "cuda"
    np.testing.assert_allclose(gpu.grad.cpu().numpy(), cpu.grad.numpy(), rtol=0, atol=1e-10)
    u = fastpid.union_information(gpu.detach(), sources=3)
    assert u.union.device.type == "cuda" and bool(u.converged.all())
