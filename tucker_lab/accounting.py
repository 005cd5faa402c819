"""Accounting tables across variants: parameters, KV cache, FLOPs.

    python -m tucker_lab.accounting                      # GPT-2 small: C=768, H=12
    python -m tucker_lab.accounting --d-model 2048 --n-heads 32 --context 32768

Every number comes from the configs' analytic methods, which the tests check
against live modules. See: book/01_attention.
"""
from __future__ import annotations

import argparse

import torch

from ._cli import positive_int
from .config import AttentionConfig, standard_configs

__all__ = ["accounting_rows", "format_table", "main"]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def accounting_rows(configs: dict[str, AttentionConfig], *, context: int = 4096, n_layers: int = 1,
                    batch: int = 1, dtype: torch.dtype = torch.bfloat16,
                    baseline: str | None = "MHA") -> list[dict]:
    """One row per config: per-layer params, cache per token, whole-model cache at
    (batch, context), FLOPs per decoded token at ``context``; ratios to ``baseline``."""
    rows = []
    for name, cfg in configs.items():
        per_tok = cfg.kv_cache_bytes_per_token(dtype)
        rows.append({"variant": name, "params": cfg.param_count(),
                     "cache_elems_per_token": cfg.kv_cache_elements_per_token(),
                     "cache_bytes_per_token": per_tok,
                     "cache_GiB": per_tok * n_layers * batch * context / 2**30,
                     "flops_per_token": cfg.flops_per_token(context)})
    base = next((r for r in rows if r["variant"] == baseline), None)
    for r in rows:
        r["params_vs_base"] = r["params"] / base["params"] if base else float("nan")
        r["cache_vs_base"] = (r["cache_elems_per_token"] / base["cache_elems_per_token"]
                              if base else float("nan"))
    return rows


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of ``accounting_rows``."""
    head = (f"{'variant':<10}{'params/layer':>14}{'x base':>8}{'cache elems/tok':>17}"
            f"{'x base':>8}{'cache GiB':>11}{'GFLOP/tok':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['variant']:<10}{r['params']:>14,}{r['params_vs_base']:>8.3f}"
                     f"{r['cache_elems_per_token']:>17,}{r['cache_vs_base']:>8.3f}"
                     f"{r['cache_GiB']:>11.3f}{r['flops_per_token'] / 1e9:>11.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(prog="python -m tucker_lab.accounting", description=__doc__.split("\n")[0])
    p.add_argument("--d-model", type=positive_int, default=768,
                   help="C, an integer >= 4 that n-heads divides into even head dims (default 768, GPT-2 small)")
    p.add_argument("--n-heads", type=positive_int, default=12, help="H, an integer >= 1 (default 12)")
    p.add_argument("--n-layers", type=positive_int, default=12,
                   help="layers, for the whole-model cache: an integer >= 1 (default 12)")
    p.add_argument("--context", type=positive_int, default=4096,
                   help="tokens in the cache: an integer >= 1 (default 4096)")
    p.add_argument("--batch", type=positive_int, default=1, help="sequences in the cache: an integer >= 1 (default 1)")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="bf16",
                   help=f"cache dtype, one of {', '.join(sorted(_DTYPES))} (default bf16)")
    a = p.parse_args(argv)
    try:
        standard_configs(a.d_model, a.n_heads)
    except ValueError as e:
        p.error(str(e))
    rows = accounting_rows(standard_configs(a.d_model, a.n_heads), context=a.context,
                           n_layers=a.n_layers, batch=a.batch, dtype=_DTYPES[a.dtype])
    text = (f"Attention per layer at C={a.d_model}, H={a.n_heads}; cache for {a.n_layers} layers x "
            f"{a.batch} x {a.context} tokens in {a.dtype}; FLOPs for one token at that context\n"
            + format_table(rows))
    print(text)
    return text


if __name__ == "__main__":
    main()
