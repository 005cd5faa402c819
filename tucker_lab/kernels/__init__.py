"""Triton decode kernels (optional: ``pip install tucker-lab[triton]``).

- ``latent_mqa_decode``: one query token per sequence, H heads against ONE latent
  key/value stream (Tucker attention; MLA with absorbed weights). Each K/V block is
  read once and used by a whole block of heads; the cache is split across programs
  and the partial results are merged by their log-sum-exp.
- ``tpa_decode``: TPA decoding straight from the cached factors (FlashTPA,
  arXiv 2501.06425 Algorithm 3, generalized to any ranks and constant head factors).

On a machine without a GPU the kernels run in Triton's interpreter: set
``TRITON_INTERPRET=1`` before this package is imported (fp32/fp16 only; the
interpreter mishandles bf16). Import is lazy: ``available()`` says whether Triton
can run here; calling a kernel without it raises an ImportError naming the extra.

See: book/09_decoding, book/15_performance.
"""
from __future__ import annotations

import os

from .._extras import require

__all__ = ["available", "latent_mqa_decode", "tpa_decode"]


def available() -> bool:
    """Triton importable, and either a CUDA GPU or the interpreter (TRITON_INTERPRET=1)."""
    try:
        require("triton", "triton", "tucker_lab.kernels")
    except ImportError:
        return False
    import torch
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


def latent_mqa_decode(*args, **kwargs):
    from .latent_decode import latent_mqa_decode as f
    return f(*args, **kwargs)


def tpa_decode(*args, **kwargs):
    from .flashtpa import tpa_decode as f
    return f(*args, **kwargs)
