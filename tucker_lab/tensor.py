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

import math
from contextlib import contextmanager

import tensorly as tl
import torch
from torch import Tensor

from .config import check_int, check_tensor

__all__ = ["unfold", "fold", "mode_product", "tucker_to_tensor", "multilinear_singular_values",
           "factored_singular_values", "factored_tucker", "multilinear_rank", "energy_rank", "check_ranks", "hosvd", "hooi", "relative_error"]


@contextmanager
def _torch_backend():
    # thread-local, so a user's global tensorly backend is left alone
    with tl.backend_context("pytorch", local_threadsafe=True):
        yield


def _check_mode(owner: str, t, mode, name: str = "t") -> None:
    """TypeError/ValueError unless t is a tensor with at least one dim and mode one of its modes."""
    check_tensor(owner, name, t)
    if t.ndim == 0:
        raise ValueError(f"{owner}: {name} must have at least one mode; got a 0-dim tensor")
    check_int(owner, "mode", mode, 0, t.ndim - 1)


def unfold(t: Tensor, mode: int) -> Tensor:
    """Mode-``mode`` unfolding: (I_mode, prod of the other dims)."""
    _check_mode("unfold", t, mode)
    with _torch_backend():
        return tl.unfold(t, mode)


def fold(m: Tensor, mode: int, shape: tuple[int, ...]) -> Tensor:
    """Inverse of ``unfold``."""
    check_tensor("fold", "m", m, ndim=2)
    if not isinstance(shape, (tuple, list, torch.Size)) or not shape or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(f"fold: shape must be a tuple of integers >= 1; got {shape!r}")
    check_int("fold", "mode", mode, 0, len(shape) - 1)
    if m.shape[0] != shape[mode] or m.numel() != math.prod(shape):
        raise ValueError(f"fold: m {tuple(m.shape)} is not a mode-{mode} unfolding of shape {tuple(shape)}")
    with _torch_backend():
        return tl.fold(m, mode, tuple(shape))


def mode_product(t: Tensor, m: Tensor, mode: int) -> Tensor:
    """t x_mode m, with m of shape (J, I_mode)."""
    _check_mode("mode_product", t, mode)
    check_tensor("mode_product", "m", m, ndim=2, device=t.device)
    if m.shape[1] != t.shape[mode]:
        raise ValueError(f"mode_product: m must be (J, I_mode) with I_mode = t.shape[{mode}] = {t.shape[mode]}; "
                         f"got {tuple(m.shape)}")
    with _torch_backend():
        return tl.tenalg.mode_dot(t, m, mode)


def tucker_to_tensor(core: Tensor, factors: list[Tensor]) -> Tensor:
    """core x_0 U_0 x_1 U_1 ... with U_n of shape (I_n, r_n)."""
    check_tensor("tucker_to_tensor", "core", core)
    if not isinstance(factors, (list, tuple)) or len(factors) != core.ndim:
        raise ValueError(f"tucker_to_tensor: factors must be a list of {core.ndim} matrices (one per mode of core); "
                         f"got {type(factors).__name__}")
    for n, U in enumerate(factors):
        check_tensor("tucker_to_tensor", f"factors[{n}]", U, ndim=2, device=core.device)
        if U.shape[1] != core.shape[n]:
            raise ValueError(f"tucker_to_tensor: factors[{n}] must be (I_{n}, r_{n}) with r_{n} = core.shape[{n}] = "
                             f"{core.shape[n]}; got {tuple(U.shape)}")
    with _torch_backend():
        return tl.tucker_to_tensor((core, list(factors)))


def multilinear_singular_values(t: Tensor) -> list[Tensor]:
    """Singular values of each mode unfolding, descending."""
    check_tensor("multilinear_singular_values", "t", t, dtype="floating")
    if t.ndim == 0:
        raise ValueError("multilinear_singular_values: t must have at least one mode; got a 0-dim tensor")
    return [torch.linalg.svdvals(unfold(t, n)) for n in range(t.ndim)]


