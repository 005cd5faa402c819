"""tucker_lab: MHA, MQA, GQA, MLA, TPA and Tucker attention as one family.

    import tucker_lab as tkl
    cfg  = tkl.TuckerConfig(d_model=768, n_heads=12, ranks_qk=(8, 128, 64), ranks_vo=(8, 128, 64))
    attn = tkl.build_attention(cfg)      # nn.Module, (B, T, C) -> (B, T, C)
    cfg.param_count(); cfg.cache_shapes(); cfg.kv_cache_bytes_per_token(torch.bfloat16)
    tkl.to_tucker(layer)                 # exact Tucker form of an MHA/MQA/GQA/MLA layer
    tkl.attention_tensors(layer)         # (W_qk, W_vo), each (H, C, C)

Notation (book math, shape comments, einsum strings, lower case in einsums):

    B  batch                 H  query heads           C  d_model
    T  query positions       G  key/value heads       R  a rank (R_q, R_kv, r_k, ...)
    S  key/cache positions   D  head dim

Tensors are sequence-major, (B, T, H, D); only kernels see (B, H, T, D).
RoPE is half-split ("rotate-half"), angles in float32. See: book/notation.
"""
from .attention import (AttentionModule, GQAAttention, MLAttention, TPAttention, TuckerAttention,
                        VARIANTS, build_attention)
from .config import (AttentionConfig, GQAConfig, MHAConfig, MLAConfig, TPAConfig, TuckerConfig,
                     make_config, standard_configs)
from .convert import attention_tensors, to_tpa, to_tucker
from .compression import compress, compress_model, rank_profile, to_gqa, to_mla
from .hf import from_hf
from .pretrained import load_pretrained, perplexity
from .cache import FactorCache
from .static_decode import StaticDecoder
from .functional import attend
from .models import LMConfig, TinyLM, TinyViT, ViTConfig, generate
from .train import History, TrainConfig, train
from .rope import apply_rope
from . import reference, tensor

# Submodules with command-line entry points or optional dependencies load on first use, so
# that `python -m tucker_lab.accounting` does not find itself already imported and a core
# install (torch, numpy, tensorly, tqdm) imports without matplotlib, ipywidgets, altair,
# scikit-learn, Triton or transformers. The modules imported above must stay that light
# (tests/test_install.py checks it).
_LAZY = ("accounting", "bench", "data", "exercises", "experiments", "kernels", "notebook", "plots",
         "real_model", "static", "widgets")


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tucker_lab' has no attribute {name!r}")


__version__ = "0.1.0"

# `plots` and `widgets` are left out of __all__ although tkl.plots and tkl.widgets load on use:
# they need the extras `plot` and `widgets`, and `from tucker_lab import *` must work without.
__all__ = [
    "AttentionConfig", "MHAConfig", "GQAConfig", "MLAConfig", "TPAConfig", "TuckerConfig",
    "make_config", "standard_configs", "build_attention", "VARIANTS", "AttentionModule",
    "GQAAttention", "MLAttention", "TPAttention", "TuckerAttention", "attention_tensors",
    "to_tucker", "to_tpa", "attend", "apply_rope", "accounting", "exercises", "reference",
    "tensor", "FactorCache", "LMConfig", "TinyLM", "generate",
    "ViTConfig", "TinyViT", "TrainConfig", "History", "train", "data", "compress", "compress_model",
    "rank_profile", "to_gqa", "to_mla", "from_hf", "load_pretrained", "perplexity", "pretrained", "notebook",
    "static", "StaticDecoder",
]
