"""Tucker attention (Klein, Kusch, Sager, Schnake, Schotthöfer; arXiv 2603.30033).

The two weight tensors of a layer, each (H, C, C),

    W_qk[i] = W_q[i] W_k[i]^T          (head, query, key)
    W_vo[i] = (W_v[i] W_o[i])^T        (head, output, value)

are Tucker tensors (Definition 2.1):

    W_qk = core_qk x1 U_head_qk x2 U_q x3 U_k,   core_qk (r_head, r_q, r_k)
    W_vo = core_vo x1 U_head_vo x2 U_o x3 U_v,   core_vo (r_head, r_o, r_v).

The forward pass never forms them. With T_i = sum_s U_head[i, s] core[s]
(r_q, r_k), head i's logits are (x U_q T_i) (x' U_k)^T: per-head queries in the
r_k latent against ONE shared key latent K = x U_k, and one value latent
V = x U_v. That is multi-query attention with head dim r_k (so flash kernels
apply, sec. 3.3), followed by the output core: out = sum_i y_i T~_i^T U_o^T.
Latent RoPE (Definition 3.1) rotates q and K inside the r_k latent.

See: book/06_tucker.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..cache import FactorCache
from ..config import TuckerConfig
from ..functional import attend
from ..rope import apply_rope
from .base import AttentionModule, fan_in_normal_

__all__ = ["TuckerAttention", "ROPE_LAYOUT"]

# Tucker's rope_layout names -> rope.apply_rope layouts.
ROPE_LAYOUT = {"latent": "full", "block": "block", "tail": "tail"}


class TuckerAttention(AttentionModule):
    """Tucker attention. Parameters: core_qk, U_head_qk (H, r_head), U_q (C, r_q),
    U_k (C, r_k); core_vo, U_head_vo (H, r_head'), U_o (C, r_o), U_v (C, r_v)
    (absent when ``shared_kv``: the value latent is the unrotated key latent)."""

    config_class = TuckerConfig

    def __init__(self, cfg: TuckerConfig, **kw):
        super().__init__(cfg, **kw)
        C, H = cfg.C, cfg.H
        (a, rq, rk), (d, ro, rv) = cfg.ranks_qk, cfg.ranks_vo
        P = lambda *shape: nn.Parameter(torch.empty(*shape))
        self.core_qk, self.U_head_qk, self.U_q, self.U_k = P(a, rq, rk), P(H, a), P(C, rq), P(C, rk)
        self.core_vo, self.U_head_vo, self.U_o = P(d, ro, rv), P(H, d), P(C, ro)
        self.U_v = None if cfg.shared_kv else P(C, rv)
        self._folded = None  # (parameter versions, T_qk, T_vo) for inference
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Variance-preserving init: x U_q T_i and sum_i y_i T~_i^T U_o^T keep unit
        scale, as fan-in-initialized W_q and W_o would."""
        cfg = self.cfg
        (a, rq, _), (d, ro, rv) = cfg.ranks_qk, cfg.ranks_vo
        for U in (self.U_q, self.U_k, self.U_v):
            if U is not None:
                fan_in_normal_(U, cfg.C)
        fan_in_normal_(self.U_head_qk, a)
        fan_in_normal_(self.U_head_vo, d)
        fan_in_normal_(self.core_qk, rq)  # T_i = U_head[i] . core: entries ~ N(0, 1/r_q)
        fan_in_normal_(self.core_vo, cfg.H * rv)  # summed over H heads of r_v dims
        fan_in_normal_(self.U_o, ro)

    def _fold(self) -> tuple[Tensor, Tensor]:
        """The folded cores as two matrices: M_qk (r_q, H r_k), whose column block i is
        T_qk[i], and M_vo (H r_v, r_o), whose row block i is T_vo[i]^T."""
        H, (_, rq, rk), (_, ro, rv) = self.cfg.H, self.cfg.ranks_qk, self.cfg.ranks_vo
        M_qk = torch.einsum("hs,sqk->qhk", self.U_head_qk, self.core_qk).reshape(rq, H * rk)
        M_vo = torch.einsum("hs,sov->hvo", self.U_head_vo, self.core_vo).reshape(H * rv, ro)
        return M_qk, M_vo

    def core_matrices(self) -> tuple[Tensor, Tensor]:
        """M_qk (r_q, H r_k) and M_vo (H r_v, r_o): the cores folded with U_head, laid
        out so that the queries are (x U_q) M_qk and the output (y flattened over
        heads) M_vo, two plain matmuls.

        Outside autograd (inference, decoding) the fold is kept and reused until a
        parameter changes, so a decode step does not pay H r_head r_q r_k again, nor
        copy the cores into an einsum's layout. Under torch.compile the fold is recomputed
        (the reuse key reads storage addresses, which a traced graph must not depend on)."""
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return self._fold()
        parts = (self.U_head_qk, self.core_qk, self.U_head_vo, self.core_vo)
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in parts)
        if self._folded is None or self._folded[0] != key:
            self._folded = (key, *self._fold())
        return self._folded[1], self._folded[2]

    def head_cores(self) -> tuple[Tensor, Tensor]:
        """T_qk (H, r_q, r_k) and T_vo (H, r_o, r_v): the cores folded with U_head
        (views of ``core_matrices()``, so reused outside autograd as they are)."""
        H, (_, rq, rk), (_, ro, rv) = self.cfg.H, self.cfg.ranks_qk, self.cfg.ranks_vo
        M_qk, M_vo = self.core_matrices()
        return M_qk.view(rq, H, rk).transpose(0, 1), M_vo.view(H, rv, ro).transpose(1, 2)

    def latents(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Unrotated key latent x U_k (B, S, r_k) and value latent x U_v (B, S, r_v)."""
        k = x @ self.U_k
        return k, (k if self.U_v is None else x @ self.U_v)

    def rope(self, t: Tensor, pos: int | Tensor) -> Tensor:
        """Latent RoPE on the last (r_k) dim of t (B, T, ..., r_k)."""
        cfg = self.cfg
        return apply_rope(t, pos, base=cfg.rope_base, layout=ROPE_LAYOUT[cfg.rope_layout],
                          rope_dim=cfg.rope_dim)

    def forward(self, x: Tensor, *, start_pos: int | None = None, cache: FactorCache | None = None) -> Tensor:
        """x (B, T, C) at positions start_pos.. -> (B, T, C). A cache stores the rotated
        key latent and the value latent (r_k + r_v per token), or with ``shared_kv`` the
        one unrotated latent (r_k), whose keys are rotated as they are read.
        ``start_pos=None`` continues where the cache ends (0 without a cache). A cache is
        this layer's own (``new_cache``), for causal layers, for inference (under
        torch.no_grad(); with gradients enabled outputs and gradients stay exact, but the graph
        of every step is kept until cache.reset())."""
        cfg = self.cfg
        start_pos = self.begin(x, cache, start_pos)
        B, T, _ = x.shape
        M_qk, M_vo = self.core_matrices()
        q = ((x @ self.U_q) @ M_qk).view(B, T, cfg.H, cfg.r_k)  # x U_q T_i for every head i
        k, v = self.latents(x)  # (B, T, r_k), (B, T, r_v)
        pos = start_pos  # an int: RoPE slices its cached cos/sin table
        if cfg.rope:
            q = self.rope(q, pos)
        if self.U_v is not None:  # separate latents: cache the key rotated, once
            k = self.rope(k, pos) if cfg.rope else k
            if cache is not None:
                f = cache.update(start_pos, k_latent=k, v_latent=v)
                k, v = f["k_latent"], f["v_latent"]  # (B, S, r_k), (B, S, r_v)
        else:  # one latent: values read it unrotated, keys rotated by their positions
            if cache is not None:
                k = v = cache.update(start_pos, kv_latent=k)["kv_latent"]
            if cfg.rope:
                S = k.shape[1]
                k = self.rope(k, start_pos + T - S)  # the keys' first position
        # multi-query attention in the latent: one K/V stream for all heads
        y = attend(q, k[:, :, None], v[:, :, None], scale=cfg.softmax_scale,
                   causal=cfg.causal, impl=self.impl)  # (B, T, H, r_v)
        return (y.reshape(B, T, -1) @ M_vo) @ self.U_o.T  # sum_i y_i T~_i^T, then U_o^T

    def _decode_static(self, x, cache, pos, valid):
        cfg = self.cfg
        B = x.shape[0]
        M_qk, M_vo = self.core_matrices()
        q = ((x @ self.U_q) @ M_qk).view(B, 1, cfg.H, cfg.r_k)
        k, v = self.latents(x)
        if cfg.rope:
            q = self.rope(q, pos)
        if self.U_v is not None:
            k = self.rope(k, pos) if cfg.rope else k
            f = cache.write_at(pos, k_latent=k, v_latent=v)
            k, v = f["k_latent"], f["v_latent"]  # (B, S_max, r_k), (B, S_max, r_v)
        else:
            k = v = cache.write_at(pos, kv_latent=k)["kv_latent"]
            k = self.rope(k, 0) if cfg.rope else k  # every slot rotated by its position
        y = attend(q, k[:, :, None], v[:, :, None], scale=cfg.softmax_scale, causal=False,
                   impl=self.static_impl, key_mask=valid)
        return (y.reshape(B, 1, -1) @ M_vo) @ self.U_o.T

    def head_projections(self):
        T_qk, T_vo = self.head_cores()
        H = self.cfg.H
        U_v = self.U_k if self.U_v is None else self.U_v
        return {"W_q": self.U_q @ T_qk,  # (H, C, r_k)
                "W_k": self.U_k.expand(H, *self.U_k.shape),
                "W_v": U_v.expand(H, *U_v.shape),
                "W_o": T_vo.transpose(1, 2) @ self.U_o.T}  # (H, r_v, C)
