"""Exercises of chapter 13 (ranks of trained models, post-hoc compression). See book/13_compression."""
import torch

from ..attention import build_attention
from ..compression import compress, compression_error, to_gqa, to_mla
from ..config import MHAConfig, TuckerConfig
from ..convert import attention_tensors
from ..tensor import multilinear_singular_values
from . import exercise, seeded_layer


def _layer():
    """The random float64 MHA layer of exercises 13.3 and 13.4 (C = 32, H = 4, no RoPE, seed 13)."""
    return seeded_layer(MHAConfig(d_model=32, n_heads=4, rope=False, causal=False), seed=13)


@exercise("13.1", "How many attention parameters per layer does Tucker [4, 24, 24] (the same ranks for both "
          "tensors, separate key and value latents) have at the ViT size of this chapter, d_model = 64 "
          "and 8 heads?",
          hint="2 (r1 r2 r3 + H r1 + C r2 + C r3).")
def _():
    r = (4, 24, 24)
    return TuckerConfig(d_model=64, n_heads=8, ranks_qk=r, ranks_vo=r, causal=False, rope=False).param_count()


@exercise("13.2", "Convert an MHA layer with d_model = 64 and 8 heads (no RoPE) to GQA with 2 KV heads "
          "(tkl.to_gqa) and to MLA with kv_rank = 16 (tkl.to_mla). How many attention parameters does each "
          "have, and what is the largest key-mode rank of each one's W_qk? Answer a dict "
          "{'gqa': (params, key rank), 'mla': (params, key rank)}.",
          hint="GQA keeps W_q and W_o (C x C each) and has G D-dim key and value heads; MLA keeps W_q "
               "and W_o and adds W_dkv (C x R) and the two up-projections (R x C each). The key fibres "
               "lie in the span of G D key columns, or of the R-dim latent.")
def _():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        mha = build_attention(MHAConfig(d_model=64, n_heads=8, rope=False, causal=False))
        g, m = to_gqa(mha, 2, method="svd"), to_mla(mha, 16)
    return {"gqa": (g.cfg.param_count(), g.cfg.max_ranks()["qk"][2]),
            "mla": (m.cfg.param_count(), m.cfg.max_ranks()["qk"][2])}


@exercise("13.3", "Build the layer torch.manual_seed(13); layer = tkl.build_attention(tkl.MHAConfig("
          "d_model=32, n_heads=4, rope=False, causal=False)).double() and compress it with "
          "tkl.compress(layer, (2, 16, 16), (2, 16, 16)) (HOSVD). What are the relative errors of its two "
          "weight tensors? Answer a dict {'qk': ..., 'vo': ...}.",
          hint="tkl.compression.compression_error(layer, compressed).", rtol=1e-6)
def _():
    layer = _layer()
    return compression_error(layer, compress(layer, (2, 16, 16), (2, 16, 16)))


@exercise("13.4", "For the same layer, what is the smallest relative error that ANY Tucker approximation of "
          "its W_qk with ranks (2, 16, 16) can have, according to the lower bound of chapter 4 "
          "(the square root of the largest discarded mode energy, divided by ||W_qk||)? Compare it "
          "with your answer to 13.3. Answer a float.",
          hint="tkl.tensor.multilinear_singular_values(W_qk): per mode, sum the squares beyond the "
               "first r_n, take the largest of the three.", rtol=1e-6)
def _():
    W_qk, _ = attention_tensors(_layer())
    d = [(s[r:] ** 2).sum().item() for s, r in zip(multilinear_singular_values(W_qk), (2, 16, 16))]
    return (max(d) / W_qk.norm().item() ** 2) ** 0.5
