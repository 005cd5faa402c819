"""The attention families behind one constructor: ``build_attention(cfg)``."""
from __future__ import annotations

from ..config import AttentionConfig, GQAConfig, MHAConfig, MLAConfig, TPAConfig, TuckerConfig
from .base import AttentionModule
from .mha import GQAAttention
from .mla import MLAttention
from .tpa import TPAttention
from .tucker import TuckerAttention

__all__ = ["AttentionModule", "GQAAttention", "MLAttention", "TPAttention", "TuckerAttention",
           "VARIANTS", "build_attention"]

# config class -> module class; a new variant is one entry here plus its config.
VARIANTS: dict[type[AttentionConfig], type[AttentionModule]] = {
    MHAConfig: GQAAttention, GQAConfig: GQAAttention, MLAConfig: MLAttention,
    TPAConfig: TPAttention, TuckerConfig: TuckerAttention,
}


def build_attention(cfg: AttentionConfig, *, impl: str = "auto", mode: str | None = None) -> AttentionModule:
    """The attention layer for a config: (B, T, C) -> (B, T, C).

    Args:
        cfg: MHAConfig, GQAConfig, MLAConfig, TPAConfig or TuckerConfig.
        impl: kernel, "auto" | "flash" | "sdpa" | "einsum" (see functional.attend).
        mode: algebra where a family has several (MLA: "naive" | "absorbed").
    """
    cls = VARIANTS.get(type(cfg))
    if cls is None:
        raise TypeError(f"build_attention takes one of {[c.__name__ for c in VARIANTS]}; got "
                        f"{type(cfg).__name__} (use tkl.make_config(name, ...) to build one by name)")
    return cls(cfg, impl=impl, mode=mode)
