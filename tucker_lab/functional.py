"""The one attention kernel every variant calls, with backend dispatch.

Every variant reduces to grouped-query attention on some (q, k, v): MHA and
GQA directly, MLA and Tucker as multi-query attention over a latent (G = 1),
TPA on its materialized heads. ``attend(impl="auto")`` runs it with flash-attn
where it can (CUDA, sm80+, fp16/bf16, equal q/v head dims <= 256), else with
PyTorch SDPA (which itself picks among its flash, memory-efficient, cuDNN and
math backends). ``impl="einsum"`` is the plain-PyTorch reference, used when asked
for; ``impl="triton"`` sends one-token multi-query steps to the latent decode kernel.

See: book/10_flash.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["attend", "causal_mask", "flash_available", "softmax", "IMPLS"]

IMPLS = ("auto", "flash", "sdpa", "einsum", "triton")


@lru_cache(maxsize=None)
def _flash_func():
    try:  # a CPU-only install of flash-attn imports its package but not its kernel
        from flash_attn import flash_attn_func
    except ImportError:
        return None
    return flash_attn_func


def flash_available(q: Tensor, v: Tensor) -> bool:
    """True when flash-attn can run these shapes on this device."""
    return (q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)
            and q.shape[-1] == v.shape[-1] <= 256
            and torch.cuda.get_device_capability(q.device) >= (8, 0)
            and _flash_func() is not None)


def softmax(logits: Tensor) -> Tensor:
    """Softmax over the last dim, computed in float32 for half-precision logits."""
    half = logits.dtype in (torch.float16, torch.bfloat16)
    return torch.softmax(logits.float() if half else logits, -1)


def causal_mask(T: int, S: int, device=None) -> Tensor:
    """(T, S) bool, True where query t may see key s. The T queries are the
    last T of the S positions (bottom-right aligned, as in decoding)."""
    t = torch.arange(T, device=device)[:, None]
    s = torch.arange(S, device=device)[None, :]
    return s <= t + (S - T)


def _einsum(q, k, v, scale, causal):
    B, T, H, E = q.shape
    S, G = k.shape[1], k.shape[2]
    qg = q.view(B, T, G, H // G, E)  # head h = g * (H/G) + r uses KV head g
    logits = torch.einsum("btgre,bsge->bgrts", qg, k) * scale  # (B, G, H/G, T, S)
    if causal:
        logits = logits.masked_fill(~causal_mask(T, S, q.device), float("-inf"))
    y = torch.einsum("bgrts,bsgf->btgrf", softmax(logits).to(v.dtype), v)  # (B, T, G, H/G, F)
    return y.reshape(B, T, H, v.shape[-1])


def _sdpa(q, k, v, scale, causal):
    T, S = q.shape[1], k.shape[1]
    mask, is_causal = None, False
    if causal and T == S:
        is_causal = True
    elif causal and T > 1:
        mask = causal_mask(T, S, q.device)
    y = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
        is_causal=is_causal, scale=scale, enable_gqa=k.shape[2] != q.shape[2])
    return y.transpose(1, 2)  # (B, T, H, F)


def _folded(q, k, v, scale, mask, impl):
    """Attention of folded queries (B, L, G, E) against (B, S, G, E/F), G heads each,
    under an optional (L, S) mask (or (1, S), the same for every query)."""
    if mask is None:
        return attend(q, k, v, scale=scale, causal=False, impl=impl)
    if impl == "einsum":
        logits = torch.einsum("blge,bsge->bgls", q, k) * scale
        p = softmax(logits.masked_fill(~mask, float("-inf"))).to(v.dtype)
        return torch.einsum("bgls,bsgf->blgf", p, v)
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                       attn_mask=mask, scale=scale)
    return y.transpose(1, 2)


def attend(q: Tensor, k: Tensor, v: Tensor, *, scale: float, causal: bool,
           impl: str = "auto", key_mask: Tensor | None = None) -> Tensor:
    """Softmax attention with grouped KV heads, sequence-major.

    Args:
        q: (B, T, H, E) queries.
        k: (B, S, G, E) keys; G divides H, query head h reads KV head h // (H/G).
        v: (B, S, G, F) values.
        scale: softmax scale.
        causal: mask keys after each query (queries are the last T positions).
        impl: "auto" (flash -> SDPA), "flash", "sdpa", "einsum", or "triton" (the
            latent decode kernel for one-token multi-query steps, SDPA otherwise).
        key_mask: optional (S,) bool, True for the keys every query may see (static-shape
            decoding over a preallocated buffer: the slots filled so far). Not with causal;
            runs on SDPA (einsum when asked for), since flash-attn takes no mask.
    Returns:
        (B, T, H, F).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"attend: {name} must be a torch.Tensor; got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(f"attend: expected q (B,T,H,E), k (B,S,G,E), v (B,S,G,F); {name} has shape {tuple(t.shape)}")
        if t.device != q.device:
            raise ValueError(f"attend: q is on {q.device} but {name} is on {t.device}; put them on one device")
        if not t.is_floating_point():
            raise ValueError(f"attend: {name} must be floating point; got {t.dtype}")
        if t.dtype != q.dtype and not torch.is_autocast_enabled(q.device.type):
            raise ValueError(f"attend: q is {q.dtype} but {name} is {t.dtype}; use one dtype (or torch.autocast)")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"attend: scale must be a positive number; got {scale!r}")
    if not isinstance(causal, bool):
        raise TypeError(f"attend: causal must be a bool; got {causal!r}")
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"attend: impl must be one of {IMPLS}; got {impl!r}")
    B, T, H, E = q.shape
    if min(q.shape) == 0 or k.shape[1] == 0:
        raise ValueError(f"attend: empty inputs, q {tuple(q.shape)}, k {tuple(k.shape)}: need T, S >= 1")
    if k.ndim != 4 or v.ndim != 4 or k.shape[:3] != v.shape[:3] or k.shape[0] != B or k.shape[-1] != E:
        raise ValueError(f"attend: expected q (B,T,H,E), k (B,S,G,E), v (B,S,G,F); "
                         f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if H % k.shape[2]:
        raise ValueError(f"attend: KV heads G={k.shape[2]} must divide query heads H={H}")
    if causal and T > k.shape[1]:
        raise ValueError(f"attend: causal attention needs T <= S; got T={T}, S={k.shape[1]}")
    if key_mask is not None:  # fold grouped heads as below; the mask broadcasts over queries
        if causal:
            raise ValueError("attend: key_mask replaces the causal mask; pass causal=False")
        R = H // k.shape[2]
        qf = q.view(B, T, k.shape[2], R, E).transpose(2, 3).reshape(B, T * R, k.shape[2], E)
        y = _folded(qf, k, v, scale, key_mask[None], "einsum" if impl == "einsum" else "sdpa")
        return y.view(B, T, R, k.shape[2], -1).transpose(2, 3).reshape(B, T, H, v.shape[-1])
    if impl == "triton":
        if k.shape[2] == 1 and T == 1:  # a decode step over one latent K/V stream
            from .kernels import latent_mqa_decode
            return latent_mqa_decode(q[:, 0], k[:, :, 0], v[:, :, 0], scale=scale)[:, None]
        impl = "sdpa"
    G, S = k.shape[2], k.shape[1]
    if G < H and (T == 1 or not causal or (T < S and impl != "flash" and not flash_available(q, v))):
        # Grouped heads without the square causal mask (a decode step, a chunk after a
        # cache, or bidirectional): fold each group's H/G query heads into the query
        # axis, so every backend sees G ordinary heads and none copies K/V per query
        # head. A chunk keeps its mask, repeated for the folded rows. (B, T*H/G, G, E)
        R = H // G
        qf = q.view(B, T, G, R, E).transpose(2, 3).reshape(B, T * R, G, E)
        mask = causal_mask(T, S, q.device).repeat_interleave(R, 0) if causal and T > 1 else None
        y = _folded(qf, k, v, scale, mask, impl)  # (B, T*R, G, F)
        return y.view(B, T, R, G, -1).transpose(2, 3).reshape(B, T, H, v.shape[-1])
    if impl == "auto":
        impl = "flash" if flash_available(q, v) else "sdpa"
    if impl == "flash":
        if not flash_available(q, v):
            raise RuntimeError("attend(impl='flash'): flash-attn needs CUDA sm80+, fp16/bf16 and "
                               "equal q/v head dims <= 256, with flash_attn importable")
        return _flash_func()(q, k, v, softmax_scale=scale, causal=causal)
    if impl == "sdpa":
        return _sdpa(q, k, v, scale, causal)
    if impl == "einsum":
        return _einsum(q, k, v, scale, causal)
    raise ValueError(f"impl must be one of {IMPLS}; got {impl!r}")
