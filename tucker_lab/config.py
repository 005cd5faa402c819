"""Frozen, validated attention configs and their analytic accounting.

Every config is a frozen keyword-only dataclass. Fields are stored as given
(``d_head=None`` stays ``None``) so that ``dataclasses.replace`` behaves; the
resolved sizes are read through properties named after the book's letters:
``cfg.C`` (d_model), ``cfg.H`` (query heads), ``cfg.G`` (KV heads), ``cfg.D``
(head dim) and the ranks of each family.

Accounting is analytic and per layer: ``param_count()``, ``cache_shapes()``
(per token), ``kv_cache_bytes_per_token(dtype)``, ``flops_per_token(context)``
(matmul FLOPs, 2 per multiply-add, for one query token attending to
``context`` keys) and ``max_ranks()`` (the bounds on the multilinear ranks of
the two attention weight tensors; Tucker attention, arXiv 2603.30033,
Theorems B.2-B.4). Tests check every number
against the live module, the live cache and the papers' formulas.

See: book/01_attention, book/05_attention_tensor.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import ClassVar

import torch

__all__ = [
    "AttentionConfig", "MHAConfig", "GQAConfig", "MLAConfig", "TPAConfig",
    "TuckerConfig", "CONFIGS", "make_config", "standard_configs",
]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    """A finite real number (bools are not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_int(owner: str, field: str, v, lo: int, hi: int | None = None) -> None:
    """ValueError "{owner}.{field} must be an integer >= lo (or in [lo, hi]); got v" unless
    v is such an integer (bools are not). Shared by every config and the cache."""
    if not _is_int(v) or v < lo or (hi is not None and v > hi):
        rng = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        raise ValueError(f"{owner}.{field} must be {rng}; got {v!r}")


def check_tensor(owner: str, name: str, t, *, ndim: int | tuple[int, ...] | None = None,
                 dtype: "torch.dtype | str | tuple | None" = None, device=None) -> None:
    """TypeError/ValueError "{owner}: {name} must be ..." unless t is a Tensor with ``ndim``
    dims (an int or a tuple of allowed counts), of ``dtype`` (a dtype, a tuple of dtypes,
    or "floating" / "integer") and on ``device``. Shared by every public entry point that
    takes a tensor, so that a wrong input is named, never failing deep inside torch."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor; got {type(t).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{owner}: {name} must have {want} dims; got shape {tuple(t.shape)}")
    if dtype is not None:
        if dtype == "floating":
            ok, want = t.is_floating_point(), "a floating-point dtype"
        elif dtype == "integer":
            ok, want = not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool, "an integer dtype"
        else:
            allowed = dtype if isinstance(dtype, tuple) else (dtype,)
            ok, want = t.dtype in allowed, " or ".join(str(d) for d in allowed)
        if not ok:
            raise ValueError(f"{owner}: {name} must be {want}; got {t.dtype}")
    if device is not None and t.device != torch.device(device):
        raise ValueError(f"{owner}: {name} is on {t.device} but must be on {device} (move it with .to({str(device)!r}))")


def _generic_ranks(bounds: tuple[int, int, int]) -> tuple[int, int, int]:
    # A mode-n rank never exceeds the product of the other two (the unfolding
    # has that many columns), so the tight bound is the min of both.
    a, b, c = bounds
    return (min(a, b * c), min(b, a * c), min(c, a * b))


@dataclass(frozen=True, kw_only=True)
class AttentionConfig(ABC):
    """Fields shared by every attention variant.

    Attributes:
        d_model: C, the model width.
        n_heads: H, the number of query heads.
        d_head: D, the head dim; ``None`` means C / H (then H must divide C).
        causal: mask future keys (language models) or not (ViT).
        rope: rotary position embedding on (True) or off.
        rope_base: RoPE base; frequencies are base^(-2j/n) over n rotated dims.
        scale: softmax scale; ``None`` means the family's default
            (1/sqrt(D) for MHA/GQA/TPA, 1/sqrt(D + D_rope) for MLA,
            1/sqrt(C/H) for Tucker).
    """

    d_model: int
    n_heads: int
    d_head: int | None = None
    causal: bool = True
    rope: bool = True
    rope_base: float = 10000.0
    scale: float | None = None

    modes: ClassVar[tuple[str, ...]] = ("default",)

    # ---- validation -------------------------------------------------------
    def _fail(self, field: str, allowed: str, got) -> None:
        raise ValueError(f"{type(self).__name__}.{field} must be {allowed}; got {got!r}")

    def _check_int(self, field: str, lo: int, hi: int | None = None, value=None) -> None:
        check_int(type(self).__name__, field, getattr(self, field) if value is None else value, lo, hi)

    def _check_even(self, field: str, value: int, why: str) -> None:
        if value % 2:
            self._fail(field, f"even ({why})", value)

    def __post_init__(self) -> None:
        self._check_int("d_model", 1)
        self._check_int("n_heads", 1)
        if self.d_head is None:
            if self.d_model % self.n_heads:
                self._fail("n_heads", f"a divisor of d_model={self.d_model} when d_head is None",
                           self.n_heads)
        else:
            self._check_int("d_head", 1)
        for flag in ("causal", "rope"):
            if not isinstance(getattr(self, flag), bool):
                self._fail(flag, "a bool", getattr(self, flag))
        if not (_is_number(self.rope_base) and self.rope_base > 1):
            self._fail("rope_base", "a number > 1 (finite)", self.rope_base)
        if self.scale is not None and not (_is_number(self.scale) and self.scale > 0):
            self._fail("scale", "None or a positive number (finite)", self.scale)
        self._validate()

    def _validate(self) -> None:  # family-specific checks
        pass

    # ---- the book's letters -----------------------------------------------
    @property
    def C(self) -> int:
        return self.d_model

    @property
    def H(self) -> int:
        return self.n_heads

    @property
    def D(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def softmax_scale(self) -> float:
        return self.scale if self.scale is not None else 1.0 / math.sqrt(self.D)

    # ---- accounting ---------------------------------------------------------
    @abstractmethod
    def param_count(self) -> int:
        """Attention parameters of one layer (no biases)."""

    @abstractmethod
    def cache_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each cached factor, per token and per layer."""

    def kv_cache_elements_per_token(self) -> int:
        return sum(math.prod(s) for s in self.cache_shapes().values())

    def kv_cache_bytes_per_token(self, dtype: torch.dtype = torch.bfloat16) -> int:
        """Cache bytes per token and layer in ``dtype``."""
        return self.kv_cache_elements_per_token() * torch.empty((), dtype=dtype).element_size()

    @abstractmethod
    def flops_breakdown(self, context: int, mode: str | None = None) -> dict[str, int]:
        """Matmul FLOPs (2 per multiply-add) for one query token and ``context`` keys."""

    def flops_per_token(self, context: int, mode: str | None = None) -> int:
        return sum(self.flops_breakdown(context, mode).values())

    def fixed_flops(self, mode: str | None = None) -> int:
        """FLOPs paid once per forward call, independent of tokens (weight folding)."""
        return 0

    def _mode(self, mode: str | None) -> str:
        mode = self.modes[0] if mode is None else mode
        if mode not in self.modes:
            raise ValueError(f"{type(self).__name__}: mode must be one of {self.modes}; got {mode!r}")
        return mode

    @abstractmethod
    def max_ranks(self) -> dict[str, tuple[int, int, int]]:
        """Upper bounds on the multilinear ranks (head, query/output, key/value) of
        W_qk and W_vo, attained by generic weights (Tucker paper, Theorems B.2-B.4)."""


@dataclass(frozen=True, kw_only=True)
class MHAConfig(AttentionConfig):
    """Multi-head attention (Vaswani et al. 2017): H query, key and value heads.

    See: book/01_attention.
    """


    @property
    def G(self) -> int:
        return self.n_heads

    def _validate(self) -> None:
        if self.rope:
            self._check_even("d_head", self.D, "RoPE rotates pairs of head dims")

    def param_count(self) -> int:
        C, H, G, D = self.C, self.H, self.G, self.D
        return C * H * D + 2 * C * G * D + H * D * C

    def cache_shapes(self):
        return {"k": (self.G, self.D), "v": (self.G, self.D)}

    def flops_breakdown(self, context, mode=None):
        self._mode(mode)
        C, H, G, D = self.C, self.H, self.G, self.D
        return {"projections": 2 * (C * H * D + 2 * C * G * D + H * D * C),
                "attention": 2 * H * context * (D + D)}

    def max_ranks(self):
        C, H, G, D = self.C, self.H, self.G, self.D
        b = (H, min(C, H * D), min(C, G * D))
        return {"qk": _generic_ranks(b), "vo": _generic_ranks(b)}


@dataclass(frozen=True, kw_only=True)
class GQAConfig(MHAConfig):
    """Grouped-query attention (Ainslie et al. 2023): G KV heads, each shared by
    H/G query heads (head h uses KV head h // (H/G)). ``n_kv_heads=1`` is MQA
    (Shazeer 2019); ``n_kv_heads=n_heads`` is MHA.

    See: book/02_mqa_gqa.
    """

    n_kv_heads: int

    @property
    def G(self) -> int:
        return self.n_kv_heads

    def _validate(self) -> None:
        self._check_int("n_kv_heads", 1, self.n_heads)
        if self.n_heads % self.n_kv_heads:
            self._fail("n_kv_heads", f"a divisor of n_heads={self.n_heads}", self.n_kv_heads)
        super()._validate()


@dataclass(frozen=True, kw_only=True)
class MLAConfig(AttentionConfig):
    """Multi-head latent attention as in DeepSeek-V2 (arXiv 2405.04434, sec. 2.1).

    Attributes:
        kv_rank: R_kv = d_c, the cached KV latent.
        q_rank: R_q = d'_c, the query latent; ``None``: no query compression.
        d_head: D, the no-RoPE ("nope") part of each query/key head.
        rope_dim: D_rope, the decoupled RoPE key shared by all heads;
            ``None`` means D/2 rounded to even when ``rope`` is on (0 otherwise);
            0 means no decoupled key.
        v_head_dim: D_v, the value head dim; ``None`` means D.
        coupled_rope: the Tucker paper's simplification (Corollary 3.2.1):
            RoPE acts on the KV latent itself, queries are absorbed, no
            decoupled key (rope_dim must be 0).
        latent_norm: RMSNorm on the query and KV latents (as DeepSeek does);
            a nonlinearity, so such a layer is not an exact Tucker point.
    Modes: "naive" expands per-head keys/values (training form);
    "absorbed" folds W_uk into queries and W_uv into the output, attending
    over the latent as multi-query attention (decode form, sec. 2.1.3).

    See: book/03_mla.
    """

    kv_rank: int
    q_rank: int | None = None
    rope_dim: int | None = None
    v_head_dim: int | None = None
    coupled_rope: bool = False
    latent_norm: bool = False


    @property
    def modes(self) -> tuple[str, ...]:
        """("naive", "absorbed"); only "absorbed" with coupled_rope (RoPE between W_uq and
        W_uk leaves no naive form)."""
        return ("absorbed",) if self.coupled_rope else ("naive", "absorbed")

    @property
    def R_kv(self) -> int:
        return self.kv_rank

    @property
    def D_rope(self) -> int:
        if self.rope_dim is not None:
            return self.rope_dim
        return max(2, 2 * (self.D // 4)) if (self.rope and not self.coupled_rope) else 0

    @property
    def D_v(self) -> int:
        return self.v_head_dim if self.v_head_dim is not None else self.D

    @property
    def softmax_scale(self) -> float:
        if self.scale is not None:
            return self.scale
        # DeepSeek scales by the full query/key head dim, nope + rope.
        return 1.0 / math.sqrt(self.D + self.D_rope)

    def _validate(self) -> None:
        C = self.d_model
        self._check_int("kv_rank", 1, C)
        if self.q_rank is not None:
            self._check_int("q_rank", 1, C)
        if self.v_head_dim is not None:
            self._check_int("v_head_dim", 1)
        for flag in ("coupled_rope", "latent_norm"):
            if not isinstance(getattr(self, flag), bool):
                self._fail(flag, "a bool", getattr(self, flag))
        if self.rope_dim is not None:
            self._check_int("rope_dim", 0)
        dr = self.D_rope
        if not self.rope:
            if dr:
                self._fail("rope_dim", "0 or None when rope=False", self.rope_dim)
            if self.coupled_rope:
                self._fail("coupled_rope", "False when rope=False", True)
        elif self.coupled_rope:
            if dr:
                self._fail("rope_dim", "0 or None with coupled_rope=True (no decoupled key)",
                           self.rope_dim)
            self._check_even("kv_rank", self.kv_rank, "coupled RoPE rotates the KV latent")
        else:
            if dr == 0:
                self._fail("rope_dim", "a positive even integer when rope=True and "
                           "coupled_rope=False (the decoupled RoPE key)", self.rope_dim)
            self._check_even("rope_dim", dr, "RoPE rotates pairs")
        if self.kv_rank + dr > C:
            self._fail("kv_rank", f"at most d_model - rope_dim = {C - dr} (the key latent "
                       "[c_kv, k_rope] must fit in d_model)", self.kv_rank)

    def param_count(self) -> int:
        C, H, D, dr, Dv, Rkv = self.C, self.H, self.D, self.D_rope, self.D_v, self.R_kv
        q = C * H * (D + dr) if self.q_rank is None else C * self.q_rank + self.q_rank * H * (D + dr)
        kv = C * (Rkv + dr) + Rkv * H * (D + Dv)
        norms = (Rkv + (self.q_rank or 0)) if self.latent_norm else 0
        return q + kv + H * Dv * C + norms

    def cache_shapes(self):
        shapes = {"c_kv": (self.R_kv,)}
        if self.D_rope:
            shapes["k_rope"] = (self.D_rope,)
        return shapes

    def flops_breakdown(self, context, mode=None):
        mode = self._mode(mode)  # coupled_rope: "absorbed" only
        C, H, D, dr, Dv, Rkv = self.C, self.H, self.D, self.D_rope, self.D_v, self.R_kv
        q = C * H * (D + dr) if self.q_rank is None else C * self.q_rank + self.q_rank * H * (D + dr)
        out = {"q_projection": 2 * q, "kv_down": 2 * C * (Rkv + dr)}
        if mode == "naive":
            out["kv_up"] = 2 * Rkv * H * (D + Dv)
            out["attention"] = 2 * H * context * ((D + dr) + Dv)
            out["output"] = 2 * H * Dv * C
        else:  # W_uk folded into the query, W_uv applied after attention
            out["absorb_q"] = 2 * H * D * Rkv
            out["attention"] = 2 * H * context * ((Rkv + dr) + Rkv)
            out["output"] = 2 * (H * Rkv * Dv + H * Dv * C)
        return out

    def max_ranks(self):
        C, H, Dv, Rkv = self.C, self.H, self.D_v, self.R_kv
        rq = C if self.q_rank is None else self.q_rank
        D, dr = self.D, self.D_rope
        # Each head's W_q[i] W_k[i]^T has rank <= min(D, R_kv) + D_rope.
        per_head = min(D, Rkv) + dr
        qk = (H, min(C, rq, H * per_head), min(C, min(Rkv, H * D) + dr))
        vo = (H, min(C, H * min(Dv, Rkv)), min(C, Rkv, H * Dv))
        return {"qk": _generic_ranks(qk), "vo": _generic_ranks(vo)}


@dataclass(frozen=True, kw_only=True)
class TPAConfig(AttentionConfig):
    """Tensor product attention (arXiv 2501.06425, eq. 3.1): per token,
    Q_t = (1/R_q) A_q(x_t)^T B_q(x_t) with A (R, H) and B (R, D); same for K, V.

    Attributes:
        q_rank, k_rank, v_rank: R_q, R_k, R_v. ``q_rank=None`` is TPA-KVonly
            (a standard query projection).
        contextual_a: head factors A computed from x (True, the paper's TPA) or
            learned constants (the "non-contextual A" variant, sec. 2.5), under
            which MHA, MQA and GQA are exact special cases (sec. 4).
    Modes: "naive" forms per-head q, k, v and calls ``attend``; "factored" computes
    logits and values from the factors (App. A; FlashTPA decoding, sec. 5).

    See: book/11_tpa_vs_tucker.
    """

    q_rank: int | None
    k_rank: int
    v_rank: int
    contextual_a: bool = True

    modes: ClassVar[tuple[str, ...]] = ("naive", "factored")

    @property
    def kv_only(self) -> bool:
        return self.q_rank is None

    def _validate(self) -> None:
        for f in ("k_rank", "v_rank") + (() if self.q_rank is None else ("q_rank",)):
            self._check_int(f, 1, self.d_model)
        if not isinstance(self.contextual_a, bool):
            self._fail("contextual_a", "a bool", self.contextual_a)
        if self.rope:
            self._check_even("d_head", self.D, "RoPE rotates pairs of the B factors' dims")

    def _ranks(self):
        return [r for r in (self.q_rank, self.k_rank, self.v_rank) if r is not None]

    def param_count(self) -> int:
        C, H, D = self.C, self.H, self.D
        R = sum(self._ranks())
        factors = R * (C * D + H) if not self.contextual_a else C * R * (H + D)
        return factors + (C * H * D if self.kv_only else 0) + H * D * C

    def cache_shapes(self):
        Rk, Rv, H, D = self.k_rank, self.v_rank, self.H, self.D
        shapes = {"b_k": (Rk, self.D), "b_v": (Rv, D)}
        if self.contextual_a:
            shapes = {"a_k": (Rk, H), "b_k": (Rk, D), "a_v": (Rv, H), "b_v": (Rv, D)}
        return shapes

    def flops_breakdown(self, context, mode=None):
        mode = self._mode(mode)
        C, H, D, S = self.C, self.H, self.D, context
        Rk, Rv = self.k_rank, self.v_rank
        R = sum(self._ranks())
        proj = C * R * D + (C * R * H if self.contextual_a else 0) + (C * H * D if self.kv_only else 0)
        out = {"factors": 2 * proj}
        if mode == "naive":
            out["materialize_qkv"] = 2 * R * H * D
            out["attention"] = 2 * H * S * (D + D)
        else:  # App. A: logits and values straight from the factors
            if self.kv_only:
                out["query_key"] = 2 * H * S * Rk * D
            else:
                out["query_key"] = 2 * (S * self.q_rank * Rk * D + H * S * self.q_rank * Rk)
            out["key_heads"] = 2 * H * S * Rk
            out["values"] = 2 * H * S * Rv * (1 + D)
        out["output"] = 2 * H * D * C
        return out

    def max_ranks(self):
        if self.contextual_a:
            raise ValueError("TPAConfig.contextual_a=True: Q and K are quadratic in x, so the "
                             "layer has no fixed weight tensors; use contextual_a=False")
        C, H, D = self.C, self.H, self.D
        rq = min(C, H * D) if self.kv_only else min(C, self.q_rank * D, H * D)
        # with constant factors every head's W_qk[i] mixes the R_q R_k fixed matrices
        # Wb_q[r] Wb_k[u]^T, so the head mode has rank <= R_q R_k (KV-only: W_q[i] is free)
        rh = H if self.kv_only else min(H, self.q_rank * self.k_rank)
        qk = (rh, rq, min(C, self.k_rank * D, H * D))
        vo = (H, min(C, H * D), min(C, self.v_rank * D, H * D))
        return {"qk": _generic_ranks(qk), "vo": _generic_ranks(vo)}


ROPE_LAYOUTS = ("latent", "block", "tail")


@dataclass(frozen=True, kw_only=True)
class TuckerConfig(AttentionConfig):
    """Tucker attention (arXiv 2603.30033, Definition 2.1).

    W_qk = core_qk x1 U_head_qk x2 U_q x3 U_k and W_vo = core_vo x1 U_head_vo
    x2 U_o x3 U_v, each (H, C, C), never formed in the forward pass.

    Attributes:
        ranks_qk: (r_head, r_q, r_k) of the query-key tensor.
        ranks_vo: (r_head, r_o, r_v) of the value-output tensor.
        shared_kv: one latent for keys and values (U_v = U_k, needs r_v = r_k).
        rope_layout: where latent RoPE rotates the r_k key latent:
            "latent" (the paper: all r_k dims, frequencies over r_k),
            "block" (each block of ``rope_dim`` dims its own RoPE: MHA/GQA with
            RoPE are exact Tucker points), "tail" (only the last ``rope_dim``
            dims: DeepSeek MLA with decoupled RoPE is an exact Tucker point).
        rope_dim: the block size ("block") or slice size ("tail").
        scale: default 1/sqrt(C/H), the paper's (the official kernel uses
            1/sqrt(r_k); which the paper's experiments used is not settled).

    See: book/06_tucker.
    """

    ranks_qk: tuple[int, int, int]
    ranks_vo: tuple[int, int, int]
    shared_kv: bool = False
    rope_layout: str = "latent"
    rope_dim: int | None = None


    @property
    def softmax_scale(self) -> float:
        return self.scale if self.scale is not None else 1.0 / math.sqrt(self.d_model / self.n_heads)

    @property
    def r_k(self) -> int:
        return self.ranks_qk[2]

    @property
    def r_v(self) -> int:
        return self.ranks_vo[2]

    def _validate(self) -> None:
        C, H = self.d_model, self.n_heads
        for name in ("ranks_qk", "ranks_vo"):
            r = getattr(self, name)
            if not (isinstance(r, (tuple, list)) and len(r) == 3):
                self._fail(name, "a tuple (r_head, r_embed, r_latent) of 3 integers", r)
            object.__setattr__(self, name, tuple(r))
            for i, (lab, hi) in enumerate((("r_head", H), ("r_embed", C), ("r_latent", C))):
                v = r[i]
                if not _is_int(v) or not 1 <= v <= hi:
                    dim = "n_heads" if i == 0 else "d_model"
                    self._fail(f"{name}[{i}] ({lab})", f"an integer in [1, {hi}] ({dim})", v)
        if not isinstance(self.shared_kv, bool):
            self._fail("shared_kv", "a bool", self.shared_kv)
        if self.shared_kv and self.r_k != self.r_v:
            self._fail("ranks_vo[2]", f"equal to ranks_qk[2]={self.r_k} when shared_kv=True", self.r_v)
        if not isinstance(self.rope_layout, str) or self.rope_layout not in ROPE_LAYOUTS:
            self._fail("rope_layout", f"one of {ROPE_LAYOUTS}", self.rope_layout)
        if not self.rope:  # as MLA: no RoPE settings without RoPE
            if self.rope_layout != "latent":
                self._fail("rope_layout", "'latent' (the default) when rope=False", self.rope_layout)
            if self.rope_dim is not None:
                self._fail("rope_dim", "None when rope=False", self.rope_dim)
            return
        if self.rope_layout == "latent":
            if self.rope_dim is not None:
                self._fail("rope_dim", "None with rope_layout='latent' (all r_k dims rotate)",
                           self.rope_dim)
            self._check_even("ranks_qk[2]", self.r_k, "latent RoPE rotates pairs of r_k dims")
            return
        self._check_int("rope_dim", 2, self.r_k)
        self._check_even("rope_dim", self.rope_dim, "RoPE rotates pairs")
        if self.rope_layout == "block" and self.r_k % self.rope_dim:
            self._fail("rope_dim", f"a divisor of ranks_qk[2]={self.r_k} with rope_layout='block'",
                       self.rope_dim)

    def param_count(self) -> int:
        C, H = self.C, self.H
        (a, b, c), (d, e, f) = self.ranks_qk, self.ranks_vo
        qk = a * b * c + H * a + C * b + C * c
        vo = d * e * f + H * d + C * e + (0 if self.shared_kv else C * f)
        return qk + vo

    def cache_shapes(self):
        if self.shared_kv:
            return {"kv_latent": (self.r_k,)}
        return {"k_latent": (self.r_k,), "v_latent": (self.r_v,)}

    def flops_breakdown(self, context, mode=None):
        self._mode(mode)
        C, H = self.C, self.H
        (_, rq, rk), (_, ro, rv) = self.ranks_qk, self.ranks_vo
        latents = C * rq + C * rk + (0 if self.shared_kv else C * rv)
        return {"latents": 2 * latents, "query_core": 2 * H * rq * rk,
                "attention": 2 * H * context * (rk + rv), "output": 2 * (H * rv * ro + ro * C)}

    def fixed_flops(self, mode=None):
        # T_i = sum_s U_head[i, s] core[s]: folding the head factor into each core.
        (a, b, c), (d, e, f) = self.ranks_qk, self.ranks_vo
        return 2 * self.H * (a * b * c + d * e * f)

    def max_ranks(self):
        return {"qk": _generic_ranks(self.ranks_qk), "vo": _generic_ranks(self.ranks_vo)}


CONFIGS: dict[str, type[AttentionConfig]] = {
    "mha": MHAConfig, "gqa": GQAConfig, "mqa": GQAConfig,
    "mla": MLAConfig, "tpa": TPAConfig, "tucker": TuckerConfig,
}


def make_config(variant: str, **kwargs) -> AttentionConfig:
    """Build a config by variant name: ``make_config("gqa", d_model=64, n_heads=4, n_kv_heads=2)``.

    "mqa" is ``GQAConfig`` with ``n_kv_heads=1``.
    """
    if not isinstance(variant, str) or variant not in CONFIGS:
        raise ValueError(f"variant must be one of {sorted(CONFIGS)}; got {variant!r}")
    if variant == "mqa":
        kwargs.setdefault("n_kv_heads", 1)
    cls = CONFIGS[variant]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; fields are {sorted(known)}")
    return cls(**kwargs)


def standard_configs(d_model: int = 768, n_heads: int = 12, **common) -> dict[str, AttentionConfig]:
    """One representative config per variant at a model size, for tables and plots.

    GQA uses H/4 KV heads (Llama 3's ratio); MLA R_kv = 4D and D_rope = D/2
    (DeepSeek-V2's ratios); TPA (R_q, R_k, R_v) = (6, 2, 2) (the TPA paper's
    experiments); Tucker [8, 128, 64] (the Tucker paper's GPT-2 setting),
    each rank capped by its dimension.
    """
    check_int("standard_configs", "d_model", d_model, 4)
    check_int("standard_configs", "n_heads", n_heads, 1, d_model // 2)
    if d_model % n_heads or (d_model // n_heads) % 2:
        raise ValueError(f"standard_configs: n_heads must divide d_model={d_model} into even head dims "
                         f"(RoPE and MLA's rope_dim); got {n_heads}")
    C, H = d_model, n_heads
    D = C // H
    dr = max(2, 2 * (D // 4)) if common.get("rope", True) else 0  # MLAConfig's default rope_dim
    t = (min(8, H), min(128, C), min(64, C))
    return {
        "MHA": MHAConfig(d_model=C, n_heads=H, **common),
        f"GQA-{max(1, H // 4)}": GQAConfig(d_model=C, n_heads=H, n_kv_heads=max(1, H // 4), **common),
        "MQA": GQAConfig(d_model=C, n_heads=H, n_kv_heads=1, **common),
        "MLA": MLAConfig(d_model=C, n_heads=H, kv_rank=min(4 * D, C - D // 2, C - dr), **common),
        "TPA": TPAConfig(d_model=C, n_heads=H, q_rank=min(6, C), k_rank=2, v_rank=2, **common),
        "Tucker": TuckerConfig(d_model=C, n_heads=H, ranks_qk=t, ranks_vo=t, **common),
    }
