"""Multi-head latent attention, DeepSeek-V2 form (arXiv 2405.04434, sec. 2.1).

Keys and values are up-projected from one cached latent c_kv = x W_dkv (R_kv);
queries optionally from a latent c_q = x W_dq (R_q). Positions enter through a
decoupled RoPE key k_rope = RoPE(x W_kr) (D_rope), shared by all heads, and
per-head RoPE queries. Two algebras give the same numbers:

    naive     q_i = [c_q W_uq_i, RoPE(c_q W_qr_i)], k_i = [c_kv W_uk_i, k_rope],
              v_i = c_kv W_uv_i: ordinary attention with H heads (training form);
    absorbed  q_i = [c_q W_uq_i W_uk_i^T, RoPE(c_q W_qr_i)] against the shared key
              [c_kv, k_rope] and value c_kv: multi-query attention over the
              latent, then W_uv_i and W_o (the decode form, eq. 10 and App. C).

``coupled_rope`` is the Tucker paper's simplification (Corollary 3.2.1): no
decoupled key; RoPE over the R_kv latent itself, so only the absorbed form exists.

See: book/03_mla.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..cache import FactorCache
from ..config import MLAConfig
from ..functional import attend
from ..rope import apply_rope
from .base import AttentionModule, linear, per_head, per_head_out

__all__ = ["MLAttention"]


class MLAttention(AttentionModule):
    """MLA. Parameters: [w_dq, q_norm,] w_uq (or w_q), [w_qr,] w_dkv, [w_kr,
    kv_norm,] w_uk, w_uv, w_o. Modes "naive" and "absorbed"."""

    config_class = MLAConfig

    def __init__(self, cfg: MLAConfig, *, mode: str | None = None, **kw):
        if cfg.coupled_rope:
            if mode == "naive":
                raise ValueError("MLA with coupled_rope=True has no naive form (RoPE sits between "
                                 "W_uq and W_uk); use mode='absorbed'")
            mode = "absorbed"
        super().__init__(cfg, mode=mode, **kw)
        C, H, D, dr, Dv, R = cfg.C, cfg.H, cfg.D, cfg.D_rope, cfg.D_v, cfg.R_kv
        d_q = C
        if cfg.q_rank is not None:
            d_q = cfg.q_rank
            self.w_dq = linear(C, d_q)
            self.q_norm = nn.RMSNorm(d_q, eps=1e-6) if cfg.latent_norm else nn.Identity()
            self.w_uq = linear(d_q, H * D)
        else:
            self.w_q = linear(C, H * D)
        self.w_qr = linear(d_q, H * dr) if dr else None
        self.w_dkv = linear(C, R)
        self.w_kr = linear(C, dr) if dr else None
        self.kv_norm = nn.RMSNorm(R, eps=1e-6) if cfg.latent_norm else nn.Identity()
        self.w_uk = linear(R, H * D)
        self.w_uv = linear(R, H * Dv)
        self.w_o = linear(H * Dv, C)

    def decode_query(self, x: Tensor, pos: int | Tensor) -> tuple[Tensor, Tensor | None]:
        """q_nope (B, T, H, D) and rotated q_rope (B, T, H, D_rope) or None (both algebras
        start from these; the absorbed one moves W_uk onto q_nope in ``_absorbed``)."""
        cfg = self.cfg
        B, T, _ = x.shape
        if cfg.q_rank is not None:
            c_q = self.q_norm(self.w_dq(x))  # (B, T, R_q)
            q_nope = self.w_uq(c_q)
        else:
            c_q = x
            q_nope = self.w_q(x)
        q_nope = q_nope.view(B, T, cfg.H, cfg.D)
        if not cfg.D_rope:
            return q_nope, None
        q_rope = self.w_qr(c_q).view(B, T, cfg.H, cfg.D_rope)
        return q_nope, apply_rope(q_rope, pos, base=cfg.rope_base)

    def _keys(self, x: Tensor, pos: int | Tensor) -> tuple[Tensor, Tensor | None]:
        """The cacheable factors: c_kv (B, S, R_kv) and rotated k_rope (B, S, D_rope) or None."""
        c_kv = self.kv_norm(self.w_dkv(x))
        if not self.cfg.D_rope:
            return c_kv, None
        return c_kv, apply_rope(self.w_kr(x), pos, base=self.cfg.rope_base)

    def forward(self, x: Tensor, *, start_pos: int | None = None, cache: FactorCache | None = None) -> Tensor:
        """x (B, T, C) at positions start_pos.. -> (B, T, C). A cache stores c_kv (R_kv)
        and the rotated k_rope (D_rope) per token, never per-head keys or values.
        Calls with a cache, ``start_pos`` and gradients: see ``AttentionModule``."""
        cfg = self.cfg
        start_pos = self.begin(x, cache, start_pos)
        B, T, _ = x.shape
        H, D, Dv = cfg.H, cfg.D, cfg.D_v
        q_nope, q_rope = q = self.decode_query(x, start_pos)  # an int: cos/sin from the cached table
        c_kv, k_rope = self._keys(x, start_pos)
        algebra = self.algebra(cache, start_pos)
        if cache is not None:
            f = cache.update(start_pos, c_kv=c_kv, **({} if k_rope is None else {"k_rope": k_rope}))
            if algebra == "absorbed":
                return self.output(self.decode_core(q, cache))
            c_kv, k_rope = f["c_kv"], f.get("k_rope")  # (B, S, R_kv), (B, S, D_rope)
        if algebra == "absorbed":  # no cache: the keys sit at start_pos..
            return self.output(self._absorbed(q_nope, q_rope, c_kv, k_rope, start_pos, start_pos))
        S = c_kv.shape[1]  # naive: per-head keys and values, up-projected for all S
        k = self.w_uk(c_kv).view(B, S, H, D)
        v = self.w_uv(c_kv).view(B, S, H, Dv)
        if k_rope is not None:
            q_nope = torch.cat((q_nope, q_rope), -1)  # (B, T, H, D + D_rope)
            k = torch.cat((k, k_rope[:, :, None].expand(B, S, H, cfg.D_rope)), -1)
        y = attend(q_nope, k, v, scale=cfg.softmax_scale, causal=cfg.causal, impl=self.impl)
        return self.output(y)

    def decode_core(self, q, cache):
        """Absorbed attention of (q_nope, q_rope) over the cached c_kv and k_rope: (B, T, H, D_v)."""
        q_nope, q_rope = q
        f = cache.read()
        # the queries are the last T positions; cache.packed() is [c_kv, k_rope], no copy
        return self._absorbed(q_nope, q_rope, f["c_kv"], f.get("k_rope"), cache.seq_len - q_nope.shape[1], 0,
                              cache.packed())

    def _decode_static(self, x, cache, pos, valid):
        q_nope, q_rope = self.decode_query(x, pos)
        c_kv, k_rope = self._keys(x, pos)
        f = cache.write_at(pos, c_kv=c_kv, **({} if k_rope is None else {"k_rope": k_rope}))
        y = self._absorbed(q_nope, q_rope, f["c_kv"], f.get("k_rope"), pos, 0, cache.data,
                           key_mask=valid, impl=self.static_impl)  # all S_max slots, masked
        return self.output(y)

    def _absorbed(self, q_nope, q_rope, c_kv, k_rope, pos, key_pos, packed=None,
                  key_mask=None, impl=None) -> Tensor:
        """Multi-query attention over the latent; per-head values (B, T, H, D_v)."""
        cfg, impl = self.cfg, impl or self.impl
        H, R = cfg.H, cfg.R_kv
        # q_i W_uk_i^T: the key up-projection moves onto the query, (B, T, H, R_kv)
        q_lat = torch.einsum("bthd,hrd->bthr", q_nope, per_head(self.w_uk, H))
        k_lat = c_kv
        if cfg.coupled_rope:  # RoPE over the latent: keys rotate as read, values do not
            q_lat = apply_rope(q_lat, pos, base=cfg.rope_base)
            k_lat = apply_rope(c_kv, key_pos, base=cfg.rope_base)
        if k_rope is not None:
            q_lat = torch.cat((q_lat, q_rope), -1)  # (B, T, H, R_kv + D_rope)
            # the key [c_kv, k_rope] (B, S, R_kv + D_rope): the cache's packed rows
            k_lat = packed if packed is not None else torch.cat((k_lat, k_rope), -1)
            # the value is the key's first R_kv dims: for SDPA, pass the packed key as
            # the value too and keep the first R_kv output dims. Same memory read, and
            # equal q/k/v head dims let SDPA take its fused kernel instead of the math
            # fallback (at the price of D_rope wasted value columns). The einsum
            # reference and the Triton kernel take unequal dims as they are.
            v_lat = c_kv if impl in ("einsum", "triton") else k_lat
        else:
            v_lat = c_kv
        y_lat = attend(q_lat, k_lat[:, :, None], v_lat[:, :, None],  # one K/V stream
                       scale=cfg.softmax_scale, causal=cfg.causal and key_mask is None,
                       impl=impl, key_mask=key_mask)[..., :R]  # (B, T, H, R_kv)
        return torch.einsum("bthr,hrv->bthv", y_lat, per_head(self.w_uv, H))  # y_i W_uv_i

    def head_projections(self):
        cfg = self.cfg
        if cfg.latent_norm:
            raise ValueError("MLA with latent_norm=True is not linear in x (RMSNorm on the "
                             "latents), so it has no fixed weight tensors")
        C, H, dr = cfg.C, cfg.H, cfg.D_rope
        if cfg.q_rank is not None:  # W_dq W_uq_i
            W_dq = self.w_dq.weight.T  # (C, R_q)
            Wq = W_dq @ per_head(self.w_uq, H)
            Wqr = W_dq @ per_head(self.w_qr, H) if dr else None
        else:
            Wq = per_head(self.w_q, H)
            Wqr = per_head(self.w_qr, H) if dr else None
        W_dkv = self.w_dkv.weight.T  # (C, R_kv)
        Wk = W_dkv @ per_head(self.w_uk, H)  # (H, C, D)
        if dr:
            Wq = torch.cat((Wq, Wqr), -1)
            Wk = torch.cat((Wk, self.w_kr.weight.T.expand(H, C, dr)), -1)
        return {"W_q": Wq, "W_k": Wk, "W_v": W_dkv @ per_head(self.w_uv, H),
                "W_o": per_head_out(self.w_o, H)}
