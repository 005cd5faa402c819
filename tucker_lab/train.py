"""The trainer: ``history = tkl.train(model, task, tkl.TrainConfig(...))``.

AdamW with decay/no-decay groups, linear warmup then cosine decay, gradient
clipping, periodic evaluation, tqdm progress, bf16 autocast on CUDA, optional
torch.compile, and nothing lost:

- checkpoints (``ckpt_dir/last.pt``, written atomically, loadable with
  ``torch.load(weights_only=True)``) hold the model, the optimizer, the batch
  generator's state and the history, so a resumed run continues exactly where
  it stopped (bit for bit on a CPU);
- Ctrl-C (SIGINT) finishes the current step, writes a checkpoint and returns the
  history marked ``interrupted``;
- a non-finite loss or gradient stops the run with an error naming the step.

Multi-GPU: run the same script under ``torchrun --nproc_per_node N``; ``train``
joins the process group (NCCL on CUDA, gloo on CPU), wraps the model in DDP and
gives each rank its slice of every global batch, so N ranks compute what one
process would with the whole batch.

See: book/12_training.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .config import check_int

__all__ = ["TrainConfig", "History", "lr_at", "train", "load_checkpoint", "evaluate"]


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Attributes:
        steps: optimizer steps.
        batch_size: sequences (or images) per step, over all DDP ranks together.
        lr, min_lr: peak and final learning rate (min_lr None: lr / 10).
        warmup_steps: linear warmup from 0 to lr, then cosine decay to min_lr.
        weight_decay, betas: AdamW's; no decay on 1-D parameters (norm gains, biases).
        grad_clip: max global gradient norm (None: off).
        eval_every, eval_batches, eval_batch_size: evaluation schedule and size (eval_batch_size
        None: batch_size); the validation batches are the same at every evaluation.
        seed: the batch order (build the model under torch.manual_seed for reproducible
        initial weights).
        device: "auto" (CUDA if available), "cpu", "cuda", ...
        precision: "auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32" or "bf16".
        compile: wrap the model in torch.compile.
        ckpt_dir: where last.pt goes (None: no checkpoints); ckpt_every: steps between
        checkpoints (None: eval_every).
        resume: continue from ckpt_dir/last.pt when it exists.
        progress: show a tqdm progress bar.
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float | None = None
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    eval_every: int = 100
    eval_batches: int = 10
    eval_batch_size: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    ckpt_dir: str | None = None
    ckpt_every: int | None = None
    resume: bool = True
    progress: bool = True

    def __post_init__(self):
        def need(name, ok, allowed, exc=ValueError):
            if not ok:
                raise exc(f"TrainConfig.{name} must be {allowed}; got {getattr(self, name)!r}")

        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for name in ("steps", "batch_size", "eval_every", "eval_batches"):
            check_int("TrainConfig", name, getattr(self, name), 1)
        need("warmup_steps", isinstance(self.warmup_steps, int) and not isinstance(self.warmup_steps, bool)
             and 0 <= self.warmup_steps <= self.steps, f"an integer in [0, steps={self.steps}]")
        check_int("TrainConfig", "seed", self.seed, 0)
        for name in ("eval_batch_size", "ckpt_every"):
            if getattr(self, name) is not None:
                check_int("TrainConfig", name, getattr(self, name), 1)
        need("lr", number(self.lr) and self.lr > 0, "a positive number")
        need("min_lr", self.min_lr is None or (number(self.min_lr) and 0 <= self.min_lr <= self.lr),
             f"None or a number in [0, lr={self.lr}]")
        need("weight_decay", number(self.weight_decay) and self.weight_decay >= 0, "a number >= 0")
        need("betas", isinstance(self.betas, (tuple, list)) and len(self.betas) == 2
             and all(number(b) and 0 <= b < 1 for b in self.betas), "a pair (beta1, beta2) of numbers in [0, 1)")
        need("grad_clip", self.grad_clip is None or (number(self.grad_clip) and self.grad_clip > 0),
             "None or a positive number")
        need("precision", isinstance(self.precision, str) and self.precision in ("auto", "fp32", "bf16"),
             "'auto', 'fp32' or 'bf16'")
        for flag in ("compile", "resume", "progress"):
            need(flag, isinstance(getattr(self, flag), bool), "a bool", TypeError)
        need("ckpt_dir", self.ckpt_dir is None or isinstance(self.ckpt_dir, (str, os.PathLike)),
             "None or a directory path", TypeError)
        need("device", isinstance(self.device, str), "'auto' or a device name such as 'cpu' or 'cuda'", TypeError)
        if self.device != "auto":
            try:
                dev = torch.device(self.device)
            except RuntimeError:
                dev = None
            need("device", dev is not None and dev.type in ("cpu", "cuda", "mps"),
                 "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'")
            if dev.type == "cuda":
                n = torch.cuda.device_count() if torch.cuda.is_available() else 0
                need("device", n > (dev.index or 0), f"a CUDA device that exists here ({n} visible; "
                     "use device='auto' to fall back to the CPU)")
            if dev.type == "mps":
                need("device", torch.backends.mps.is_available(), "a device that exists here (MPS is not "
                     "available; use device='auto')")

    @property
    def final_lr(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr


@dataclass
class History:
    """What a run produced, for plots: per-step training loss and learning rate,
    per-evaluation validation loss and metrics."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_metrics: dict[str, list[float]] = field(default_factory=dict)
    wall_time: float = 0.0
    interrupted: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1] if self.val_loss else float("nan")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step``: linear warmup over warmup_steps, then cosine to min_lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # decay matrices and tensors (projections, embeddings, Tucker cores and factors);
    # not vectors (norm gains, biases, a class token)
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _distributed() -> tuple[int, int]:
    """(rank, world size), joining the process group when launched by torchrun."""
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextlib.contextmanager
def _sigint_as_flag(flag: dict):
    """While active, Ctrl-C sets flag["stop"] instead of raising mid-step."""
    try:
        old = signal.signal(signal.SIGINT, lambda *_: flag.__setitem__("stop", True))
    except ValueError:  # not the main thread: leave SIGINT alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@torch.no_grad()
