"""Tensor product attention (Zhang et al., arXiv 2501.06425).

Each token's queries, keys and values are low-rank sums of outer products of a
head factor a_r (H) and a feature factor b_r (D), both linear in x_t (eq. 3.1):

    Q_t = (1/R_q) A_q(x_t)^T B_q(x_t),   A_q (R_q, H),  B_q (R_q, D),

and likewise K, V. RoPE rotates the B factors before caching (Theorem 3.1),
so the cache holds (R_k + R_v)(H + D) numbers per token instead of 2 H D.
With constant head factors ("non-contextual A") MHA, MQA and GQA are exact
special cases (sec. 4). TPA-KVonly keeps a standard query projection.

See: book/11_tpa_vs_tucker.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import TPAConfig
from ..functional import attend
from ..rope import apply_rope, positions
from .base import AttentionModule, linear

__all__ = ["TPAttention"]


class TPAttention(AttentionModule):
    """TPA. Parameters: w_a{q,k,v} (C -> R*H) or constants a_{q,k,v} (R, H),
    w_b{q,k,v} (C -> R*D), w_q (C -> H*D) for KV-only, w_o (H*D -> C)."""

    config_class = TPAConfig

    def __init__(self, cfg: TPAConfig, **kw):
        super().__init__(cfg, **kw)
        C, H, D = cfg.C, cfg.H, cfg.D
        ranks = {"k": cfg.k_rank, "v": cfg.v_rank}
        if cfg.kv_only:
            self.w_q = linear(C, H * D)
        else:
            ranks = {"q": cfg.q_rank, **ranks}
        for n, R in ranks.items():
            if cfg.contextual_a:
                setattr(self, f"w_a{n}", linear(C, R * H))
            else:  # learned constants; N(0, 1) like a contextual factor of a unit input
                setattr(self, f"a_{n}", nn.Parameter(torch.randn(R, H)))
            setattr(self, f"w_b{n}", linear(C, R * D))
        self.ranks = ranks
        self.w_o = linear(H * D, C)

    def factors(self, x: Tensor, name: str, pos: Tensor | None) -> tuple[Tensor, Tensor]:
        """Head factor a (B, T, R, H) or (R, H), and feature factor b (B, T, R, D),
        RoPE-rotated when ``pos`` is given."""
        cfg = self.cfg
        B, T, _ = x.shape
        R = self.ranks[name]
        a = (getattr(self, f"w_a{name}")(x).view(B, T, R, cfg.H) if cfg.contextual_a
             else getattr(self, f"a_{name}"))
        b = getattr(self, f"w_b{name}")(x).view(B, T, R, cfg.D)
        if pos is not None:
            b = apply_rope(b, pos, base=cfg.rope_base)
        return a, b

    @staticmethod
    def combine(a: Tensor, b: Tensor) -> Tensor:
        """(1/R) A^T B: heads (B, T, H, D) from a (B, T, R, H) or (R, H) and b (B, T, R, D)
        (eq. 3.1). A batched matmul, also at R = 1 where it is an outer product."""
        return (a.transpose(-1, -2) @ b) / b.shape[-2]

    def forward(self, x: Tensor, *, start_pos: int = 0) -> Tensor:
        """x (B, T, C) at positions start_pos.. -> (B, T, C)."""
        cfg = self.cfg
        B, T = self.check_input(x)
        H, D = cfg.H, cfg.D
        pos = positions(start_pos, T, x.device) if cfg.rope else None
        if cfg.kv_only:
            q = self.w_q(x).view(B, T, H, D)
            q = apply_rope(q, pos, base=cfg.rope_base) if cfg.rope else q
        else:
            q = self.combine(*self.factors(x, "q", pos))
        k = self.combine(*self.factors(x, "k", pos))
        v = self.combine(*self.factors(x, "v", None))  # values carry no position
        y = attend(q, k, v, scale=cfg.softmax_scale, causal=cfg.causal, impl=self.impl)
        return self.w_o(y.reshape(B, T, H * D))

    def head_projections(self):
        cfg = self.cfg
        if cfg.contextual_a:
            raise ValueError("TPA with contextual_a=True: q and k are quadratic in x (a(x) b(x)), "
                             "so the layer has no fixed weight tensors")
        C, H, D = cfg.C, cfg.H, cfg.D

        def W(n):  # (1/R) sum_r a[r, i] Wb[r]: (H, C, D)
            R = self.ranks[n]
            Wb = getattr(self, f"w_b{n}").weight.view(R, D, C).transpose(1, 2)  # (R, C, D)
            return torch.einsum("rh,rcd->hcd", getattr(self, f"a_{n}"), Wb) / R

        Wq = self.w_q.weight.view(H, D, C).transpose(1, 2) if cfg.kv_only else W("q")
        return {"W_q": Wq, "W_k": W("k"), "W_v": W("v"),
                "W_o": self.w_o.weight.view(C, H, D).permute(1, 2, 0)}
