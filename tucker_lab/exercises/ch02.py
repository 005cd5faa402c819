"""Exercises of chapter 2 (MQA and GQA: sharing keys and values). See book/02_mqa_gqa."""
import torch

from ..accounting import accounting_rows
from ..config import GQAConfig
from ..convert import attention_tensors
from ..tensor import multilinear_rank
from . import exercise, seeded_layer


@exercise("2.1", "How many attention parameters does one GQA layer with d_model = 2048, 16 query "
          "heads and 4 key/value heads have (no biases)?",
          hint="W_q and W_o are C x C; W_k and W_v are C x G D with D = C / H.")
def _():
    return GQAConfig(d_model=2048, n_heads=16, n_kv_heads=4).param_count()


@exercise("2.2", "A model shaped like Llama-3-8B (32 layers, d_model = 4096, 32 query heads, "
          "8 key/value heads) decodes a batch of 8 sequences at context 32768 with a bf16 cache. "
          "How many GiB does the KV cache hold?",
          hint="Per token and layer the cache holds 2 G D numbers of 2 bytes; multiply by layers, "
          "batch and context, then divide by 2**30.", rtol=1e-3)
def _():
    cfg = GQAConfig(d_model=4096, n_heads=32, n_kv_heads=8)
    return accounting_rows({"GQA": cfg}, context=32768, n_layers=32, batch=8)[0]["cache_GiB"]


@exercise("2.3", "For GQA with d_model = 4096, 32 query heads and 2 key/value heads, how many "
          "attention FLOPs (logits and weighted values only) does ONE decoded token do per byte "
          "of bf16 KV cache it reads, at context 8192?",
          hint="The FLOPs are those of MHA (4 H S D); the bytes are 2 G D S numbers of 2 bytes.")
def _():
    cfg = GQAConfig(d_model=4096, n_heads=32, n_kv_heads=2)
    S = 8192
    return cfg.flops_breakdown(S)["attention"] / (S * cfg.kv_cache_bytes_per_token(torch.bfloat16))


@exercise("2.4", "Build a random float64 GQA layer with d_model = 64, 8 query heads and 2 "
          "key/value heads (tkl.GQAConfig, tkl.build_attention(cfg).double()). What are the "
          "multilinear ranks (head, output, value) of its value-output tensor W_vo "
          "(tkl.attention_tensors, tkl.tensor.multilinear_rank)? Answer a tuple of 3 integers.",
          hint="All values live in the span of the G value heads' columns: G D dimensions. The "
          "output side is spanned by the H heads' W_o blocks.")
def _():
    layer = seeded_layer(GQAConfig(d_model=64, n_heads=8, n_kv_heads=2), seed=0)
    return multilinear_rank(attention_tensors(layer)[1])
