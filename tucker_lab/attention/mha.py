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
from .base import AttentionModule, linear

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
        ``start_pos=None`` continues where the cache ends (0 without a cache). A cache is
        this layer's own (``new_cache``), for causal layers, for inference (under
        torch.no_grad(); with gradients enabled outputs and gradients stay exact, but the graph
        of every step is kept until cache.reset())."""
        cfg = self.cfg
        start_pos = self.begin(x, cache, start_pos)
        B, T, _ = x.shape
        H, G, D = cfg.H, cfg.G, cfg.D
        q = self.w_q(x).view(B, T, H, D)
        k = self.w_k(x).view(B, T, G, D)
        v = self.w_v(x).view(B, T, G, D)
        if cfg.rope:  # an int start position: cos/sin come from the cached table
            q = apply_rope(q, start_pos, base=cfg.rope_base)
            k = apply_rope(k, start_pos, base=cfg.rope_base)  # cached rotated
        if cache is not None:
            kv = cache.update(start_pos, k=k, v=v)
            k, v = kv["k"], kv["v"]  # (B, S, G, D)
        y = attend(q, k, v, scale=cfg.softmax_scale, causal=cfg.causal, impl=self.impl)  # (B, T, H, D)
        return self.w_o(y.reshape(B, T, H * D))

    def _decode_static(self, x, cache, pos, valid):
        cfg = self.cfg
        B, H, G, D = x.shape[0], cfg.H, cfg.G, cfg.D
        q = self.w_q(x).view(B, 1, H, D)
        k = self.w_k(x).view(B, 1, G, D)
        v = self.w_v(x).view(B, 1, G, D)
        if cfg.rope:
            q = apply_rope(q, pos, base=cfg.rope_base)
            k = apply_rope(k, pos, base=cfg.rope_base)
        f = cache.write_at(pos, k=k, v=v)  # (B, S_max, G, D) each
        y = attend(q, f["k"], f["v"], scale=cfg.softmax_scale, causal=False, impl=self.static_impl,
                   key_mask=valid)
        return self.w_o(y.reshape(B, 1, H * D))

    def head_projections(self):
        C, H, G, D = self.cfg.C, self.cfg.H, self.cfg.G, self.cfg.D
        per_head = lambda w, n: w.weight.view(n, D, C).transpose(1, 2)  # (n, C, D)
        rep = H // G  # KV head g serves query heads g*rep .. g*rep + rep - 1
        return {"W_q": per_head(self.w_q, H),
                "W_k": per_head(self.w_k, G).repeat_interleave(rep, 0),
                "W_v": per_head(self.w_v, G).repeat_interleave(rep, 0),
                "W_o": self.w_o.weight.view(C, H, D).permute(1, 2, 0)}  # (H, D, C)
