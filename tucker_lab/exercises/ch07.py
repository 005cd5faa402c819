"""Exercises of chapter 7 (the special cases: MHA, MQA, GQA, MLA and constant-A TPA as
Tucker points). See book/07_special_cases."""
import torch

from ..config import GQAConfig, MHAConfig, MLAConfig
from ..convert import to_tucker
from . import exercise, seeded_layer


def _tucker_of(cfg):
    """to_tucker of a seeded random layer (float32 is enough: only the config is read)."""
    return to_tucker(seeded_layer(cfg, seed=0, dtype=torch.float32))


@exercise("7.1", "tkl.to_tucker turns a GQA layer with d_model = 512, 8 query heads and 2 "
          "key/value heads (d_head = 64) into a TuckerAttention. What are its Tucker ranks "
          "ranks_qk = (r_head, r_q, r_k)? Answer a tuple of 3 integers.",
          hint="U_head is the identity, U_q the identity on d_model, and the key latent is the "
          "concatenation of the G key heads.")
def _():
    cfg = GQAConfig(d_model=512, n_heads=8, n_kv_heads=2)
    return _tucker_of(cfg).cfg.ranks_qk


@exercise("7.2", "An MLA layer has d_model = 1024, 8 heads, d_head = 64, kv_rank = 256, "
          "q_rank = 384, rope_dim = 32 (decoupled RoPE) and v_head_dim = 64. Which Tucker ranks "
          "does tkl.to_tucker give it? Answer a dict {'ranks_qk': (..), 'ranks_vo': (..)}.",
          hint="Query basis W_dq; keys and values share one latent [c_kv, k_rope] (the value "
          "core has rope_dim zero columns); output basis the identity on d_model.")
def _():
    cfg = MLAConfig(d_model=1024, n_heads=8, d_head=64, kv_rank=256, q_rank=384, rope_dim=32,
                    v_head_dim=64)
    t = _tucker_of(cfg).cfg
    return {"ranks_qk": t.ranks_qk, "ranks_vo": t.ranks_vo}


@exercise("7.3", "The Tucker form of GQA with RoPE (d_model = 768, 12 query heads, 4 key/value "
          "heads) rotates its key latent in independent blocks. Give (number of blocks, dims per "
          "block). Answer a tuple of 2 integers.",
          hint="Each key head keeps its own RoPE: cfg.rope_dim is the block size, cfg.ranks_qk[2] "
          "the latent size.")
def _():
    t = _tucker_of(GQAConfig(d_model=768, n_heads=12, n_kv_heads=4)).cfg
    return (t.r_k // t.rope_dim, t.rope_dim)


@exercise("7.4", "Convert an MHA layer with d_model = 768 and 12 heads (GPT-2 small) with "
          "tkl.to_tucker. How many parameters does the resulting Tucker layer have, as a "
          "multiple of the MHA layer's (cfg.param_count())? Answer a float.",
          hint="Each core slice is C x C (the weights sit in the core, padded with zeros), and "
          "U_q, U_k, U_o, U_v are C x C too.", rtol=1e-4)
def _():
    cfg = MHAConfig(d_model=768, n_heads=12)
    return _tucker_of(cfg).cfg.param_count() / cfg.param_count()
