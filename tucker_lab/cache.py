"""FactorCache: a preallocated per-layer cache of named factors, never expanded.

Each attention family caches exactly what its math needs (``cfg.cache_shapes()``):
GQA k, v (G, D); MLA c_kv (R_kv) and the rotated k_rope (D_rope); TPA a_k, b_k,
a_v, b_v; Tucker the key and value latents (r_k, r_v), or one latent when shared.
All factors of a layer share one sequence-major buffer (B, S_max, N), N the
numbers per token; each factor is a view ``(B, S_max, *shape)`` of its slice, so a
factor sequence that is read as one key (MLA's [c_kv, k_rope]) is already one
tensor, ``packed()``, and needs no copy per decoding step.

See: book/09_decoding.
"""
from __future__ import annotations

import math
import weakref

import torch
from torch import Tensor

from .config import check_int

__all__ = ["FactorCache"]


class FactorCache:
    """Preallocated buffers ``name -> (B, S_max, *shape)`` plus a fill level.

    Args:
        shapes: per-token shape of each factor, e.g. ``cfg.cache_shapes()``.
        batch_size: B.
        max_seq_len: S_max, the most tokens the cache can hold.
        dtype, device: of the buffer (the layer must compute in the same dtype, or
            under ``torch.autocast`` in the autocast dtype).

    A cache belongs to one layer: ``layer.new_cache(...)`` records the layer, and a
    cache made directly is claimed by the first layer that writes to it. Any other
    layer given it raises a ValueError (one cache per layer).

    Caches are for inference (decode under ``torch.no_grad()`` or
    ``torch.inference_mode()``): the buffers hold values only. Calls made with
    gradients enabled still get exact gradients: while consecutive writes carry
    autograd history, the factors read back are the concatenation of the tensors
    written (not the buffer), so gradients reach every earlier token's projections,
    as in the full forward. That costs one concatenation per call and keeps the
    graph alive until ``reset()``.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], batch_size: int, max_seq_len: int, *,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        if not isinstance(shapes, dict) or not shapes or not all(
                isinstance(n, str) and isinstance(s, (tuple, list)) and s
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in s)
                for n, s in shapes.items()):
            raise ValueError("FactorCache.shapes must be a non-empty dict name -> per-token shape (a tuple of "
                             f"integers >= 1), e.g. cfg.cache_shapes(); got {shapes!r}")
        check_int("FactorCache", "batch_size", batch_size, 1)
        check_int("FactorCache", "max_seq_len", max_seq_len, 1)
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"FactorCache.dtype must be a floating torch.dtype; got {dtype!r}")
        if device is not None and not isinstance(device, (str, torch.device)):
            raise TypeError(f"FactorCache.device must be None, a str or a torch.device; got {type(device).__name__}")
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        sizes = [math.prod(s) for s in self.shapes.values()]
        self.data = torch.zeros(batch_size, max_seq_len, sum(sizes), dtype=dtype, device=device)
        self.batch_size, self.max_seq_len = batch_size, max_seq_len
        self.seq_len = 0  # tokens written so far; the next write must start here
        self._owner = None  # weakref to the layer this cache belongs to (see own())
        self._live = None  # name -> (B, seq_len, *shape) with autograd history (see update())
        self._views = None  # (seq_len, name -> view): the factors held, made once per write
        self._bind()

    def _bind(self) -> None:
        """(Re)create the named views into ``data``, in the order of ``shapes``."""
        self._views = None
        self.buffers, off = {}, 0
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            self.buffers[name] = self.data[..., off:off + n].unflatten(-1, shape)  # (B, S_max, *shape)
            off += n

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def owner(self):
        """The layer this cache belongs to, or None (not yet claimed, or the layer is gone)."""
        return self._owner() if self._owner is not None else None

    def own(self, layer, claim: bool = True) -> None:
        """Raise a ValueError if another layer owns this cache (a cache shared by two
        layers would mix their factors); else, with ``claim``, record ``layer`` as owner."""
        if self._owner is None:
            if claim:
                self._owner = weakref.ref(layer)
            return
        owner = self._owner()
        if owner is not layer:
            who = "a layer that no longer exists" if owner is None else f"another layer ({type(owner).__name__})"
            raise ValueError(f"this cache belongs to {who}: every layer needs its own cache; make one per "
                             "layer with layer.new_cache(...), e.g. [layer.new_cache(B, S) for layer in "
                             "layers] rather than [cache] * n_layers (TinyLM.new_caches does this)")

    def check(self, shapes: dict[str, tuple[int, ...]], x: Tensor, start_pos: int, T: int,
              dtypes: tuple[torch.dtype, ...] | None = None) -> None:
        """Raise a clear error unless a layer with ``shapes`` may write T tokens of x
        (B, T, C) at ``start_pos``. ``dtypes``: the cache dtypes the layer can compute
        with (default: x's dtype; under autocast also the weights' dtype)."""
        if shapes != self.shapes:
            raise ValueError(f"this cache holds {self.shapes} but the layer caches {shapes}: "
                             "make it with layer.new_cache(...)")
        if x.shape[0] != self.batch_size:
            raise ValueError(f"batch size {x.shape[0]} does not match the cache's batch_size={self.batch_size}")
        dtypes = dtypes or (x.dtype,)
        if self.dtype not in dtypes or x.device != self.device:
            raise ValueError(f"the layer computes in {x.dtype} on {x.device} but the cache is "
                             f"{self.dtype} on {self.device}; make the cache with the layer's dtype/device")
        if start_pos != self.seq_len:
            raise ValueError(f"start_pos={start_pos} but the cache holds {self.seq_len} tokens: decoding "
                             f"must continue at position {self.seq_len} (cache.reset() starts over)")
        if start_pos + T > self.max_seq_len:
            raise ValueError(f"decoding past the cache: positions {start_pos}..{start_pos + T - 1} but "
                             f"max_seq_len={self.max_seq_len}")

    def update(self, start_pos: int, **factors: Tensor) -> dict[str, Tensor]:
        """Write factors ``(B, T, *shape)`` at positions start_pos..start_pos+T-1 and return
        every factor up to the new fill level, ``(B, start_pos + T, *shape)``: views of the
        buffer, or, when a factor carries autograd history, the concatenation of what
        was written (exact gradients through the cache; see the class docstring)."""
        if set(factors) != set(self.buffers):
            raise ValueError(f"update needs exactly the factors {sorted(self.buffers)}; got {sorted(factors)}")
        T = next(iter(factors.values())).shape[1]
        end = start_pos + T
        for name, f in factors.items():
            expected = (self.batch_size, T, *self.shapes[name])
            if tuple(f.shape) != expected:
                raise ValueError(f"factor {name!r} must have shape {expected}; got {tuple(f.shape)}")
            with torch.no_grad():  # the buffer stores values, not a graph
                self.buffers[name][:, start_pos:end] = f
        self.seq_len = end
        if not (torch.is_grad_enabled() and any(f.requires_grad for f in factors.values())):
            self._live = None
            self._views = (end, {n: b[:, :end] for n, b in self.buffers.items()})
            return dict(self._views[1])
        # Gradients wanted: the earlier tokens with their history (or, written without
        # it, from the buffer as constants) followed by the new ones; never a view of
        # the buffer, which the next write changes in place.
        live = {}
        for name, f in factors.items():
            if start_pos == 0:
                live[name] = f
                continue
            held = self._live is not None and self._live[name].shape[1] == start_pos
            prev = self._live[name] if held else self.buffers[name][:, :start_pos].to(f.dtype)
            live[name] = torch.cat((prev, f), 1)
        self._live = live
        return dict(live)

    def views(self, data: Tensor | None = None) -> dict[str, Tensor]:
        """Named views ``(B, S, *shape)`` of a buffer laid out like ``data`` (default ``data``
        itself, all S_max positions)."""
        data = self.data if data is None else data
        out, off = {}, 0
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            out[name] = data[..., off:off + n].unflatten(-1, shape)
            off += n
        return out

    def write_at(self, pos: Tensor, **factors: Tensor) -> dict[str, Tensor]:
        """Static-shape write: one token's factors ``(B, 1, *shape)`` at position ``pos``, a
        (1,) int64 tensor on the cache's device, in place (no host read of pos, so a
        compiled step or a CUDA graph can replay it); returns views of every factor over
        all S_max positions. ``seq_len`` is left to the caller (``StaticDecoder``)."""
        B = self.batch_size
        flat = torch.cat([factors[n].detach().reshape(B, 1, -1) for n in self.shapes], -1)
        self.data.index_copy_(1, pos, flat.to(self.dtype))
        return self.views()

    def packed(self) -> Tensor:
        """All factors of the tokens held, side by side: (B, seq_len, N) (with autograd
        history when the last write had it)."""
        if self._live is not None:
            return torch.cat([self._live[n].flatten(2) for n in self.shapes], -1)
        return self.data[:, :self.seq_len]

    def read(self) -> dict[str, Tensor]:
        """Every factor of the tokens held, ``(B, seq_len, *shape)``: what the last
        ``update`` returned (views of the buffer, or with autograd history)."""
        if self._live is not None:
            return dict(self._live)
        if self._views is None or self._views[0] != self.seq_len:  # after truncate, reset, to
            self._views = (self.seq_len, {n: b[:, :self.seq_len] for n, b in self.buffers.items()})
        return dict(self._views[1])

    def truncate(self, seq_len: int) -> None:
        """Keep the first ``seq_len`` tokens and forget the rest (the buffer stays as it
        is): rewinds decoding, e.g. to time one step again (``bench``) or to drop
        rejected draft tokens."""
        check_int("FactorCache.truncate", "seq_len", seq_len, 0, self.seq_len)
        self.seq_len = seq_len
        if self._live is not None:
            self._live = {n: t[:, :seq_len] for n, t in self._live.items()} if seq_len else None

    def reset(self) -> None:
        """Forget the contents (buffers stay allocated; the owner stays)."""
        self.seq_len = 0
        self._live = None

    def nbytes(self) -> int:
        """Bytes of the tokens held: B * seq_len * (bytes per token of all factors)."""
        return self.packed().numel() * self.data.element_size()

    def allocated_bytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def to(self, device=None, dtype=None) -> "FactorCache":
        self.data = self.data.to(device=device, dtype=dtype)
        self._live = None
        self._bind()
        return self

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}={tuple(b.shape)}" for n, b in self.buffers.items())
        return f"FactorCache({shapes}, seq_len={self.seq_len}, {self.dtype})"
