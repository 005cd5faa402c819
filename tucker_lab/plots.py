"""Static figures for the book, drawn from the package's own numbers.

Each function draws on a matplotlib Axes (a new figure when none is given) and
returns it, so a chapter can compose panels. Needs the extra ``plot`` (matplotlib).
See: book/01_attention onwards.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._extras import require
from .config import AttentionConfig
from .rope import apply_rope, rope_frequencies

plt = require("matplotlib.pyplot", "plot", "tucker_lab.plots")

__all__ = ["plot_cache_vs_context", "plot_landscape", "plot_spectra", "plot_rope", "plot_decode_bench"]


def _axes(ax, size=(6.4, 4.2)):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def plot_cache_vs_context(configs: dict[str, AttentionConfig], *, n_layers: int, batch: int = 1,
                          dtype: torch.dtype = torch.bfloat16, contexts=None, memory_GiB: float | None = None,
                          ax=None):
    """Whole-model KV cache (GiB, log) against context (tokens, log), one line per variant;
    ``memory_GiB`` draws an accelerator's memory as a horizontal line."""
    ax = _axes(ax)
    contexts = contexts or [2 ** k for k in range(10, 21)]
    for name, cfg in configs.items():
        per_tok = cfg.kv_cache_bytes_per_token(dtype) * n_layers * batch
        ax.plot(contexts, [per_tok * n / 2**30 for n in contexts], marker="o", ms=3, label=name)
    if memory_GiB:
        ax.axhline(memory_GiB, color="k", ls="--", lw=1)
        ax.text(contexts[0], memory_GiB * 1.15, f"{memory_GiB:g} GiB accelerator", fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="context length (tokens)",
           ylabel=f"KV cache (GiB, {str(dtype).split('.')[-1]}, batch {batch})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return ax


def plot_landscape(configs: dict[str, AttentionConfig], *, ax=None, annotate: bool = True):
    """Attention parameters per layer (log x) against cache elements per token and
    layer (log y): down and left is cheaper."""
    ax = _axes(ax)
    for name, cfg in configs.items():
        p, c = cfg.param_count(), cfg.kv_cache_elements_per_token()
        ax.scatter(p, c, s=40)
        if annotate:
            ax.annotate(name, (p, c), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="attention parameters per layer",
           ylabel="KV cache elements per token per layer")
    ax.grid(alpha=0.3, which="both")
    return ax


def plot_spectra(spectra: list[Tensor], labels: list[str], *, ax=None, title: str | None = None):
    """Singular values of mode unfoldings, each normalized by its largest (log y)."""
    ax = _axes(ax)
    for s, lab in zip(spectra, labels):
        s = s.detach().double().cpu()
        ax.semilogy(range(1, len(s) + 1), (s / s[0]).clamp_min(1e-17), marker=".", label=lab)
    ax.set(xlabel="index", ylabel="singular value / largest", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return ax


def plot_rope(layouts: dict[str, dict], *, n: int, max_offset: int = 512, axes=None):
    """For each named layout (kwargs of ``rope_frequencies``: layout, rope_dim, base):
    left, the frequency of each of the n dims (log y); right, the logit
    <RoPE_m(1), RoPE_n(1)> of an all-ones query and key against the offset m - n,
    normalized by n (RoPE's long-range decay)."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    offsets = torch.arange(max_offset + 1)
    for name, kw in layouts.items():
        freq = rope_frequencies(n, **kw)
        axes[0].semilogy(range(n), freq.clamp_min(1e-12), ".", ms=4, label=name)
        ones = torch.ones(1, max_offset + 1, n, dtype=torch.float64)
        layout = {"layout": kw.get("layout", "full"), "rope_dim": kw.get("rope_dim"), "base": kw.get("base", 1e4)}
        score = (apply_rope(ones, offsets, **layout) * ones).sum(-1)[0] / n  # <R(d) 1, 1> / n
        axes[1].plot(offsets, score, lw=1.2, label=name)
    axes[0].set(xlabel="latent dimension", ylabel="frequency (rad / position), 1e-12 = none",
                title=f"RoPE frequencies over {n} dims")
    axes[1].set(xlabel="relative position m - n", ylabel="<R(m) 1, R(n) 1> / n",
                title="logit of equal all-ones query and key")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    return axes


def plot_decode_bench(doc: dict, *, scope: str = "core", batch: int | None = None, ax=None):
    """Decode benchmark JSON (``python -m tucker_lab.bench decode``): time per step (ms, log)
    against context (log), one line per variant and kernel, with the memory floor
    (bytes / measured copy bandwidth) dashed."""
    ax = _axes(ax)
    rows = [r for r in doc["results"] if r["scope"] == scope]
    batch = batch or min(r["batch"] for r in rows)
    rows = [r for r in rows if r["batch"] == batch]
    for i, key in enumerate(sorted({(r["variant"], r["impl"]) for r in rows})):
        rs = sorted((r for r in rows if (r["variant"], r["impl"]) == key), key=lambda r: r["context"])
        ctx = [r["context"] for r in rs]
        ax.plot(ctx, [r["median_ms"] for r in rs], marker="o", ms=3, color=f"C{i}", label=f"{key[0]} ({key[1]})")
        ax.plot(ctx, [r["floor_ms"] for r in rs], ls="--", lw=0.8, color=f"C{i}")
    ax.set(xscale="log", yscale="log", xlabel="context (tokens in the cache)", ylabel="time per decode step (ms)",
           title=f"{doc['device']}, {doc['dtype']}, batch {batch}, {scope} (dashed: bytes / copy bandwidth)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    return ax