def _mode_gram(A: Tensor, B: Tensor, mode: int) -> Tensor:
    """Gram matrix of the mode-``mode`` unfolding of W[i] = A[i] B[i]^T (float64 in, out)."""
    if mode == 0:  # <W_i, W_j>: forming W (H I J d) is cheaper than the d x d factor products (H^2 (I+J) d^2)
        if A.shape[1] * B.shape[1] <= (A.shape[1] + B.shape[1]) * A.shape[2] * A.shape[0]:
            W = torch.einsum("hie,hje->hij", A, B).flatten(1)
            return W @ W.T
        return (torch.einsum("ice,jcf->ijef", A, A) * torch.einsum("ice,jcf->ijef", B, B)).sum((2, 3))
    X, Y = (A, B) if mode == 1 else (B, A)
    return torch.einsum("hie,hef,hjf->ij", X, Y.transpose(1, 2) @ Y, X)  # sum_i X_i (Y_i^T Y_i) X_i^T


def _check_factors(owner: str, A, B) -> None:
    from .config import check_tensor
    check_tensor(owner, "A", A, ndim=3, dtype="floating")
    check_tensor(owner, "B", B, ndim=3, dtype="floating", device=A.device)
    if A.shape[0] != B.shape[0] or A.shape[2] != B.shape[2] or 0 in A.shape or 0 in B.shape:
        raise ValueError(f"{owner}: A must be (H, I, d) and B (H, J, d), non-empty; got "
                         f"A {tuple(A.shape)} and B {tuple(B.shape)}")


def factored_singular_values(A: Tensor, B: Tensor) -> list[Tensor]:
    """The multilinear singular values of W[i] = A[i] B[i]^T without forming W.

    A (H, I, d), B (H, J, d); W is (H, I, J). Each mode's singular values are the square
    roots of the eigenvalues of its unfolding's Gram matrix, and each Gram comes from the
    small factor products: mode 1 (I x I) sum_i A_i (B_i^T B_i) A_i^T; mode 2 (J x J)
    sum_i B_i (A_i^T A_i) B_i^T; mode 0 (H x H) <W[i], W[j]> = sum((A_i^T A_j) * (B_i^T B_j)),
    or from W itself where forming it is cheaper.
    For an attention layer (I = J = C, d = D) that is O(H C^2 D) instead of the SVD of a
    C x HC unfolding, O(H C^3). Computed in float64; squaring the condition number puts
    the relative noise floor of the smallest values near 1e-8 of the largest, far below
    anything energy ranks look at. Descending, as ``multilinear_singular_values``.
    """
    _check_factors("factored_singular_values", A, B)
    A, B = A.double(), B.double()
    grams = [_mode_gram(A, B, n) for n in range(3)]
    H, I, J = A.shape[0], A.shape[1], B.shape[1]
    n = (min(H, I * J), min(I, H * J), min(J, H * I))  # as many values as the unfolding has
    return [torch.linalg.eigvalsh(g).flip(0)[:k].clamp_min(0).sqrt() for g, k in zip(grams, n)]


def _top(gram: Tensor, r: int) -> Tensor:
    """The r leading eigenvectors of a symmetric PSD matrix, as columns."""
    return torch.linalg.eigh(gram)[1].flip(1)[:, :r]


def _left(m: Tensor, r: int) -> Tensor:
    """The r leading left singular vectors of m: from its SVD when m is tall, else from the
    eigenvectors of the smaller Gram m m^T."""
    if m.shape[1] < m.shape[0]:
        return torch.linalg.svd(m, full_matrices=False)[0][:, :r]
    return _top(m @ m.T, r)


