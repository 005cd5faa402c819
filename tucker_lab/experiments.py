"""Sweeps over attention variants x ranks at a matched training budget.

    python -m tucker_lab.experiments sweep --task lm --budget quick --out results/sweeps/lm_quick.json
    python -m tucker_lab.experiments plot results/sweeps/lm_quick.json
    python -m tucker_lab.experiments pretrained   # SmolLM2-135M: tucker_lab.real_model

Each task trains one small model per attention setting with the same data, model
width, depth, steps and seed; only the attention differs. Every run records its
attention parameters, cache per token, validation loss and metric, wall time,
device and commit, plus its curves (for ``widgets.curves_panel``). ``plot`` draws
the frontier: attention parameters (log x) against the validation metric.
``matched_ratios`` answers the Tucker paper's question on our runs: at matched
validation loss (within 2%), how many times fewer attention parameters does
Tucker need than each other family?

The ``quick`` budget of each task runs on a 2-core CPU in about 15 minutes; ``full``
is sized for one GPU.
See: book/12_training.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from ._extras import require
from .bench import provenance
from .config import AttentionConfig, GQAConfig, MHAConfig, MLAConfig, TPAConfig, TuckerConfig
from .data import AssociativeRecall, Digits, shakespeare
from .models import LMConfig, TinyLM, TinyViT, ViTConfig
from .train import TrainConfig, train

__all__ = ["BUDGETS", "grid", "make_task", "run_sweep", "matched_ratios", "plot_frontier", "main"]

# task -> budget -> sizes and training settings
BUDGETS = {
    "lm": {"quick": dict(d_model=96, n_heads=4, n_layers=2, block_size=64, steps=600, batch_size=32, lr=3e-3),
           "full": dict(d_model=384, n_heads=6, n_layers=6, block_size=256, steps=5000, batch_size=64, lr=1e-3)},
    "recall": {"quick": dict(d_model=64, n_heads=4, n_layers=1, steps=600, batch_size=64, lr=3e-3, seeds=2,
                             n_keys=24, n_values=24, n_pairs=12, n_queries=12),
               "full": dict(d_model=128, n_heads=8, n_layers=2, steps=4000, batch_size=128, lr=1e-3, seeds=3,
                            n_keys=64, n_values=64, n_pairs=32, n_queries=32)},
    "vit": {"quick": dict(d_model=64, n_heads=4, n_layers=2, steps=600, batch_size=64, lr=3e-3, patch_size=2, seeds=3),
            "full": dict(d_model=192, n_heads=6, n_layers=4, steps=4000, batch_size=128, lr=1e-3, patch_size=2)},
}


def grid(d_model: int, n_heads: int, *, causal: bool, rope: bool) -> dict[str, AttentionConfig]:
    """The attention settings of a sweep: MHA; GQA/MQA at every divisor G of H; MLA at
    R_kv = C/8 .. C/2; TPA (6, 2, 2) and (2, 1, 1); Tucker at five rank triples from
    [1, C/8, C/16] up to [H, C, C/2] (the same triple for both tensors, as the paper does)."""
    C, H = d_model, n_heads
    D = C // H
    kw = dict(d_model=C, n_heads=H, causal=causal, rope=rope)
    out: dict[str, AttentionConfig] = {"MHA": MHAConfig(**kw)}
    for G in [g for g in range(1, H) if H % g == 0][::-1]:
        out["MQA" if G == 1 else f"GQA-{G}"] = GQAConfig(n_kv_heads=G, **kw)
    rope_dim = max(2, 2 * (D // 4)) if rope else 0
    for R in (C // 8, C // 4, C // 2):
        out[f"MLA-{R}"] = MLAConfig(kv_rank=R, rope_dim=rope_dim, **kw)
    for r in ((6, 2, 2), (2, 1, 1)):
        out[f"TPA-{r[0]},{r[1]},{r[2]}"] = TPAConfig(q_rank=r[0], k_rank=r[1], v_rank=r[2], **kw)
    for r in ((1, C // 8, C // 16), (2, C // 4, C // 8), (2, C // 2, C // 4), (H, C // 2, C // 4), (H, C, C // 2)):
        r = tuple(max(2, v) if i else v for i, v in enumerate(r))
        out[f"Tucker-{r[0]},{r[1]},{r[2]}"] = TuckerConfig(ranks_qk=r, ranks_vo=r, **kw)
    return out


def family(name: str) -> str:
    return "GQA" if name.startswith(("GQA", "MQA")) else name.split("-")[0]


def make_task(task: str, budget: dict, seed: int = 0):
    if task == "lm":
        return shakespeare(block_size=budget["block_size"])
    if task == "recall":
        return AssociativeRecall(n_keys=budget["n_keys"], n_values=budget["n_values"], n_pairs=budget["n_pairs"],
                                 n_queries=budget["n_queries"], seed=seed)
    if task == "vit":
        return Digits(seed=seed)
    raise ValueError(f"task must be 'lm', 'recall' or 'vit'; got {task!r}")


def make_model(task_name: str, data, attention: AttentionConfig, budget: dict, seed: int):
    torch.manual_seed(seed)  # the same initial weights for everything but the attention
    if task_name == "vit":
        return TinyViT(ViTConfig(attention=attention, n_layers=budget["n_layers"], patch_size=budget["patch_size"]))
    seq = data.block_size if task_name == "lm" else data.seq_len
    return TinyLM(LMConfig(vocab_size=data.vocab_size, n_layers=budget["n_layers"], attention=attention,
                           max_seq_len=seq))


def run_sweep(task: str, budget_name: str = "quick", variants: list[str] | None = None,
              seeds: list[int] | None = None, progress: bool = True) -> dict:
    """Train every setting of ``grid`` (or the named subset) once per seed and return the
    results document; a run's val_loss and val_accuracy are means over the seeds (each
    seed's values are kept under "per_seed")."""
    if not isinstance(task, str) or task not in BUDGETS:
        raise ValueError(f"run_sweep: task must be one of {sorted(BUDGETS)}; got {task!r}")
    if not isinstance(budget_name, str) or budget_name not in BUDGETS[task]:
        raise ValueError(f"run_sweep: budget_name must be one of {sorted(BUDGETS[task])}; got {budget_name!r}")
    if seeds is not None and (not isinstance(seeds, (list, tuple)) or not seeds
                              or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in seeds)):
        raise ValueError(f"run_sweep: seeds must be None or a non-empty list of integers >= 0; got {seeds!r}")
    budget = BUDGETS[task][budget_name]
    seeds = seeds if seeds is not None else list(range(budget.get("seeds", 1)))
    settings = grid(budget["d_model"], budget["n_heads"], causal=task != "vit", rope=task != "vit")
    if variants:
        unknown = sorted(set(variants) - set(settings))
        if unknown:
            raise ValueError(f"unknown variants {unknown}; choose from {sorted(settings)}")
        settings = {k: settings[k] for k in variants}
    steps = budget["steps"]
    tasks = {seed: make_task(task, budget, seed) for seed in seeds}  # built once, shared by every setting
    runs = []
    for name, att in settings.items():
        per_seed = []
        for seed, data in tasks.items():
            tcfg = TrainConfig(steps=steps, batch_size=budget["batch_size"], lr=budget["lr"],
                               warmup_steps=steps // 10, eval_every=max(1, steps // 10), eval_batches=8,
                               seed=seed, progress=progress)
            model = make_model(task, data, att, budget, seed)
            t0 = time.perf_counter()
            hist = train(model, data, tcfg)
            per_seed.append({"seed": seed, "val_loss": hist.final_val_loss,
                             "val_accuracy": hist.val_metrics.get("accuracy", [float("nan")])[-1],
                             "wall_s": time.perf_counter() - t0,
                             "curves": {"step": hist.eval_step, "val_loss": hist.val_loss,
                                        "val_accuracy": hist.val_metrics.get("accuracy", []),
                                        "train_loss": hist.train_loss[:: max(1, steps // 100)]}})
        mean = lambda k: sum(p[k] for p in per_seed) / len(per_seed)
        runs.append({"name": name, "family": family(name), "config": dataclasses.asdict(att),
                     "attention_params": att.param_count() * budget["n_layers"],
                     "model_params": sum(p.numel() for p in model.parameters()),
                     "cache_elems_per_token": att.kv_cache_elements_per_token() * budget["n_layers"],
                     "val_loss": mean("val_loss"), "val_accuracy": mean("val_accuracy"),
                     "wall_s": sum(p["wall_s"] for p in per_seed), "curves": per_seed[0]["curves"],
                     "per_seed": [{k: v for k, v in p.items() if k != "curves"} for p in per_seed]})
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"task": task, "budget": budget_name, "sizes": budget, "train": dataclasses.asdict(tcfg),
            "data": getattr(data, "credit", type(data).__name__), "seeds": seeds, **provenance(device),
            "runs": runs}


def matched_ratios(doc: dict, target: str = "Tucker", tol: float = 0.02, metric: str = "val_loss") -> dict[str, list[dict]]:
    """For every run of another family: the cheapest ``target`` run of matched quality,
    and the parameter ratio (None where no target run matches). Matched means, for
    "val_loss", at most (1 + tol) times the loss; for "val_accuracy", at least the
    accuracy minus tol."""
    if metric not in METRICS:
        raise ValueError(f"matched_ratios: metric must be one of {METRICS}; got {metric!r}")
    good = {"val_loss": lambda t, r: t <= r * (1 + tol), "val_accuracy": lambda t, r: t >= r - tol}[metric]
    tgt = sorted((r for r in doc["runs"] if r["family"] == target), key=lambda r: r["attention_params"])
    out: dict[str, list[dict]] = {}
    for r in doc["runs"]:
        if r["family"] == target:
            continue
        match = next((t for t in tgt if good(t[metric], r[metric])), None)
        out.setdefault(r["family"], []).append({
            "run": r["name"], "params": r["attention_params"], metric: r[metric],
            "match": match and match["name"], "match_params": match and match["attention_params"],
            "ratio": match and r["attention_params"] / match["attention_params"]})
    return out


def plot_frontier(doc: dict, metric: str = "val_loss", ax=None):
    """Attention parameters (log x) against a validation metric, one line per family."""
    if metric not in METRICS:
        raise ValueError(f"plot_frontier: metric must be one of {METRICS}; got {metric!r}")
    plt = require("matplotlib.pyplot", "plot", "plot_frontier")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    fams = sorted({r["family"] for r in doc["runs"]}, key=lambda f: ["MHA", "GQA", "MLA", "TPA", "Tucker"].index(f)
                  if f in ("MHA", "GQA", "MLA", "TPA", "Tucker") else 9)
    for i, f in enumerate(fams):
        rs = sorted((r for r in doc["runs"] if r["family"] == f), key=lambda r: r["attention_params"])
        ax.plot([r["attention_params"] for r in rs], [r[metric] for r in rs], marker="o", ms=4,
                color=f"C{i}", label=f, lw=1.2)
        for r in rs:
            label = r["name"].split("-", 1)[-1] if "-" in r["name"] else ("" if r["name"] == f else r["name"])
            ax.annotate(label, (r["attention_params"], r[metric]),
                        textcoords="offset points", xytext=(3, 3), fontsize=6, color=f"C{i}")
    ax.set(xscale="log", xlabel="attention parameters (all layers, log)",
           ylabel={"val_loss": "validation loss", "val_accuracy": "validation accuracy"}.get(metric, metric),
           title=f"{doc['task']} ({doc['budget']} budget, {doc['device']})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return ax


METRICS = ("val_loss", "val_accuracy")


def main(argv: list[str] | None = None):
    from ._cli import nonnegative_int, positive_int
    p = argparse.ArgumentParser(prog="python -m tucker_lab.experiments", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep", help="train variants x ranks; write results JSON")
    s.add_argument("--task", choices=sorted(BUDGETS), required=True, help=f"one of {', '.join(sorted(BUDGETS))}")
    s.add_argument("--budget", choices=["quick", "full"], default="quick",
                   help="quick (a 2-core CPU, minutes) or full (one GPU) (default quick)")
    s.add_argument("--variants", nargs="+", default=None,
                   help="names from the grid, e.g. MHA GQA-2 MLA-12 Tucker-2,24,12 (default all)")
    s.add_argument("--seeds", type=nonnegative_int, nargs="+", default=None,
                   help="integers >= 0 (default: the budget's)")
    s.add_argument("--out", default=None, help="default results/sweeps/<task>_<budget>.json")
    r = sub.add_parser("pretrained", help="compress SmolLM2-135M (offline): perplexity frontier and decode "
                       "table -> results JSON + PNG")
    r.add_argument("--out", default="results/pretrained/smollm2_frontier.json", help="JSON path (PNG beside it)")
    r.add_argument("--eval-tokens", type=positive_int, default=512,
                   help="tokens of each held-out text, an integer >= --window (default 512)")
    r.add_argument("--window", type=positive_int, default=256, help="perplexity window in tokens, >= 2 (default 256)")
    r.add_argument("--fit-steps", type=nonnegative_int, default=25,
                   help="Adam steps of the layer-wise recovery, an integer >= 0 (0: none; default 25)")
    r.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    r.add_argument("--families", nargs="+", default=None, choices=["tucker-hosvd", "tucker-hooi", "gqa-svd", "mla-svd"],
                   help="any of tucker-hosvd tucker-hooi gqa-svd mla-svd (default: all)")
    q = sub.add_parser("plot", help="draw the frontier of a results JSON")
    q.add_argument("results", help="a results JSON written by sweep")
    q.add_argument("--metric", choices=METRICS, default=None,
                   help="val_loss or val_accuracy (default: val_loss for lm, val_accuracy for recall and vit)")
    q.add_argument("--out", default=None, help="PNG path (default: next to the JSON)")
    a = p.parse_args(argv)
    if a.cmd == "sweep":
        if a.variants:
            known = grid(BUDGETS[a.task][a.budget]["d_model"], BUDGETS[a.task][a.budget]["n_heads"],
                         causal=a.task != "vit", rope=a.task != "vit")
            unknown = sorted(set(a.variants) - set(known))
            if unknown:
                s.error(f"argument --variants: unknown {unknown}; choose from {sorted(known)}")
        doc = run_sweep(a.task, a.budget, a.variants, a.seeds)
        out = Path(a.out or f"results/sweeps/{a.task}_{a.budget}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1))
        print(f"wrote {len(doc['runs'])} runs to {out}")
        return out
    if a.cmd == "pretrained":
        from .real_model import FAMILIES, frontier_table, run
        if a.eval_tokens < a.window or a.window < 2:
            r.error(f"argument --window: need 2 <= --window <= --eval-tokens; got {a.window} and {a.eval_tokens}")
        doc = run(a.out, n_eval=a.eval_tokens, window=a.window, fit_steps=a.fit_steps, threads=a.threads,
                  families=tuple(a.families or FAMILIES))
        for row in frontier_table(doc) + doc["decode"]["rows"]:
            print(row)
        print(f"wrote {a.out} and {Path(a.out).with_suffix('.png')}")
        return Path(a.out)
    try:
        doc = json.loads(Path(a.results).read_text())
    except (OSError, ValueError) as e:
        q.error(f"argument results: cannot read a results JSON from {a.results!r} ({e})")
    if not isinstance(doc, dict) or not {"task", "budget", "runs"} <= set(doc):
        q.error(f"argument results: {a.results!r} is not a results JSON of `sweep` (needs task, budget, runs)")
    require("matplotlib", "plot", "experiments plot").use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    metric = a.metric or ("val_loss" if doc["task"] == "lm" else "val_accuracy")
    ax = plot_frontier(doc, metric)
    out = Path(a.out or Path(a.results).with_suffix(f".{metric}.png"))
    ax.figure.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
