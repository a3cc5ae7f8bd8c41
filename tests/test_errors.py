import re

import numpy as np
import pytest

import fastpid


def valid(shape=(2, 2, 2)):
    return np.full(shape, 1.0 / np.prod(shape))


@pytest.mark.parametrize("method", ["exact", "proxy"])
def test_negative_entry_names_index(method):
    P = np.stack([valid(), valid(), valid()])
    P[1, 0, 0, 0] = -0.1
    P[1, 0, 0, 1] += 0.1
    with pytest.raises(ValueError, match=r"batch index 1\b.*negative"):
        fastpid.decompose(P, method=method)


def test_nan_and_inf():
    P = np.stack([valid(), valid()])
    P[1, 1, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"P\[1\].*NaN"):
        fastpid.decompose(P)
    P[1, 1, 1, 1] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        fastpid.decompose(P)


def test_native_totals_match_numpy():
    # The one-pass totals and flags behind every input check, against numpy's three passes,
    # on rows long enough to run the vectorised loop and its remainder, with the bad values
    # at the first, a middle and the last entry.
    rng = np.random.default_rng(7)
    P = rng.random((12, 3, 5, 7))
    P[1, 0, 0, 0] = np.nan
    P[2, 2, 4, 6] = np.inf
    P[3, 1, 2, 3] = -np.inf
    P[4, 2, 4, 6] = -1e-300
    P[5, 0, 0, 0] = -0.0  # not negative, for numpy either
    P[6, 1, 1, 1] = np.nan
    P[6, 1, 1, 2] = -2.0
    P[7] = 0.0
    P[8, 0, 1, 1] = 1.7e308  # finite
    total, nonfinite, negative = fastpid._C.input_totals(P)
    per = P.reshape(len(P), -1)
    assert nonfinite.dtype == bool and negative.dtype == bool
    np.testing.assert_array_equal(nonfinite, ~np.isfinite(per).all(axis=1))
    np.testing.assert_array_equal(negative, (per < 0).any(axis=1))
    assert nonfinite.tolist() == [False, True, True, True, False, False, True, False, False, False, False, False]
    assert negative.tolist() == [False, False, False, True, True, False, True, False, False, False, False, False]
    finite = np.isfinite(per).all(axis=1)
    np.testing.assert_allclose(total[finite], per[finite].sum(axis=1), rtol=1e-13)
    assert total[7] == 0.0


def test_zero_mass():
    P = np.stack([valid(), np.zeros((2, 2, 2))])
    with pytest.raises(ValueError, match=r"batch index 1\b.*zero total mass"):
        fastpid.decompose(P, normalize=True)


def test_not_normalised_and_normalize_flag():
    P = valid() * 3
    with pytest.raises(ValueError, match="not normalised"):
        fastpid.decompose(P)
    r = fastpid.decompose(P, normalize=True)
    assert float(r.mi_joint) == pytest.approx(0.0, abs=1e-12)


def test_counts_accepted_with_normalize():
    counts = np.array([[[5, 0], [0, 5]], [[0, 5], [5, 0]]])  # XOR counts, integer dtype
    r = fastpid.decompose(counts, normalize=True)
    assert float(r.synergy) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("shape", [(4,), (2, 2), ()])
def test_wrong_rank(shape):
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        fastpid.decompose(np.ones(shape))


def test_empty_axis():
    with pytest.raises(ValueError, match="empty axis"):
        fastpid.decompose(np.ones((2, 0, 2)))


def test_batch_index_with_multiple_batch_dims():
    P = np.broadcast_to(valid(), (2, 3, 2, 2, 2)).copy()
    P[1, 2, 0, 0, 0] = -1
    with pytest.raises(ValueError, match=r"P\[1, 2\] \(batch index 5\)"):
        fastpid.decompose(P)


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        fastpid.decompose(valid(), method="newton")
    with pytest.raises(ValueError, match="tol"):
        fastpid.decompose(valid(), tol=0)
    with pytest.raises(ValueError, match="base"):
        fastpid.decompose(valid(), base=1)
    with pytest.raises(ValueError, match="max_iter"):
        fastpid.decompose(valid(), max_iter=-1)
    with pytest.raises(ValueError, match="numeric"):
        fastpid.decompose(np.array([[["a"]]]))


def test_max_iter_zero_reports_not_converged_with_honest_bound():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(27)).reshape(3, 3, 3)
    r = fastpid.decompose(P, max_iter=0)
    exact = fastpid.decompose(P, tol=1e-10)
    assert not bool(r.converged)
    assert abs(float(r.synergy - exact.synergy)) <= float(r.bound) + 1e-12


