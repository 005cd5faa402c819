"""Compression of a real pretrained model: the perplexity frontier and the decode table.

    python -m tucker_lab.experiments pretrained --out results/pretrained/smollm2_frontier.json

Every attention layer of the model is replaced by one family at a given share of the
original attention parameters, and the model's perplexity is measured on two held-out
texts, before and after a short data-aware recovery:

- ``tucker-hosvd`` / ``tucker-hooi``: ``compress`` with per-layer ranks, the ranks that
  keep the same energy fraction of every mode's spectrum (``rank_profile``), the energy
  chosen as the largest that fits the budget. With RoPE the key mode keeps its latent
  (G D dims): a rotation does not commute with a change of key basis.
- ``gqa-svd``: fewer KV heads, SVD merge of each group (``to_gqa``); the query and output
  projections stay whole.
- ``mla-svd``: the joint K/V SVD latent (``to_mla``); a RoPE model becomes coupled-RoPE MLA.

Recovery (``fit_layers``): each compressed layer is fitted alone, with Adam, to what the
original layer outputs on the original model's hidden states over a few thousand
calibration tokens (layer-wise distillation, as in post-training compression work);
nothing else changes. A budget a family cannot reach is recorded with the reason.

See: book/14_pretrained.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._extras import require
from .attention.base import AttentionModule
from .compression import compress, rank_profile, to_gqa, to_mla
from .config import GQAConfig, MLAConfig, TuckerConfig
from .convert import to_tucker
from .models import TinyLM, generate
from .pretrained import eval_tokens, perplexity
from .tensor import energy_rank

__all__ = ["FAMILIES", "FRACTIONS", "Setting", "attention_params", "family_ladder", "choose", "replace_layers",
           "layer_io", "fit_layers", "calibration_tokens", "frontier", "plot_frontier", "frontier_table",
           "decode_table", "exact_tucker", "run"]

FAMILIES = ("tucker-hosvd", "tucker-hooi", "gqa-svd", "mla-svd")
FRACTIONS = (1.0, 0.9, 0.8, 0.5, 0.25, 0.15, 0.10)


def _layers(model: nn.Module) -> list[AttentionModule]:
    found = [m for m in model.modules() if isinstance(m, AttentionModule)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no tucker_lab attention layers (import a transformers "
                         "Llama with TinyLM.from_hf first)")
    return found


def attention_params(model: nn.Module) -> int:
    """Parameters of all tucker_lab attention layers of ``model``."""
    return sum(p.numel() for layer in _layers(model) for p in layer.parameters())


@dataclass(frozen=True)
class Setting:
    """One family at one size: what ``replace_layers`` builds for every layer."""

    family: str
    label: str
    per_layer: tuple  # per layer: ranks ((qk), (vo)) for Tucker, n_kv_heads for GQA, kv_rank for MLA
    params: int  # attention parameters of the whole model


def family_ladder(model: TinyLM, family: str, profile=None) -> list[Setting]:
    """Every size of ``family`` for this model, smallest first (analytic parameter counts)."""
    layers = _layers(model)
    cfg = layers[0].cfg
    if not all(isinstance(l.cfg, GQAConfig) for l in layers):
        raise ValueError("family_ladder: the model's attention must be MHA/GQA (an imported Llama)")
    C, H, G, D = cfg.C, cfg.H, cfg.G, cfg.D
    L = len(layers)
    rope = dict(rope=cfg.rope, rope_base=cfg.rope_base)
    if family.startswith("tucker"):
        profile = profile or rank_profile(model, energies=(0.9,))
        rk = G * D if cfg.rope else None
        out = {}
        for e in [i / 400 for i in range(1, 401)]:  # energies 0.0025 .. 1.0
            ranks = []
            for p in profile:
                h, q, k = (energy_rank(s, e) for s in p.spectra["qk"])
                ranks.append(((h, q, rk or k), tuple(energy_rank(s, e) for s in p.spectra["vo"])))
            n = sum(TuckerConfig(d_model=C, n_heads=H, ranks_qk=a, ranks_vo=b,
                                 **({"rope_layout": "block", "rope_dim": D} if cfg.rope else {}), **rope).param_count()
                    for a, b in ranks)
            out[n] = Setting(family, f"energy {e:.4f}", tuple(ranks), n)
        return [out[n] for n in sorted(out)]
    if family == "gqa-svd":
        return [Setting(family, f"G={g}", (g,) * L, L * GQAConfig(d_model=C, n_heads=H, n_kv_heads=g, d_head=D,
                                                                   **rope).param_count())
                for g in range(1, G + 1) if H % g == 0]
    if family == "mla-svd":
        mla = lambda r: MLAConfig(d_model=C, n_heads=H, d_head=D, kv_rank=r,
                                  **(dict(coupled_rope=True, **rope) if cfg.rope else dict(rope=False)))
        return [Setting(family, f"R_kv={r}", (r,) * L, L * mla(r).param_count())
                for r in range(2, min(C, 2 * H * D) + 1, 2)]
    raise ValueError(f"family must be one of {FAMILIES}; got {family!r}")


def choose(ladder: list[Setting], budget: int) -> Setting:
    """The largest setting with at most ``budget`` attention parameters; ValueError, naming
    the family's smallest, when none fits."""
    fits = [s for s in ladder if s.params <= budget]
    if not fits:
        raise ValueError(f"{ladder[0].family}: no setting has at most {budget:,} attention parameters; its "
                         f"smallest ({ladder[0].label}) has {ladder[0].params:,}")
    return fits[-1]


