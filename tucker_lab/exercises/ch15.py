"""Exercises of chapter 15 (performance from committed benchmarks). See book/15_performance."""
import torch

from ..config import standard_configs
from ..perf import floor_ms, max_batch
from . import exercise


@exercise("15.1", "A GQA-8 layer (tkl.standard_configs(4096, 32)['GQA-8']) decodes one token for a "
          "batch of 8 sequences of 32,768 cached tokens, with a bfloat16 cache, on a GPU whose "
          "measured copy bandwidth is 3,000 GB/s. What is the floor of that step in microseconds, "
          "counting only the cache bytes it must read?",
          hint="bytes = B x S x cfg.kv_cache_bytes_per_token(torch.bfloat16); time = bytes / bandwidth "
               "(tkl.perf.floor_ms gives milliseconds).", rtol=1e-6)
def _():
    cfg = standard_configs(4096, 32)["GQA-8"]
    return floor_ms(8 * 32768 * cfg.kv_cache_bytes_per_token(torch.bfloat16), 3000.0) * 1e3


@exercise("15.2", "Absorbed MLA decoding (tkl.standard_configs(2048, 16)['MLA'], the CPU benchmark's "
          "layer) does how many FLOPs per cached token and per query token, and how many FLOPs "
          "per cache byte in float32? With about 35 GB/s and 150 GFLOP/s on the CPU, is that step "
          "limited by bytes or by FLOPs? Answer a tuple (FLOPs per cached token, FLOPs per byte, "
          "'bytes' or 'flops').",
          hint="The FLOPs that grow with the context: cfg.flops_per_token(S + 1, 'absorbed') - "
               "cfg.flops_per_token(S, 'absorbed'); the bytes: cfg.kv_cache_bytes_per_token(torch.float32). The ridge is 150e9 / 35e9 FLOPs per byte.")
def _():
    cfg = standard_configs(2048, 16)["MLA"]
    per_token = cfg.flops_per_token(1001, "absorbed") - cfg.flops_per_token(1000, "absorbed")
    intensity = per_token / cfg.kv_cache_bytes_per_token(torch.float32)
    return per_token, intensity, "flops" if intensity > 150e9 / 35e9 else "bytes"  # above the ridge


@exercise("15.3", "A 32-layer model of tkl.standard_configs(4096, 32) serves contexts of 32,768 tokens on "
          "one 80 GB GPU (80e9 bytes) holding 16e9 bytes of weights. How many sequences fit their "
          "bfloat16 caches for GQA-8, for MLA and for Tucker? Answer a dict {'GQA-8': ..., 'MLA': ..., "
          "'Tucker': ...}.",
          hint="tkl.perf.max_batch(cfg, 32768, n_layers=32, memory_bytes=80e9, weight_bytes=16e9).")
def _():
    cfgs = standard_configs(4096, 32)
    return {v: max_batch(cfgs[v], 32768, n_layers=32, memory_bytes=80e9, weight_bytes=16e9)
            for v in ("GQA-8", "MLA", "Tucker")}
