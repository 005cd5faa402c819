"""Exercises of chapter 10 (flash attention and decode kernels). See book/10_flash."""
import torch

from .. import functional
from ..config import MLAConfig, standard_configs
from ..notebook import spy_attend
from . import exercise


@exercise("10.1", "In the benchmark's standard configurations (tkl.standard_configs(2048, 16)), "
          "absorbed MLA decodes as multi-query attention over its latent. What are the head dims "
          "(E, F) of the query/key and of the value that reach `attend` in a decode step? "
          "Answer a tuple.",
          hint="The key is the packed latent [c_kv, k_rope], the value is c_kv alone: "
               "cfg.R_kv and cfg.D_rope.")
def _():
    cfg = standard_configs(2048, 16)["MLA"]
    return (cfg.R_kv + cfg.D_rope, cfg.R_kv)


@exercise("10.2", "A GQA layer with 32 query heads, 8 KV heads of dim 128 decodes a batch of 4: "
          "`attend` receives q (4, 1, 32, 128) and k, v (4, S, 8, 128). What shape does the query "
          "have after `attend` folds the heads, when it reaches the backend? Answer a tuple.",
          hint="Each KV head serves H/G query heads; those move into the query axis, so the "
               "backend sees G heads with T * H/G queries each.")
def _():
    B, H, G, D, S = 4, 32, 8, 128, 16
    q = torch.zeros(B, 1, H, D)
    k = v = torch.zeros(B, S, G, D)
    with spy_attend(functional, name="backend") as calls:  # the folded call
        functional.attend(q, k, v, scale=1.0, causal=True, impl="einsum")
    return calls[0]["q"]


@exercise("10.3", "A split-KV decode kernel cuts one sequence's cache into three splits. For one "
          "head, the log-sum-exps of the logits in the three splits are 2.0, 0.5 and 1.0. With "
          "what weights does the merge multiply the three partial outputs? Answer a tuple of "
          "three floats.",
          hint="The weight of split j is exp(lse_j - lse), where lse is the log-sum-exp of "
               "the three: a softmax over the splits.", rtol=1e-4)
def _():
    lse = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    return tuple(torch.softmax(lse, 0).tolist())


@exercise("10.4", "DeepSeek-V2 decodes MLA in absorbed form with 128 heads, D = 128, D_rope = 64, "
          "R_kv = 512 and R_q = 1536 (d_model = 5120). With a bf16 cache, how many attention FLOPs "
          "(logits plus weighted values) does one decode step do per byte of cache it reads? "
          "Compare with an H100's ridge point, about 295 FLOP/byte.",
          hint="Absorbed attention costs 2 H S ((R_kv + D_rope) + R_kv) FLOPs; the cache holds "
               "R_kv + D_rope numbers of 2 bytes per token. cfg.flops_breakdown(S, mode='absorbed').",
          rtol=1e-3)
def _():
    cfg = MLAConfig(d_model=5120, n_heads=128, d_head=128, kv_rank=512, q_rank=1536, rope_dim=64)
    S = 4096
    flops = cfg.flops_breakdown(S, mode="absorbed")["attention"]
    return flops / (S * cfg.kv_cache_bytes_per_token(torch.bfloat16))
