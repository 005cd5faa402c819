"""Static-shape decoding: one compiled graph for every step, as in gpt-fast.

An eager decode step reads a cache view one token longer than the last, so every
step has new shapes: ``torch.compile`` would recompile (or go dynamic) and a CUDA
graph cannot capture it, and at small batch a GPU decode step is dominated by
kernel launches. ``layer.decode_static(x, cache, pos)`` instead writes the new
token at slot ``pos`` of the full preallocated buffer and attends all S_max
slots under the mask slot <= pos; ``pos`` is a tensor, so nothing in the graph
depends on the step. ``StaticDecoder`` compiles that step once
(``mode="reduce-overhead"`` on CUDA: CUDA graphs) and keeps ``cache.seq_len``.

The price: every step reads the whole buffer, S_max tokens, not the S held; size
the cache to the generation (or bucket S_max) so the two are close.

    dec = StaticDecoder(layer, cache)        # cache filled by an eager prefill
    y = dec(x_t)                             # (B, 1, C) at position cache.seq_len

See: book/15_performance.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .cache import FactorCache

__all__ = ["StaticDecoder"]


class StaticDecoder:
    """Compiled one-token decoding of ``layer`` over ``cache``'s full buffer.

    Args:
        layer: an attention layer (any variant).
        cache: its ``FactorCache`` (``layer.new_cache(B, S_max)``), possibly prefilled.
        compile: False runs ``decode_static`` eagerly (same numbers).
        backend, mode: passed to ``torch.compile``; mode defaults to "reduce-overhead"
            on CUDA (CUDA graphs) and None elsewhere.
    """

    def __init__(self, layer, cache: FactorCache, *, compile: bool = True,
                 backend="inductor", mode: str | None = None):
        from .attention.base import AttentionModule
        if not isinstance(layer, AttentionModule):
            raise TypeError(f"StaticDecoder: layer must be a tucker_lab attention layer; got {type(layer).__name__}")
        if not isinstance(cache, FactorCache):
            raise TypeError(f"StaticDecoder: cache must be a FactorCache (layer.new_cache(...)); "
                            f"got {type(cache).__name__}")
        if not isinstance(compile, bool):
            raise TypeError(f"StaticDecoder: compile must be a bool; got {compile!r}")
        if cache.shapes != layer.cfg.cache_shapes():
            raise ValueError(f"StaticDecoder: the cache holds {cache.shapes} but the layer's "
                             f"layer caches {layer.cfg.cache_shapes()}; use "
                             "layer.new_cache(...)")
        self.layer, self.cache = layer, cache
        if compile:
            if cache.device.type == "cuda":
                mode = mode or "reduce-overhead"
                torch._dynamo.mark_static_address(cache.data)  # written in place
            self.step = torch.compile(layer.decode_static, backend=backend, mode=mode,
                                      fullgraph=True, dynamic=False)
        else:
            self.step = layer.decode_static

    def __call__(self, x: Tensor) -> Tensor:
        """Decode the token x (B, 1, C) at position ``cache.seq_len``; (B, 1, C)."""
        cache = self.cache
        if x.ndim != 3 or x.shape[:2] != (cache.batch_size, 1):
            raise ValueError(f"StaticDecoder: x must be (B, 1, C) with B = "
                             f"{cache.batch_size}; got {tuple(x.shape)}")
        t = cache.seq_len
        if t >= cache.max_seq_len:
            raise ValueError(f"StaticDecoder: the cache is full "
                             f"(max_seq_len={cache.max_seq_len})")
        pos = torch.tensor([t], device=cache.device)
        y = self.step(x, cache, pos)
        cache.seq_len = t + 1
        return y
