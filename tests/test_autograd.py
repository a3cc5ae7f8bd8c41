"""Gradients of every atom through the fastpid::solve custom op."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastpid  # noqa: E402
from fastpid.families import dense, gates  # noqa: E402

MEASURES = ("redundancy", "unique1", "unique2", "synergy", "mi_x1", "mi_x2", "mi_joint")


def interior(rng, shape):
    # Strictly positive, well away from the boundary, so the optimum is differentiable.
    return torch.tensor(dense(rng, *shape, concentration=5.0), dtype=torch.float64)


def total(P, weights, tol=1e-12):
    r = fastpid.decompose(P, tol=tol, normalize=True)
    return sum(w * getattr(r, m) for w, m in zip(weights, MEASURES)).sum()


@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 2, 4), (4, 3, 3), (2, 2, 30)])  # the last: eliminated on the cells
def test_gradcheck_interior(shape, rng):
    weights = rng.normal(size=len(MEASURES))
    P = interior(rng, shape).requires_grad_(True)
    # normalize=True: gradients with respect to unnormalised weights, any direction is valid.
    assert torch.autograd.gradcheck(lambda p: total(p, weights), (P,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_each_atom_matches_finite_differences_of_cvxpy(rng):
    pytest.importorskip("cvxpy")
    from fastpid.reference import decompose_cvxpy

    P0 = dense(rng, 2, 3, 2, concentration=5.0)
    P = torch.tensor(P0, requires_grad=True)
    r = fastpid.decompose(P, tol=1e-12)
    direction = rng.normal(size=P0.shape)
    direction -= direction.mean()  # tangent to the simplex
    h = 1e-4
    for atom in ("redundancy", "unique1", "unique2", "synergy"):
        (grad,) = torch.autograd.grad(getattr(r, atom), P, retain_graph=True)
        analytic = float((grad.numpy() * direction).sum())
        up = float(getattr(decompose_cvxpy(P0 + h * direction), atom))
        down = float(getattr(decompose_cvxpy(P0 - h * direction), atom))
        assert analytic == pytest.approx((up - down) / (2 * h), abs=2e-4), atom


def test_batch_gradients_are_per_distribution(rng):
    P = torch.stack([interior(rng, (3, 3, 2)) for _ in range(4)]).requires_grad_(True)
    r = fastpid.decompose(P, tol=1e-12)
    (g_batch,) = torch.autograd.grad(r.synergy.sum(), P)
    for i in range(4):
        Pi = P[i].detach().clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(fastpid.decompose(Pi, tol=1e-12).synergy, Pi)
        torch.testing.assert_close(g_batch[i], gi)


def test_boundary_gradients_finite_and_zero_at_zero_cells():
    for name, (P0, _) in gates().items():
        P = torch.tensor(P0, requires_grad=True)
        r = fastpid.decompose(P)
        for atom in MEASURES:
            (g,) = torch.autograd.grad(getattr(r, atom), P, retain_graph=True)
            assert torch.isfinite(g).all(), (name, atom)
            assert (g[P0 == 0] == 0).all(), (name, atom)


def test_float32_gradients(rng):
    P = torch.tensor(dense(rng, 3, 3, 3, concentration=5.0), dtype=torch.float32, requires_grad=True)
    r = fastpid.decompose(P, tol=1e-9)
    assert r.synergy.dtype == torch.float32
    r.synergy.backward()
    assert P.grad.dtype == torch.float32 and torch.isfinite(P.grad).all()


def test_opcheck_cpu(rng):
    from fastpid import torch_ops  # noqa: F401

    P = torch.tensor(dense(rng, 3, 2, 3)[None], requires_grad=True)
    torch.library.opcheck(torch.ops.fastpid.solve.default, (P, 1e-9, 100, "exact", False))
    torch.library.opcheck(torch.ops.fastpid.solve.default, (P, 1e-9, 100, "proxy", True))


def test_torch_compile_no_graph_break(rng):
    P = torch.tensor(dense(rng, 3, 3, 2)[None].repeat(2, axis=0))

    def synergy(p):
        return fastpid.decompose(p, tol=1e-10).synergy * 2

    explanation = torch._dynamo.explain(synergy)(P)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(synergy, fullgraph=True)
    torch.testing.assert_close(compiled(P), synergy(P))


def test_memory_kept_for_backward_is_the_dual_point(rng):
    P = torch.tensor(dense(rng, 5, 4, 3)[None], requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fastpid.decompose(P, tol=1e-10)
    shapes = {tuple(t.shape) for t in saved}
    # the op keeps alpha (1, 5, 3) and beta (1, 4, 3); nothing scales with the iterations
    assert (1, 5, 3) in shapes and (1, 4, 3) in shapes


def test_maximise_synergy_reaches_xor():
    # Parametrise P(x1, x2, y) = 1/4 * softmax over y of logits: uniform independent inputs.
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.2)
    for _ in range(200):
        P = 0.25 * torch.softmax(logits, dim=-1)
        loss = -fastpid.decompose(P, tol=1e-9).synergy
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = fastpid.decompose(0.25 * torch.softmax(logits, dim=-1).detach())
    assert float(final.synergy) == pytest.approx(1.0, abs=1e-3)
