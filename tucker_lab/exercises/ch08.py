"""Exercises of chapter 8 (RoPE in every variant). See book/08_rope."""
import torch

from ..config import TuckerConfig
from ..rope import apply_rope, rope_angles, rope_frequencies
from . import exercise


@exercise("8.1", "Llama-3-8B-shaped GQA has G = 8 key heads of D = 128 dims, so its key latent has "
          "1024 dims and per-head RoPE is the 'block' layout with rope_dim = 128. How many distinct "
          "rotation frequencies does that layout use, and how many would the Tucker paper's latent "
          "RoPE ('full') over all 1024 dims use? Answer a tuple (block, full).",
          hint="Every block repeats the same frequencies; one RoPE over n dims has n/2 of them. "
               "tkl.rope.rope_frequencies(n, layout=..., rope_dim=...).unique().")
def _():
    block = rope_frequencies(1024, layout="block", rope_dim=128)
    full = rope_frequencies(1024, layout="full")
    return (block.unique().numel(), full.unique().numel())


@exercise("8.2", "Compute RoPE angles in bfloat16 with tkl.rope.rope_angles(pos, 64, "
          "dtype=torch.bfloat16) at position 50000. By how many radians is the angle of the fastest "
          "pair (j = 0, theta_0 = 1) off from the exact angle? Answer a float.",
          hint="bfloat16 keeps 8 significant bits: between 2^15 and 2^16 neighbouring bfloat16 "
               "numbers are 256 apart, so the position itself is rounded.")
def _():
    pos = torch.tensor([50000])
    approx = rope_angles(pos, 64, dtype=torch.bfloat16)[0, 0].double()
    exact = rope_angles(pos, 64, dtype=torch.float64)[0, 0]
    return (approx - exact).abs().item()


@exercise("8.3", "Per-head RoPE with D = 128 and base 10^4: the logit of an all-ones query and an "
          "all-ones key is 1 (after dividing by D) at offset 0 and falls as the offset t - s grows. "
          "At which smallest offset does it first become negative? Answer an integer.",
          hint="Rotate a tensor of ones of shape (1, S, 128) at positions 0..S-1 with tkl.apply_rope, "
               "take its dot product with the unrotated ones, and look for the first negative entry; "
               "S = 4096 is enough.")
def _():
    S, n = 4096, 128
    ones = torch.ones(1, S, n, dtype=torch.float64)
    logit = (apply_rope(ones, torch.arange(S)) * ones).sum(-1)[0] / n
    return int((logit < 0).nonzero()[0].item())


@exercise("8.4", "Two Tucker layers with r_k = 64, one with separate key and value latents and one "
          "with shared_kv=True, take a decoding step after which the cache holds S = 4096 tokens "
          "(the new one included). How many cached key-latent numbers does each rotate in that step? "
          "Answer a tuple (separate, shared).",
          hint="Separate latents cache the key already rotated, so only the new token's key is "
               "rotated; a shared latent is cached unrotated and every key is rotated as it is read.")
def _():
    S, r = 4096, (8, 128, 64)
    sep = TuckerConfig(d_model=768, n_heads=12, ranks_qk=r, ranks_vo=r)
    shared = TuckerConfig(d_model=768, n_heads=12, ranks_qk=r, ranks_vo=r, shared_kv=True)
    return (sep.cache_shapes()["k_latent"][0], S * shared.cache_shapes()["kv_latent"][0])
