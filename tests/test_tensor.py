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
