"""TPA decoding from cached factors (FlashTPA, arXiv 2501.06425 sec. 5, Algorithm 3).

For one new token, logits[h, s] = (1/R_k) sum_u a_k[s,u,h] <q_h, b_k[s,u]> with
q_h = (1/R_q) sum_r a_q[r,h] b_q[r], computed in the factored order
(b_k[s,u] . b_q^T) a_q so that no per-head key is ever formed, and the output
(1/R_v) sum_{s,w} p[h,s] a_v[s,w,h] b_v[s,w] likewise. Any ranks; constant head
factors (R, H) are read with zero batch/sequence strides. Split over the cache,
merged by log-sum-exp, as latent_decode.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._extras import require
from .latent_decode import _block, _merge, _plan_splits

triton = require("triton", "triton", "tucker_lab.kernels")
tl = require("triton.language", "triton", "tucker_lab.kernels")


@triton.jit
def _tpa_split(bq_ptr, aq_ptr, ak_ptr, bk_ptr, av_ptr, bv_ptr, o_ptr, lse_ptr, S, H, D, RQ, scale, split_len,
               sbq_b, sbq_r, saq_b, saq_r, sak_b, sak_s, sak_r, sbk_b, sbk_s, sbk_r,
               sav_b, sav_s, sav_r, sbv_b, sbv_s, sbv_r, so_b, so_p, so_h, sl_b, sl_p,
               RK: tl.constexpr, RV: tl.constexpr, KV_ONLY: tl.constexpr, BLOCK_H: tl.constexpr,
               BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_R: tl.constexpr):
    b, part, hb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    h = hb * BLOCK_H + tl.arange(0, BLOCK_H)
    d = tl.arange(0, BLOCK_D)
    r = tl.arange(0, BLOCK_R)
    hm = h < H
    if KV_ONLY:  # the query heads themselves, (BLOCK_H, BLOCK_D)
        bq = tl.load(bq_ptr + b * sbq_b + h[:, None] * sbq_r + d[None, :],
                     mask=hm[:, None] & (d[None, :] < D), other=0.0).to(tl.float32)
        aq = bq  # unused
    else:  # query factors: b_q (BLOCK_R, BLOCK_D), a_q / R_q (BLOCK_R, BLOCK_H)
        bq = tl.load(bq_ptr + b * sbq_b + r[:, None] * sbq_r + d[None, :],
                     mask=(r[:, None] < RQ) & (d[None, :] < D), other=0.0).to(tl.float32)
        aq = tl.load(aq_ptr + b * saq_b + r[:, None] * saq_r + h[None, :],
                     mask=(r[:, None] < RQ) & hm[None, :], other=0.0).to(tl.float32)
    m = tl.full((BLOCK_H,), float("-inf"), tl.float32)
    l = tl.zeros((BLOCK_H,), tl.float32)
    acc = tl.zeros((BLOCK_H, BLOCK_D), tl.float32)
    start = part * split_len
    stop = tl.minimum(start + split_len, S)
    for s0 in range(start, stop, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        valid = s < stop
        logits = tl.zeros((BLOCK_S, BLOCK_H), tl.float32)
        for u in tl.static_range(RK):
            bk = tl.load(bk_ptr + b * sbk_b + s[:, None] * sbk_s + u * sbk_r + d[None, :],
                         mask=valid[:, None] & (d[None, :] < D), other=0.0).to(tl.float32)
            if KV_ONLY:
                qk = tl.dot(bk, tl.trans(bq))  # (BLOCK_S, BLOCK_H)
            else:
                qk = tl.dot(tl.dot(bk, tl.trans(bq)), aq)  # (S, R_q) then heads: (BLOCK_S, BLOCK_H)
            ak = tl.load(ak_ptr + b * sak_b + s[:, None] * sak_s + u * sak_r + h[None, :],
                         mask=valid[:, None] & hm[None, :], other=0.0).to(tl.float32)
            logits += qk * ak
        logits = tl.where(valid[:, None], logits * scale, float("-inf"))
        m_new = tl.maximum(m, tl.max(logits, 0))
        alpha = tl.exp(m - m_new)
        p = tl.exp(logits - m_new[None, :])  # (BLOCK_S, BLOCK_H)
        l = l * alpha + tl.sum(p, 0)
        acc = acc * alpha[:, None]
        for w in tl.static_range(RV):
            av = tl.load(av_ptr + b * sav_b + s[:, None] * sav_s + w * sav_r + h[None, :],
                         mask=valid[:, None] & hm[None, :], other=0.0).to(tl.float32)
            bv = tl.load(bv_ptr + b * sbv_b + s[:, None] * sbv_s + w * sbv_r + d[None, :],
                         mask=valid[:, None] & (d[None, :] < D), other=0.0).to(tl.float32)
            acc += tl.dot(tl.trans(p * av), bv)  # (BLOCK_H, BLOCK_D)
        m = m_new
    tl.store(o_ptr + b * so_b + part * so_p + h[:, None] * so_h + d[None, :], acc / l[:, None],
             mask=hm[:, None] & (d[None, :] < D))
    tl.store(lse_ptr + b * sl_b + part * sl_p + h, m + tl.log(l), mask=hm)


def _strides(a: Tensor) -> tuple[int, int, int]:
    """(batch, seq, rank) strides of a head factor; 0 for a constant (R, H) one."""
    return (0, 0, a.stride(0)) if a.ndim == 2 else (a.stride(0), a.stride(1), a.stride(2))


def tpa_decode(q, a_k: Tensor, b_k: Tensor, a_v: Tensor, b_v: Tensor, *, scale: float,
               splits: int | None = None, block_s: int = 32) -> Tensor:
    """One TPA decode step from cached factors.

    Args:
        q: per-head queries (B, H, D) (TPA-KVonly), or (a_q, b_q) with a_q (B, R_q, H)
            or (R_q, H) and b_q (B, R_q, D), for the new token.
        a_k, a_v: cached head factors (B, S, R, H), or constants (R, H).
        b_k, b_v: cached feature factors (B, S, R, D); b_k rotated.
        scale: softmax scale.
    Returns:
        (B, H, D).
    """
    B, S, RK, D = b_k.shape
    RV = b_v.shape[2]
    H = a_k.shape[-1]
    for t in (b_k, b_v, a_k, a_v):
        if t.stride(-1) != 1:
            raise ValueError("tpa_decode: factors need a unit last stride")
    kv_only = not isinstance(q, tuple)
    if kv_only:
        bq, aq, RQ = q, q, H
        sbq, saq = (q.stride(0), q.stride(1)), (0, 0)
    else:
        aq, bq = q
        RQ = bq.shape[1]
        aq = (aq / RQ).contiguous()  # fold the 1/R_q of eq. 3.1 in once
        sbq = (bq.stride(0), bq.stride(1))
        saq = (0, aq.stride(0)) if aq.ndim == 2 else (aq.stride(0), aq.stride(1))
    splits, split_len = _plan_splits(S, B, block_s, splits, b_k.device)
    BLOCK_H = min(_block(H), 64)
    o = torch.empty(B, splits, H, D, device=b_k.device, dtype=torch.float32)
    lse = torch.empty(B, splits, H, device=b_k.device, dtype=torch.float32)
    grid = (B, splits, triton.cdiv(H, BLOCK_H))
    _tpa_split[grid](bq, aq, a_k, b_k, a_v, b_v, o, lse, S, H, D, RQ, scale / RK, split_len,
                     *sbq, *saq, *_strides(a_k), b_k.stride(0), b_k.stride(1), b_k.stride(2),
                     *_strides(a_v), b_v.stride(0), b_v.stride(1), b_v.stride(2),
                     o.stride(0), o.stride(1), o.stride(2), lse.stride(0), lse.stride(1),
                     RK=RK, RV=RV, KV_ONLY=kv_only, BLOCK_H=BLOCK_H, BLOCK_S=block_s,
                     BLOCK_D=_block(D), BLOCK_R=_block(RQ))
    return (_merge(o, lse) / RV).to(b_k.dtype)
