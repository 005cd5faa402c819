"""Exercises of chapter 1 (attention recap and the KV-cache wall)."""
import torch

from ..accounting import accounting_rows
from ..config import MHAConfig
from . import exercise


@exercise("1.1", "How many attention parameters does one MHA layer with d_model = 1024 and "
          "16 heads have (no biases)?", hint="Four projections, each C x C.")
def _():
    return MHAConfig(d_model=1024, n_heads=16).param_count()


@exercise("1.2", "A 32-layer MHA model with d_model = 4096 and 32 heads decodes a batch of 4 "
          "sequences at context 8192 with a bf16 cache. How many GiB does the KV cache hold?",
          hint="Per token and layer the cache holds k and v: 2 H D numbers of 2 bytes.", rtol=1e-3)
def _():
    cfg = MHAConfig(d_model=4096, n_heads=32)
    return accounting_rows({"MHA": cfg}, context=8192, n_layers=32, batch=4)[0]["cache_GiB"]


@exercise("1.3", "In that model, how many FLOPs does the attention of ONE decoded token do per "
          "byte of KV cache it reads (bf16), counting only the logits and the weighted values?",
          hint="Logits and values cost 2 H S D FLOPs each; the cache read is 2 H S D elements.")
def _():
    cfg = MHAConfig(d_model=4096, n_heads=32)
    S = 8192
    flops = cfg.flops_breakdown(S)["attention"]
    return flops / (S * cfg.kv_cache_bytes_per_token(torch.bfloat16))
