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
See: book/10_flash, book/15_performance.
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
import time
from pathlib import Path

import torch
import torch.utils.benchmark as tb

from ._extras import require
from .attention import build_attention
from .config import standard_configs

__all__ = ["provenance", "copy_bandwidth", "matmul_flops", "decode_step", "bench_decode", "bench_prefill", "format_table",
           "hf_counterpart", "bench_decode_vs_hf", "main"]

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


def copy_bandwidth(device: str, nbytes: int = 2**28,
                   min_run_time: float = 0.5) -> float:
    """Measured device-memory copy bandwidth in bytes/s (read + write)."""
    x = torch.empty(nbytes // 4, dtype=torch.float32, device=device).normal_()
    y = torch.empty_like(x)
    return 2 * nbytes / _median_s(lambda: y.copy_(x), min_run_time)


def matmul_flops(device: str, dtype: torch.dtype = torch.float32, n: int | None = None,
                 min_run_time: float = 0.5) -> float:
    """Measured dense matmul throughput in FLOP/s (n x n times n x n): the compute
    ceiling of the FLOP floors."""
    n = n or (8192 if device == "cuda" else 1024)
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    return 2 * n**3 / _median_s(lambda: a @ b, min_run_time)


def decode_step(layer, B: int, S: int, x) -> tuple:
    """One decode step after S cached tokens, in the two scopes the benchmarks time,
    both from what the layer exposes (so a new variant needs no code here):

    - ``core()``: ``layer.decode_core`` of x's query (``layer.decode_query``, at the last
      cached position) over the S tokens: the attention over the cache alone;
    - ``step()``: the whole layer call appending token S, the cache rewound to S after it.

    The cache holds S random tokens (the factors drawn, not computed from inputs), with
    room for one more. Returns (core, step, cache)."""
    cache = layer.new_cache(B, S + 1)
    with torch.no_grad():  # random factors, as the layer would cache them
        cache.update(0, **{n: torch.randn(B, S, *shape, dtype=cache.dtype, device=cache.device)
                           for n, shape in cache.shapes.items()})
        q = layer.decode_query(x, S - 1)

    def core():
        return layer.decode_core(q, cache)

    def step():
        y = layer(x, cache=cache, start_pos=S)
        cache.truncate(S)  # the step appended token S: undo it, so every call is the same step
        return y
    return core, step, cache


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
                    x = torch.randn(B, 1, cfg.d_model, dtype=dtype, device=device)
                    core, step, cache = decode_step(layer, B, S, x)
                    cache_bytes = B * S * cfg.kv_cache_bytes_per_token(dtype)
                    for scope in scopes:
                        fn, moved = (core, cache_bytes) if scope == "core" else (step, cache_bytes + weights)
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


def hf_counterpart(name: str, cfg, dtype: torch.dtype, device: str, seed: int = 0):
    """transformers' module for the same layer, and ours with its weights.

    Returns (hf_module, hf_rotary, layer): GQA/MHA/MQA with RoPE -> ``LlamaAttention``,
    MLA with decoupled RoPE and no query compression -> ``DeepseekV3Attention``
    (q_lora_rank=None, latent RMSNorm), both on SDPA; ``layer = from_hf(hf_module)``.
    For variants transformers does not have (TPA, Tucker) hf_module is None and the
    layer is ``build_attention(cfg)``. Needs the extra ``hf`` (transformers)."""
    require("transformers", "hf", "bench.hf_counterpart")
    from .config import MHAConfig, MLAConfig
    torch.manual_seed(seed)
    if isinstance(cfg, MHAConfig) and cfg.rope:
        from transformers import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding
        hc = LlamaConfig(hidden_size=cfg.C, num_attention_heads=cfg.H, num_key_value_heads=cfg.G,
                         head_dim=cfg.D, num_hidden_layers=1, attn_implementation="sdpa")
        m, rot = LlamaAttention(hc, 0), LlamaRotaryEmbedding(hc)
    elif isinstance(cfg, MLAConfig) and cfg.D_rope and not cfg.coupled_rope:
        from transformers import DeepseekV3Config
        from transformers.models.deepseek_v3 import modeling_deepseek_v3 as ds
        hc = DeepseekV3Config(hidden_size=cfg.C, num_attention_heads=cfg.H, num_key_value_heads=cfg.H,
                              q_lora_rank=cfg.q_rank, kv_lora_rank=cfg.R_kv, qk_nope_head_dim=cfg.D,
                              qk_rope_head_dim=cfg.D_rope, v_head_dim=cfg.D_v, rope_interleave=False,
                              num_hidden_layers=1, attn_implementation="sdpa")
        m, rot = ds.DeepseekV3Attention(hc, 0), ds.DeepseekV3RotaryEmbedding(hc)
    else:
        return None, None, build_attention(cfg).to(device=device, dtype=dtype).eval()
    for mod in m.modules():  # HF inits weights in from_pretrained; here: N(0, 1/fan_in)
        if isinstance(mod, torch.nn.Linear):
            torch.nn.init.normal_(mod.weight, 0.0, mod.in_features ** -0.5)
    m = m.to(device=device, dtype=dtype).eval()
    from .hf import from_hf
    return m, rot.to(device), from_hf(m).eval()


def _paired(fns: dict, rounds: int, block_s: float, max_s: float = 6.0,
            clock=time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in alternating blocks (order
    reversed every round) so that load on a shared machine hits all alike. Slow
    functions get fewer rounds (at least 3), so that no shape takes much over max_s.
    ``clock=time.process_time`` counts this process's CPU time instead of wall time:
    with one thread, the work done, whatever else the machine runs."""
    reps, once = {}, {}
    for n, fn in fns.items():
        t0 = clock()
        fn()  # warm up
        once[n] = clock() - t0
        if once[n] < 0.5:  # fast: warm up again, then time one call
            fn()
            t0 = clock()
            fn()
            once[n] = max(clock() - t0, 1e-6)
        reps[n] = max(1, int(block_s / once[n]))
    per_round = sum(reps[n] * once[n] for n in fns)
    rounds = max(3, min(rounds, int(max_s / per_round)))
    times = {n: [] for n in fns}
    names = list(fns)
    for r in range(rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            t0 = clock()
            for _ in range(reps[n]):
                fns[n]()
            times[n].append((clock() - t0) / reps[n])
    return times


def _cpu_ceilings(dtype: torch.dtype, tries: int = 5) -> tuple[float, float]:
    """Copy bandwidth (B/s) and matmul throughput (FLOP/s) in CPU time of this process
    (for the ``clock="cpu"`` benchmark: one thread), the best of a few tries."""
    x = torch.empty(2**26, dtype=torch.float32).normal_()  # 256 MiB
    y = torch.empty_like(x)
    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    bw, fl = 0.0, 0.0
    for _ in range(tries):
        t0 = time.process_time()
        y.copy_(x)
        bw = max(bw, 2 * x.numel() * 4 / max(time.process_time() - t0, 1e-9))
        t0 = time.process_time()
        for _ in range(4):
            a @ b
        fl = max(fl, 4 * 2 * 1024**3 / max(time.process_time() - t0, 1e-9))
    return bw, fl


def bench_decode_vs_hf(configs: dict, *, contexts, batches, dtype=torch.float32, device="cpu",
                       rounds: int = 9, block_s: float = 0.03, peak_bw: float | None = None,
                       peak_flops: float | None = None, clock: str = "wall", progress=print) -> list[dict]:
    """One decode step of our layer against transformers' static-cache decode of the
    same layer (same weights, ``hf_counterpart``), side by side in this process.

    Both caches hold S tokens (HF's StaticCache is allocated at S + 1, so it attends
    its whole buffer without a mask: its fastest case); the step appends token S.
    HF's step includes its rotary-embedding call, as ours includes RoPE. Reports the
    medians of paired runs, ours/HF per pair, the minima (on a shared machine the
    least disturbed blocks, "_min"), and the floors: the layer step against
    max((cache + weight bytes) / copy bandwidth, FLOPs / matmul throughput), the core
    (attention over the cache, what a decode kernel does) against the cache alone.
    ``clock="cpu"`` (CPU only, one thread) times this process's CPU time, and measures
    the ceilings the same way: robust when other work shares the machine."""
    import inspect
    from statistics import median
    from transformers import StaticCache

    timer = time.perf_counter
    if clock == "cpu":
        if device != "cpu" or torch.get_num_threads() != 1:
            raise ValueError("clock='cpu' needs device='cpu' and torch.set_num_threads(1)")
        timer = time.process_time
        if not (peak_bw and peak_flops):
            peak_bw, peak_flops = _cpu_ceilings(dtype)
    # ceilings: the best of a few tries (on a shared machine a single try reads low)
    peak_bw = peak_bw or max(copy_bandwidth(device) for _ in range(3))
    peak_flops = peak_flops or max(matmul_flops(device, dtype) for _ in range(3))
    rows = []
    for name, cfg in configs.items():
        m, rot, layer = hf_counterpart(name, cfg, dtype, device)
        mode = cfg.modes[-1]  # the decoding algebra ("absorbed", "factored" or "default")
        weights = sum(p.numel() * p.element_size() for p in layer.parameters())
        for B in batches:
            for S in contexts:
                load0 = os.getloadavg()
                x = torch.randn(B, 1, cfg.d_model, dtype=dtype, device=device)
                core, ours, cache = decode_step(layer, B, S, x)
                fns = {"ours": ours, "core": core}
                err = None
                if m is not None:
                    hc = StaticCache(config=m.config, max_cache_len=S + 1)
                    kw = "cache" if "cache" in inspect.signature(m.forward).parameters else "past_key_values"
                    pid = torch.full((B, 1), S, device=device)

                    def hf(m=m, rot=rot, hc=hc, x=x, pid=pid, S=S, kw=kw):
                        for lay in hc.layers:
                            lay.cumulative_length.fill_(S) if torch.is_tensor(lay.cumulative_length) \
                                else setattr(lay, "cumulative_length", S)
                        return m(x, position_embeddings=rot(x, pid), attention_mask=None, **{kw: hc})[0]
                    with torch.no_grad():
                        hf()  # allocates HF's buffers; then give it our S cached tokens
                        lay = hc.layers[0]
                        f = cache.read()
                        if "k" in f:  # (B, S, G, D) -> (B, G, S, D)
                            lay.keys[:, :, :S] = f["k"].transpose(1, 2)
                            lay.values[:, :, :S] = f["v"].transpose(1, 2)
                        else:  # MLA: the normalized latent and the rotated RoPE key
                            lay.keys[:, 0, :S] = f["c_kv"]
                            lay.values[:, 0, :S] = f["k_rope"]
                        err = (ours() - hf()).abs().max().item()  # the same step, the same numbers
                    fns["hf"] = hf
                with torch.no_grad():
                    times = _paired(fns, rounds, block_s, clock=timer)
                cache_bytes = B * S * cfg.kv_cache_bytes_per_token(dtype)
                flops = B * cfg.flops_per_token(S, mode if mode != "default" else None)
                flops_core = flops - B * cfg.flops_per_token(0, mode if mode != "default" else None)
                floor = {"bytes": (cache_bytes + weights) / peak_bw, "flops": flops / peak_flops}
                floor_core = {"bytes": cache_bytes / peak_bw, "flops": flops_core / peak_flops}
                ms = {n: median(t) * 1e3 for n, t in times.items()}
                best = {n: min(t) * 1e3 for n, t in times.items()}  # least disturbed by other load
                row = {"variant": name, "config": dataclasses.asdict(cfg) | {"class": type(cfg).__name__},
                       "hf_module": type(m).__name__ if m is not None else None, "batch": B, "context": S,
                       "ours_ms": ms["ours"], "core_ms": ms["core"], "hf_ms": ms.get("hf"),
                       "ours_over_hf": (median(a / b for a, b in zip(times["ours"], times["hf"]))
                                        if m is not None else None),
                       "ours_min_ms": best["ours"], "core_min_ms": best["core"], "hf_min_ms": best.get("hf"),
                       "ours_over_hf_min": best["ours"] / best["hf"] if m is not None else None,
                       "max_abs_diff_vs_hf": err, "cache_bytes": cache_bytes, "weight_bytes": weights,
                       "flops": flops, "flops_core": flops_core,
                       "floor_ms": max(floor.values()) * 1e3, "bound": max(floor, key=floor.get),
                       "floor_core_ms": max(floor_core.values()) * 1e3,
                       "bound_core": max(floor_core, key=floor_core.get),
                       "loadavg": [load0, os.getloadavg()], "rounds": len(times["ours"]), "clock": clock}
                row["ours_over_floor"] = row["ours_ms"] / row["floor_ms"]
                row["core_over_floor"] = row["core_ms"] / row["floor_core_ms"]
                row["ours_min_over_floor"] = row["ours_min_ms"] / row["floor_ms"]
                row["core_min_over_floor"] = row["core_min_ms"] / row["floor_core_ms"]
                rows.append(row)
                progress(f"{name:7s} B{B} S{S:6d}: ours {ms['ours']:8.3f} (min {best['ours']:8.3f}) ms"
                         + (f"  hf {ms['hf']:8.3f} (min {best['hf']:8.3f}) ms  ratio {row['ours_over_hf']:.2f}"
                            f" (min {row['ours_over_hf_min']:.2f})" if m is not None else "")
                         + f"  floor {row['floor_ms']:.3f} ({row['bound']}) x{row['ours_min_over_floor']:.2f}"
                         + f"  core x{row['core_min_over_floor']:.2f} (min)")
                del cache, fns
                if m is not None:
                    del hc
    return rows


def main(argv: list[str] | None = None) -> Path:
    from ._cli import choice_list, positive_float, positive_int, positive_int_list
    from .functional import IMPLS
    p = argparse.ArgumentParser(prog="python -m tucker_lab.bench", description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=["decode", "prefill", "hf-decode"],
                   help="decode: one step over a cache; prefill: a causal forward; hf-decode: our decode "
                        "step against transformers' static-cache decode")
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
    p.add_argument("--rounds", type=positive_int, default=9,
                   help="hf-decode: paired rounds per shape (at most), an integer >= 1 (default 9)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (torch.set_num_threads), an integer >= 1 (default torch's)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="hf-decode: wall time, or this process's CPU time (needs --threads 1) (default wall)")
    out_group = p.add_mutually_exclusive_group()
    out_group.add_argument("--out", default=None,
                           help="output JSON path (default: <temp dir>/tucker_lab_bench/<kind>_<device>.json)")
    out_group.add_argument("--save", action="store_true",
                           help="write results/bench/<kind>_<device>.json, the repository's committed results")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
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
    if a.kind == "hf-decode" and a.clock == "cpu" and (device != "cpu" or torch.get_num_threads() != 1):
        p.error("argument --clock: cpu needs a CPU and --threads 1")
    prov = provenance(device)
    peak = copy_bandwidth(device)
    extra = {}
    if a.kind == "hf-decode":
        transformers = require("transformers", "hf", "python -m tucker_lab.bench hf-decode")
        if a.clock == "cpu":
            peak, flops = _cpu_ceilings(dtype)
        else:
            peak = max([peak] + [copy_bandwidth(device) for _ in range(2)])  # the best of three tries
            flops = max(matmul_flops(device, dtype) for _ in range(3))
        extra = {"transformers": transformers.__version__, "matmul_TFLOPs": flops / 1e12, "clock": a.clock}
        rows = bench_decode_vs_hf(configs, contexts=a.contexts, batches=a.batches, dtype=dtype,
                                  device=device, rounds=a.rounds, peak_bw=peak, peak_flops=flops,
                                  clock=a.clock)
    elif a.kind == "decode":
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
           "copy_bandwidth_GBps": peak / 1e9, **prov, **extra, "results": rows}
    out.write_text(json.dumps(doc, indent=1))
    if a.kind == "hf-decode":
        for r in rows:
            print({k: r.get(k) for k in ("variant", "batch", "context", "ours_ms", "hf_ms", "ours_over_hf")})
    else:
        print(format_table(a.kind, rows))
    print(f"wrote {len(rows)} measurements to {out}")
    return out


if __name__ == "__main__":
    main()