def factored_tucker(A: Tensor, B: Tensor, ranks, *, modes=(0, 1, 2), method: str = "hosvd",
                    n_iter_max: int = 50, tol: float = 1e-8) -> tuple[Tensor, list[Tensor]]:
    """Truncated HOSVD or HOOI of W[i] = A[i] B[i]^T (H, I, J), from its factors.

    The same decomposition as ``hosvd`` / ``hooi`` on the formed tensor (up to the signs
    of the factors' columns), for what it costs to touch A (H, I, d) and B (H, J, d):
    HOSVD's factors are the leading eigenvectors of the mode Grams of
    ``factored_singular_values``; each HOOI sweep (De Lathauwer et al. 2000) updates one
    factor from the tensor projected on the other two, here (H, I, r_2) or (r_0, I, r_2)
    sized, and stops when the core's norm gains less than ``tol`` (relative). Modes not in
    ``modes`` keep the identity. Returns (core (r_0, r_1, r_2), [U_0, U_1, U_2]) in float64.
    """
    if method not in ("hosvd", "hooi"):
        raise ValueError(f"factored_tucker: method must be 'hosvd' or 'hooi'; got {method!r}")
    _check_factors("factored_tucker", A, B)
    if (not isinstance(modes, (tuple, list)) or not modes
            or not all(isinstance(m, int) and not isinstance(m, bool) and 0 <= m <= 2 for m in modes)):
        raise ValueError(f"factored_tucker: modes must be a non-empty tuple of 0, 1, 2; got {modes!r}")
    from .config import check_int
    check_int("factored_tucker", "n_iter_max", n_iter_max, 0)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"factored_tucker: tol must be a number >= 0; got {tol!r}")
    A, B = A.double(), B.double()
    H, I, J = A.shape[0], A.shape[1], B.shape[1]
    ranks = check_ranks((H, I, J), ranks)
    U = [_top(_mode_gram(A, B, n), r) if n in modes else torch.eye(d, dtype=A.dtype, device=A.device)
         for n, (d, r) in enumerate(zip((H, I, J), ranks))]
    core = lambda: torch.einsum("is,iae,ibe->sab", U[0], U[1].T @ A, U[2].T @ B)
    if method == "hooi":
        norm = core().norm()
        for _ in range(n_iter_max):
            if 0 in modes:  # heads from the (H, r_1 r_2) unfolding of W x_1 U_1^T x_2 U_2^T
                U[0] = _left(torch.einsum("iae,ibe->iab", U[1].T @ A, U[2].T @ B).flatten(1), ranks[0])
            if 1 in modes:  # rows from sum_i U_0[i, s] A_i (U_2^T B_i)^T, (r_0, I, r_2)
                Z = torch.einsum("is,iae,ibe->asb", U[0], A, U[2].T @ B)
                U[1] = _left(Z.flatten(1), ranks[1])
            if 2 in modes:
                Z = torch.einsum("is,iae,ibe->asb", U[0], B, U[1].T @ A)
                U[2] = _left(Z.flatten(1), ranks[2])
            new = core().norm()
            done = (new - norm).abs() <= tol * new
            norm = new
            if done:
                break
    return core(), U


def multilinear_rank(t: Tensor, rtol: float | None = None) -> tuple[int, ...]:
    """Multilinear (Tucker) rank: per mode, the number of singular values above
    ``rtol`` times the largest (default: 1e3 x machine epsilon of t's dtype,
    times the largest dimension)."""
    check_tensor("multilinear_rank", "t", t, dtype="floating")
    if t.ndim == 0:
        raise ValueError("multilinear_rank: t must have at least one mode; got a 0-dim tensor")
    if rtol is not None and (isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 <= rtol < 1):
        raise ValueError(f"multilinear_rank: rtol must be None or a number in [0, 1); got {rtol!r}")
    if rtol is None:
        rtol = 1e3 * torch.finfo(t.dtype).eps * max(t.shape)
    return tuple(int((s > rtol * s[0]).sum()) if s.numel() and s[0] > 0 else 0
                 for s in multilinear_singular_values(t))


