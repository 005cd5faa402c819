"""Static figures for the book, drawn from the package's own numbers.

Each function draws on a matplotlib Axes (a new figure when none is given) and
returns it, so a chapter can compose panels. See: book/01_attention onwards.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from .config import AttentionConfig

__all__ = ["plot_cache_vs_context", "plot_landscape", "plot_spectra"]


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
