"""tensor.py against plain torch: unfoldings, mode products, Tucker reconstruction, ranks."""
import pytest
import torch

from tucker_lab.tensor import (fold, mode_product, multilinear_rank, multilinear_singular_values,
                               tucker_to_tensor, unfold)

F64 = torch.float64


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_unfold_fold(mode):
    t = torch.randn(3, 4, 5, dtype=F64)
    u = unfold(t, mode)
    assert torch.equal(u, t.movedim(mode, 0).reshape(t.shape[mode], -1))
    assert torch.equal(fold(u, mode, t.shape), t)


def test_mode_product_is_an_einsum():
    t, m = torch.randn(3, 4, 5, dtype=F64), torch.randn(6, 4, dtype=F64)
    torch.testing.assert_close(mode_product(t, m, 1), torch.einsum("ajc,bj->abc", t, m))


def test_tucker_to_tensor_and_its_rank():
    core = torch.randn(2, 3, 4, dtype=F64)
    U = [torch.randn(5, 2, dtype=F64), torch.randn(7, 3, dtype=F64), torch.randn(9, 4, dtype=F64)]
    t = tucker_to_tensor(core, U)
    torch.testing.assert_close(t, torch.einsum("abc,ia,jb,kc->ijk", core, *U))
    assert multilinear_rank(t) == (2, 3, 4)
    sv = multilinear_singular_values(t)
    assert [len(s) for s in sv] == [5, 7, 9]
    assert all(torch.all(s[:-1] >= s[1:]) for s in sv)
    assert multilinear_rank(torch.zeros(2, 2, 2)) == (0, 0, 0)


from tucker_lab.tensor import check_ranks, energy_rank, hooi, hosvd, relative_error  # noqa: E402


def random_tensor(shape=(6, 7, 8)):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(0))


def test_hosvd_equals_svds_of_the_unfoldings():
    t = random_tensor()
    ranks = (3, 4, 5)
    core, factors = hosvd(t, ranks)
    for n, (U, r) in enumerate(zip(factors, ranks)):
        Un = torch.linalg.svd(unfold(t, n), full_matrices=False)[0][:, :r]
        torch.testing.assert_close(U.abs(), Un.abs(), rtol=0, atol=1e-10)  # up to column signs
        torch.testing.assert_close(U.T @ U, torch.eye(r, dtype=F64), rtol=0, atol=1e-12)
    # the core is the projection onto the factors: core = t x_n U_n^T
    proj = torch.einsum("ijk,ia,jb,kc->abc", t, *factors)
    torch.testing.assert_close(core, proj, rtol=0, atol=1e-12)


def test_error_identities_and_bounds():
    t = random_tensor()
    for ranks in [(2, 2, 2), (3, 5, 4), (6, 7, 8)]:
        core, factors = hosvd(t, ranks)
        approx = tucker_to_tensor(core, factors)
        err2 = ((t - approx).norm() ** 2).item()
        # orthogonal projection: ||t||^2 = ||core||^2 + ||t - approx||^2
        assert err2 == pytest.approx((t.norm() ** 2 - core.norm() ** 2).item(), abs=1e-9)
        # HOSVD bound: the error is at most the discarded squared singular values of all modes
        sv = multilinear_singular_values(t)
        assert err2 <= sum((s[r:] ** 2).sum().item() for s, r in zip(sv, ranks)) + 1e-9
        c2, f2 = hooi(t, ranks)
        assert relative_error(t, tucker_to_tensor(c2, f2)) <= relative_error(t, approx) + 1e-12
    assert relative_error(t, tucker_to_tensor(*hosvd(t, t.shape))) < 1e-13  # full rank: exact


def test_error_never_increases_with_rank():
    t = random_tensor((5, 6, 7))
    errs = [relative_error(t, tucker_to_tensor(*hosvd(t, (a, b, c)))) for a in (1, 3, 5) for b in (2, 6) for c in (3, 7)]
    grid = torch.tensor(errs).view(3, 2, 2)
    assert (grid.diff(dim=0) <= 1e-12).all() and (grid.diff(dim=1) <= 1e-12).all() and (grid.diff(dim=2) <= 1e-12).all()


def test_partial_decomposition_keeps_a_mode():
    t = random_tensor()
    core, (A, B) = hosvd(t, (6, 7), modes=[0, 1])  # full ranks in two modes: exact
    torch.testing.assert_close(torch.einsum("abk,ia,jb->ijk", core, A, B), t, rtol=0, atol=1e-12)


def test_energy_rank_and_rank_checks():
    s = torch.tensor([3.0, 2.0, 1.0, 0.0])  # energies 9, 4, 1 of 14
    assert [energy_rank(s, e) for e in (0.5, 0.9, 0.99, 1.0)] == [1, 2, 3, 3]
    with pytest.raises(ValueError, match=r"rank of mode 1 must be an integer in \[1, 7\] \(its dimension\); got 9"):
        hosvd(random_tensor(), (2, 9, 3))
    with pytest.raises(ValueError, match="one entry per mode"):
        check_ranks((2, 3, 4), (1, 2))
    with pytest.raises(ValueError, match="energy must be in"):
        energy_rank(s, 1.5)
