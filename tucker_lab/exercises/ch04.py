"""Exercises of chapter 4 (tensors, unfoldings, Tucker, HOSVD/HOOI). See book/04_tensors."""
import torch

from ..tensor import (hosvd, multilinear_rank, multilinear_singular_values, relative_error,
                      tucker_to_tensor, unfold)
from . import exercise


@exercise("4.1", "A tensor of shape (16, 1024, 1024) is stored in Tucker form with ranks (8, 128, 64). "
          "How many numbers do the core and the three factors hold together?",
          hint="The core has r1 r2 r3 entries; factor n is I_n x r_n.")
def _():
    shape, ranks = (16, 1024, 1024), (8, 128, 64)
    return ranks[0] * ranks[1] * ranks[2] + sum(d * r for d, r in zip(shape, ranks))


@exercise("4.2", "Take X = torch.arange(24).reshape(2, 3, 4). In its mode-2 unfolding (the paper's mode 2, "
          "tkl.tensor.unfold(X, 1)), which column holds the fibre X[1, :, 2]? Give the 0-based column "
          "index in the package's (row-major) order and in Kolda and Bader's order. Answer a tuple "
          "(package, Kolda-Bader).",
          hint="Row-major: the last remaining index varies fastest, column = i_1 * I_3 + i_3. "
               "Kolda-Bader: the earliest varies fastest, column = i_1 + i_3 * I_1.")
def _():
    X = torch.arange(24).reshape(2, 3, 4)
    pkg = unfold(X, 1)
    fibre = X[1, :, 2]
    col = next(j for j in range(pkg.shape[1]) if torch.equal(pkg[:, j], fibre))
    kb = X.permute(1, 2, 0).reshape(3, -1)  # other modes in reverse order: mode 1 (index 0) fastest
    col_kb = next(j for j in range(kb.shape[1]) if torch.equal(kb[:, j], fibre))
    return col, col_kb


@exercise("4.3", "Draw a core G = torch.randn(5, 2, 2) and factors U1 = torch.randn(6, 5), "
          "U2 = torch.randn(7, 2), U3 = torch.randn(8, 2) (float64, any seed). What is the multilinear "
          "rank of G x1 U1 x2 U2 x3 U3? Answer a tuple of 3 integers.",
          hint="Each mode rank is at most the product of the other two: the mode-1 unfolding of the "
               "core is 5 x 4.")
def _():
    g = torch.Generator().manual_seed(3)
    G = torch.randn(5, 2, 2, generator=g, dtype=torch.float64)
    Us = [torch.randn(d, r, generator=g, dtype=torch.float64) for d, r in ((6, 5), (7, 2), (8, 2))]
    return multilinear_rank(tucker_to_tensor(G, Us))


@exercise("4.4", "Let X = torch.randn(6, 7, 8, generator=torch.Generator().manual_seed(4), "
          "dtype=torch.float64). For its truncated HOSVD at ranks (3, 3, 3), give the relative error "
          "||X - X_hat|| / ||X||, the lower bound sqrt(max_n d_n) / ||X|| and the upper bound "
          "sqrt(sum_n d_n) / ||X||, where d_n is the squared energy the truncation discards in mode n. "
          "Answer a tuple of 3 floats (error, lower, upper).",
          hint="tkl.tensor.hosvd and tkl.tensor.tucker_to_tensor give X_hat; d_n is the sum of the "
               "squared singular values of unfold(X, n) beyond the first r_n "
               "(tkl.tensor.multilinear_singular_values).", rtol=1e-6)
def _():
    X = torch.randn(6, 7, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ranks = (3, 3, 3)
    err = relative_error(X, tucker_to_tensor(*hosvd(X, ranks)))
    d = [(s[r:] ** 2).sum().item() for s, r in zip(multilinear_singular_values(X), ranks)]
    n2 = X.norm().item() ** 2
    return err, (max(d) / n2) ** 0.5, (sum(d) / n2) ** 0.5
