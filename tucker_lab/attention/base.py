"""What every attention module shares: config checks, input checks, init, and
the per-head linear maps from which the weight tensors W_qk, W_vo are formed."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..cache import FactorCache
from ..config import AttentionConfig, check_int, check_tensor
from ..functional import IMPLS

__all__ = ["AttentionModule", "linear", "fan_in_normal_", "per_head", "per_head_out"]


def fan_in_normal_(w: Tensor, fan_in: int) -> Tensor:
    """N(0, 1/fan_in): the variance-preserving init used by every variant, so
    that variants start from comparable activations."""
    with torch.no_grad():
        return w.normal_(0.0, 1.0 / math.sqrt(fan_in))


def linear(d_in: int, d_out: int) -> nn.Linear:
    """Bias-free Linear with the shared init (no biases: param_count() equals the papers')."""
    lin = nn.Linear(d_in, d_out, bias=False)
    fan_in_normal_(lin.weight, d_in)
    return lin


def per_head(w: nn.Linear, n: int) -> Tensor:
    """The n per-head maps of a Linear that writes n heads side by side: its weight
    (n d, d_in) as (n, d_in, d), head i's output being x @ per_head(w, n)[i]. A view:
    ``per_head(w, n).copy_(W)`` writes W into w. (The float64 spec in ``reference``
    keeps its own copy of this layout on purpose, to stay independent.)"""
    return w.weight.view(n, -1, w.in_features).transpose(1, 2)


def per_head_out(w: nn.Linear, n: int) -> Tensor:
    """The n per-head maps of a Linear that reads n heads side by side (the output
    projection): its weight (d_out, n d) as (n, d, d_out), the output being
    sum_i y_i @ per_head_out(w, n)[i]. A view, like ``per_head``."""
    return w.weight.view(w.out_features, n, -1).permute(1, 2, 0)


class AttentionModule(nn.Module, ABC):
    """Base of the attention layers: ``y = layer(x)`` maps (B, T, C) -> (B, T, C).

    Args:
        cfg: the family's config.
        impl: attention kernel, one of ``functional.IMPLS``.
        mode: algebra, "auto" or one of ``cfg.modes`` (MLA "naive" | "absorbed",
            TPA "naive" | "factored").

    Call it as ``layer(x)`` for a whole sequence, or with a cache from
    ``layer.new_cache(B, S_max)`` as ``layer(x, cache=cache, start_pos=t)`` for
    prefill, one-token decoding and multi-token chunks (causal layers only).
    ``start_pos=None`` (the default) continues where the cache ends (0 without a cache).
    Caches are for inference: decode under ``torch.no_grad()``; with gradients enabled
    the result and its gradients are still exact (see FactorCache), at the cost of
    keeping the graph of every step.

    Under ``torch.autocast`` x may be in the autocast dtype while the weights stay in
    theirs (as for nn.Linear); outside autocast x must match the weights.
    """

    config_class: ClassVar[type[AttentionConfig]]

    def __init__(self, cfg: AttentionConfig, *, impl: str = "auto", mode: str | None = None):
        super().__init__()
        if not isinstance(cfg, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}; "
                            f"got {type(cfg).__name__}")
        if not isinstance(impl, str) or impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}; got {impl!r}")
        self.cfg = cfg
        self.impl = impl
        # "auto": the training algebra, except when continuing a cache (see algebra())
        if mode is not None and not isinstance(mode, str):
            raise TypeError(f"{type(self).__name__}: mode must be None, 'auto' or one of {cfg.modes}; "
                            f"got {type(mode).__name__}")
        self.mode = "auto" if mode in (None, "auto") else cfg._mode(mode)

    def algebra(self, cache: FactorCache | None, start_pos: int = 0) -> str:
        """The algebra this call uses: ``mode``, or for "auto" the training form
        (cfg.modes[0]) unless the call continues a filled cache (a cache and
        start_pos > 0), where the decoding form (cfg.modes[-1]) reads the cached
        factors without expanding them. Both give the same numbers."""
        if self.mode != "auto":
            return self.mode
        return self.cfg.modes[-1] if cache is not None and start_pos > 0 else self.cfg.modes[0]

    def new_cache(self, batch_size: int, max_seq_len: int, *, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> FactorCache:
        """A preallocated cache of this layer's factors (``cfg.cache_shapes()``), by default
        in the dtype and on the device of the layer's parameters. The cache belongs to
        this layer (any other layer refuses it): make one per layer. Caches serve causal
        decoding, for inference: decode under torch.no_grad(). With gradients enabled the
        cached outputs and their gradients are still exact (the factors read back carry
        their autograd history, see FactorCache), at the cost of keeping every step's graph."""
        name = f"{type(self).__name__}.new_cache"
        if not self.cfg.causal:
            raise ValueError(f"{name}: this layer is bidirectional (causal=False); a cache serves causal "
                             "decoding only (a chunk could not see later tokens): call it without a cache")
        check_int(name, "batch_size", batch_size, 1)
        check_int(name, "max_seq_len", max_seq_len, 1)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"{name}: dtype must be None or a floating torch.dtype; got {dtype!r}")
        if device is not None and not isinstance(device, (str, torch.device)):
            raise TypeError(f"{name}: device must be None, a str or a torch.device; got {type(device).__name__}")
        p = next(self.parameters())
        cache = FactorCache(self.cfg.cache_shapes(), batch_size, max_seq_len,
                            dtype=dtype or p.dtype, device=device or p.device)
        cache.own(self)
        return cache

    def begin(self, x: Tensor, cache: FactorCache | None, start_pos: int | None) -> int:
        """Validate a call: x (B, T, C), the cache, the start position; return the start
        position (default: where the cache ends, or 0)."""
        name = type(self).__name__
        _, T = self.check_input(x)
        if cache is not None:
            if not isinstance(cache, FactorCache):
                raise TypeError(f"{name}: cache must be None or a FactorCache from layer.new_cache(...); "
                                f"got {type(cache).__name__}")
            if not self.cfg.causal:
                raise ValueError(f"{name}: this layer is bidirectional (causal=False); a cache serves "
                                 "causal decoding only: call it without a cache")
        if start_pos is None:
            start_pos = cache.seq_len if cache is not None else 0
        if not isinstance(start_pos, int) or isinstance(start_pos, bool) or start_pos < 0:
            raise ValueError(f"{name}: start_pos must be an integer >= 0; got {start_pos!r}")
        if cache is not None:
            cache.own(self, claim=False)  # before the other checks: their advice assumes the right cache
            p = next(self.parameters())
            cache.check(self.cfg.cache_shapes(), x, start_pos, T, dtypes=(x.dtype, p.dtype))
            cache.own(self)
        return start_pos

    def compute_dtypes(self, device: torch.device) -> tuple[torch.dtype, ...]:
        """The input dtypes this layer accepts on ``device``: its weights' dtype, and under
        torch.autocast for that device type also the autocast dtype (as nn.Linear does)."""
        p = next(self.parameters())
        if torch.is_autocast_enabled(device.type):
            return (p.dtype, torch.get_autocast_dtype(device.type))
        return (p.dtype,)

    def check_input(self, x: Tensor) -> tuple[int, int]:
        """Validate x (B, T, C) against the config and the parameters; return (B, T)."""
        name, C = type(self).__name__, self.cfg.d_model
        check_tensor(name, "x", x)
        if x.ndim != 3 or x.shape[-1] != C:
            raise ValueError(f"{name}: x must have shape (B, T, C) with C = d_model = {C}; got {tuple(x.shape)}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name}: x must hold at least one sequence of one token; got shape {tuple(x.shape)}")
        p = next(self.parameters())
        if x.device != p.device or x.dtype not in self.compute_dtypes(x.device):
            raise ValueError(f"{name}: x is {x.dtype} on {x.device} but the weights are {p.dtype} "
                             f"on {p.device}; move one to match (e.g. layer.to(x)), or run under "
                             "torch.autocast for mixed precision")
        return x.shape[0], x.shape[1]

    @abstractmethod
    def decode_query(self, x: Tensor, pos: int | Tensor):
        """The queries of x (B, T, C) at positions pos.., rotated, in the form
        ``decode_core`` takes them (per family: per-head queries, MLA's (q_nope, q_rope),
        TPA's factors)."""

    @abstractmethod
    def decode_core(self, q, cache: FactorCache) -> Tensor:
        """The decoding algebra's attention over every token ``cache`` holds, for the
        queries ``q`` (``decode_query``) of its last T tokens: per-head outputs
        (B, T, H, F), before the output projection (``output``). What a decode kernel computes:
        ``forward`` runs it whenever it continues a cache in the decoding algebra, and
        ``tucker_lab.bench`` times it as its "core" scope."""

    def output(self, y: Tensor) -> Tensor:
        """The output projection: per-head outputs (B, T, H, F) -> (B, T, C)."""
        return self.w_o(y.flatten(2))

    def decode_static(self, x: Tensor, cache: FactorCache, pos: Tensor) -> Tensor:
        """One decoding step with fixed shapes, as gpt-fast does: x (B, 1, C) is the
        token at position ``pos``, a (1,) int64 tensor on x's device, with ``pos``
        tokens already cached. Its factors are written at slot pos of the full
        preallocated buffer, and attention reads all S_max slots under the mask
        slot <= pos. No shape depends on pos, so ``torch.compile`` builds one graph
        (one CUDA graph with mode="reduce-overhead") for every step;
        ``tucker_lab.static_decode.StaticDecoder`` runs it and keeps ``cache.seq_len``.
        Always the decoding algebra (absorbed MLA, factored TPA) on SDPA (einsum when
        asked for); equals the eager step to round-off. Returns (B, 1, C)."""
        valid = torch.arange(cache.max_seq_len, device=x.device) <= pos  # filled slots
        return self._decode_static(x, cache, pos, valid)

    @abstractmethod
    def _decode_static(self, x: Tensor, cache: FactorCache, pos: Tensor, valid: Tensor) -> Tensor:
        """``decode_static``'s step, with ``valid`` (S_max,) the filled slots."""

    @property
    def static_impl(self) -> str:
        """Which kernel the static step uses ("sdpa" or "einsum"; its masks rule out flash-attn
        and the Triton kernels)."""
        return "einsum" if self.impl == "einsum" else "sdpa"

    def head_projections(self) -> dict[str, Tensor]:
        """Per-head linear maps, at relative position 0 (RoPE = identity):
        W_q (H, C, E), W_k (H, C, E), W_v (H, C, F), W_o (H, F, C), such that the
        logits of head i are x W_q[i] (x' W_k[i])^T and its output adds
        (attention-weighted x' W_v[i]) W_o[i]. See: book/05_attention_tensor."""
        raise TypeError(f"{type(self).__name__} has no fixed per-head projections")

    def extra_repr(self) -> str:
        return f"{self.cfg}, impl={self.impl!r}, mode={self.mode!r}"