def energy_rank(s: Tensor, energy: float) -> int:
    """Smallest r whose leading singular values hold ``energy`` of sum(s^2) (0 < energy <= 1)."""
    check_tensor("energy_rank", "s", s, ndim=1)
    if isinstance(energy, bool) or not isinstance(energy, (int, float)) or not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1]; got {energy!r}")
    if s.numel() == 0:
        raise ValueError("energy_rank: s must hold at least one singular value")
    e = (s.double() ** 2).cumsum(0)
    if e[-1] == 0:
        return 0
    return int((e < energy * e[-1] * (1 - 1e-12)).sum()) + 1


def check_ranks(shape: tuple[int, ...], ranks, names=None) -> tuple[int, ...]:
    """ValueError unless ranks[n] is an integer in [1, shape[n]] for every mode."""
    if not isinstance(ranks, (tuple, list)):
        raise ValueError(f"ranks must be a tuple with one integer per mode ({len(shape)}); got {ranks!r}")
    ranks = tuple(ranks)
    if len(ranks) != len(shape):
        raise ValueError(f"ranks must have one entry per mode ({len(shape)}); got {ranks}")
    for n, (r, d) in enumerate(zip(ranks, shape)):
        if not isinstance(r, int) or isinstance(r, bool) or not 1 <= r <= d:
            mode = names[n] if names else f"mode {n}"
            raise ValueError(f"rank of {mode} must be an integer in [1, {d}] (its dimension); got {r!r}")
    return ranks


def hosvd(t: Tensor, ranks, modes=None) -> tuple[Tensor, list[Tensor]]:
    """Truncated HOSVD (De Lathauwer et al. 2000): U_n = the leading ranks[n] left singular
    vectors of the mode-n unfolding, core = t x_n U_n^T. Returns (core, factors), each
    factor (I_n, r_n) with orthonormal columns. ``modes``: decompose only these modes
    (ranks then has one entry per listed mode; the others keep their full size)."""
    return _tucker(t, ranks, modes, n_iter_max=0)


def hooi(t: Tensor, ranks, modes=None, n_iter_max: int = 100, tol: float = 1e-10) -> tuple[Tensor, list[Tensor]]:
    """Higher-order orthogonal iteration (De Lathauwer et al. 2000), initialized by HOSVD:
    alternately re-fits each factor to the others until the fit stops improving. Its
    error is never above HOSVD's at the same ranks."""
    return _tucker(t, ranks, modes, n_iter_max=n_iter_max, tol=tol)


def _tucker(t, ranks, modes, n_iter_max, tol=1e-10):
    from tensorly.decomposition import partial_tucker, tucker
    check_tensor("hosvd" if n_iter_max == 0 else "hooi", "t", t, dtype="floating")
    if modes is not None and (not isinstance(modes, (tuple, list)) or len(set(modes)) != len(modes) or not all(
            isinstance(m, int) and not isinstance(m, bool) and 0 <= m < t.ndim for m in modes)):
        raise ValueError(f"modes must be None or distinct modes of t (integers in [0, {t.ndim - 1}]); got {modes!r}")
    check_int("hooi", "n_iter_max", n_iter_max, 0)
    if modes is None:
        check_ranks(tuple(t.shape), ranks)
        with _torch_backend():
            res = tucker(t, rank=list(ranks), n_iter_max=n_iter_max, init="svd", tol=tol)
        return res.core, list(res.factors)
    check_ranks(tuple(t.shape[m] for m in modes), ranks, [f"mode {m}" for m in modes])
    with _torch_backend():
        (core, factors), _ = partial_tucker(t, rank=list(ranks), modes=list(modes), n_iter_max=n_iter_max,
                                            init="svd", tol=tol)
    return core, list(factors)


def relative_error(t: Tensor, approx: Tensor) -> float:
    """||t - approx||_F / ||t||_F."""
    check_tensor("relative_error", "t", t)
    check_tensor("relative_error", "approx", approx, device=t.device)
    if approx.shape != t.shape:
        raise ValueError(f"relative_error: approx {tuple(approx.shape)} must have t's shape {tuple(t.shape)}")
    return ((t - approx).norm() / t.norm()).item()
