"""Reading committed benchmark JSON for the performance chapter: floors, serving
capacity, and the figures. Everything here reads results/ (bench.py and
gpu/check.py write them); nothing is measured.

See: book/15_performance.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ._extras import require
from .config import AttentionConfig

__all__ = ["load", "gpu_runs", "floor_ms", "max_batch", "decode_figure", "ratio_table", "target_lines"]


def load(path: str | Path) -> dict:
    """A results JSON file as a dict (its ``results`` rows plus provenance)."""
    return json.loads(Path(path).read_text())


def gpu_runs(results: str | Path) -> list[Path]:
    """Folders under results/gpu/ that hold a GPU check (a decode.json from a CUDA
    device), newest last. Empty until a GPU run is committed."""
    root = Path(results) / "gpu"
    runs = [p.parent for p in sorted(root.glob("*/decode.json"))]
    return [r for r in runs if load(r / "decode.json").get("device_type") == "cuda"]


def floor_ms(nbytes: float, bandwidth_GBps: float, flops: float = 0.0,
             TFLOPs: float | None = None) -> float:
    """The time floor of a step that moves ``nbytes`` and computes ``flops``:
    max(bytes / bandwidth, FLOPs / throughput), in milliseconds."""
    t = nbytes / (bandwidth_GBps * 1e9)
    if TFLOPs:
        t = max(t, flops / (TFLOPs * 1e12))
    return t * 1e3


def max_batch(cfg: AttentionConfig, context: int, *, n_layers: int, memory_bytes: float,
              weight_bytes: float, dtype: torch.dtype = torch.bfloat16) -> int:
    """How many sequences of ``context`` tokens fit their caches in ``memory_bytes``
    after ``weight_bytes`` of weights, for a model of ``n_layers`` layers of ``cfg``
    (the accounting's cache bytes per token, nothing else)."""
    per_seq = context * n_layers * cfg.kv_cache_bytes_per_token(dtype)
    return max(0, int((memory_bytes - weight_bytes) // per_seq))


def decode_figure(rows: list[dict], bandwidth_GBps: float, *, time_key: str, bytes_key: str = "cache_bytes",
                  title: str = "", ax=None):
    """Roofline-style plot: time per decode step against the bytes it must read, one
    marker series per variant, with the bandwidth floor (bytes / bandwidth) as a line.
    ``rows`` are result rows with "variant", ``bytes_key`` and ``time_key`` (ms)."""
    plt = require("matplotlib.pyplot", "plot", "decode_figure")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.6))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    for i, v in enumerate(variants):
        mine = sorted((r for r in rows if r["variant"] == v), key=lambda r: r[bytes_key])
        ax.plot([r[bytes_key] for r in mine], [r[time_key] for r in mine], "o", color=f"C{i}", label=v, ms=5)
    lo = min(r[bytes_key] for r in rows) / 2
    hi = max(r[bytes_key] for r in rows) * 2
    ax.plot([lo, hi], [floor_ms(lo, bandwidth_GBps), floor_ms(hi, bandwidth_GBps)], "k--", lw=1,
            label=f"floor: bytes / {bandwidth_GBps:.0f} GB/s")
    ax.set(xscale="log", yscale="log", xlabel="bytes read per decode step (cache)",
           ylabel="time per decode step (ms)", title=title)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(True, which="major", alpha=0.3)
    return ax


_HEAD = {"ours_ms": "ours ms", "hf_ms": "HF ms", "ours_over_hf": "ours/HF", "floor_ms": "floor ms",
         "ours_over_floor": "ours/floor", "core_ms": "core ms", "core_over_floor": "core/floor",
         "ours_min_ms": "ours min ms", "hf_min_ms": "HF min ms", "ours_over_hf_min": "min/min",
         "ours_min_over_floor": "min/floor", "core_min_over_floor": "core/floor"}


def ratio_table(doc: dict, keys=("ours_ms", "hf_ms", "ours_over_hf", "floor_ms", "ours_over_floor")) -> list[str]:
    """Lines (at most 88 characters) of a table of a decode-vs-transformers JSON
    (``bench hf-decode``): one row per variant, batch and context."""
    head = f"{'variant':8s} {'B':>2s} {'S':>6s}" + "".join(f" {_HEAD.get(k, k):>11s}" for k in keys)
    lines = [head]
    for r in doc["results"]:
        cells = "".join(f" {r[k]:11.3f}" if isinstance(r.get(k), float) else f" {'-':>11s}" for k in keys)
        lines.append(f"{r['variant']:8s} {r['batch']:2d} {r['context']:6d}" + cells)
    return lines


def target_lines(targets: dict) -> list[str]:
    """Lines of the GPU check's targets.json: each measured value against its goal."""
    lines = []
    for name, goal in targets.get("goals", {}).items():
        lines.append(f"{name} (goal {goal}):")
        for shape, value in targets.get(name, {}).items():
            lines.append(f"    {shape:20s} {value:8.3f}")
    return lines
