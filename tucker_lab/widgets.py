"""ipywidgets panels for the book: move a knob, watch parameters and caches change.

Each panel is ``ipywidgets.interactive`` over a pure function of the knobs, so
it works (and is tested) without a kernel: set ``panel.children[i].value`` and
read ``panel.result`` (the accounting rows, or the config's error message).
In the static HTML the first view is embedded; the chapters add a static
figure of the same landscape for readers without a kernel. Needs the extra ``widgets``
(ipywidgets, IPython; matplotlib for the figures).

See: book/01_attention (cache_panel), 02 (gqa_panel), 03 (mla_panel),
05 (rank_panel), 06 (tucker_panel), 07 (special_case_panel), 08 (rope_panel),
10 (bench_panel), 11 (tpa_panel), 12 (curves_panel), 04 (hosvd_panel),
13 (compression_panel).
"""
from __future__ import annotations

import functools
from typing import Callable

import torch

from ._extras import require
from .accounting import accounting_rows
from .config import (AttentionConfig, GQAConfig, MHAConfig, MLAConfig, TPAConfig, TuckerConfig,
                     standard_configs)

W = require("ipywidgets", "widgets", "tucker_lab.widgets")
_ipy_display = require("IPython.display", "widgets", "tucker_lab.widgets")
HTML, display = _ipy_display.HTML, _ipy_display.display

__all__ = ["MODEL_SIZES", "rows_html", "config_panel", "cache_panel", "gqa_panel", "mla_panel",
           "tpa_panel", "tucker_panel", "rank_panel", "special_case_panel", "rope_panel", "bench_panel",
           "curves_panel", "hosvd_panel", "compression_panel"]

# name -> (d_model, n_heads, n_layers), public model shapes
MODEL_SIZES = {
    "GPT-2 small": (768, 12, 12),
    "GPT-2 medium": (1024, 16, 24),
    "Llama-3.2-1B": (2048, 32, 16),
    "Llama-3-8B": (4096, 32, 32),
    "DeepSeek-V2": (5120, 128, 60),
}
_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def _ranks(cfg: AttentionConfig) -> str:
    try:
        r = cfg.max_ranks()
    except ValueError:
        return "n/a"
    return f"{r['qk']} / {r['vo']}"


def _shows_errors(update: Callable, show: bool) -> Callable:
    """A panel's update function whose ValueError (an invalid choice of knobs) is shown
    in the panel and becomes ``panel.result`` as text, instead of a traceback."""
    @functools.wraps(update)
    def guarded(**knobs):
        try:
            return update(**knobs)
        except ValueError as e:
            if show:
                display(HTML(f"<b>invalid:</b> {e}"))
            return str(e)
    return guarded


def rows_html(rows: list[dict], configs: dict[str, AttentionConfig] | None = None) -> str:
    """An HTML table of ``accounting_rows`` (plus max Tucker ranks when configs are given)."""
    head = ["variant", "params / layer", "x MHA", "cache elems / token", "x MHA", "cache GiB"]
    if configs:
        head.append("max ranks W_qk / W_vo")
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        cells = [r["variant"], f"{r['params']:,}", f"{r['params_vs_base']:.3f}",
                 f"{r['cache_elems_per_token']:,}", f"{r['cache_vs_base']:.3f}", f"{r['cache_GiB']:.3f}"]
        if configs:
            cells.append(_ranks(configs[r["variant"]]))
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(out) + "</table>"


def config_panel(build: Callable[..., AttentionConfig], controls: dict[str, W.ValueWidget], *,
                 label: str, baselines: dict[str, AttentionConfig], context: int = 4096,
                 n_layers: int = 1, show: bool = True) -> W.interactive:
    """A panel that rebuilds ``build(**knobs)`` on every change and shows it next to
    ``baselines``. ``panel.result`` holds the rows, or the config's ValueError text."""

    def update(**knobs):
        configs = {**baselines, label: build(**knobs)}
        rows = accounting_rows(configs, context=context, n_layers=n_layers)
        if show:
            display(HTML(rows_html(rows, configs)))
        return rows

    return W.interactive(_shows_errors(update, show), **controls)


def _size_baselines(d_model: int, n_heads: int) -> dict[str, AttentionConfig]:
    std = standard_configs(d_model, n_heads)
    return {k: v for k, v in std.items() if k in ("MHA", "MQA") or k.startswith("GQA")}


