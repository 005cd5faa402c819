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

from ..cache import FactorCache
from ..config import TPAConfig
from ..functional import attend, causal_mask, softmax
from ..rope import apply_rope
from .base import AttentionModule, linear, per_head, per_head_out

__all__ = ["TPAttention", "factored_attention"]


def factored_attention(q, a_k: Tensor, b_k: Tensor, a_v: Tensor, b_v: Tensor, *,
                       scale: float, causal: bool,
                       key_mask: Tensor | None = None) -> Tensor:
    """Attention computed from TPA factors without forming per-head keys or values
    (TPA paper App. A, eqs. A.2-A.3; FlashTPA decoding, Algorithm 2, without tiling).

    Args:
        q: per-head queries (B, T, H, D) (KV-only), or the factors (a_q, b_q) with
            a_q (B, T, R_q, H) or (R_q, H) and b_q (B, T, R_q, D).
        a_k, a_v: (B, S, R, H), or (R, H) for constant head factors.
        b_k, b_v: (B, S, R, D); b_k already rotated.
        key_mask: optional (S,) bool, the keys every query may see (static shapes).
    Returns:
        (B, T, H, D).
    The products over D and over the cache are matmuls, one per key or value rank,
    which read b_k and b_v where they lie in the cache (no copy); the two contractions
    over a rank with the head factors are elementwise products and sums, since as
    matmuls they would be millions of R x 1 products.
    """
    S, R_k, R_v = b_k.shape[1], b_k.shape[2], b_v.shape[2]
    a_k, a_v = (a if a.ndim == 4 else a[None, None] for a in (a_k, a_v))  # B|1,S|1,R,H

    def dots(x):  # x (B, T, n, D) against every cached b_k: (B, T, n, S, R_k);
        B, T, n, D = x.shape  # a matmul per key rank reads b_k where it lies
        x = x.reshape(B, T * n, D)
        d = [x @ b_k[:, :, u].transpose(1, 2) for u in range(R_k)]  # (B, T n, S) each
        return torch.stack(d, -1).view(B, T, n, S, R_k)
    if isinstance(q, tuple):
        a_q, b_q = q
        a_q = a_q if a_q.ndim == 4 else a_q[None, None]
        P = dots(b_q)  # head-shared feature dots (B, T, R_q, S, R_k)
        g = a_q.transpose(-1, -2) @ P.flatten(3)  # (B, T, H, S R_k)
        g = g.unflatten(-1, (S, R_k)) / b_q.shape[2]
    else:
        g = dots(q)  # KV-only: per-head queries against each key factor
    # g (B, T, H, S, R_k): query i against each key factor; contract with the key
    # head factors a_k[b, s, u, h], as (B|1, H, 1, S|1, R_k)
    a_kh = a_k.permute(0, 3, 1, 2)[:, :, None]
    logits = (g.transpose(1, 2) * a_kh).sum(-1) * (scale / R_k)  # (B, H, T, S)
    if causal:
        T = logits.shape[2]
        logits = logits.masked_fill(~causal_mask(T, S, logits.device), float("-inf"))
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask, float("-inf"))
    p = softmax(logits).to(b_v.dtype)  # (B, H, T, S)
    B, H, T = p.shape[:3]
    # sum_w (p[b,h,t,s] a_v[b,s,w,h]) @ b_v[b,s,w]: a matmul per value rank, in place
    a_vh = a_v.permute(0, 2, 3, 1)[:, :, :, None]  # (B|1, R_v, H, 1, S|1)
    y = sum((p * a_vh[:, w]).flatten(1, 2) @ b_v[:, :, w] for w in range(R_v))  # B,HT,D
    return y.view(B, H, T, -1).transpose(1, 2) / R_v  # (B, T, H, D)


