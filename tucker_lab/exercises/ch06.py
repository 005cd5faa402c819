"""Exercises of chapter 6 (Tucker attention). See book/06_tucker."""
import torch

from ..config import GQAConfig, MHAConfig, TuckerConfig
from ..convert import attention_tensors
from ..tensor import multilinear_rank
from . import exercise, seeded_layer


@exercise("6.1", "How many attention parameters does Tucker [8, 128, 64] (the same ranks for both "
          "tensors) have at GPT-2 small size (d_model = 768, 12 heads) when keys and values share "
          "one latent (shared_kv=True)?",
          hint="Start from 2 (r1 r2 r3 + H r1 + C r2 + C r3); sharing the latent drops U_v, "
               "one C x r_v matrix.")
def _():
    r = (8, 128, 64)
    return TuckerConfig(d_model=768, n_heads=12, ranks_qk=r, ranks_vo=r, shared_kv=True).param_count()


@exercise("6.2", "A model shaped like Llama-3.2-1B (d_model = 2048, 32 heads of dim 64) uses GQA with "
          "8 KV heads. Replace its attention by Tucker [32, 128, 64] with separate key and value "
          "latents. What fraction of the GQA cache per token does Tucker keep? Answer a float "
          "(Tucker / GQA).",
          hint="GQA caches k and v for G heads of D dims; Tucker caches one key latent of r_k and "
               "one value latent of r_v numbers.")
def _():
    gqa = GQAConfig(d_model=2048, n_heads=32, n_kv_heads=8)
    tucker = TuckerConfig(d_model=2048, n_heads=32, ranks_qk=(32, 128, 64), ranks_vo=(32, 128, 64))
    return tucker.kv_cache_elements_per_token() / gqa.kv_cache_elements_per_token()


@exercise("6.3", "At GPT-2 small size and a context of 4096 keys, how many times MHA's attention "
          "FLOPs (logits plus weighted values, one query token) does Tucker [12, 256, 128] spend? "
          "Answer a float.",
          hint="Attention costs 2 H S (r_k + r_v) for Tucker and 2 H S (D + D) for MHA; "
               "cfg.flops_breakdown(context)['attention'].")
def _():
    r = (12, 256, 128)
    tucker = TuckerConfig(d_model=768, n_heads=12, ranks_qk=r, ranks_vo=r)
    mha = MHAConfig(d_model=768, n_heads=12)
    return tucker.flops_breakdown(4096)["attention"] / mha.flops_breakdown(4096)["attention"]


@exercise("6.4", "Build a random Tucker layer with d_model = 64, 8 heads and ranks_qk = ranks_vo = "
          "(6, 48, 4). What is the multilinear rank of its W_qk (tkl.attention_tensors)? Answer a "
          "tuple of 3 integers.",
          hint="A mode-n rank is at most the number of columns of the mode-n unfolding of the core, "
               "the product of the other two ranks.")
def _():
    r = (6, 48, 4)
    layer = seeded_layer(TuckerConfig(d_model=64, n_heads=8, ranks_qk=r, ranks_vo=r), seed=6)
    with torch.no_grad():
        return multilinear_rank(attention_tensors(layer)[0])