def replace_layers(model: TinyLM, setting: Setting) -> TinyLM:
    """A copy of ``model`` whose attention layers are ``setting``'s family at its sizes."""
    out = copy.deepcopy(model)
    for block, arg in zip(out.blocks, setting.per_layer):
        layer, fam = block.attn, setting.family
        if fam.startswith("tucker"):
            block.attn = compress(layer, arg[0], arg[1], method=fam.split("-")[1])
        elif fam == "gqa-svd":
            block.attn = to_gqa(layer, arg, method="svd")
        else:
            block.attn = to_mla(layer, arg)
    return out


def layer_io(model: TinyLM, ids: Tensor) -> list[tuple[Tensor, Tensor]]:
    """(input, output) of every attention layer of ``model`` on token ids (B, T)."""
    seen = []
    hooks = [b.attn.register_forward_hook(lambda m, a, y: seen.append((a[0].detach(), y.detach())))
             for b in model.blocks]
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in hooks:
            h.remove()
    return seen


def fit_layers(model: TinyLM, io: list[tuple[Tensor, Tensor]], *, steps: int = 40, lr: float = 1e-3) -> list[float]:
    """Fit each attention layer of ``model`` alone to the recorded (input, target output),
    minimizing ||layer(x) - y||^2 / ||y||^2 with Adam. Returns each layer's final
    relative squared error."""
    errs = []
    for block, (x, y) in zip(model.blocks, io):
        layer = block.attn.train()
        opt = torch.optim.Adam(layer.parameters(), lr=lr)
        scale = y.pow(2).mean()
        for _ in range(steps):
            loss = (layer(x) - y).pow(2).mean() / scale
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        layer.eval()
        with torch.no_grad():
            errs.append(((layer(x) - y).pow(2).mean() / scale).item())
    return errs


def calibration_tokens(tokenizer, n_seqs: int = 8, seq_len: int = 256) -> Tensor:
    """(n_seqs, seq_len) ids from text the evaluation never reads: Shakespeare's training
    split and the second half of the Python docs."""
    from .data import python_docs_text, shakespeare
    half = n_seqs // 2
    texts = (shakespeare().text[: 6 * half * seq_len], python_docs_text()[200_000: 200_000 + 6 * half * seq_len])
    rows = []
    for text, n in zip(texts, (half, n_seqs - half)):
        ids = tokenizer(text, return_tensors="pt").input_ids[0]
        rows += [ids[i * seq_len:(i + 1) * seq_len] for i in range(n)]
    return torch.stack(rows)


