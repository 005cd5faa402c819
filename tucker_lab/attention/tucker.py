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
        self._folded = {}  # "qk" | "vo" -> (parameter versions, folded core), for inference
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

    def _fold(self, which: str) -> Tensor:
        """A folded core as a matrix: M_qk (r_q, H r_k), whose column block i is T_qk[i],
        or M_vo (H r_v, r_o), whose row block i is T_vo[i]^T."""
        H, (_, rq, rk), (_, ro, rv) = self.cfg.H, self.cfg.ranks_qk, self.cfg.ranks_vo
        if which == "qk":
            return torch.einsum("hs,sqk->qhk", self.U_head_qk, self.core_qk).reshape(rq, H * rk)
        return torch.einsum("hs,sov->hvo", self.U_head_vo, self.core_vo).reshape(H * rv, ro)

    def core_matrix(self, which: str) -> Tensor:
        """M_qk (``which="qk"``, (r_q, H r_k)) or M_vo (``"vo"``, (H r_v, r_o)): the core
        folded with U_head, laid out so that the queries are (x U_q) M_qk and the
        output (y flattened over heads) M_vo, plain matmuls.

        Outside autograd (inference, decoding) the fold is kept and reused until a
        parameter changes, so a decode step does not pay H r_head r_q r_k again, nor
        copy the cores into an einsum's layout. Under torch.compile the fold is recomputed
        (the reuse key reads storage addresses, which a traced graph must not depend on)."""
        if which not in ("qk", "vo"):
            raise ValueError(f"TuckerAttention.core_matrix: which must be 'qk' or 'vo'; got {which!r}")
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return self._fold(which)
        parts = (self.U_head_qk, self.core_qk) if which == "qk" else (self.U_head_vo, self.core_vo)
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in parts)
        if which not in self._folded or self._folded[which][0] != key:
            self._folded[which] = (key, self._fold(which))
        return self._folded[which][1]

    def head_cores(self) -> tuple[Tensor, Tensor]:
        """T_qk (H, r_q, r_k) and T_vo (H, r_o, r_v): the cores folded with U_head
        (views of the two ``core_matrix`` matrices, so reused outside autograd as they are)."""
        H, (_, rq, rk), (_, ro, rv) = self.cfg.H, self.cfg.ranks_qk, self.cfg.ranks_vo
        M_qk, M_vo = self.core_matrix("qk"), self.core_matrix("vo")
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
        Calls with a cache, ``start_pos`` and gradients: see ``AttentionModule``."""
        cfg = self.cfg
        start_pos = self.begin(x, cache, start_pos)
        q = self.decode_query(x, start_pos)  # an int start position: cos/sin from the cached table
        k, v = self.latents(x)  # (B, T, r_k), (B, T, r_v)
        if self.U_v is not None and cfg.rope:  # separate latents: cache the key rotated, once
            k = self.rope(k, start_pos)
        if cache is None:
            y = self._attend_latents(q, k, v, key_pos=start_pos)
        else:
            cache.update(start_pos, **({"kv_latent": k} if self.U_v is None else {"k_latent": k, "v_latent": v}))
            y = self.decode_core(q, cache)
        return self.output(y)

    def decode_query(self, x, pos):
        """Per-head queries in the key latent, x U_q T_i (B, T, H, r_k), rotated."""
        cfg = self.cfg
        q = ((x @ self.U_q) @ self.core_matrix("qk")).view(*x.shape[:2], cfg.H, cfg.r_k)  # every head i
        return self.rope(q, pos) if cfg.rope else q

    def decode_core(self, q, cache):
        f = cache.read()  # (B, S, r_k) and (B, S, r_v), or the one latent
        if self.U_v is None:
            return self._attend_latents(q, f["kv_latent"], f["kv_latent"], key_pos=0)
        return self._attend_latents(q, f["k_latent"], f["v_latent"], key_pos=0)

    def _attend_latents(self, q, k, v, key_pos, key_mask=None, impl=None):
        """Multi-query attention in the latent, one K/V stream for all heads: (B, T, H, r_v).
        One shared latent is cached unrotated: its keys are rotated here, as read, by
        their positions key_pos.."""
        cfg = self.cfg
        if self.U_v is None and cfg.rope:
            k = self.rope(k, key_pos)
        return attend(q, k[:, :, None], v[:, :, None], scale=cfg.softmax_scale,
                      causal=cfg.causal and key_mask is None, impl=impl or self.impl, key_mask=key_mask)

    def output(self, y: Tensor) -> Tensor:
        """sum_i y_i T~_i^T, then U_o^T: per-head outputs (B, T, H, r_v) -> (B, T, C)."""
        return (y.flatten(2) @ self.core_matrix("vo")) @ self.U_o.T

    def _decode_static(self, x, cache, pos, valid):
        q = self.decode_query(x, pos)
        k, v = self.latents(x)
        if self.U_v is None:
            k = v = cache.write_at(pos, kv_latent=k)["kv_latent"]  # all S_max slots, rotated from 0
        else:
            k = self.rope(k, pos) if self.cfg.rope else k
            f = cache.write_at(pos, k_latent=k, v_latent=v)
            k, v = f["k_latent"], f["v_latent"]  # (B, S_max, r_k), (B, S_max, r_v)
        y = self._attend_latents(q, k, v, key_pos=0, key_mask=valid, impl=self.static_impl)
        return self.output(y)

    def head_projections(self):
        T_qk, T_vo = self.head_cores()
        H = self.cfg.H
        U_v = self.U_k if self.U_v is None else self.U_v
        return {"W_q": self.U_q @ T_qk,  # (H, C, r_k)
                "W_k": self.U_k.expand(H, *self.U_k.shape),
                "W_v": U_v.expand(H, *U_v.shape),
                "W_o": T_vo.transpose(1, 2) @ self.U_o.T}  # (H, r_v, C)
