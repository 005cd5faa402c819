"""Exercises of chapter 11 (TPA and Tucker side by side). See book/11_tpa_vs_tucker."""
import math

import torch

from ..config import TPAConfig
from . import exercise, seeded_layer


@exercise("11.1", "The TPA paper's XL model (d_model = 1600) uses 78 heads of dim 64 and ranks "
          "(R_q, R_k, R_v) = (6, 2, 2). How many numbers does its KV cache hold per token and "
          "layer?",
          hint="TPA caches A_k, B_k, A_v, B_v: (R_k + R_v)(H + D) numbers.")
def _():
    cfg = TPAConfig(d_model=1600, n_heads=78, d_head=64, q_rank=6, k_rank=2, v_rank=2)
    return cfg.kv_cache_elements_per_token()


@exercise("11.2", "How many attention parameters (no biases) does one TPA-KVonly layer of the TPA "
          "paper's medium model have: d_model = 1024, 29 heads of dim 64, R_k = R_v = 2, a "
          "standard query projection?",
          hint="The K and V factors cost d_model (R_k + R_v)(H + D); W_q and W_o cost "
          "d_model H D each.")
def _():
    cfg = TPAConfig(d_model=1024, n_heads=29, d_head=64, q_rank=None, k_rank=2, v_rank=2)
    return cfg.param_count()


@exercise("11.3", "Scale the input x of a TPA layer with contextual head factors by alpha. Its "
          "pre-softmax logits q_i . k_i scale by alpha**p. What is p? (Measure it: build a "
          "float64 layer, compute q and k with layer.factors and layer.combine.) Answer an "
          "integer.",
          hint="a(x) and b(x) are each linear in x, a query is a product of the two, and a "
          "logit is a product of a query and a key.")
def _():
    layer = seeded_layer(TPAConfig(d_model=32, n_heads=4, q_rank=2, k_rank=2, v_rank=2, rope=False), seed=0)
    x = torch.randn(1, 6, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def logits(x):
        q = layer.combine(*layer.factors(x, "q", None))
        k = layer.combine(*layer.factors(x, "k", None))
        return torch.einsum("bthd,bshd->bhts", q, k)

    alpha = 3.0
    ratio = logits(alpha * x).norm() / logits(x).norm()
    return round(math.log(ratio.item()) / math.log(alpha))


@exercise("11.4", "At GPT-2 small (d_model = 768, 12 heads of dim 64), TPA with ranks (6, 2, 2) "
          "caches some number of elements per token and layer. A Tucker layer with separate key "
          "and value latents of equal size r_k = r_v caches r_k + r_v. Which r_k gives the same "
          "cache as that TPA layer?",
          hint="TPA: (R_k + R_v)(H + D). Tucker: 2 r_k.")
def _():
    return TPAConfig(d_model=768, n_heads=12, q_rank=6, k_rank=2, v_rank=2).kv_cache_elements_per_token() // 2


@exercise("11.5", "Decoding from TPA's factor cache (mode='factored') costs R_q R_k D + H R_q R_k + "
          "H R_k + H R_v (1 + D) multiply-adds per cached key; attention over materialized heads "
          "costs 2 H D. At GPT-2 small (d_model = 768, 12 heads of dim 64) with R_k = R_v = 1, "
          "what is the largest q_rank R_q for which the factored count is at most the naive one? "
          "Answer an integer.",
          hint="Compare cfg.flops_breakdown(S, 'factored') and cfg.flops_breakdown(S, 'naive') "
          "for growing q_rank, counting only the terms that grow with S.")
def _():
    def per_key(cfg, mode, S=1024):  # FLOPs that grow with the context, per key, as multiply-adds
        return (cfg.flops_per_token(2 * S, mode) - cfg.flops_per_token(S, mode)) // (2 * S)

    best = 0
    for q_rank in range(1, 65):
        cfg = TPAConfig(d_model=768, n_heads=12, q_rank=q_rank, k_rank=1, v_rank=1)
        if per_key(cfg, "factored") <= per_key(cfg, "naive"):
            best = q_rank
    return best