def frontier(model: TinyLM, tokenizer, *, families=FAMILIES, fractions=FRACTIONS, n_eval: int = 512,
             window: int = 256, fit_steps: int = 25, calib=(8, 128), progress: bool = True,
             keep=(), on_run=None) -> dict:
    """Perplexity against attention parameters for each family at each budget, before and
    after recovery, with the seconds each took. Returns a JSON-ready dict; the recovered
    models of the (family, budget) pairs in ``keep`` are in its "models" entry (not JSON).
    ``on_run(doc)`` is called after each measured setting (e.g. to save partial results)."""
    from tqdm.auto import tqdm
    evals = {t: eval_tokens(tokenizer, t, n_eval) for t in ("shakespeare", "python-docs")}
    ppl = lambda m: {t: perplexity(m, ids, window=window, progress=False) for t, ids in evals.items()}
    total = attention_params(model)
    t0 = time.perf_counter()
    base = ppl(model)
    runs = [dict(family="original", label="GQA (as trained)", params=total, fraction=1.0, ppl=base,
                 ppl_recovered=base, seconds={"eval": time.perf_counter() - t0})]
    io = layer_io(model, calibration_tokens(tokenizer, *calib))
    profile = rank_profile(model, energies=(0.9,))
    unreachable = []
    ladders = {f: family_ladder(model, f, profile) for f in families}
    doc = dict(attention_params=total, families=list(families), fractions=list(fractions), n_eval_tokens=n_eval,
               window=window, stride=window // 2, fit_steps=fit_steps, calibration_tokens=calib[0] * calib[1],
               runs=runs, unreachable=unreachable)
    kept = {}
    jobs = [(f, x) for f in families for x in fractions]
    for fam, frac in tqdm(jobs, desc="frontier", disable=not progress):
        try:
            s = choose(ladders[fam], int(frac * total))
        except ValueError as e:
            unreachable.append(dict(family=fam, fraction=frac, reason=str(e)))
            continue
        if any(r["family"] == fam and r["label"] == s.label for r in runs):
            continue  # the same setting already measured at a larger budget
        t = time.perf_counter()
        m = replace_layers(model, s)
        t_build = time.perf_counter() - t
        assert attention_params(m) == s.params
        t = time.perf_counter()
        before = ppl(m)
        t_eval = time.perf_counter() - t
        t = time.perf_counter()
        exact = before == base  # nothing to recover (GQA at its own number of KV heads)
        errs = [0.0] if exact else fit_layers(m, io, steps=fit_steps)
        t_fit = time.perf_counter() - t
        runs.append(dict(family=fam, label=s.label, params=s.params, fraction=s.params / total, budget=frac,
                         ppl=before, ppl_recovered=before if exact else ppl(m), fit_error_mean=sum(errs) / len(errs),
                         seconds={"compress": t_build, "eval": t_eval, "recover": t_fit}))
        if (fam, frac) in keep:
            kept[f"{fam} {s.label} ({100 * s.params / total:.0f}%)"] = m
        if on_run:
            on_run(doc)
    return dict(doc, models=kept)


def decode_table(named: dict[str, TinyLM], prompt: Tensor, *, new_tokens: int = 32, rounds: int = 3) -> list[dict]:
    """Attention parameters, cache bytes per token (all layers, float32) and greedy decode
    tokens/s of each model, timed side by side (interleaved rounds, median), with the
    ratio to the first model's speed."""
    rows = {n: dict(model=n, attention_params=attention_params(m),
                    cache_bytes_per_token=sum(l.cfg.kv_cache_bytes_per_token(torch.float32) for l in _layers(m)),
                    times=[]) for n, m in named.items()}
    for _ in range(rounds):
        for n, m in named.items():
            t = time.perf_counter()
            generate(m, prompt, new_tokens, temperature=0)
            rows[n]["times"].append(time.perf_counter() - t)
    first = None
    for r in rows.values():
        med = sorted(r.pop("times"))[rounds // 2]
        r["tokens_per_s"] = new_tokens / med
        first = first or r["tokens_per_s"]
        r["speed_ratio"] = r["tokens_per_s"] / first
    return list(rows.values())


def exact_tucker(model: TinyLM) -> TinyLM:
    """A copy of ``model`` with every attention layer in its exact Tucker form (``to_tucker``)."""
    out = copy.deepcopy(model)
    for block in out.blocks:
        block.attn = to_tucker(block.attn)
    return out


STYLE = {"tucker-hosvd": ("C0", "o"), "tucker-hooi": ("C1", "s"), "gqa-svd": ("C2", "^"), "mla-svd": ("C3", "D")}


def plot_frontier(doc: dict, text: str = "python-docs", axes=None):
    """Perplexity (log y) against the share of the original attention parameters, one line
    per family, before (dashed, hollow) and after recovery (solid); the original model as
    a horizontal line. ``doc`` is ``frontier``'s output (or the committed JSON)."""
    plt = require("matplotlib.pyplot", "plot", "plot_frontier")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3.6), sharey=True)
    base = next(r for r in doc["runs"] if r["family"] == "original")["ppl"][text]
    for ax, key, title in zip(axes, ("ppl", "ppl_recovered"), ("after compression", "after recovery")):
        for fam in doc["families"]:
            rs = sorted((r for r in doc["runs"] if r["family"] == fam), key=lambda r: r["fraction"])
            if rs:
                c, m = STYLE.get(fam, ("k", "."))
                ax.semilogy([100 * r["fraction"] for r in rs], [r[key][text] for r in rs], marker=m, color=c,
                            label=fam, mfc="none" if key == "ppl" else c)
        ax.axhline(base, color="k", lw=0.8, ls=":", label="original")
        ax.set(xlabel="attention parameters (% of original)", title=title)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"perplexity on {text}")
    axes[1].legend(fontsize=7)
    return axes


