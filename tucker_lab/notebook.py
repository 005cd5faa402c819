"""What the book's chapters, exercises and tests share (``from tucker_lab import notebook``).

Checks:  :func:`max_err` (largest absolute difference), :func:`layer_of` (a random float64
layer on a device, optionally seeded without touching the caller's random state).
Looking inside a call:  :class:`ShapeLog` (the shape of every tensor an op produces) and
:func:`spy_attend` (the arguments of every call the attention modules make to ``attend``).
Showing code:  :func:`show_source` (a package object's source, whole and highlighted; the
book never slices it).
Panels:  :func:`panel` pairs a live ipywidgets panel (Jupyter, Colab) with what the static
HTML shows instead: a :class:`tucker_lab.static.StaticPanel` that works without a kernel, or a
note that the panel needs one.  Results:  :func:`load_results` reads a committed JSON from
``results/``.

A new chapter starts with::

    import tucker_lab as tkl
    from tucker_lab.notebook import layer_of, max_err, show_source
"""
from __future__ import annotations

import contextlib
import html
import importlib
import inspect
import json
import sysconfig
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ._extras import require

__all__ = ["max_err", "layer_of", "ShapeLog", "spy_attend", "show_source", "panel", "Panel", "KERNEL_NOTE",
           "load_results", "installed_results"]

KERNEL_NOTE = ("This panel needs a running kernel: open the chapter on Colab (the rocket icon at "
               "the top of the page) or in Jupyter to move it. The figure below shows the same "
               "landscape.")


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b|`` as a Python float."""
    return (a - b).abs().max().item()


def layer_of(cfg, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
             seed: int | None = None, **build_kw) -> torch.nn.Module:
    """``build_attention(cfg, **build_kw)`` in ``dtype`` on ``device``. With ``seed``, the
    weights are drawn after ``torch.manual_seed(seed)`` and the caller's random state is left
    alone (the fixed layer an exercise describes); without, they come from the global state."""
    from .attention import build_attention
    if seed is None:
        return build_attention(cfg, **build_kw).to(device=device, dtype=dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = build_attention(cfg, **build_kw)
    return layer.to(device=device, dtype=dtype)


class ShapeLog(TorchDispatchMode):
    """Records the shape of every tensor produced while active: after
    ``with ShapeLog() as log: layer(x)``, ``log.shapes`` lists them in the order the ops ran.
    """

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(o, torch.Tensor):
                self.shapes.append(tuple(o.shape))
        return out


_ATTEND_USERS = ("mha", "mla", "tpa", "tucker")  # tucker_lab.attention modules that call attend


@contextlib.contextmanager
def spy_attend(*modules, name: str = "attend") -> Iterator[list[dict]]:
    """Record every call to ``attend`` (or to the function ``name`` taking ``q, k, v``) made
    through ``modules`` (default: all attention modules): a dict per call with the shapes
    ``q``, ``k``, ``v``, the positional ``args`` and the keyword arguments. The real function
    is restored on exit, even after an error. After ``with spy_attend() as calls: layer(x)``,
    ``calls[0]["k"]`` is the key shape ``(B, S, G, E)`` of the first call.
    """
    mods = modules or tuple(importlib.import_module(f"tucker_lab.attention.{m}") for m in _ATTEND_USERS)
    originals = [getattr(m, name) for m in mods]
    calls: list[dict] = []

    def recorder(real):
        def spy(q, k, v, *args, **kw):
            calls.append({"q": tuple(q.shape), "k": tuple(k.shape), "v": tuple(v.shape), "args": args, **kw})
            return real(q, k, v, *args, **kw)
        return spy

    for m, real in zip(mods, originals):
        setattr(m, name, recorder(real))
    try:
        yield calls
    finally:
        for m, real in zip(mods, originals):
            setattr(m, name, real)


def show_source(*objs: Any):
    """Display the whole source of each object (function, method, class, module), highlighted
    (``IPython.display.Code``). A Triton kernel shows the Python function under ``@jit``."""
    ipy = require("IPython.display", "widgets", "show_source")
    for obj in objs:
        obj = getattr(obj, "fn", obj) if type(obj).__name__ == "JITFunction" else obj
        ipy.display(ipy.Code(inspect.getsource(obj), language="python"))


class Panel:
    """Shows ``live`` (an ipywidgets panel) where a kernel runs it; the static HTML, which
    cannot run it, gets ``static`` (a StaticPanel) or the note that a kernel is needed."""

    def __init__(self, live, static=None, note: str = KERNEL_NOTE):
        self.live, self.static, self.note = live, static, note

    def _static_html(self) -> str:
        if self.static is not None:
            return self.static.to_html()
        return (f'<div class="tucker-needs-kernel admonition note"><p class="admonition-title">'
                f'Needs a kernel</p><p>{html.escape(self.note)}</p></div>')

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {}
        if self.live is not None:
            live = self.live._repr_mimebundle_(include=include, exclude=exclude)
            bundle.update(live[0] if isinstance(live, tuple) else live)
        bundle["text/html"] = self._static_html()
        bundle["text/plain"] = ("interactive panel" if self.static is not None
                                else "interactive panel (needs a kernel)")
        return bundle


def panel(live=None, static=None, *, note: str = KERNEL_NOTE) -> Panel:
    """Display an interactive panel everywhere it can work. Jupyter and Colab show ``live``
    (an ipywidgets panel from :mod:`tucker_lab.widgets`). The book's HTML shows ``static``
    (a :class:`tucker_lab.static.StaticPanel`, moved in the browser without a kernel) or, when
    the answers need computation, ``note``, saying that the panel needs a kernel."""
    return Panel(live, static, note)


def installed_results() -> Path:
    """Where a pip install puts the committed results: ``<prefix>/share/tucker-lab/results``."""
    return Path(sysconfig.get_path("data")) / "share" / "tucker-lab" / "results"


def load_results(relpath: str) -> dict:
    """A committed results JSON, e.g. ``load_results("sweeps/lm_quick.json")``: from the
    repository's ``results/`` folder (next to the notebooks or the package), or from the
    copy installed with the package (``<prefix>/share/tucker-lab/results``, pyproject.toml's
    data-files), as on Colab, where no clone is at hand."""
    here = [Path.cwd() / ".." / "results", Path.cwd() / "results",
            Path(__file__).resolve().parents[1] / "results", installed_results()]
    for root in here:
        if (root / relpath).is_file():
            return json.loads((root / relpath).read_text())
    raise FileNotFoundError(f"results/{relpath} not found in {[str(r) for r in here]}")