def test_device_side_checks_name_the_bad_distribution():
    # The checks CUDA tensors get (one reduction on the device, the batch copied to the host
    # only to name a bad distribution) are plain torch operations: exercised here on the CPU.
    torch = pytest.importorskip("torch")
    from fastpid.torch_ops import check_cuda

    good = torch.full((6, 2, 3, 2), 1 / 12, dtype=torch.float64)
    check_cuda(good)
    for value, reason in ((float("nan"), "NaN"), (-0.5, "negative"), (2.0, "not normalised")):
        bad = good.clone()
        bad[4, 1, 1, 0] = value  # batch index 4 of a (2, 3) batch: P[1, 1]
        with pytest.raises(ValueError, match=rf"P\[1, 1\] \(batch index 4\).*{reason}"):
            check_cuda(bad, batch_shape=(2, 3))
    counts = good * 7  # counts are accepted with normalize=True, zero mass is not
    check_cuda(counts, normalize=True)
    counts[2] = 0
    with pytest.raises(ValueError, match="zero total mass"):
        check_cuda(counts, normalize=True)


@pytest.mark.parametrize("normalize", [False, True])
def test_device_side_checks_report_what_the_host_checks_report(normalize):
    # torch_ops.check_cuda (device reductions, one small copy) names the same distribution and
    # reason as the host checks; it is plain torch, so it runs on CPU tensors here.
    torch = pytest.importorskip("torch")
    from fastpid._backend import check_flat
    from fastpid.torch_ops import check_cuda

    rng = np.random.default_rng(0)
    good = rng.random((6, 2, 3, 2))
    good /= good.sum(axis=(1, 2, 3), keepdims=True)
    cases = []
    for poison in ("nan", "inf", "negative", "zero", "unnormalised", "mixed"):
        P = good.copy()
        if poison == "nan":
            P[4, 0, 1, 1] = np.nan
        elif poison == "inf":
            P[2, 1, 0, 0] = np.inf
        elif poison == "negative":
            P[5, 0, 0, 0] = -1e-3
        elif poison == "zero":
            P[1] = 0.0
        elif poison == "unnormalised":
            P[3] *= 2.5
        else:  # an earlier unnormalised one and a later negative one: the negative is reported
            P[0] *= 3.0
            P[4, 1, 2, 1] = -0.5
        cases.append(P)
    def message(check, P):
        try:
            check(P)
        except ValueError as error:
            # the printed total may differ in its last digits (torch and numpy sum in different orders)
            return re.sub(r"sums to ([0-9.e+-]+)", lambda m: f"sums to {float(m.group(1)):.9g}", str(error))
        return None

    raised = 0
    for P in cases:
        host = message(lambda p: check_flat(p.reshape(6, -1), (2, 3), normalize=normalize, min_rank=1), P)
        device = message(lambda p: check_cuda(torch.tensor(p), normalize=normalize, batch_shape=(2, 3)), P)
        assert device == host
        raised += host is not None
    assert raised == (5 if normalize else 6)  # normalize=True accepts the unnormalised batch
    check_cuda(torch.tensor(good), normalize=normalize)  # no error on a good batch


def test_inputs_that_cannot_be_right_are_refused():
    P = np.full((2, 2, 2), 0.125)
    with pytest.raises(ValueError, match="must be real"):
        fastpid.decompose(P.astype(complex))
    with pytest.raises(ValueError, match="masked array"):
        fastpid.decompose(np.ma.masked_array(P, mask=np.zeros_like(P, dtype=bool)))
    with pytest.raises(ValueError, match=r"max_iter must be between 0 and 2,147,483,647"):
        fastpid.decompose(P, max_iter=10**12)
    with pytest.raises(ValueError, match="threads"):
        fastpid.decompose(P, threads=-2)


def test_torch_inputs_that_cannot_be_right_are_refused():
    torch = pytest.importorskip("torch")
    P = torch.full((2, 2, 2), 0.125, dtype=torch.float64)
    with pytest.raises(ValueError, match="must be real"):
        fastpid.decompose(P.to(torch.complex128))
    with pytest.raises(ValueError, match="meta tensor"):
        fastpid.decompose(torch.empty((2, 2, 2), device="meta"))
    with pytest.raises(ValueError, match="torch.func transforms"):
        torch.func.grad(lambda p: fastpid.decompose(p).synergy)(P)
    with pytest.raises(ValueError, match="torch.func transforms"):
        torch.func.vmap(lambda p: fastpid.decompose(p).synergy)(P.expand(3, 2, 2, 2))
    # what the message recommends works
    Pg = P.clone().requires_grad_()
    (grad,) = torch.autograd.grad(fastpid.decompose(Pg).synergy, Pg)
    assert grad.shape == (2, 2, 2) and torch.isfinite(grad).all()
