"""Tensor algebra on torch tensors, backed by tensorly's pytorch backend.

The mode-n product follows Kolda & Bader (2009), as the Tucker paper does:
(X x_n M)[..., j, ...] = sum_i X[..., i, ...] M[j, i] for M of shape (J, I_n).
The mode-n unfolding has the mode-n fibres as columns, in tensorly's row-major
column order (the last remaining index varies fastest; Kolda & Bader let the
first vary fastest). The order changes no rank, singular value or product.
Modes are 0-based here (the paper's x_1 is mode 0).

See: book/04_tensors, book/05_attention_tensor.
"""
from __future__ import annotations

from contextlib import contextmanager

import tensorly as tl
import torch
from torch import Tensor

__all__ = ["unfold", "fold", "mode_product", "tucker_to_tensor",
           "multilinear_singular_values", "multilinear_rank"]


@contextmanager
def _torch_backend():
    # thread-local, so a user's global tensorly backend is left alone
    with tl.backend_context("pytorch", local_threadsafe=True):
        yield


def unfold(t: Tensor, mode: int) -> Tensor:
    """Mode-``mode`` unfolding: (I_mode, prod of the other dims)."""
    with _torch_backend():
        return tl.unfold(t, mode)


def fold(m: Tensor, mode: int, shape: tuple[int, ...]) -> Tensor:
    """Inverse of ``unfold``."""
    with _torch_backend():
        return tl.fold(m, mode, tuple(shape))


def mode_product(t: Tensor, m: Tensor, mode: int) -> Tensor:
    """t x_mode m, with m of shape (J, I_mode)."""
    with _torch_backend():
        return tl.tenalg.mode_dot(t, m, mode)


def tucker_to_tensor(core: Tensor, factors: list[Tensor]) -> Tensor:
    """core x_0 U_0 x_1 U_1 ... with U_n of shape (I_n, r_n)."""
    with _torch_backend():
        return tl.tucker_to_tensor((core, list(factors)))


def multilinear_singular_values(t: Tensor) -> list[Tensor]:
    """Singular values of each mode unfolding, descending."""
    return [torch.linalg.svdvals(unfold(t, n)) for n in range(t.ndim)]


def multilinear_rank(t: Tensor, rtol: float | None = None) -> tuple[int, ...]:
    """Multilinear (Tucker) rank: per mode, the number of singular values above
    ``rtol`` times the largest (default: 1e3 x machine epsilon of t's dtype,
    times the largest dimension)."""
    if rtol is None:
        rtol = 1e3 * torch.finfo(t.dtype).eps * max(t.shape)
    return tuple(int((s > rtol * s[0]).sum()) if s.numel() and s[0] > 0 else 0
                 for s in multilinear_singular_values(t))
