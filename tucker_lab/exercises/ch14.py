"""Exercises of chapter 14 (a real model under the microscope). See book/14_pretrained."""
import torch

from ..config import GQAConfig, TuckerConfig
from ..convert import to_tucker
from . import exercise, seeded_layer

SMOL = dict(d_model=576, n_heads=9, n_kv_heads=3, d_head=64, rope_base=1e5)  # one SmolLM2-135M layer


@exercise("14.1", "One attention layer of SmolLM2-135M is GQA with d_model = 576, 9 query heads, 3 KV heads "
          "of dimension 64 and RoPE. How many parameters does it have, and how many bytes per token does "
          "its KV cache hold in bfloat16? Answer a tuple (params, bytes).",
          hint="W_q and W_o are C x H D each, W_k and W_v C x G D each; the cache holds G D keys and G D "
               "values per token, 2 bytes each.")
def _():
    cfg = GQAConfig(**SMOL)
    return cfg.param_count(), cfg.kv_cache_bytes_per_token(torch.bfloat16)


@exercise("14.2", "tkl.to_tucker writes that layer exactly in Tucker form. What are its ranks, and how many "
          "parameters does the exact Tucker form have as a multiple of the GQA layer's? Answer a tuple "
          "(ranks_qk, ranks_vo, ratio).",
          hint="Build tkl.build_attention(tkl.GQAConfig(d_model=576, n_heads=9, n_kv_heads=3, d_head=64)), "
               "convert it, and read .cfg.ranks_qk, .cfg.ranks_vo and .cfg.param_count().", rtol=1e-9)
def _():
    t = to_tucker(seeded_layer(GQAConfig(**SMOL), seed=14, dtype=torch.float32))
    return t.cfg.ranks_qk, t.cfg.ranks_vo, t.cfg.param_count() / GQAConfig(**SMOL).param_count()


@exercise("14.3", "With RoPE, compress keeps the key latent whole: G D = 192 dims in blocks of 64 rotated "
          "like the original heads. What is the smallest share of the GQA layer's parameters that ANY "
          "Tucker layer with that key latent can have, i.e. Tucker ranks (1, 1, 192) and (1, 1, 1), "
          "block RoPE of 64 dims? Answer a float between 0 and 1.",
          hint="tkl.TuckerConfig(d_model=576, n_heads=9, ranks_qk=(1, 1, 192), ranks_vo=(1, 1, 1), "
               "rope_layout='block', rope_dim=64).param_count() over the GQA count; U_k alone is 576 x 192.")
def _():
    t = TuckerConfig(d_model=576, n_heads=9, ranks_qk=(1, 1, 192), ranks_vo=(1, 1, 1), rope_layout="block",
                     rope_dim=64, rope_base=1e5)
    return t.param_count() / GQAConfig(**SMOL).param_count()
