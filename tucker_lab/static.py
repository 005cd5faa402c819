"""Knob panels that work in the static HTML, without a kernel.

A panel's answers are closed-form (parameters, cache, FLOPs) or come from committed results
JSON, so the package computes them here, in Python, over the whole grid of the panel's
controls; the page only filters the precomputed rows. The result is a Vega-Lite chart
(built with Altair) whose controls are bound parameters: moving one changes the numbers and
the bars in the browser. The book serves Vega, Vega-Lite and vega-embed from its own
``_static`` (``book/_ext/tucker_book.py``), so nothing is loaded from elsewhere. The charts need
Altair (extra ``widgets``); the rows do not.

Use in a chapter (the live ipywidgets panel for Jupyter and Colab, the static one for the
book; :func:`tucker_lab.notebook.panel` shows whichever the viewer can move)::

    from tucker_lab import notebook, static, widgets
    notebook.panel(widgets.gqa_panel(), static.gqa_panel())

A new panel over any config family (one ``Control`` per knob: its name, the grid of its
values, the default; the rows are computed here, the page only filters them)::

    static.accounting_panel(
        lambda r_k: tkl.TuckerConfig(d_model=768, n_heads=12, ranks_qk=(8, 128, r_k),
                                     ranks_vo=(8, 128, r_k)),
        [static.Control("r_k", [16, 32, 64, 128], 64)], label="Tucker (chosen)",
        baselines=tkl.standard_configs(768, 12), title="Tucker [8, 128, r_k]")

Panels over committed results (``frontier_panel``, ``curves_panel``, ``bench_panel``) follow
the same pattern with their own marks; ``tests/test_static.py`` checks every panel's rows
against the package and ``tests/test_browser.py`` moves every control in the built page.

``panel.rows`` holds the precomputed rows (tested against :mod:`tucker_lab.accounting`),
``panel.spec`` the Vega-Lite specification and ``panel.to_html()`` what the page embeds.
"""
from __future__ import annotations

import hashlib
import html
import itertools
import json
import math
from typing import Any, Callable, Sequence

import torch

from ._extras import require
from .accounting import accounting_rows
from .config import AttentionConfig, GQAConfig, MLAConfig, TPAConfig, TuckerConfig, standard_configs

__all__ = ["StaticPanel", "Control", "grid_rows", "accounting_panel", "cache_panel", "gqa_panel",
           "mla_panel", "tucker_panel", "tpa_panel", "frontier_panel", "curves_panel", "bench_panel",
           "PANEL_CLASS"]

PANEL_CLASS = "tucker-static-panel"  # book/_ext/tucker_book.py loads Vega on pages with one
_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
_NO_SCRIPT = ("This panel is drawn by the book's HTML pages (Vega-Lite, served with the book). "
              "In Jupyter or Colab, the widgets and figures of the chapter show the same numbers.")


def _altair():
    # altair only draws the charts: the rows (grid_rows, accounting) work without it
    return require("altair", "widgets", "a static panel")


