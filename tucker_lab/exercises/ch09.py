"""Exercises of chapter 9 (caching factors and decoding). See book/09_decoding."""
import torch

from ..accounting import accounting_rows
from ..cache import FactorCache
from ..config import TPAConfig, TuckerConfig, standard_configs
from ..functional import causal_mask
from . import exercise


@exercise("9.1", "A Tucker layer with the Tucker paper's GPT-2 ranks [8, 128, 64] for both tensors "
          "(d_model = 768, 12 heads) and one shared key/value latent (shared_kv=True) decodes a batch "
          "of 8 sequences. After a prefill of 4096 tokens into a bfloat16 cache, how many bytes does "
          "cache.nbytes() report?",
          hint="The cache holds B x tokens x (numbers per token) x (bytes per number); with shared_kv "
          "one latent of r_k numbers per token.")
def _():
    cfg = TuckerConfig(d_model=768, n_heads=12, ranks_qk=(8, 128, 64), ranks_vo=(8, 128, 64), shared_kv=True)
    B, T = 8, 4096
    cache = FactorCache(cfg.cache_shapes(), B, T, dtype=torch.bfloat16, device="meta")
    cache.update(0, **{n: torch.empty(B, T, *s, dtype=torch.bfloat16, device="meta")
                       for n, s in cfg.cache_shapes().items()})
    return cache.nbytes()


@exercise("9.2", "A chunk of 4 tokens is decoded with start_pos = 10 (the cache held 10 tokens). "
          "How many (query, key) pairs does the causal mask of that call allow?",
          hint="After the call the cache holds S = start_pos + T keys; query j sits at position "
          "start_pos + j and sees keys 0 .. start_pos + j (tkl.functional.causal_mask(T, S)).")
def _():
    T, start_pos = 4, 10
    return int(causal_mask(T, start_pos + T).sum())


@exercise("9.3", "A model shaped like Llama-3-8B (d_model = 4096, 32 heads, 32 layers) decodes at a "
          "context of 32,768 tokens with a bfloat16 cache, and 80 GiB are available for the cache "
          "alone. What is the largest batch for GQA with 8 KV heads, and for Tucker [8, 128, 64] "
          "(tkl.standard_configs(4096, 32))? Answer a tuple (GQA-8, Tucker).",
          hint="Divide 80 GiB by one sequence's cache: tokens x layers x cfg.kv_cache_bytes_per_token(), "
          "and round down.")
def _():
    cfgs = standard_configs(4096, 32)
    rows = accounting_rows({n: cfgs[n] for n in ("GQA-8", "Tucker")}, context=32768, n_layers=32, batch=1)
    return tuple(int(80 // r["cache_GiB"]) for r in rows)


@exercise("9.4", "The TPA paper's decode setting: d_model = 2048, 32 heads of dim 64, ranks "
          "(R_q, R_k, R_v) = (16, 1, 1). How many FLOPs per cached key (the part of "
          "cfg.flops_per_token that grows with the context) does one decode step cost in the "
          "'factored' algebra, and how many in the 'naive' one? Answer a tuple (factored, naive).",
          hint="flops_per_token(S + 1, mode) - flops_per_token(S, mode). Factored: 2(R_q R_k D + H R_q R_k) "
          "+ 2 H R_k + 2 H R_v (1 + D); naive: 2 H (D + D).")
def _():
    cfg = TPAConfig(d_model=2048, n_heads=32, d_head=64, q_rank=16, k_rank=1, v_rank=1)
    S = 4096
    return tuple(cfg.flops_per_token(S + 1, m) - cfg.flops_per_token(S, m) for m in ("factored", "naive"))
