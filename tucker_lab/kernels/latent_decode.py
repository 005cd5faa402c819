"""Split-KV decode for multi-query attention over a latent cache.

q (B, H, E) attends k (B, S, E) and v (B, S, F): one key/value stream shared by
all H heads, as in Tucker attention (E = r_k, F = r_v) and absorbed MLA
(E = R_kv + D_rope, F = R_kv). Grid (B, splits, head blocks): each program walks
its slice of the cache in BLOCK_S steps with an online softmax, keeping a block
of heads' accumulators, so each K/V byte feeds BLOCK_H heads. Partials are merged
by log-sum-exp (Flash-Decoding).
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .._extras import require

triton = require("triton", "triton", "tucker_lab.kernels")
tl = require("triton.language", "triton", "tucker_lab.kernels")


@triton.jit
def _latent_mqa_split(q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, S, H, E, F, scale, split_len,
                      sq_b, sq_h, sk_b, sk_s, sv_b, sv_s, so_b, so_p, so_h, sl_b, sl_p,
                      BLOCK_H: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_E: tl.constexpr,
                      BLOCK_F: tl.constexpr):
    b, part, hb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    h = hb * BLOCK_H + tl.arange(0, BLOCK_H)
    e = tl.arange(0, BLOCK_E)
    f = tl.arange(0, BLOCK_F)
    q = tl.load(q_ptr + b * sq_b + h[:, None] * sq_h + e[None, :],
                mask=(h[:, None] < H) & (e[None, :] < E), other=0.0)  # (BLOCK_H, BLOCK_E), input dtype
    m = tl.full((BLOCK_H,), float("-inf"), tl.float32)  # running max of the logits
    l = tl.zeros((BLOCK_H,), tl.float32)  # running sum of exp
    acc = tl.zeros((BLOCK_H, BLOCK_F), tl.float32)
    start = part * split_len
    for s0 in range(start, tl.minimum(start + split_len, S), BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        valid = s < tl.minimum(start + split_len, S)
        k = tl.load(k_ptr + b * sk_b + s[:, None] * sk_s + e[None, :],
                    mask=valid[:, None] & (e[None, :] < E), other=0.0)  # (BLOCK_S, BLOCK_E)
        v = tl.load(v_ptr + b * sv_b + s[:, None] * sv_s + f[None, :],
                    mask=valid[:, None] & (f[None, :] < F), other=0.0)  # (BLOCK_S, BLOCK_F)
        # tensor-core dot in the input dtype, fp32 accumulation; fp32 inputs stay exact ("ieee")
        logits = tl.dot(q, tl.trans(k), input_precision="ieee" if q.dtype == tl.float32 else None) * scale
        logits = tl.where(valid[None, :], logits, float("-inf"))
        m_new = tl.maximum(m, tl.max(logits, 1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(logits - m_new[:, None])
        l = l * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee" if v.dtype == tl.float32 else None)
        m = m_new
    out = acc / l[:, None]
    hm = h < H
    tl.store(o_ptr + b * so_b + part * so_p + h[:, None] * so_h + f[None, :], out,
             mask=hm[:, None] & (f[None, :] < F))
    tl.store(lse_ptr + b * sl_b + part * sl_p + h, m + tl.log(l), mask=hm)


def _block(n: int) -> int:
    return max(16, triton.next_power_of_2(n))  # tl.dot needs every dim >= 16


@functools.lru_cache(maxsize=None)
def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4


def _plan_splits(S: int, B: int, block_s: int, splits: int | None, device: torch.device) -> tuple[int, int]:
    """(splits, split_len): the cache cut into whole BLOCK_S blocks per program, by
    default enough programs (about 2 per SM over the batch) to fill the GPU."""
    if splits is None:
        splits = max(1, min(math.ceil(S / block_s), -(-2 * _sm_count(device) // B)))
    split_len = -(-math.ceil(S / splits) // block_s) * block_s
    return math.ceil(S / split_len), split_len


def _merge(o: Tensor, lse: Tensor) -> Tensor:
    """Combine split partials o (B, splits, H, F) by their log-sum-exps lse (B, splits, H):
    o = sum_p softmax_p(lse) o_p (Flash-Decoding). Returns (B, H, F)."""
    return torch.einsum("bph,bphf->bhf", torch.softmax(lse, dim=1), o)


def latent_mqa_decode(q: Tensor, k: Tensor, v: Tensor, *, scale: float, splits: int | None = None,
                      block_s: int | None = None) -> Tensor:
    """One decode step of multi-query attention over a latent cache.

    Args:
        q: (B, H, E) the new token's per-head queries in the latent.
        k: (B, S, E) cached latent keys (may be a view of a FactorCache buffer).
        v: (B, S, F) cached latent values.
        scale: softmax scale.
        splits: programs per sequence along the cache (default: enough to fill the GPU).
    Returns:
        (B, H, F) in q's dtype.
    """
    B, H, E = q.shape
    S, F = k.shape[1], v.shape[2]
    if k.shape != (B, S, E) or v.shape[:2] != (B, S) or k.stride(-1) != 1 or v.stride(-1) != 1 or q.stride(-1) != 1:
        raise ValueError(f"latent_mqa_decode: expected q (B,H,E), k (B,S,E), v (B,S,F) with unit last stride; "
                         f"got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    BLOCK_E, BLOCK_F = _block(E), _block(F)
    # keep the q, k and v tiles within shared memory: wide latents (MLA's 576/512) get
    # fewer heads and keys per tile
    wide = max(BLOCK_E, BLOCK_F)
    BLOCK_H = min(_block(H), 64 if wide <= 128 else 32 if wide <= 256 else 16)
    block_s = block_s or (64 if wide <= 256 else 32 if wide <= 512 else 16)
    splits, split_len = _plan_splits(S, B, block_s, splits, q.device)
    o = torch.empty(B, splits, H, F, device=q.device, dtype=torch.float32)
    lse = torch.empty(B, splits, H, device=q.device, dtype=torch.float32)
    grid = (B, splits, triton.cdiv(H, BLOCK_H))
    _latent_mqa_split[grid](q, k, v, o, lse, S, H, E, F, scale, split_len,
                            q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
                            o.stride(0), o.stride(1), o.stride(2), lse.stride(0), lse.stride(1),
                            BLOCK_H=BLOCK_H, BLOCK_S=block_s, BLOCK_E=BLOCK_E, BLOCK_F=BLOCK_F)
    return _merge(o, lse).to(q.dtype)
