"""Prefill and decode benchmarks; a table, and JSON with provenance (results/bench/ with --save).

    python -m tucker_lab.bench decode --d-model 2048 --n-heads 16 --contexts 1024,4096 --batches 1,8
    python -m tucker_lab.bench prefill --lengths 512,2048 --dtype bf16 --save

``decode`` times one decoding step with a cache of S tokens, in two scopes:
"core" is the attention over the cache alone (what a decode kernel does; bytes =
the cache), "layer" the whole layer step (bytes = cache + weights). Each entry
records the median time, the bytes moved, the achieved bandwidth and the floor
bytes / (measured copy bandwidth). ``prefill`` times a causal forward pass and
reports tokens/s and TFLOP/s from the configs' FLOP accounting.

Timings are by torch.utils.benchmark (CUDA-synchronized medians). Numbers from
a CPU say nothing about a GPU; every file says which device produced it.
See: book/10_flash, book/14_performance.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch
import torch.utils.benchmark as tb

from .attention import MLAttention, TPAttention, TuckerAttention, build_attention
from .attention.tpa import factored_attention
from .config import standard_configs
from .functional import attend

__all__ = ["provenance", "copy_bandwidth", "bench_decode", "bench_prefill", "format_table", "main"]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _version(mod: str) -> str | None:
    try:
        return __import__(mod).__version__
    except Exception:  # not installed, or a broken install (flash-attn without CUDA)
        return None


def provenance(device: str) -> dict:
    """Where and with what a result was produced."""
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True,
                                    cwd=Path(__file__).parent, timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD") or None
        if commit and git("status", "--porcelain", "--untracked-files=no", "--", "tucker_lab"):
            commit += "-dirty"  # the package differs from the commit
    except (OSError, subprocess.SubprocessError):
        commit = None
    name = torch.cuda.get_device_name() if device == "cuda" else _cpu_name()
    return {"device": name, "device_type": device, "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "triton": _version("triton"),
            "flash_attn": _version("flash_attn"), "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _cpu_name() -> str:
    try:  # Linux: the model name, e.g. "AMD EPYC 7B13"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} CPU"


def _median_s(fn, min_run_time: float) -> float:
    return tb.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def copy_bandwidth(device: str, nbytes: int = 2**28, min_run_time: float = 0.5) -> float:
    """Measured device-memory copy bandwidth in bytes/s (read + write)."""
    x = torch.empty(nbytes // 4, dtype=torch.float32, device=device).normal_()
    y = torch.empty_like(x)
    return 2 * nbytes / _median_s(lambda: y.copy_(x), min_run_time)


def _fill(cache, S: int) -> None:
    """Pretend S tokens were prefilled (random factors), without computing them."""
    cache.data[:, :S].normal_()
    cache.seq_len = S


def _core(layer, cache, x):
    """The attention-over-the-cache part of one decode step, as the layer does it."""
    cfg, B = layer.cfg, x.shape[0]
    f, S = cache.buffers, cache.seq_len
    mk = lambda *shape: torch.randn(*shape, dtype=x.dtype, device=x.device)
    if isinstance(layer, TPAttention):
        a_k = f["a_k"][:, :S] if cfg.contextual_a else layer.a_k
        a_v = f["a_v"][:, :S] if cfg.contextual_a else layer.a_v
        q = mk(B, 1, cfg.H, cfg.D) if cfg.kv_only else (mk(B, 1, cfg.q_rank, cfg.H), mk(B, 1, cfg.q_rank, cfg.D))
        if layer.impl == "triton":
            from .kernels import tpa_decode
            q1 = q[:, 0] if cfg.kv_only else (q[0][:, 0], q[1][:, 0])
            return lambda: tpa_decode(q1, a_k, f["b_k"][:, :S], a_v, f["b_v"][:, :S], scale=cfg.softmax_scale)
        return lambda: factored_attention(q, a_k, f["b_k"][:, :S], a_v, f["b_v"][:, :S],
                                          scale=cfg.softmax_scale, causal=True)
    if isinstance(layer, MLAttention):  # absorbed: [c_kv, k_rope] is one packed key
        k, v = cache.packed(), f["c_kv"][:, :S]
    elif isinstance(layer, TuckerAttention):
        names = list(f)
        k, v = f[names[0]][:, :S], f[names[-1]][:, :S]
    else:
        k, v = f["k"][:, :S], f["v"][:, :S]
    k = k if k.ndim == 4 else k[:, :, None]
    v = v if v.ndim == 4 else v[:, :, None]
    q = mk(B, 1, cfg.H, k.shape[-1])
    return lambda: attend(q, k, v, scale=cfg.softmax_scale, causal=True, impl=layer.impl)


def bench_decode(configs: dict, *, contexts, batches, dtype, device, impls, scopes=("core", "layer"),
                 min_run_time: float = 0.2, peak: float | None = None) -> list[dict]:
    peak = peak or copy_bandwidth(device)
    esize = torch.empty((), dtype=dtype).element_size()
    rows = []
    for name, cfg in configs.items():
        for impl in impls:
            # mode "auto": with a cache MLA decodes absorbed and TPA from its factors
            layer = build_attention(cfg, impl=impl).to(device=device, dtype=dtype).eval()
            weights = sum(p.numel() for p in layer.parameters()) * esize
            for B in batches:
                for S in contexts:
                    cache = layer.new_cache(B, S + 1)
                    _fill(cache, S)
                    x = torch.randn(B, 1, cfg.d_model, dtype=dtype, device=device)
                    cache_bytes = B * S * cfg.kv_cache_bytes_per_token(dtype)
                    for scope in scopes:
                        if scope == "core":
                            fn, moved = _core(layer, cache, x), cache_bytes
                        else:
                            def fn(layer=layer, cache=cache, x=x, S=S):
                                cache.seq_len = S  # the step appends one token; undo it each time
                                return layer(x, cache=cache, start_pos=S)
                            moved = cache_bytes + weights
                        with torch.no_grad():
                            t = _median_s(fn, min_run_time)
                        rows.append({"variant": name, "config": dataclasses.asdict(cfg) | {"class": type(cfg).__name__},
                                     "impl": impl, "scope": scope, "batch": B, "context": S,
                                     "median_ms": t * 1e3, "bytes": moved, "cache_bytes": cache_bytes,
                                     "achieved_GBps": moved / t / 1e9, "floor_ms": moved / peak * 1e3,
                                     "fraction_of_copy_bw": moved / t / peak})
                    del cache
    return rows


def bench_prefill(configs: dict, *, lengths, batches, dtype, device, impls, min_run_time: float = 0.2) -> list[dict]:
    rows = []
    for name, cfg in configs.items():
        for impl in impls:
            layer = build_attention(cfg, impl=impl).to(device=device, dtype=dtype).eval()
            for B in batches:
                for T in lengths:
                    x = torch.randn(B, T, cfg.d_model, dtype=dtype, device=device)
                    with torch.no_grad():
                        t = _median_s(lambda: layer(x), min_run_time)
                    # causal: token t attends t keys; FLOPs are affine in the context
                    f0, f1 = cfg.flops_per_token(0), cfg.flops_per_token(1)
                    flops = B * (T * f0 + (f1 - f0) * T * (T + 1) // 2) + cfg.fixed_flops()
                    rows.append({"variant": name, "config": dataclasses.asdict(cfg) | {"class": type(cfg).__name__},
                                 "impl": impl, "batch": B, "length": T, "median_ms": t * 1e3,
                                 "tokens_per_s": B * T / t, "flops": flops, "TFLOPs": flops / t / 1e12})
    return rows


def format_table(kind: str, rows: list[dict]) -> str:
    """A fixed-width text table of the measurements."""
    if kind == "decode":
        head = f"{'variant':<10}{'impl':<8}{'scope':<7}{'batch':>6}{'context':>9}{'ms':>10}{'GB/s':>9}{'x copy bw':>10}"
        lines = [head, "-" * len(head)]
        lines += [f"{r['variant']:<10}{r['impl']:<8}{r['scope']:<7}{r['batch']:>6}{r['context']:>9}"
                  f"{r['median_ms']:>10.4f}{r['achieved_GBps']:>9.2f}{r['fraction_of_copy_bw']:>10.3f}" for r in rows]
    else:
        head = f"{'variant':<10}{'impl':<8}{'batch':>6}{'length':>8}{'ms':>10}{'tokens/s':>12}{'TFLOP/s':>9}"
        lines = [head, "-" * len(head)]
        lines += [f"{r['variant']:<10}{r['impl']:<8}{r['batch']:>6}{r['length']:>8}{r['median_ms']:>10.4f}"
                  f"{r['tokens_per_s']:>12,.0f}{r['TFLOPs']:>9.4f}" for r in rows]
    return "\n".join(lines)


SCOPES = ("core", "layer")


def main(argv: list[str] | None = None) -> Path:
    from ._cli import choice_list, positive_float, positive_int, positive_int_list
    from .functional import IMPLS
    p = argparse.ArgumentParser(prog="python -m tucker_lab.bench", description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=["decode", "prefill"], help="decode: one step over a cache; prefill: a causal forward")
    p.add_argument("--d-model", type=positive_int, default=2048,
                   help="C, an integer that n-heads divides into even head dims (default 2048)")
    p.add_argument("--n-heads", type=positive_int, default=16, help="H, an integer >= 1 (default 16)")
    p.add_argument("--variants", default="all",
                   help="comma-separated names of standard_configs (MHA, GQA-<H/4>, MQA, MLA, TPA, Tucker), or all")
    p.add_argument("--contexts", type=positive_int_list, default=[1024, 4096, 16384],
                   help="decode: cache lengths, comma-separated integers >= 1 (default 1024,4096,16384)")
    p.add_argument("--lengths", type=positive_int_list, default=[256, 1024],
                   help="prefill: sequence lengths, comma-separated integers >= 1 (default 256,1024)")
    p.add_argument("--batches", type=positive_int_list, default=[1, 8],
                   help="batch sizes, comma-separated integers >= 1 (default 1,8)")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default=None,
                   help=f"one of {', '.join(sorted(_DTYPES))} (default bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--impls", type=choice_list(IMPLS), default=["auto"],
                   help=f"attention kernels, comma-separated from {', '.join(IMPLS)} (default auto)")
    p.add_argument("--scopes", type=choice_list(SCOPES), default=list(SCOPES),
                   help="decode: what is timed, comma-separated from core (attention over the cache), "
                        "layer (the whole layer step) (default core,layer)")
    p.add_argument("--min-run-time", type=positive_float, default=0.2,
                   help="seconds per measurement, a number > 0 (default 0.2)")
    out_group = p.add_mutually_exclusive_group()
    out_group.add_argument("--out", default=None,
                           help="output JSON path (default: <temp dir>/tucker_lab_bench/<kind>_<device>.json)")
    out_group.add_argument("--save", action="store_true",
                           help="write results/bench/<kind>_<device>.json, the repository's committed results")
    a = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = _DTYPES[a.dtype or ("bf16" if device == "cuda" else "fp32")]
    try:
        configs = standard_configs(a.d_model, a.n_heads)
    except ValueError as e:
        p.error(str(e))
    if a.variants != "all":
        wanted = [v.strip() for v in a.variants.split(",") if v.strip()]
        unknown = sorted(set(wanted) - set(configs))
        if unknown or not wanted:
            p.error(f"argument --variants: unknown variants {unknown}; choose from {sorted(configs)} or all")
        configs = {k: configs[k] for k in wanted}
    prov = provenance(device)
    peak = copy_bandwidth(device)
    if a.kind == "decode":
        rows = bench_decode(configs, contexts=a.contexts, batches=a.batches, dtype=dtype,
                            device=device, impls=a.impls, scopes=a.scopes,
                            min_run_time=a.min_run_time, peak=peak)
    else:
        rows = bench_prefill(configs, lengths=a.lengths, batches=a.batches, dtype=dtype,
                             device=device, impls=a.impls, min_run_time=a.min_run_time)
    slug = "".join(c if c.isalnum() else "-" for c in prov["device"]).strip("-").lower()
    name = f"{a.kind}_{slug}.json"
    if a.save:
        out = Path("results") / "bench" / name
    else:
        out = Path(a.out) if a.out else Path(tempfile.gettempdir()) / "tucker_lab_bench" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"kind": a.kind, "args": vars(a), "dtype": str(dtype).split(".")[-1],
           "copy_bandwidth_GBps": peak / 1e9, **prov, "results": rows}
    out.write_text(json.dumps(doc, indent=1))
    print(format_table(a.kind, rows))
    print(f"wrote {len(rows)} measurements to {out}")
    return out


if __name__ == "__main__":
    main()
