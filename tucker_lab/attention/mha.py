"""Multi-head, multi-query and grouped-query attention.

MHA (Vaswani et al. 2017) has H key/value heads; GQA (Ainslie et al. 2023)
has G, each shared by H/G query heads; MQA (Shazeer 2019) is G = 1. One module
serves all three: MHA is GQA with G = H.

See: book/01_attention, book/02_mqa_gqa.
"""
from __future__ import annotations

from torch import Tensor

from ..cache import FactorCache
from ..config import MHAConfig
from ..functional import attend
from ..rope import apply_rope
from .base import AttentionModule, linear, per_head, per_head_out

__all__ = ["GQAAttention"]


class GQAAttention(AttentionModule):
    """Grouped-query attention; MHAConfig gives MHA, GQAConfig(n_kv_heads=1) MQA.

    Parameters: w_q (C -> H*D), w_k, w_v (C -> G*D), w_o (H*D -> C).
    """

    config_class = MHAConfig

    def __init__(self, cfg: MHAConfig, **kw):
        super().__init__(cfg, **kw)
        C, H, G, D = cfg.C, cfg.H, cfg.G, cfg.D
        self.w_q = linear(C, H * D)
        self.w_k = linear(C, G * D)
        self.w_v = linear(C, G * D)
        self.w_o = linear(H * D, C)

    def forward(self, x: Tensor, *, start_pos: int | None = None, cache: FactorCache | None = None) -> Tensor:
        """x (B, T, C) at positions start_pos.. -> (B, T, C); with a cache, keys and
        values of all earlier positions come from it (it stores k, v: (G, D) per token).
        Calls with a cache, ``start_pos`` and gradients: see ``AttentionModule``."""
        cfg = self.cfg
        start_pos = self.begin(x, cache, start_pos)
        B, T, _ = x.shape
        G, D = cfg.G, cfg.D
        q = self.decode_query(x, start_pos)  # an int start position: cos/sin from the cached table
        k = self.w_k(x).view(B, T, G, D)
        v = self.w_v(x).view(B, T, G, D)
        if cfg.rope:
            k = apply_rope(k, start_pos, base=cfg.rope_base)  # cached rotated
        if cache is None:
            y = attend(q, k, v, scale=cfg.softmax_scale, causal=cfg.causal, impl=self.impl)
        else:
            cache.update(start_pos, k=k, v=v)
            y = self.decode_core(q, cache)  # (B, T, H, D)
        return self.output(y)

    def decode_query(self, x, pos):
        """Per-head queries (B, T, H, D), rotated."""
        cfg = self.cfg
        q = self.w_q(x).view(*x.shape[:2], cfg.H, cfg.D)
        return apply_rope(q, pos, base=cfg.rope_base) if cfg.rope else q

    def decode_core(self, q, cache):
        f = cache.read()  # k, v (B, S, G, D)
        return attend(q, f["k"], f["v"], scale=self.cfg.softmax_scale, causal=self.cfg.causal, impl=self.impl)

    def _decode_static(self, x, cache, pos, valid):
        cfg = self.cfg
        B, G, D = x.shape[0], cfg.G, cfg.D
        q = self.decode_query(x, pos)
        k = self.w_k(x).view(B, 1, G, D)
        v = self.w_v(x).view(B, 1, G, D)
        if cfg.rope:
            k = apply_rope(k, pos, base=cfg.rope_base)
        f = cache.write_at(pos, k=k, v=v)  # (B, S_max, G, D) each
        y = attend(q, f["k"], f["v"], scale=cfg.softmax_scale, causal=False, impl=self.static_impl,
                   key_mask=valid)
        return self.output(y)

    def head_projections(self):
        H, G = self.cfg.H, self.cfg.G
        rep = H // G  # KV head g serves query heads g*rep .. g*rep + rep - 1
        return {"W_q": per_head(self.w_q, H),  # (H, C, D)
                "W_k": per_head(self.w_k, G).repeat_interleave(rep, 0),
                "W_v": per_head(self.w_v, G).repeat_interleave(rep, 0),
                "W_o": per_head_out(self.w_o, H)}  # (H, D, C)
