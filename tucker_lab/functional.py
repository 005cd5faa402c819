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

__all__ = ["attend", "backend", "fold_groups", "causal_mask", "flash_available", "softmax", "IMPLS"]

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


def _einsum(q, k, v, scale, causal, mask=None):
    """The plain-PyTorch reference; ``mask`` (bool (T, S) or (1, S)) replaces ``causal``."""
    B, T, H, E = q.shape
    S, G = k.shape[1], k.shape[2]
    qg = q.view(B, T, G, H // G, E)  # head h = g * (H/G) + r uses KV head g
    logits = torch.einsum("btgre,bsge->bgrts", qg, k) * scale  # (B, G, H/G, T, S)
    if causal and mask is None:
        mask = causal_mask(T, S, q.device)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    y = torch.einsum("bgrts,bsgf->btgrf", softmax(logits).to(v.dtype), v)  # (B, T, G, H/G, F)
    return y.reshape(B, T, H, v.shape[-1])


def _sdpa(q, k, v, scale, causal, mask=None):
    """PyTorch SDPA; ``mask`` (bool (T, S) or (1, S)) replaces ``causal``."""
    T, S = q.shape[1], k.shape[1]
    is_causal = False
    if mask is None and causal and T == S:
        is_causal = True
    elif mask is None and causal and T > 1:
        mask = causal_mask(T, S, q.device)  # SDPA's causal flag is top-left aligned
    y = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
        is_causal=is_causal, scale=scale, enable_gqa=k.shape[2] != q.shape[2])
    return y.transpose(1, 2)  # (B, T, H, F)


def _flash(q, k, v, scale, causal):
    if not flash_available(q, v):
        raise RuntimeError("attend(impl='flash'): flash-attn needs CUDA sm80+, fp16/bf16 and "
                           "equal q/v head dims <= 256, with flash_attn importable")
    return _flash_func()(q, k, v, softmax_scale=scale, causal=causal)


def backend(q: Tensor, k: Tensor, v: Tensor, *, scale: float, causal: bool, impl: str,
            mask: Tensor | None = None) -> Tensor:
    """One call of one backend on (q, k, v) as given, grouped heads and all:
    flash-attn, SDPA or the einsum reference ("auto": flash-attn where it can run
    and there is no mask, else SDPA). ``mask``, bool (T, S) or (1, S), replaces the
    causal flag; flash-attn takes none. Shapes as in ``attend``; no checks."""
    if impl == "auto":
        impl = "flash" if mask is None and flash_available(q, v) else "sdpa"
    if impl == "flash":
        if mask is not None:
            raise ValueError("functional.backend: flash-attn takes no mask; use impl='sdpa' or 'einsum'")
        return _flash(q, k, v, scale, causal)
    if impl == "einsum":
        return _einsum(q, k, v, scale, causal, mask)
    return _sdpa(q, k, v, scale, causal, mask)


def fold_groups(q: Tensor, k: Tensor, v: Tensor, *, scale: float, causal: bool, impl: str,
                key_mask: Tensor | None = None) -> Tensor:
    """Grouped-query attention with each group's R = H/G query heads folded into
    the query axis: q (B, T, H, E) becomes (B, T R, G, E), row t R + r being query t
    of head g R + r, so the backend sees G ordinary heads and none copies K/V per
    query head (SDPA's ``enable_gqa`` may, see book/09_decoding). ``attend`` folds
    wherever the square causal mask is absent:

    - a decode step (T = 1): the query sits at the last position, no mask;
    - a chunk after a cache (causal, 1 < T < S): row t R + r gets row t of the
      bottom-right aligned causal mask, the (T, S) mask repeated R times;
    - bidirectional attention (causal=False): no mask;
    - static-shape decoding: ``key_mask`` (S,), the same row for every query.

    Calls ``backend`` once; returns (B, T, H, F).
    """
    B, T, H, E = q.shape
    S, G = k.shape[1], k.shape[2]
    R = H // G
    qf = q.view(B, T, G, R, E).transpose(2, 3).reshape(B, T * R, G, E)
    if key_mask is not None:
        mask = key_mask[None]  # (1, S)
    elif causal and T > 1:
        mask = causal_mask(T, S, q.device).repeat_interleave(R, 0)  # (T R, S)
    else:
        mask = None
    y = backend(qf, k, v, scale=scale, causal=False, impl=impl, mask=mask)  # (B, T R, G, F)
    return y.view(B, T, R, G, -1).transpose(2, 3).reshape(B, T, H, v.shape[-1])


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
    G, S = k.shape[2], k.shape[1]
    if key_mask is not None:
        if causal:
            raise ValueError("attend: key_mask replaces the causal mask; pass causal=False")
        if not (isinstance(key_mask, Tensor) and key_mask.dtype == torch.bool and key_mask.shape == (S,)):
            raise ValueError(f"attend: key_mask must be a bool tensor of shape (S,) = ({S},); got "
                             f"{key_mask.dtype if isinstance(key_mask, Tensor) else type(key_mask).__name__} "
                             f"{tuple(getattr(key_mask, 'shape', ()))}")
        return fold_groups(q, k, v, scale=scale, causal=False, key_mask=key_mask,
                           impl="einsum" if impl == "einsum" else "sdpa")  # flash-attn takes no mask
    if impl == "triton":
        if G == 1 and T == 1:  # a decode step over one latent K/V stream
            from .kernels import latent_mqa_decode
            return latent_mqa_decode(q[:, 0], k[:, :, 0], v[:, :, 0], scale=scale)[:, None]
        impl = "sdpa"
    if impl == "auto":
        impl = "flash" if flash_available(q, v) else "sdpa"
    # Fold unless the causal mask is the square one, or flash-attn runs: it takes grouped
    # heads and bottom-right aligned causal chunks as they are (book/10_flash).
    if G < H and (T == 1 or not causal or (T < S and impl != "flash")):
        return fold_groups(q, k, v, scale=scale, causal=causal, impl=impl)
    return backend(q, k, v, scale=scale, causal=causal, impl=impl)