class TPAttention(AttentionModule):
    """TPA. Parameters: head factors w_aq, w_ak, w_av (C -> R*H), or with constant head
    factors a_q, a_k, a_v (R, H); feature factors w_bq, w_bk, w_bv (C -> R*D); w_q
    (C -> H*D) instead of w_aq, w_bq for KV-only; w_o (H*D -> C)."""

    config_class = TPAConfig

    def __init__(self, cfg: TPAConfig, **kw):
        super().__init__(cfg, **kw)
        C, H, D = cfg.C, cfg.H, cfg.D
        R_q, R_k, R_v = cfg.q_rank, cfg.k_rank, cfg.v_rank
        # constant head factors: learned, N(0, 1) like a contextual factor of a unit input
        const = lambda R: nn.Parameter(torch.randn(R, H))
        if cfg.kv_only:
            self.w_q = linear(C, H * D)
        elif cfg.contextual_a:
            self.w_aq, self.w_bq = linear(C, R_q * H), linear(C, R_q * D)
        else:
            self.a_q, self.w_bq = const(R_q), linear(C, R_q * D)
        if cfg.contextual_a:
            self.w_ak, self.w_bk = linear(C, R_k * H), linear(C, R_k * D)
            self.w_av, self.w_bv = linear(C, R_v * H), linear(C, R_v * D)
        else:
            self.a_k, self.w_bk = const(R_k), linear(C, R_k * D)
            self.a_v, self.w_bv = const(R_v), linear(C, R_v * D)
        self.ranks = {"k": R_k, "v": R_v} if cfg.kv_only else {"q": R_q, "k": R_k, "v": R_v}
        self.w_o = linear(H * D, C)

    def factors(self, x: Tensor, name: str, pos: int | Tensor | None) -> tuple[Tensor, Tensor]:
        """The factors of ``name`` ("q", "k" or "v"): head factor a (B, T, R, H), or the
        constant (R, H), and feature factor b (B, T, R, D), RoPE-rotated when ``pos`` is given."""
        cfg = self.cfg
        B, T, _ = x.shape
        ctx = cfg.contextual_a
        if name == "q" and not cfg.kv_only:
            a, w_b = (self.w_aq if ctx else self.a_q), self.w_bq
        elif name == "k":
            a, w_b = (self.w_ak if ctx else self.a_k), self.w_bk
        elif name == "v":
            a, w_b = (self.w_av if ctx else self.a_v), self.w_bv
        else:
            raise ValueError(f"TPAttention.factors: name must be one of {list(self.ranks)}; got {name!r}")
        R = self.ranks[name]
        a = a(x).view(B, T, R, cfg.H) if ctx else a
        b = w_b(x).view(B, T, R, cfg.D)
        if pos is not None:
            b = apply_rope(b, pos, base=cfg.rope_base)
        return a, b

    def decode_query(self, x: Tensor, pos: int | Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Per-head queries (B, T, H, D) for KV-only TPA, else the factors (a_q, b_q);
        rotated (with RoPE)."""
        cfg = self.cfg
        pos = pos if cfg.rope else None
        if not cfg.kv_only:
            return self.factors(x, "q", pos)
        B, T, _ = x.shape
        q = self.w_q(x).view(B, T, cfg.H, cfg.D)
        return q if pos is None else apply_rope(q, pos, base=cfg.rope_base)

    @staticmethod
    def combine(a: Tensor, b: Tensor) -> Tensor:
        """(1/R) A^T B: heads (B, T, H, D) from a (B, T, R, H) or (R, H) and b (B, T, R, D)
        (eq. 3.1). A batched matmul, also at R = 1 where it is an outer product."""
        return (a.transpose(-1, -2) @ b) / b.shape[-2]

    def forward(self, x: Tensor, *, start_pos: int | None = None, cache: FactorCache | None = None) -> Tensor:
        """x (B, T, C) at positions start_pos.. -> (B, T, C). A cache stores the factors
        a_k, b_k (rotated), a_v, b_v ((R, H) and (R, D) per token; b_k, b_v only with
        constant head factors). "factored" never forms per-head keys or values.
        Calls with a cache, ``start_pos`` and gradients: see ``AttentionModule``."""
        cfg = self.cfg
        start_pos = self.begin(x, cache, start_pos)
        pos = start_pos if cfg.rope else None  # an int: RoPE slices its cached cos/sin table
        a_k, b_k = self.factors(x, "k", pos)
        a_v, b_v = self.factors(x, "v", None)  # values carry no position
        q = self.decode_query(x, start_pos)
        algebra = self.algebra(cache, start_pos)
        if cache is not None:
            f = cache.update(start_pos, **({"a_k": a_k, "a_v": a_v} if cfg.contextual_a else {}),
                             b_k=b_k, b_v=b_v)
            if algebra == "factored":
                return self.output(self.decode_core(q, cache))
            b_k, b_v = f["b_k"], f["b_v"]  # (B, S, R, D)
            if cfg.contextual_a:
                a_k, a_v = f["a_k"], f["a_v"]  # (B, S, R, H)
        if algebra == "naive":
            q = q if cfg.kv_only else self.combine(*q)
            y = attend(q, self.combine(a_k, b_k), self.combine(a_v, b_v), scale=cfg.softmax_scale,
                       causal=cfg.causal, impl=self.impl)
        else:
            y = factored_attention(q, a_k, b_k, a_v, b_v, scale=cfg.softmax_scale, causal=cfg.causal)
        return self.output(y)

    def decode_core(self, q, cache):
        """Factored attention over the cached factors, never forming keys or values:
        (B, T, H, D). One-token steps with impl="triton" run the FlashTPA-style kernel."""
        cfg = self.cfg
        f = cache.read()
        a_k, a_v = (f["a_k"], f["a_v"]) if cfg.contextual_a else (self.a_k, self.a_v)  # (B, S, R, H) | (R, H)
        if self.impl == "triton" and (q if cfg.kv_only else q[1]).shape[1] == 1:
            from ..kernels import tpa_decode
            q1 = q[:, 0] if cfg.kv_only else (q[0] if q[0].ndim == 2 else q[0][:, 0], q[1][:, 0])
            return tpa_decode(q1, a_k, f["b_k"], a_v, f["b_v"], scale=cfg.softmax_scale)[:, None]
        return factored_attention(q, a_k, f["b_k"], a_v, f["b_v"], scale=cfg.softmax_scale, causal=cfg.causal)

    def _decode_static(self, x, cache, pos, valid):
        cfg = self.cfg
        a_k, b_k = self.factors(x, "k", pos if cfg.rope else None)
        a_v, b_v = self.factors(x, "v", None)
        f = cache.write_at(pos, **({"a_k": a_k, "a_v": a_v} if cfg.contextual_a else {}), b_k=b_k, b_v=b_v)
        if cfg.contextual_a:
            a_k, a_v = f["a_k"], f["a_v"]  # (B, S_max, R, H)
        y = factored_attention(self.decode_query(x, pos), a_k, f["b_k"], a_v, f["b_v"],
                               scale=cfg.softmax_scale, causal=False, key_mask=valid)
        return self.output(y)

    def head_projections(self):
        cfg = self.cfg
        if cfg.contextual_a:
            raise ValueError("TPA with contextual_a=True: q and k are quadratic in x (a(x) b(x)), "
                             "so the layer has no fixed weight tensors")
        H, R_q, R_k, R_v = cfg.H, cfg.q_rank, cfg.k_rank, cfg.v_rank

        def W(a, w_b, R):  # (1/R) sum_r a[r, i] W_b[r]: (H, C, D)
            return torch.einsum("rh,rcd->hcd", a, per_head(w_b, R)) / R

        Wq = per_head(self.w_q, H) if cfg.kv_only else W(self.a_q, self.w_bq, R_q)
        return {"W_q": Wq, "W_k": W(self.a_k, self.w_bk, R_k), "W_v": W(self.a_v, self.w_bv, R_v),
                "W_o": per_head_out(self.w_o, H)}