def frontier_table(doc: dict) -> list[dict]:
    """One row per measured setting: family, setting, % of attention parameters, and the
    perplexities before and after recovery on both texts."""
    rows = []
    for r in sorted(doc["runs"], key=lambda r: (r["family"] != "original", r["family"], -r["fraction"])):
        row = {"family": r["family"], "setting": r["label"], "% params": round(100 * r["fraction"], 1)}
        for t in sorted(r["ppl"]):
            row[f"{t} ppl"] = round(r["ppl"][t], 2)
            row[f"{t} recovered"] = round(r["ppl_recovered"][t], 2)
        rows.append(row)
    return rows


def run(out: str, *, fractions=FRACTIONS, families=FAMILIES, n_eval: int = 512, window: int = 256,
        fit_steps: int = 25, decode_tokens: int = 32, threads: int | None = None) -> dict:
    """The whole experiment on SmolLM2-135M: frontier JSON, frontier figure (PNG next to it)
    and the decode table. Offline. ``threads``: torch's CPU threads (default: torch's)."""
    import json
    import sys
    from pathlib import Path

    from .bench import provenance
    from .pretrained import PRETRAINED, load_pretrained
    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(threads)
    hf, tok = load_pretrained("smollm2-135m")
    lm = TinyLM.from_hf(hf, tok)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(model=PRETRAINED["smollm2-135m"]["credit"], python=sys.version.split()[0])
    save = lambda d: path.write_text(json.dumps(dict(d, **meta, provenance=provenance("cpu"),
                                                     partial=True), indent=1))
    t0 = time.perf_counter()
    keep = [("tucker-hosvd", 0.5), ("tucker-hosvd", 0.25), ("gqa-svd", 0.9), ("mla-svd", 0.9)]
    doc = frontier(lm, tok, families=families, fractions=fractions, n_eval=n_eval, window=window,
                   fit_steps=fit_steps, keep=keep, on_run=save)
    doc["seconds_total"] = time.perf_counter() - t0
    # the decode table: the original, its exact Tucker form and recovered compressed models (the
    # frontier's where it measured them, else built and recovered here alike)
    named = {"original (GQA)": lm, "exact Tucker": exact_tucker(lm), **doc.pop("models")}
    total = attention_params(lm)
    io, profile = None, rank_profile(lm, energies=(0.9,))  # once, not once per ladder
    for fam, frac in keep:
        s = choose(family_ladder(lm, fam, profile), int(frac * total))
        name = f"{fam} {s.label} ({100 * s.params / total:.0f}%)"
        if name not in named:
            io = io or layer_io(lm, calibration_tokens(tok, 8, 128))
            named[name] = replace_layers(lm, s)
            if fit_steps:
                fit_layers(named[name], io, steps=fit_steps)
    prompt = tok("The history of the printing press", return_tensors="pt").input_ids[0]
    table = decode_table(named, prompt, new_tokens=decode_tokens)
    ids = eval_tokens(tok, "python-docs", n_eval)
    for row, m in zip(table, named.values()):
        row["ppl_python_docs"] = perplexity(m, ids, window=window, progress=False)
    doc["decode"] = dict(prompt_tokens=len(prompt), new_tokens=decode_tokens, rows=table)
    doc.update(meta, provenance=provenance("cpu"))
    path.write_text(json.dumps(doc, indent=1))
    require("matplotlib", "plot", "experiments pretrained").use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(8, 6.4), sharey="row")
    for row_axes, text in zip(axes, ("python-docs", "shakespeare")):
        plot_frontier(doc, text, axes=row_axes)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    return doc