def evaluate(model: nn.Module, task, cfg: TrainConfig, device, autocast) -> tuple[float, dict[str, float]]:
    """Mean validation loss and metrics over the same batches every time."""
    was_training = model.training
    model.eval()
    if hasattr(task, "val_set"):  # small fixed sets are evaluated whole
        x_all, y_all = task.val_set()
        size = cfg.eval_batch_size or cfg.batch_size
        batches = list(zip(x_all.split(size), y_all.split(size)))
    else:
        g = torch.Generator().manual_seed(cfg.seed + 1_000_003)
        batches = [task.batch("val", cfg.eval_batch_size or cfg.batch_size, g) for _ in range(cfg.eval_batches)]
    losses, metrics = [], {}
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        with autocast():
            out = model(x)
        losses.append(task.loss(out, y).item())
        for k, v in task.metrics(out, y).items():
            metrics.setdefault(k, []).append(v)
    model.train(was_training)
    return sum(losses) / len(losses), {k: sum(v) / len(v) for k, v in metrics.items()}


def _save(path: Path, model, opt, gen, hist, step, cfg) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "generator": gen.get_state(), "history": hist.to_dict(),
                "config": dataclasses.asdict(cfg)}, tmp)
    os.replace(tmp, path)  # atomic: a crash mid-write never leaves a broken last.pt


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None) -> dict:
    """Read a checkpoint safely (weights_only); load its weights into ``model`` if given."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if model is not None:
        model.load_state_dict(ckpt["model"])
    return ckpt


def train(model: nn.Module, task, cfg: TrainConfig, *,
          callback: Callable[[int, History], None] | None = None) -> History:
    """Train ``model`` on ``task`` (see tucker_lab.data) and return its History.

    ``callback(step, history)`` runs after every step (for live plots or tests).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"train: model must be an nn.Module (e.g. tkl.TinyLM); got {type(model).__name__}")
    missing = [m for m in ("batch", "loss", "metrics") if not callable(getattr(task, m, None))]
    if missing:
        raise TypeError(f"train: task must have batch(split, batch_size, generator), loss(outputs, targets) and "
                        f"metrics(outputs, targets) (see tucker_lab.data); {type(task).__name__} lacks {missing}")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"train: cfg must be a TrainConfig; got {type(cfg).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"train: callback must be None or callable(step, history); got {type(callback).__name__}")
    rank, world = _distributed()
    if cfg.batch_size % world:
        raise ValueError(f"TrainConfig.batch_size={cfg.batch_size} must be divisible by the {world} DDP ranks")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    model.to(device).train()
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
    gen = torch.Generator().manual_seed(cfg.seed)  # the batch order: part of every checkpoint
    hist, start = History(), 0
    ckpt_path = Path(cfg.ckpt_dir) / "last.pt" if cfg.ckpt_dir else None
    if ckpt_path is not None and cfg.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, model)
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["generator"])
        hist, start = History.from_dict(ckpt["history"]), ckpt["step"]
        hist.interrupted = False
    if ckpt_path is not None and rank == 0:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    net = torch.compile(net) if cfg.compile else net
    ckpt_every = cfg.ckpt_every or cfg.eval_every
    flag = {"stop": False}
    t0 = time.perf_counter() - hist.wall_time
    bar = tqdm(total=cfg.steps, initial=start, disable=not cfg.progress or rank != 0, desc="train")
    with _sigint_as_flag(flag):
        for step in range(start, cfg.steps):
            lr = lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = task.batch("train", cfg.batch_size, gen)  # the global batch, same on every rank
            if world > 1:
                x, y = x.chunk(world)[rank], y.chunk(world)[rank]
            x, y = x.to(device), y.to(device)
            with autocast():
                loss = task.loss(net(x), y)
            loss_value = loss.item()  # the one host sync of a step: the NaN guard and the log read it
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"training stopped: the loss is {loss_value} at step {step} "
                                         f"(lr {lr:.3g}); last checkpoint: {ckpt_path if ckpt_path and ckpt_path.exists() else 'none'}. "
                                         "Lower the learning rate or check the data and the model.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if not torch.isfinite(norm):
                    raise FloatingPointError(f"training stopped: the gradient norm is {norm.item()} at step {step}")
            opt.step()
            if world > 1:  # log the global batch's loss, as a single process would
                loss = loss.detach().clone()
                dist.all_reduce(loss, op=dist.ReduceOp.AVG)
                loss_value = loss.item()
            hist.step.append(step)
            hist.train_loss.append(loss_value)
            hist.lr.append(lr)
            done = step + 1
            if done % cfg.eval_every == 0 or done == cfg.steps:
                val, metrics = evaluate(net if not cfg.compile else model, task, cfg, device, autocast)
                hist.eval_step.append(done)
                hist.val_loss.append(val)
                for k, v in metrics.items():
                    hist.val_metrics.setdefault(k, []).append(v)
                bar.set_postfix(loss=f"{hist.train_loss[-1]:.3f}", val=f"{val:.3f}")
            hist.wall_time = time.perf_counter() - t0
            bar.update(1)
            if callback is not None:
                callback(step, hist)
            stop = flag["stop"]
            if ckpt_path is not None and rank == 0 and (done % ckpt_every == 0 or done == cfg.steps or stop):
                _save(ckpt_path, model, opt, gen, hist, done, cfg)
            if stop:
                hist.interrupted = True
                if rank == 0:
                    print(f"interrupted after step {done}" + (f"; checkpoint {ckpt_path}" if ckpt_path else ""))
                break
    bar.close()
    return hist