def cache_panel(show: bool = True) -> W.interactive:
    """Model size x context x batch x dtype -> whole-model KV cache per variant (ch. 1)."""

    def update(model, log2_context, batch, dtype):
        C, H, L = MODEL_SIZES[model]
        configs = standard_configs(C, H)
        rows = accounting_rows(configs, context=2 ** log2_context, n_layers=L, batch=batch,
                               dtype=_DTYPES[dtype])
        if show:
            display(HTML(f"<p>{model}: {L} layers, context {2 ** log2_context:,}, batch {batch}, "
                         f"{dtype}</p>" + rows_html(rows)))
        return rows

    return W.interactive(
        update, model=W.Dropdown(options=list(MODEL_SIZES), value="Llama-3-8B"),
        log2_context=W.IntSlider(value=15, min=10, max=20, description="log2 context"),
        batch=W.IntSlider(value=1, min=1, max=64), dtype=W.Dropdown(options=list(_DTYPES), value="bf16"))


def gqa_panel(d_model: int = 768, n_heads: int = 12, show: bool = True) -> W.interactive:
    """Number of KV groups G -> parameters and cache of GQA vs MHA and MQA (ch. 2)."""
    divisors = [g for g in range(1, n_heads + 1) if n_heads % g == 0]
    return config_panel(lambda n_kv_heads: GQAConfig(d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads),
                        {"n_kv_heads": W.SelectionSlider(options=divisors, value=divisors[len(divisors) // 2])},
                        label="GQA (chosen)", baselines=_size_baselines(d_model, n_heads), show=show)


def mla_panel(d_model: int = 768, n_heads: int = 12, show: bool = True) -> W.interactive:
    """MLA latent sizes -> parameters and cache vs MHA/GQA (ch. 3). q_rank 0 means none."""
    D = d_model // n_heads

    def build(kv_rank, q_rank, rope_dim):
        return MLAConfig(d_model=d_model, n_heads=n_heads, kv_rank=kv_rank,
                         q_rank=q_rank or None, rope_dim=rope_dim, rope=rope_dim > 0)

    return config_panel(build, {
        "kv_rank": W.IntSlider(value=4 * D, min=8, max=d_model - D, step=8),
        "q_rank": W.IntSlider(value=0, min=0, max=d_model, step=8),
        "rope_dim": W.IntSlider(value=D // 2, min=0, max=D, step=2)},
        label="MLA (chosen)", baselines=_size_baselines(d_model, n_heads), show=show)


def tpa_panel(d_model: int = 768, n_heads: int = 12, show: bool = True) -> W.interactive:
    """TPA ranks -> parameters and cache vs MHA/GQA and Tucker (ch. 11). q_rank 0: KV-only."""
    std = standard_configs(d_model, n_heads)
    base = {k: std[k] for k in std if k != "TPA"}

    def build(q_rank, k_rank, v_rank):
        return TPAConfig(d_model=d_model, n_heads=n_heads, q_rank=q_rank or None,
                         k_rank=k_rank, v_rank=v_rank)

    return config_panel(build, {n: W.IntSlider(value=v, min=lo, max=16) for n, v, lo in
                                (("q_rank", 6, 0), ("k_rank", 2, 1), ("v_rank", 2, 1))},
                        label="TPA (chosen)", baselines=base, show=show)


def tucker_panel(d_model: int = 768, n_heads: int = 12, show: bool = True) -> W.interactive:
    """Tucker ranks (the same triple for both tensors, as in the paper's experiments)
    -> parameters and cache vs MHA, GQA, MLA (ch. 6)."""
    std = standard_configs(d_model, n_heads)
    base = {k: std[k] for k in std if k not in ("Tucker", "TPA")}

    def build(r_head, r_q, r_k, shared_kv):
        r = (r_head, r_q, r_k)
        return TuckerConfig(d_model=d_model, n_heads=n_heads, ranks_qk=r, ranks_vo=r, shared_kv=shared_kv)

    return config_panel(build, {
        "r_head": W.IntSlider(value=min(8, n_heads), min=1, max=n_heads),
        "r_q": W.IntSlider(value=min(128, d_model), min=2, max=d_model, step=2),
        "r_k": W.IntSlider(value=min(64, d_model), min=2, max=d_model, step=2),
        "shared_kv": W.Checkbox(value=False)},
        label="Tucker (chosen)", baselines=base, show=show)


def rank_panel(d_model: int = 768, n_heads: int = 12, show: bool = True) -> W.interactive:
    """The largest multilinear ranks of (W_qk, W_vo) that MHA, GQA, MLA and Tucker can
    reach, next to their parameters (ch. 5). ``panel.result``: name -> max_ranks()."""
    divisors = [g for g in range(1, n_heads + 1) if n_heads % g == 0]
    D = d_model // n_heads

    def update(n_kv_heads, kv_rank, r_head, r_embed, r_latent):
        r = (r_head, r_embed, r_latent)
        configs = {"MHA": MHAConfig(d_model=d_model, n_heads=n_heads),
                   f"GQA-{n_kv_heads}": GQAConfig(d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads),
                   f"MLA (R_kv={kv_rank})": MLAConfig(d_model=d_model, n_heads=n_heads, kv_rank=kv_rank),
                   f"Tucker {list(r)}": TuckerConfig(d_model=d_model, n_heads=n_heads, ranks_qk=r, ranks_vo=r)}
        if show:
            display(HTML(rows_html(accounting_rows(configs, baseline="MHA"), configs)))
        return {k: c.max_ranks() for k, c in configs.items()}

    return W.interactive(
        _shows_errors(update, show), n_kv_heads=W.SelectionSlider(options=divisors, value=divisors[len(divisors) // 2]),
        kv_rank=W.IntSlider(value=4 * D, min=8, max=d_model - D, step=8),
        r_head=W.IntSlider(value=min(8, n_heads), min=1, max=n_heads),
        r_embed=W.IntSlider(value=min(128, d_model), min=2, max=d_model, step=2),
        r_latent=W.IntSlider(value=min(64, d_model), min=2, max=d_model, step=2))


SPECIAL_CASES = ("MHA", "GQA", "MQA", "MLA (decoupled RoPE)", "MLA (coupled RoPE)", "TPA (constant A)")


def special_case_layer(variant: str, d_model: int, n_heads: int, rope: bool):
    """A random float64 layer of one of ``SPECIAL_CASES`` at this size (ch. 7)."""
    from .attention import build_attention
    C, H = d_model, n_heads
    cfg = {"MHA": lambda: MHAConfig(d_model=C, n_heads=H, rope=rope),
           "GQA": lambda: GQAConfig(d_model=C, n_heads=H, n_kv_heads=max(1, H // 2), rope=rope),
           "MQA": lambda: GQAConfig(d_model=C, n_heads=H, n_kv_heads=1, rope=rope),
           "MLA (decoupled RoPE)": lambda: MLAConfig(d_model=C, n_heads=H, kv_rank=C // 2, rope=rope,
                                                      rope_dim=None if rope else 0),
           "MLA (coupled RoPE)": lambda: MLAConfig(d_model=C, n_heads=H, kv_rank=C // 2, rope=rope,
                                                    coupled_rope=rope),
           "TPA (constant A)": lambda: TPAConfig(d_model=C, n_heads=H, q_rank=2, k_rank=1, v_rank=2,
                                                 contextual_a=False, rope=rope)}[variant]()
    return build_attention(cfg).double()


def special_case_panel(show: bool = True) -> W.interactive:
    """Pick a variant and a size; the panel builds a random layer, converts it with
    ``to_tucker`` and reports the Tucker ranks, the RoPE layout and the max output
    difference on a random input (ch. 7)."""
    from .convert import to_tucker

    def update(variant, d_model, n_heads, rope):
        layer = special_case_layer(variant, d_model, n_heads, rope)
        tucker = to_tucker(layer)
        x = torch.randn(1, 12, d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        out = {"ranks_qk": tucker.cfg.ranks_qk, "ranks_vo": tucker.cfg.ranks_vo,
               "rope_layout": tucker.cfg.rope_layout if rope else "none",
               "max_abs_error": (tucker(x) - layer(x)).abs().max().item()}
        if show:
            display(HTML("<br>".join(f"<b>{k}</b>: {v}" for k, v in out.items())))
        return out

    return W.interactive(_shows_errors(update, show), variant=W.Dropdown(options=SPECIAL_CASES, value="GQA"),
                         d_model=W.SelectionSlider(options=[16, 24, 32, 48, 64], value=32),
                         n_heads=W.SelectionSlider(options=[2, 4, 8], value=4),
                         rope=W.Checkbox(value=True))


def rope_panel(show: bool = True) -> W.interactive:
    """Latent size, RoPE layout, block/slice size and base -> the frequency of every
    dim and the logit-vs-offset curve (ch. 8). ``panel.result``: the frequencies (n,)."""
    from .rope import rope_frequencies

    def update(layout, n, rope_dim, log10_base):
        kw = {"layout": layout, "base": 10.0 ** log10_base}
        if layout != "full":
            kw["rope_dim"] = rope_dim
        freq = rope_frequencies(n, **kw)
        if show:
            plt = require("matplotlib.pyplot", "plot", "a widget's figure")
            from .plots import plot_rope
            plot_rope({layout: kw}, n=n)
            plt.show()
        return freq

    return W.interactive(_shows_errors(update, show),
                         layout=W.Dropdown(options=["full", "block", "tail"], value="full"),
                         n=W.IntSlider(value=64, min=8, max=256, step=8),
                         rope_dim=W.IntSlider(value=16, min=2, max=128, step=2),
                         log10_base=W.FloatSlider(value=4.0, min=2.0, max=6.0, step=0.5, description="log10 base"))


def bench_panel(doc: dict, show: bool = True) -> W.interactive:
    """A decode benchmark JSON -> its time-vs-context plot for a chosen scope and batch
    (ch. 10). ``panel.result``: the plotted rows."""
    scopes = sorted({r["scope"] for r in doc["results"]})
    batches = sorted({r["batch"] for r in doc["results"]})

    def update(scope, batch):
        rows = [r for r in doc["results"] if r["scope"] == scope and r["batch"] == batch]
        if show:
            plt = require("matplotlib.pyplot", "plot", "a widget's figure")
            from .plots import plot_decode_bench
            plot_decode_bench(doc, scope=scope, batch=batch)
            plt.show()
        return rows

    return W.interactive(update, scope=W.Dropdown(options=scopes, value=scopes[0]),
                         batch=W.Dropdown(options=batches, value=batches[0]))


def curves_panel(doc: dict, show: bool = True) -> W.interactive:
    """Overlay the validation curves of chosen runs of a sweep (``tucker_lab.experiments``)
    (ch. 12). ``panel.result``: name -> (eval steps, values) of the chosen runs."""
    names = [r["name"] for r in doc["runs"]]
    metrics = ["val_loss"] + (["val_accuracy"] if any(r["curves"]["val_accuracy"] for r in doc["runs"]) else [])

    def update(runs, metric):
        chosen = {r["name"]: (r["curves"]["step"], r["curves"][metric]) for r in doc["runs"] if r["name"] in runs}
        if show:
            plt = require("matplotlib.pyplot", "plot", "a widget's figure")
            fig, ax = plt.subplots(figsize=(7, 4))
            for name, (steps, vals) in chosen.items():
                ax.plot(steps, vals, marker=".", label=name)
            ax.set(xlabel="training step", ylabel=metric.replace("_", " "), title=f"{doc['task']}: {metric}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            plt.show()
        return chosen

    default = tuple(n for n in names if n == "MHA" or n.startswith("Tucker"))[:4] or tuple(names[:3])
    return W.interactive(update, runs=W.SelectMultiple(options=names, value=default, rows=min(12, len(names))),
                         metric=W.Dropdown(options=metrics, value=metrics[0]))


def hosvd_panel(t: "torch.Tensor", show: bool = True) -> W.interactive:
    """Multilinear ranks of a third-order tensor -> relative error of its truncated HOSVD
    and HOOI, and the numbers stored (ch. 4). ``panel.result``: a dict of those."""
    from .tensor import hooi, hosvd, relative_error, tucker_to_tensor

    def update(r1, r2, r3):
        ranks = (r1, r2, r3)
        out = {"ranks": ranks, "numbers": r1 * r2 * r3 + sum(d * r for d, r in zip(t.shape, ranks)),
               "dense": t.numel()}
        for name, f in (("hosvd", hosvd), ("hooi", hooi)):
            out[name] = relative_error(t, tucker_to_tensor(*f(t, ranks)))
        if show:
            display(HTML(f"ranks {ranks}: HOSVD error {out['hosvd']:.4f}, HOOI error {out['hooi']:.4f}; "
                         f"{out['numbers']:,} numbers instead of {out['dense']:,}"))
        return out

    return W.interactive(update, **{f"r{n + 1}": W.IntSlider(value=max(1, d // 2), min=1, max=d)
                                    for n, d in enumerate(t.shape)})


def compression_panel(layer, show: bool = True) -> W.interactive:
    """Tucker ranks (the same triple for W_qk and W_vo) -> the compressed layer's weight
    errors and attention parameters next to the original's (ch. 13). ``panel.result``: a dict."""
    from .compression import compress, compression_error
    H, C = layer.cfg.H, layer.cfg.C

    def update(r_head, r_embed, r_latent):
        t = compress(layer, (r_head, r_embed, r_latent), (r_head, r_embed, r_latent))
        out = {**compression_error(layer, t), "params": t.cfg.param_count(), "original": layer.cfg.param_count()}
        if show:
            display(HTML(f"relative error W_qk {out['qk']:.4f}, W_vo {out['vo']:.4f}; attention parameters "
                         f"{out['params']:,} (original {out['original']:,})"))
        return out

    return W.interactive(_shows_errors(update, show), r_head=W.IntSlider(value=max(1, H // 2), min=1, max=H),
                         r_embed=W.IntSlider(value=max(1, C // 2), min=1, max=C),
                         r_latent=W.IntSlider(value=max(1, C // 4), min=1, max=C))
