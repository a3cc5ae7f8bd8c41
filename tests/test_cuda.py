"""CUDA tests: run only with a CUDA GPU and a CUDA build of fastpid (marked `cuda`)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastpid  # noqa: E402
from fastpid.families import FAMILIES, gates  # noqa: E402

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
]
ATOMS = ("redundancy", "unique1", "unique2", "synergy", "bound")


def requires_cuda_build():
    if not fastpid.build_info()["cuda"]:
        pytest.skip("fastpid was built without CUDA")


@pytest.mark.parametrize("method", ["proxy", "exact"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 5, 1), (3, 4, 5), (20, 20, 6)])
def test_cuda_matches_cpu(method, family, shape, rng):
    requires_cuda_build()
    if family == "with_zeros" and min(shape) < 2:
        pytest.skip("family needs every axis >= 2")
    batch = np.stack([FAMILIES[family](rng, *shape) for _ in range(7)])
    for dtype, atol in ((torch.float64, 1e-9), (torch.float32, 2e-5)):
        P = torch.tensor(batch, dtype=dtype)
        cpu = fastpid.decompose(P, method=method)
        gpu = fastpid.decompose(P.cuda(), method=method)
        for atom in ATOMS:
            g = getattr(gpu, atom)
            assert g.device.type == "cuda" and g.dtype == dtype
            torch.testing.assert_close(g.cpu(), getattr(cpu, atom), atol=atol, rtol=0)


def test_cuda_non_contiguous_and_side_stream(rng):
    requires_cuda_build()
    batch = torch.tensor(np.stack([FAMILIES["dense"](rng, 4, 3, 5) for _ in range(6)])).cuda()
    view = batch.transpose(1, 2)  # non-contiguous (X1 and X2 swapped)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        r = fastpid.decompose(view, method="proxy")
    stream.synchronize()
    cpu = fastpid.decompose(view.cpu(), method="proxy")
    torch.testing.assert_close(r.synergy.cpu(), cpu.synergy)


def test_cpu_only_build_rejects_nothing_silently():
    # A CUDA tensor always gives CUDA results (exact: solved on the host, returned on the device).
    P = torch.tensor(gates()["xor"][0]).cuda()
    r = fastpid.decompose(P)
    assert r.synergy.device.type == "cuda"
    assert float(r.synergy) == pytest.approx(1.0, abs=1e-7)


def test_cuda_gradcheck_and_opcheck(rng):
    requires_cuda_build()
    P = torch.tensor(FAMILIES["dense"](rng, 3, 3, 2), device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: fastpid.decompose(p, tol=1e-12, normalize=True).synergy, (P,), eps=1e-6, atol=1e-5)
    from fastpid import torch_ops  # noqa: F401

    torch.library.opcheck(torch.ops.fastpid.solve.default, (P.detach()[None], 1e-9, 100, "proxy", False))


def test_large_batch_proxy(rng):
    requires_cuda_build()
    batch = torch.tensor(np.stack([FAMILIES["histogram"](rng, 20, 20, 6) for _ in range(64)])).cuda()
    big = batch.repeat(100000 // 64 + 1, 1, 1, 1)[:100000]
    r = fastpid.decompose(big, method="proxy")
    torch.testing.assert_close(r.synergy[:64].cpu(), fastpid.decompose(batch.cpu(), method="proxy").synergy)
