"""Exercises of chapter 5 (attention as a tensor). See book/05_attention_tensor."""
import torch

from ..config import GQAConfig, MLAConfig
from ..convert import attention_tensors
from ..tensor import mode_product, multilinear_rank, unfold
from . import exercise, seeded_layer


@exercise("5.1", "Llama-3-8B attention has d_model = 4096, 32 query heads of dim 128 and 8 KV heads "
          "(GQA). What are the largest multilinear ranks (head, query, key) its W_qk can have? "
          "Answer a tuple of 3 integers.",
          hint="Each query head's W_k[i] is one of the G key heads, so the key fibres live in the "
               "span of G * D columns; the query fibres in the span of all H * D query columns.")
def _():
    return GQAConfig(d_model=4096, n_heads=32, n_kv_heads=8).max_ranks()["qk"]


@exercise("5.2", "An MLA layer shaped like DeepSeek-V2-Lite: d_model = 2048, 16 heads of dim 128, "
          "R_kv = 512, no query compression, decoupled RoPE key D_rope = 64. At relative position 0, "
          "what are the largest multilinear ranks of W_qk and of W_vo? Answer a dict "
          "{'qk': (head, query, key), 'vo': (head, output, value)}.",
          hint="Keys come from [c_kv, k_rope], a latent of R_kv + D_rope dims; values from c_kv "
               "alone; without a query latent the query mode is bounded only by C (and H(D + D_rope)).")
def _():
    return MLAConfig(d_model=2048, n_heads=16, kv_rank=512, rope_dim=64).max_ranks()


@exercise("5.3", "W_qk of GPT-2 small has shape (12, 768, 768). What is the shape of its query-mode "
          "unfolding (the paper's mode 2, tkl.tensor.unfold(W, 1))? Answer a tuple of 2 integers.",
          hint="The mode-n unfolding has one row per index of mode n and one column per mode-n "
               "fibre, i.e. per combination of the other indices.")
def _():
    return tuple(unfold(torch.empty(12, 768, 768), 1).shape)


@exercise("5.4", "Take W_qk of a random MQA layer with d_model = 64 and 8 heads (multilinear rank "
          "(8, 64, 8)) and multiply its key mode by a random 64 x 64 matrix of rank 5: "
          "W x_3 M (tkl.tensor.mode_product(W, M, 2)). What is the multilinear rank of the result? "
          "Answer a tuple of 3 integers.",
          hint="unfold(W x_n M, n) = M unfold(W, n) caps mode n at rank(M); and no mode's rank "
               "exceeds the product of the other two ranks.")
def _():
    g = torch.Generator().manual_seed(5)
    layer = seeded_layer(GQAConfig(d_model=64, n_heads=8, n_kv_heads=1, rope=False), seed=5)
    with torch.no_grad():
        W_qk, _ = attention_tensors(layer)
        M = (torch.randn(64, 5, generator=g, dtype=torch.float64)
             @ torch.randn(5, 64, generator=g, dtype=torch.float64))
        return multilinear_rank(mode_product(W_qk, M, 2))
