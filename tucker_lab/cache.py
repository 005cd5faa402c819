"""FactorCache: a preallocated per-layer cache of named factors, never expanded.

Each attention family caches exactly what its math needs (``cfg.cache_shapes()``):
GQA k, v (G, D); MLA c_kv (R_kv) and the rotated k_rope (D_rope); TPA a_k, b_k,
a_v, b_v; Tucker the key and value latents (r_k, r_v), or one latent when shared.
Buffers are sequence-major, (B, S_max, *shape), and written in place.

See: book/09_decoding.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["FactorCache"]


class FactorCache:
    """Preallocated buffers ``name -> (B, S_max, *shape)`` plus a fill level.

    Args:
        shapes: per-token shape of each factor, e.g. ``cfg.cache_shapes()``.
        batch_size: B.
        max_seq_len: S_max, the most tokens the cache can hold.
        dtype, device: of the buffers (the layer must compute in the same dtype).
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], batch_size: int, max_seq_len: int, *,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        for name, v in (("batch_size", batch_size), ("max_seq_len", max_seq_len)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"FactorCache.{name} must be an integer >= 1; got {v!r}")
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        self.buffers = {n: torch.zeros(batch_size, max_seq_len, *s, dtype=dtype, device=device)
                        for n, s in self.shapes.items()}
        self.batch_size, self.max_seq_len = batch_size, max_seq_len
        self.seq_len = 0  # tokens written so far; the next write must start here

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.buffers.values())).dtype

    @property
    def device(self) -> torch.device:
        return next(iter(self.buffers.values())).device

    def check(self, shapes: dict[str, tuple[int, ...]], x: Tensor, start_pos: int, T: int) -> None:
        """Raise a clear error unless a layer with ``shapes`` may write T tokens of x
        (B, T, C) at ``start_pos``."""
        if shapes != self.shapes:
            raise ValueError(f"this cache holds {self.shapes} but the layer caches {shapes}: "
                             "make it with layer.new_cache(...)")
        if x.shape[0] != self.batch_size:
            raise ValueError(f"batch size {x.shape[0]} does not match the cache's batch_size={self.batch_size}")
        if x.dtype != self.dtype or x.device != self.device:
            raise ValueError(f"the layer computes in {x.dtype} on {x.device} but the cache is "
                             f"{self.dtype} on {self.device}; make the cache with the layer's dtype/device")
        if start_pos != self.seq_len:
            raise ValueError(f"start_pos={start_pos} but the cache holds {self.seq_len} tokens: decoding "
                             f"must continue at position {self.seq_len} (cache.reset() starts over)")
        if start_pos + T > self.max_seq_len:
            raise ValueError(f"decoding past the cache: positions {start_pos}..{start_pos + T - 1} but "
                             f"max_seq_len={self.max_seq_len}")

    def update(self, start_pos: int, **factors: Tensor) -> dict[str, Tensor]:
        """Write factors (B, T, *shape) at positions start_pos..start_pos+T-1 and return
        views of every buffer up to the new fill level, (B, start_pos + T, *shape)."""
        if set(factors) != set(self.buffers):
            raise ValueError(f"update needs exactly the factors {sorted(self.buffers)}; got {sorted(factors)}")
        T = next(iter(factors.values())).shape[1]
        end = start_pos + T
        for name, f in factors.items():
            expected = (self.batch_size, T, *self.shapes[name])
            if tuple(f.shape) != expected:
                raise ValueError(f"factor {name!r} must have shape {expected}; got {tuple(f.shape)}")
            self.buffers[name][:, start_pos:end] = f
        self.seq_len = end
        return {n: b[:, :end] for n, b in self.buffers.items()}

    def reset(self) -> None:
        """Forget the contents (buffers stay allocated)."""
        self.seq_len = 0

    def nbytes(self) -> int:
        """Bytes of the tokens held: B * seq_len * (bytes per token of all factors)."""
        per_token = sum(math.prod(s) for s in self.shapes.values())
        return self.batch_size * self.seq_len * per_token * torch.empty((), dtype=self.dtype).element_size()

    def allocated_bytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers.values())

    def to(self, device=None, dtype=None) -> "FactorCache":
        self.buffers = {n: b.to(device=device, dtype=dtype) for n, b in self.buffers.items()}
        return self

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}={tuple(b.shape)}" for n, b in self.buffers.items())
        return f"FactorCache({shapes}, seq_len={self.seq_len}, {self.dtype})"
