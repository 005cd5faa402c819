"""Exercises of chapter 12 (training small models, the parameter/quality frontier). See book/12_training."""
from ..config import MHAConfig, TuckerConfig
from ..models import LMConfig
from ..train import TrainConfig, lr_at
from . import exercise


@exercise("12.1", "In the recall sweep (quick budget: d_model = 64, 4 heads, 1 layer), the cheapest "
          "Tucker setting that matches MHA's validation accuracy within 2 points is Tucker [2, 16, 8] "
          "(the same triple for both tensors). How many times fewer attention parameters than MHA "
          "does it have?",
          hint="Build both configs (or take them from tkl.experiments.grid(64, 4, causal=True, "
               "rope=True)) and divide their param_count().", rtol=1e-6)
def _():
    from ..experiments import BUDGETS, grid  # imported here: tucker_lab does not import the sweeps module
    b = BUDGETS["recall"]["quick"]
    g = grid(b["d_model"], b["n_heads"], causal=True, rope=True)
    return g["MHA"].param_count() / g["Tucker-2,16,8"].param_count()


@exercise("12.2", "How many target tokens (characters to predict) does one quick-budget language-model "
          "run of the sweep train on, counting repeats? Use tkl.experiments.BUDGETS['lm']['quick'].",
          hint="Every step takes batch_size sequences of block_size inputs, and every input "
               "position has one target.")
def _():
    from ..experiments import BUDGETS
    b = BUDGETS["lm"]["quick"]
    return b["steps"] * b["batch_size"] * b["block_size"]


@exercise("12.3", "A run uses TrainConfig(steps=600, lr=3e-3, warmup_steps=60) (min_lr left at its "
          "default). What is the learning rate at step 30 and at step 330 (steps count from 0)? "
          "Answer a tuple.",
          hint="Warmup is linear, lr (step + 1) / warmup_steps; then a cosine from lr to min_lr = lr / 10 "
               "over the remaining steps (tucker_lab.train.lr_at).", rtol=1e-6)
def _():
    cfg = TrainConfig(steps=600, lr=3e-3, warmup_steps=60)
    return (lr_at(30, cfg), lr_at(330, cfg))


@exercise("12.4", "A TinyLM the size of GPT-2 small: 12 layers, d_model = 768, 12 heads, a vocabulary of "
          "50,257 tokens, tied embeddings, the default SwiGLU width. What fraction of all its parameters "
          "is attention with MHA, and with Tucker [8, 128, 64] (both tensors)? Answer a tuple of two "
          "fractions.",
          hint="LMConfig(...).param_count() counts everything; the attention part is "
               "n_layers * attention.param_count().", rtol=1e-4)
def _():
    out = []
    for att in (MHAConfig(d_model=768, n_heads=12),
                TuckerConfig(d_model=768, n_heads=12, ranks_qk=(8, 128, 64), ranks_vo=(8, 128, 64))):
        cfg = LMConfig(vocab_size=50257, n_layers=12, attention=att)
        out.append(cfg.n_layers * att.param_count() / cfg.param_count())
    return tuple(out)
