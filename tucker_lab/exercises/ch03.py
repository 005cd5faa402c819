"""Exercises of chapter 3 (multi-head latent attention). See book/03_mla."""
import torch

from ..config import MHAConfig, MLAConfig
from . import exercise


def _deepseek_v2(**kw) -> MLAConfig:
    base = dict(d_model=5120, n_heads=128, d_head=128, kv_rank=512, q_rank=1536, rope_dim=64)
    return MLAConfig(**{**base, **kw})


@exercise("3.1", "How many attention parameters does one MLA layer of DeepSeek-V2 have "
          "(d_model = 5120, 128 heads of dim 128, R_kv = 512, R_q = 1536, D_rope = 64, no norms, "
          "no biases)?",
          hint="TPA paper, Table 1: R_q (C + H D + H D_rope) + R_kv (C + 2 H D) + C (H D + D_rope).")
def _():
    return _deepseek_v2().param_count()


@exercise("3.2", "At DeepSeek-V2's size, how many times more numbers per token and layer does MHA "
          "with the same heads (128 heads of dim 128) cache than MLA (R_kv = 512, D_rope = 64)?",
          hint="MHA caches 2 H D numbers; MLA caches the latent and the shared RoPE key.", rtol=1e-4)
def _():
    mha = MHAConfig(d_model=5120, n_heads=128, d_head=128)
    return mha.kv_cache_elements_per_token() / _deepseek_v2().kv_cache_elements_per_token()


@exercise("3.3", "DeepSeek-V2-Lite has d_model = 2048, 16 heads of dim 128, R_kv = 512, no query "
          "compression and D_rope = 64. In the absorbed form, how many attention FLOPs (logits and "
          "weighted values only) does ONE decoded token do per byte of bf16 cache it reads, at "
          "context 8192?",
          hint="Each head attends with key dim R_kv + D_rope and value dim R_kv: 2 H S (2 R_kv + "
          "D_rope) FLOPs, against S (R_kv + D_rope) numbers of 2 bytes (cfg.flops_breakdown).",
          rtol=1e-4)
def _():
    cfg = MLAConfig(d_model=2048, n_heads=16, d_head=128, kv_rank=512, rope_dim=64)
    S = 8192
    flops = cfg.flops_breakdown(S, mode="absorbed")["attention"]
    return flops / (S * cfg.kv_cache_bytes_per_token(torch.bfloat16))


@exercise("3.4", "Replace DeepSeek-V2's decoupled RoPE by the Tucker paper's coupled RoPE "
          "(RoPE on the latent; MLAConfig(..., rope_dim=0, coupled_rope=True), other sizes as in "
          "3.1). How many attention parameters does the layer have?",
          hint="The per-head RoPE query map W_qr (R_q x H D_rope) and the shared RoPE key map W_kr "
          "(C x D_rope) disappear; nothing else changes.")
def _():
    return _deepseek_v2(rope_dim=0, coupled_rope=True).param_count()
