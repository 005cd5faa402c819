"""The executable specification: every variant as plain einsums, weights explicit.

These functions are written from the papers' equations, independently of the
modules: per-head weights in math layout (W_q (H, C, D) and so on), RoPE via
complex numbers, attention as an explicit softmax. They are the float64
oracle the tests trust and the code the book quotes. ``forward(layer, x)``
reads a module's parameters into this layout and runs its spec.

Sources: MHA/GQA/MQA (Vaswani 2017; Ainslie 2023; Shazeer 2019), MLA
(DeepSeek-V2, arXiv 2405.04434, eqs. 1-19), TPA (arXiv 2501.06425, eqs.
3.1-3.3), Tucker (arXiv 2603.30033, Definitions 2.1 and 3.1; eqs. 2-6 for the
tensor form).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["rope", "softmax_attention", "mha", "gqa", "mqa", "mla", "tpa", "tucker",
           "tensor_attention", "forward", "tolerance"]


def rope(x: Tensor, pos: Tensor, base: float = 10000.0) -> Tensor:
    """RoPE over the last dim of x (..., T, n), half-split pairs, as complex rotation:
    (x_j + i x_{j+n/2}) * exp(i p base^(-2j/n))."""
    n = x.shape[-1]
    z = torch.complex(x[..., : n // 2].double(), x[..., n // 2:].double())
    theta = base ** (-torch.arange(0, n, 2, dtype=torch.float64, device=x.device) / n)
    z = z * torch.polar(torch.ones_like(theta), pos.to(x.device).double()[:, None] * theta)
    return torch.cat((z.real, z.imag), -1).to(x.dtype)


def rope_segments(x: Tensor, pos: Tensor, base: float, layout: str, rope_dim: int | None) -> Tensor:
    """Latent RoPE layouts over the last dim: "latent" (all), "block", "tail"."""
    n = x.shape[-1]
    if layout == "latent":
        return rope(x, pos, base)
    if layout == "block":
        return torch.cat([rope(b, pos, base) for b in x.split(rope_dim, -1)], -1)
    return torch.cat((x[..., : n - rope_dim], rope(x[..., n - rope_dim:], pos, base)), -1)


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, scale: float, causal: bool) -> Tensor:
    """One head per leading index: q (B, H, T, E), k (B, H, T, E), v (B, H, T, F) -> (B, H, T, F)."""
    logits = torch.einsum("bhte,bhse->bhts", q, k) * scale
    if causal:
        T = q.shape[-2]
        logits = logits.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.einsum("bhts,bhsf->bhtf", torch.softmax(logits, -1), v)


def _positions(x: Tensor) -> Tensor:
    return torch.arange(x.shape[1], device=x.device)


def mha(x, W_q, W_k, W_v, W_o, *, scale=None, causal=True, rope_base=None):
    """MHA. x (B, T, C); W_q, W_k, W_v (H, C, D); W_o (H, D, C). RoPE on q, k if rope_base."""
    q = torch.einsum("btc,hcd->bhtd", x, W_q)
    k = torch.einsum("btc,hcd->bhtd", x, W_k)
    v = torch.einsum("btc,hcd->bhtd", x, W_v)
    if rope_base is not None:
        q, k = rope(q, _positions(x), rope_base), rope(k, _positions(x), rope_base)
    scale = 1 / math.sqrt(W_q.shape[-1]) if scale is None else scale
    y = softmax_attention(q, k, v, scale, causal)
    return torch.einsum("bhtd,hdc->btc", y, W_o)


def gqa(x, W_q, W_k, W_v, W_o, **kw):
    """GQA. W_k, W_v (G, C, D): query head i uses KV head i // (H/G)."""
    H, G = W_q.shape[0], W_k.shape[0]
    group = [i * G // H for i in range(H)]
    return mha(x, W_q, W_k[group], W_v[group], W_o, **kw)


def mqa(x, W_q, w_k, w_v, W_o, **kw):
    """MQA. w_k, w_v (C, D): one key and value head for all H query heads."""
    H = W_q.shape[0]
    return mha(x, W_q, w_k.expand(H, *w_k.shape), w_v.expand(H, *w_v.shape), W_o, **kw)


def _rms(c, g):
    return c if g is None else c * torch.rsqrt(c.pow(2).mean(-1, keepdim=True) + 1e-6) * g


def mla(x, *, W_dkv, W_uk, W_uv, W_o, W_q=None, W_dq=None, W_uq=None, W_qr=None, W_kr=None,
        q_norm=None, kv_norm=None, coupled_rope=False, scale=None, causal=True, rope_base=None):
    """MLA (DeepSeek-V2 eqs. 9-19). x (B, T, C); W_dkv (C, R); W_uk (H, R, D);
    W_uv (H, R, D_v); W_o (H, D_v, C); queries from W_q (H, C, D) or W_dq (C, R_q)
    and W_uq (H, R_q, D); decoupled RoPE W_qr (H, C or R_q, D_rope), W_kr (C, D_rope);
    optional RMSNorm gains q_norm, kv_norm. ``coupled_rope``: the Tucker paper's
    Corollary 3.2.1, logits RoPE_m(c_q W_uq_i W_uk_i^T) . RoPE_n(c_kv)."""
    pos = _positions(x)
    c_q = x if W_dq is None else _rms(x @ W_dq, q_norm)
    q_c = torch.einsum("btr,hrd->bhtd", c_q, W_q if W_dq is None else W_uq)  # (B, H, T, D)
    c_kv = _rms(x @ W_dkv, kv_norm)  # (B, T, R)
    v = torch.einsum("btr,hrf->bhtf", c_kv, W_uv)
    if coupled_rope:
        q = rope(torch.einsum("bhtd,hrd->bhtr", q_c, W_uk), pos, rope_base)
        k = rope(c_kv, pos, rope_base)[:, None].expand(-1, q.shape[1], -1, -1)
    else:
        q, k = q_c, torch.einsum("btr,hrd->bhtd", c_kv, W_uk)
        if W_kr is not None:  # q_i = [q_i^C; q_i^R], k_i = [k_i^C; k^R]
            q_r = rope(torch.einsum("btr,hrd->bhtd", c_q, W_qr), pos, rope_base)
            k_r = rope(x @ W_kr, pos, rope_base)[:, None].expand(-1, q.shape[1], -1, -1)
            q, k = torch.cat((q, q_r), -1), torch.cat((k, k_r), -1)
    scale = 1 / math.sqrt(q.shape[-1] if not coupled_rope else q_c.shape[-1]) if scale is None else scale
    y = softmax_attention(q, k, v, scale, causal)
    return torch.einsum("bhtf,hfc->btc", y, W_o)


def tpa(x, *, W_b, W_o, W_a=None, A=None, W_q=None, scale=None, causal=True, rope_base=None):
    """TPA (eq. 3.1): Q_t = (1/R_q) sum_r a_r(x_t) (x) b_r(x_t), same for K, V.

    W_b: {"q","k","v"} -> (R, C, D) feature-factor weights; head factors either
    contextual, W_a: name -> (R, C, H), or constant, A: name -> (R, H).
    W_q (H, C, D) replaces the query factors (TPA-KVonly). W_o (H, D, C)."""
    pos = _positions(x)
    heads = {}
    for n, Wb in W_b.items():
        R = Wb.shape[0]
        b = torch.einsum("btc,rcd->rbtd", x, Wb)  # b_r(x_t)
        if rope_base is not None and n != "v":  # Theorem 3.1: rotate B_q, B_k
            b = rope(b, pos, rope_base)
        a = (torch.einsum("btc,rch->rbth", x, W_a[n]) if W_a is not None
             else A[n][:, None, None, :].expand(R, *x.shape[:2], -1))
        heads[n] = sum(torch.einsum("bth,btd->bhtd", a[r], b[r]) for r in range(R)) / R
    if W_q is not None:
        heads["q"] = torch.einsum("btc,hcd->bhtd", x, W_q)
        if rope_base is not None:
            heads["q"] = rope(heads["q"], pos, rope_base)
    scale = 1 / math.sqrt(heads["q"].shape[-1]) if scale is None else scale
    y = softmax_attention(heads["q"], heads["k"], heads["v"], scale, causal)
    return torch.einsum("bhtd,hdc->btc", y, W_o)


def tucker(x, *, core_qk, U_head_qk, U_q, U_k, core_vo, U_head_vo, U_o, U_v, scale, causal=True,
           rope_base=None, rope_layout="latent", rope_dim=None):
    """Tucker attention (Definition 2.1, latent RoPE Definition 3.1): logits of head i
    between m and n are (x_m U_q T_i) R(m - n) (x_n U_k)^T with T_i = core x1 U_head[i];
    output sum_i (A_i x U_v) T~_i^T U_o^T."""
    pos = _positions(x)
    T_qk = torch.einsum("hs,sqk->hqk", U_head_qk, core_qk)
    T_vo = torch.einsum("hs,sov->hov", U_head_vo, core_vo)
    H = T_qk.shape[0]
    q = torch.einsum("btc,cq,hqk->bhtk", x, U_q, T_qk)
    k = (x @ U_k)[:, None].expand(-1, H, -1, -1)
    v = (x @ U_v)[:, None].expand(-1, H, -1, -1)
    if rope_base is not None:
        q = rope_segments(q, pos, rope_base, rope_layout, rope_dim)
        k = rope_segments(k, pos, rope_base, rope_layout, rope_dim)
    y = softmax_attention(q, k, v, scale, causal)
    return torch.einsum("bhtv,hov,co->btc", y, T_vo, U_o)


def tensor_attention(x, W_qk, W_vo, *, scale, causal=True):
    """Attention as two tensors (Tucker paper eqs. 2-6), no RoPE: x (B, T, C),
    out = sum_i softmax(scale * x W_qk[i] x^T) x W_vo[i]^T, W_qk and W_vo (H, C, C)."""
    logits = torch.einsum("btc,hcd,bsd->bhts", x, W_qk, x) * scale  # W x2 X x3 X
    if causal:
        T = x.shape[1]
        logits = logits.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
    return torch.einsum("bhts,bsd,hcd->btc", torch.softmax(logits, -1), x, W_vo)


# ---- reading a module's parameters into the spec's layout -------------------------

# The spec reads weights with its own two layout functions, not the modules'
# (attention.base.per_head, per_head_out), so that a mistake there cannot hide here.
def _heads(w: Tensor, n: int, d: int) -> Tensor:
    """nn.Linear weight (n*d, d_in) -> per-head math layout (n, d_in, d)."""
    return w.view(n, d, -1).transpose(1, 2)


def _heads_out(w: Tensor, n: int, d: int) -> Tensor:
    """Output nn.Linear weight (d_out, n*d) -> per-head math layout (n, d, d_out)."""
    return w.view(-1, n, d).permute(1, 2, 0)


def forward(layer, x: Tensor) -> Tensor:
    """Run the specification of ``layer`` (any tucker_lab attention module) on x
    (B, T, C), positions from 0."""
    from .attention import GQAAttention, MLAttention, TPAttention, TuckerAttention

    cfg = layer.cfg
    kw = {"scale": cfg.softmax_scale, "causal": cfg.causal,
          "rope_base": cfg.rope_base if cfg.rope else None}
    H, D = cfg.H, cfg.D
    if isinstance(layer, GQAAttention):
        G = cfg.G
        W_q, W_k, W_v = (_heads(layer.w_q.weight, H, D), _heads(layer.w_k.weight, G, D),
                         _heads(layer.w_v.weight, G, D))
        W_o = _heads_out(layer.w_o.weight, H, D)
        if G == H:
            return mha(x, W_q, W_k, W_v, W_o, **kw)
        if G == 1:
            return mqa(x, W_q, W_k[0], W_v[0], W_o, **kw)
        return gqa(x, W_q, W_k, W_v, W_o, **kw)
    if isinstance(layer, MLAttention):
        dr, Dv = cfg.D_rope, cfg.D_v
        w = {"W_dkv": layer.w_dkv.weight.T, "W_uk": _heads(layer.w_uk.weight, H, D),
             "W_uv": _heads(layer.w_uv.weight, H, Dv),
             "W_o": _heads_out(layer.w_o.weight, H, Dv)}
        if cfg.q_rank is None:
            w["W_q"] = _heads(layer.w_q.weight, H, D)
        else:
            w["W_dq"], w["W_uq"] = layer.w_dq.weight.T, _heads(layer.w_uq.weight, H, D)
        if dr:
            w["W_qr"], w["W_kr"] = _heads(layer.w_qr.weight, H, dr), layer.w_kr.weight.T
        if cfg.latent_norm:
            w["kv_norm"] = layer.kv_norm.weight
            w["q_norm"] = layer.q_norm.weight if cfg.q_rank is not None else None
        return mla(x, coupled_rope=cfg.coupled_rope, **w, **kw)
    if isinstance(layer, TPAttention):
        W_b = {"k": _heads(layer.w_bk.weight, cfg.k_rank, D), "v": _heads(layer.w_bv.weight, cfg.v_rank, D)}
        W_q = None
        if cfg.kv_only:
            W_q = _heads(layer.w_q.weight, H, D)
        else:
            W_b["q"] = _heads(layer.w_bq.weight, cfg.q_rank, D)
        if cfg.contextual_a:
            W_a = {"k": _heads(layer.w_ak.weight, cfg.k_rank, H), "v": _heads(layer.w_av.weight, cfg.v_rank, H)}
            if not cfg.kv_only:
                W_a["q"] = _heads(layer.w_aq.weight, cfg.q_rank, H)
            heads = {"W_a": W_a}
        else:
            heads = {"A": {"k": layer.a_k, "v": layer.a_v} | ({} if cfg.kv_only else {"q": layer.a_q})}
        return tpa(x, W_b=W_b, W_o=_heads_out(layer.w_o.weight, H, D), W_q=W_q, **heads, **kw)
    if isinstance(layer, TuckerAttention):
        U_v = layer.U_k if layer.U_v is None else layer.U_v
        return tucker(x, core_qk=layer.core_qk, U_head_qk=layer.U_head_qk, U_q=layer.U_q,
                      U_k=layer.U_k, core_vo=layer.core_vo, U_head_vo=layer.U_head_vo,
                      U_o=layer.U_o, U_v=U_v, rope_layout=cfg.rope_layout,
                      rope_dim=cfg.rope_dim, **kw)
    raise TypeError(f"reference.forward: no specification for {type(layer).__name__}")


def tolerance(exact: Tensor, ref_low: Tensor) -> float:
    """How far from the float64 truth a result computed in a low precision may be:
    twice the error of a plain reference computed in that precision (flash-attn's test
    rule), plus the rounding of the truth to it (what any result in that dtype loses,
    so the bound is not zero where the reference happens to be exact).

    Args:
        exact: the float64 truth.
        ref_low: the reference run in the low dtype (inputs and weights rounded to it,
            every op in it); its dtype is the precision judged.
    Every check of a kernel, a backend or mixed precision uses this one rule: the
    Triton, SDPA and flash-attn tests, the autocast tests and gpu/check.py."""
    exact = exact.double()
    rounding = (exact.to(ref_low.dtype).double() - exact).abs().max().item()
    return 2 * (ref_low.double() - exact).abs().max().item() + rounding