class Control:
    """One knob of a static panel: a name, the grid of its values, how it is shown
    (``"range"`` slider for evenly spaced numbers, else ``"select"``) and its default."""

    def __init__(self, name: str, values: Sequence, default: Any = None, *, label: str | None = None,
                 kind: str | None = None):
        self.name, self.values, self.label = name, list(values), label or name.replace("_", " ")
        if not self.values:
            raise ValueError(f"control {name!r} has no values")
        self.default = self.values[len(self.values) // 2] if default is None else default
        if self.default not in self.values:
            raise ValueError(f"default {self.default!r} of control {name!r} is not among {self.values}")
        steps = {b - a for a, b in zip(self.values, self.values[1:])} if all(
            isinstance(v, int) and not isinstance(v, bool) for v in self.values) else None
        self.kind = kind or ("range" if steps and len(steps) == 1 and len(self.values) > 2 else "select")

    def binding(self):
        alt = _altair()
        if self.kind == "range":
            v = self.values
            return alt.binding_range(min=v[0], max=v[-1], step=v[1] - v[0], name=self.label + " ")
        if self.kind == "check":
            return alt.binding_checkbox(name=self.label + " ")
        return alt.binding_select(options=self.values, name=self.label + " ")


class StaticPanel:
    """A Vega-Lite chart with bound controls over precomputed ``rows``; displays as HTML."""

    def __init__(self, spec: dict, rows: list[dict], controls: list[Control], title: str = ""):
        self.spec, self.rows, self.controls, self.title = spec, rows, controls, title

    def to_html(self) -> str:
        spec = {k: v for k, v in self.spec.items() if k != "$schema"}  # nothing to fetch
        payload = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
        uid = "tsp-" + hashlib.sha1(payload.encode()).hexdigest()[:10]
        return f"""<div class="{PANEL_CLASS}" id="{uid}" data-controls="{len(self.controls)}" \
role="figure" aria-label="{html.escape(self.title or 'interactive panel', quote=True)}">\
<p class="tsp-fallback">{html.escape(_NO_SCRIPT)}</p></div>
<script type="application/json" id="{uid}-spec">{payload}</script>
<script>(function () {{
  function draw() {{
    var el = document.getElementById("{uid}");
    if (!el || !window.vegaEmbed) return;
    var spec = JSON.parse(document.getElementById("{uid}-spec").textContent);
    window.vegaEmbed(el, spec, {{mode: "vega-lite", actions: false, renderer: "svg"}})
      .then(function () {{ el.setAttribute("data-rendered", "1"); }})
      .catch(function (e) {{ console.error("static panel {uid}: " + e); }});
  }}
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
}})();</script>"""

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"StaticPanel({self.title!r}, {len(self.rows)} rows, controls {[c.name for c in self.controls]})"


def grid_rows(build: Callable[..., AttentionConfig], controls: Sequence[Control], *, label: str,
              baselines: dict[str, AttentionConfig], context: int = 4096, n_layers: int = 1,
              batch: int = 1, dtype: torch.dtype = torch.bfloat16) -> list[dict]:
    """``accounting_rows`` of the baselines (once, ``chosen`` False) and of ``build(**knobs)``
    at every point of the controls' grid (``chosen`` True, the knob values as fields; an
    invalid point gets an ``error`` row with the config's message)."""
    rows = [{**r, "chosen": False} for r in
            accounting_rows(baselines, context=context, n_layers=n_layers, batch=batch, dtype=dtype)]
    base = dict(baselines)
    for values in itertools.product(*(c.values for c in controls)):
        knobs = dict(zip((c.name for c in controls), values))
        try:
            cfg = build(**knobs)
        except ValueError as e:
            rows.append({"variant": label, "chosen": True, "error": str(e), **knobs})
            continue
        r = accounting_rows({**base, label: cfg}, context=context, n_layers=n_layers, batch=batch,
                            dtype=dtype)[-1]
        rows.append({**r, "chosen": True, "error": "", **knobs})
    return rows


_MEASURES = {  # field -> (axis title, number format of the labels, of the axis)
    "params": ("attention parameters per layer", ",d", "~s"),
    "cache_elems_per_token": ("KV cache numbers per token and layer", ",d", "~s"),
    "cache_GiB": ("KV cache of the model (GiB)", ",.3f", ",.3~f"),
    "flops_per_token": ("FLOPs per decoded token", ".3s", "~s"),
}


def _knob_filter(controls: Sequence[Control]) -> str:
    def cond(c: Control) -> str:
        return f"datum[{json.dumps(c.name)}] == {c.name}"
    return " && ".join(cond(c) for c in controls) or "true"


def _slim(rows: list[dict], fields: Sequence[str]) -> list[dict]:
    """Only the fields the chart reads, numbers rounded to what the labels show."""
    out = []
    for r in rows:
        s = {k: r[k] for k in fields if k in r}
        for k, v in s.items():
            if isinstance(v, float) and math.isfinite(v):
                s[k] = float(f"{v:.6g}")
        out.append(s)
    return out


def _bars(data, field: str, width: int, highlight: str):
    alt = _altair()
    title, fmt, axis_fmt = _MEASURES[field]
    base = alt.Chart(data, width=width).encode(
        y=alt.Y("variant:N", sort=None, title=None),
        x=alt.X(f"{field}:Q", title=title, axis=alt.Axis(format=axis_fmt)))
    bars = base.mark_bar().encode(
        color=alt.condition(highlight, alt.value("#d95f02"), alt.value("#7570b3")),
        tooltip=[alt.Tooltip("variant:N"), alt.Tooltip(f"{field}:Q", format=fmt)])
    text = base.mark_text(align="left", dx=3, fontSize=11).encode(text=alt.Text(f"{field}:Q", format=fmt))
    return bars + text


def _chart(rows: list[dict], controls: list[Control], measures: Sequence[str], *, title: str,
           filter_expr: str, highlight: str, width: int = 380) -> dict:
    """Bars of ``measures`` per variant for the rows that pass ``filter_expr``, the controls
    bound below the chart, and a line that names the chosen point (or its error)."""
    alt = _altair()
    fields = ["variant", "chosen", "error", *measures, *(c.name for c in controls)]
    data = alt.Data(values=_slim(rows, fields))
    params = [alt.param(name=c.name, value=c.default, bind=c.binding()) for c in controls]
    charts = [_bars(data, m, width, highlight).transform_filter(filter_expr).transform_filter("!datum.error")
              for m in measures]
    note = (alt.Chart(data).transform_filter(filter_expr).transform_filter("datum.error")
            .mark_text(align="left", color="#b00", fontSize=12, limit=3 * width)
            .encode(text=alt.Text("error:N"), x=alt.value(0), y=alt.value(8)).properties(height=16))
    top = alt.vconcat(*charts, note, spacing=10).add_params(*params).properties(
        title=alt.Title(title, anchor="start", fontSize=13))
    return top.configure_view(stroke=None).configure_axis(labelFontSize=11, titleFontSize=11).to_dict()


def accounting_panel(build: Callable[..., AttentionConfig], controls: Sequence[Control], *, label: str,
                     baselines: dict[str, AttentionConfig], title: str, context: int = 4096,
                     measures: Sequence[str] = ("params", "cache_elems_per_token", "flops_per_token"),
                     ) -> StaticPanel:
    """Parameters, cache and FLOPs of ``build(**knobs)`` (bars in orange, named ``label``)
    next to fixed ``baselines``, for every point of the controls' grid."""
    controls = list(controls)
    rows = grid_rows(build, controls, label=label, baselines=baselines, context=context)
    expr = f"!datum.chosen || ({_knob_filter(controls)})"
    spec = _chart(rows, controls, measures, title=title, filter_expr=expr, highlight="datum.chosen")
    return StaticPanel(spec, rows, controls, title)


def _standard(d_model: int, n_heads: int, keep: Callable[[str], bool]) -> dict[str, AttentionConfig]:
    return {k: v for k, v in standard_configs(d_model, n_heads).items() if keep(k)}


def _divisors(n: int) -> list[int]:
    return [g for g in range(1, n + 1) if n % g == 0]


def gqa_panel(d_model: int = 768, n_heads: int = 12) -> StaticPanel:
    """KV groups G -> parameters, cache and FLOPs of GQA next to MHA and MQA (ch. 2)."""
    divisors = _divisors(n_heads)
    return accounting_panel(
        lambda n_kv_heads: GQAConfig(d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads),
        [Control("n_kv_heads", divisors, divisors[len(divisors) // 2], label="KV heads G", kind="select")],
        label="GQA (chosen)", baselines=_standard(d_model, n_heads, lambda k: k in ("MHA", "MQA")),
        title=f"GQA at C = {d_model}, H = {n_heads} (context 4096)")


def mla_panel(d_model: int = 768, n_heads: int = 12) -> StaticPanel:
    """MLA latent sizes -> parameters, cache and FLOPs vs MHA and GQA (ch. 3); q_rank 0: none."""
    D = d_model // n_heads
    kv = sorted({D // 2, D, 2 * D, 4 * D, 8 * D} & set(range(8, d_model)))

    def build(kv_rank, q_rank, rope_dim):
        return MLAConfig(d_model=d_model, n_heads=n_heads, kv_rank=kv_rank, q_rank=q_rank or None,
                         rope_dim=rope_dim, rope=rope_dim > 0)

    return accounting_panel(build, [
        Control("kv_rank", kv, 4 * D if 4 * D in kv else kv[-1], label="R_kv"),
        Control("q_rank", [0, 2 * D, 4 * D, 6 * D, 8 * D], 0, label="R_q (0: none)"),
        Control("rope_dim", list(range(0, D + 1, D // 4)), D // 2, label="D_rope")],
        label="MLA (chosen)", title=f"MLA at C = {d_model}, H = {n_heads} (context 4096)",
        baselines=_standard(d_model, n_heads, lambda k: k in ("MHA", "MQA") or k.startswith("GQA")))


def tucker_panel(d_model: int = 768, n_heads: int = 12) -> StaticPanel:
    """Tucker ranks (one triple for both tensors) and shared_kv -> parameters, cache and
    FLOPs vs MHA, GQA, MQA and MLA (ch. 6)."""
    pow2 = [r for r in (8, 16, 32, 64, 128, 256, 512) if r <= d_model]

    def build(r_head, r_q, r_k, shared_kv):
        r = (r_head, r_q, r_k)
        return TuckerConfig(d_model=d_model, n_heads=n_heads, ranks_qk=r, ranks_vo=r,
                            shared_kv=shared_kv == "yes")

    return accounting_panel(build, [
        Control("r_head", list(range(1, n_heads + 1)), min(8, n_heads), label="r_head"),
        Control("r_q", pow2, 128 if 128 in pow2 else pow2[-1], label="r_q"),
        Control("r_k", pow2, 64 if 64 in pow2 else pow2[-1], label="r_k = r_v"),
        Control("shared_kv", ["no", "yes"], "no", label="shared latent")],
        label="Tucker (chosen)", title=f"Tucker [r_head, r_q, r_k] at C = {d_model}, H = {n_heads}",
        baselines=_standard(d_model, n_heads, lambda k: k not in ("Tucker", "TPA")))


def tpa_panel(d_model: int = 768, n_heads: int = 12) -> StaticPanel:
    """TPA ranks -> parameters, cache and FLOPs vs MHA, GQA, MLA and Tucker (ch. 11)."""
    def build(q_rank, k_rank, v_rank):
        return TPAConfig(d_model=d_model, n_heads=n_heads, q_rank=q_rank or None, k_rank=k_rank,
                         v_rank=v_rank)

    return accounting_panel(build, [
        Control("q_rank", [0, 1, 2, 4, 6, 8, 12, 16], 6, label="R_q (0: KV only)"),
        Control("k_rank", [1, 2, 4, 8, 16], 2, label="R_k"),
        Control("v_rank", [1, 2, 4, 8, 16], 2, label="R_v")],
        label="TPA (chosen)", title=f"TPA at C = {d_model}, H = {n_heads} (context 4096)",
        baselines=_standard(d_model, n_heads, lambda k: k != "TPA"))


MODEL_SIZES = {  # name -> (d_model, n_heads, n_layers), public model shapes (as tucker_lab.widgets)
    "GPT-2 small": (768, 12, 12),
    "GPT-2 medium": (1024, 16, 24),
    "Llama-3.2-1B": (2048, 32, 16),
    "Llama-3-8B": (4096, 32, 32),
    "DeepSeek-V2": (5120, 128, 60),
}


def cache_panel() -> StaticPanel:
    """Model size x context x batch x dtype -> whole-model KV cache (GiB) and cache per token
    of every standard variant (ch. 1)."""
    controls = [Control("model", list(MODEL_SIZES), "Llama-3-8B"),
                Control("log2_context", list(range(10, 21, 2)), 14, label="log2 context"),
                Control("batch", [1, 8, 64], 1),
                Control("dtype", list(_DTYPES), "bf16")]
    rows = []
    for model, lc, batch, dt in itertools.product(*(c.values for c in controls)):
        C, H, L = MODEL_SIZES[model]
        for r in accounting_rows(standard_configs(C, H), context=2 ** lc, n_layers=L, batch=batch,
                                 dtype=_DTYPES[dt]):
            rows.append({**r, "chosen": r["variant"] == "MHA", "error": "", "model": model,
                         "log2_context": lc, "batch": batch, "dtype": dt})
    spec = _chart(rows, controls, ("cache_GiB", "cache_elems_per_token"), filter_expr=_knob_filter(controls),
                  highlight="datum.variant == 'MHA'",
                  title="Whole-model KV cache: model, context (2^k tokens), batch, dtype")
    return StaticPanel(spec, rows, controls, "KV cache of whole models")


def frontier_panel(docs: dict[str, dict]) -> StaticPanel:
    """Committed sweeps (``tucker_lab.experiments``; task -> results JSON) -> attention
    parameters (log x) against the validation metric, one line per family, for the chosen
    task and metric (ch. 12)."""
    alt = _altair()
    rows = []
    for task, doc in docs.items():
        for r in doc["runs"]:
            for metric in ("val_loss", "val_accuracy"):
                v = r.get(metric)
                if v is None or not math.isfinite(float(v)):
                    continue
                rows.append({"task": task, "metric": metric.replace("_", " "), "family": r["family"],
                             "run": r["name"], "attention_params": int(r["attention_params"]),
                             "value": float(f"{float(v):.6g}"),
                             "cache": int(r["cache_elems_per_token"])})
    controls = [Control("task", list(docs), next(iter(docs))),
                Control("metric", ["val loss", "val accuracy"], "val loss")]
    params = [alt.param(name=c.name, value=c.default, bind=c.binding()) for c in controls]
    base = alt.Chart(alt.Data(values=rows), width=520, height=300).transform_filter(_knob_filter(controls))
    enc = dict(x=alt.X("attention_params:Q", scale=alt.Scale(type="log"),
                       title="attention parameters (all layers)"),
               y=alt.Y("value:Q", scale=alt.Scale(zero=False), title="validation metric (see control)"),
               color=alt.Color("family:N", sort=["MHA", "GQA", "MLA", "TPA", "Tucker"]))
    lines = base.mark_line(point=True).encode(
        **enc, order="attention_params:Q",
        tooltip=["run:N", alt.Tooltip("attention_params:Q", format=","), alt.Tooltip("value:Q", format=".4f"),
                 alt.Tooltip("cache:Q", title="cache numbers / token", format=",")])
    labels = base.mark_text(align="left", dx=4, dy=-6, fontSize=9).encode(
        x=enc["x"], y=enc["y"], color=enc["color"], text="run:N")
    spec = (lines + labels).add_params(*params).properties(
        title=alt.Title("Committed sweeps: quality against attention parameters", anchor="start")
    ).configure_axis(labelFontSize=11, titleFontSize=11).to_dict()
    return StaticPanel(spec, rows, controls, "parameter/quality frontier of the committed sweeps")


def bench_panel(doc: dict) -> StaticPanel:
    """A committed decode benchmark (``python -m tucker_lab.bench decode``) -> time per step
    (log) against context (log) per variant and kernel, with the memory floor, for the chosen
    scope and batch (ch. 10)."""
    alt = _altair()
    rows = [{"variant": f"{r['variant']} ({r['impl']})", "scope": r["scope"], "batch": r["batch"],
             "context": r["context"], "ms": float(f"{r['median_ms']:.5g}"),
             "floor": float(f"{r['floor_ms']:.5g}")} for r in doc["results"]]
    scopes = sorted({r["scope"] for r in rows})
    batches = sorted({r["batch"] for r in rows})
    controls = [Control("scope", scopes, scopes[0]), Control("batch", batches, batches[0], kind="select")]
    params = [alt.param(name=c.name, value=c.default, bind=c.binding()) for c in controls]
    base = alt.Chart(alt.Data(values=rows), width=520, height=300).transform_filter(_knob_filter(controls))
    x = alt.X("context:Q", scale=alt.Scale(type="log", base=2), title="context (tokens in the cache)")
    measured = base.mark_line(point=True).encode(
        x=x, y=alt.Y("ms:Q", scale=alt.Scale(type="log"), title="time per decode step (ms)"),
        color=alt.Color("variant:N", title="variant (kernel)",
                        legend=alt.Legend(orient="bottom", columns=3, labelLimit=200)),
        tooltip=["variant:N", "context:Q", alt.Tooltip("ms:Q", format=".4f"), alt.Tooltip("floor:Q", format=".4f")])
    floor = base.mark_line(strokeDash=[4, 3], strokeWidth=1).encode(x=x, y="floor:Q", color="variant:N")
    spec = (measured + floor).add_params(*params).properties(
        title=alt.Title(f"{doc['device']}, {doc['dtype']}: measured (solid), bytes / copy bandwidth (dashed)",
                        anchor="start")).configure_axis(labelFontSize=11, titleFontSize=11).to_dict()
    return StaticPanel(spec, rows, controls, "decode benchmark")


def curves_panel(docs: dict[str, dict]) -> StaticPanel:
    """Committed sweeps (task -> results JSON) -> the validation curves of every run of the
    chosen task, metric and family (each family drawn with MHA for reference) (ch. 12)."""
    alt = _altair()
    rows, families = [], ["all"]
    for task, doc in docs.items():
        for r in doc["runs"]:
            if r["family"] not in families:
                families.append(r["family"])
            for metric in ("val_loss", "val_accuracy"):
                vals = r["curves"].get(metric) or []
                for step, v in zip(r["curves"]["step"], vals):
                    if v is not None and math.isfinite(float(v)):
                        rows.append({"task": task, "metric": metric.replace("_", " "), "family": r["family"],
                                     "run": f"{r['name']} ({int(r['attention_params']):,})", "step": step,
                                     "value": float(f"{float(v):.5g}")})
    controls = [Control("task", list(docs), next(iter(docs))),
                Control("metric", ["val loss", "val accuracy"], "val loss"),
                Control("family", families, "Tucker" if "Tucker" in families else "all")]
    params = [alt.param(name=c.name, value=c.default, bind=c.binding()) for c in controls]
    base = alt.Chart(alt.Data(values=rows), width=560, height=300).transform_filter(
        "datum.task == task && datum.metric == metric && "
        "(family == 'all' || datum.family == family || datum.family == 'MHA')")
    lines = base.mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("value:Q", scale=alt.Scale(zero=False), title="validation metric (see control)"),
        color=alt.Color("run:N", title="run (attention parameters)",
                        legend=alt.Legend(orient="bottom", columns=3, labelLimit=200)),
        strokeDash=alt.condition("datum.family == 'MHA'", alt.value([4, 3]), alt.value([1, 0])),
        tooltip=["run:N", "step:Q", alt.Tooltip("value:Q", format=".4f")])
    spec = lines.add_params(*params).properties(
        title=alt.Title("Committed sweeps: validation curves (MHA dashed)", anchor="start")
    ).configure_axis(labelFontSize=11, titleFontSize=11).to_dict()
    return StaticPanel(spec, rows, controls, "validation curves of the committed sweeps")
