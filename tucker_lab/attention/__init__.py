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

# config class -> module class. A new variant needs, besides its entry here: its config
# (config.py: an AttentionConfig subclass, validated in __post_init__, with its
# accounting, and a name in config.CONFIGS for make_config); its module (one file here:
# an AttentionModule with config_class, forward, decode_query, decode_core,
# _decode_static, and head_projections if it is linear in x); its float64 spec (a
# function in reference.py and a branch of reference.forward); and cases in
# tests/cases.py (test_every_registered_config_class_has_a_case fails until it has
# them). The tests and the decode/prefill benchmarks then cover it with no other change
# (an entry in config.standard_configs puts it in the standard tables, the accounting CLI
# and bench's defaults; conversions to it, convert.py, are optional).
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
