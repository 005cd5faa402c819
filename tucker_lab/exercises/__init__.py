"""Exercise checks for the book: ``tkl.exercises.check("2.1", my_answer)``.

Each chapter's exercises live in ``chNN.py``; an exercise is a function that
computes the expected answer from the package (never a hard-coded number),
registered with a prompt and a hint. ``check`` compares a reader's answer
(number, tuple, dict or tensor) within a relative tolerance and prints a
verdict with the hint, without giving the answer away.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = ["Exercise", "exercise", "check", "prompt", "keys", "solution", "seeded_layer"]


@dataclass(frozen=True)
class Exercise:
    key: str
    prompt: str
    solve: Callable[[], Any]
    hint: str = ""
    rtol: float = 1e-6


_REGISTRY: dict[str, Exercise] = {}


def exercise(key: str, prompt: str, hint: str = "", rtol: float = 1e-6):
    """Register the decorated zero-argument function as the solution of exercise ``key``."""
    def register(solve: Callable[[], Any]) -> Callable[[], Any]:
        if key in _REGISTRY:
            raise ValueError(f"exercise {key!r} is registered twice")
        _REGISTRY[key] = Exercise(key, prompt, solve, hint, rtol)
        return solve
    return register


def seeded_layer(cfg, seed: int, dtype: torch.dtype = torch.float64):
    """``build_attention(cfg)`` drawn after ``torch.manual_seed(seed)``, in ``dtype``, leaving
    the reader's random state alone: the fixed layer an exercise's prompt describes
    (:func:`tucker_lab.notebook.layer_of` with a seed)."""
    from ..notebook import layer_of
    return layer_of(cfg, seed=seed, dtype=dtype)


def _get(key: str) -> Exercise:
    if key not in _REGISTRY:
        raise ValueError(f"no exercise {key!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[key]


def _close(a: Any, b: Any, rtol: float) -> bool:
    if isinstance(b, torch.Tensor):
        a = torch.as_tensor(a, dtype=b.dtype)
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=rtol * b.abs().max().item()))
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_close(a[k], b[k], rtol) for k in b)
    if isinstance(b, (tuple, list)):
        return isinstance(a, (tuple, list)) and len(a) == len(b) and all(_close(x, y, rtol) for x, y in zip(a, b))
    if isinstance(b, bool) or isinstance(b, str):
        return a == b
    if isinstance(b, (int, float)):
        try:
            return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=rtol)
        except (TypeError, ValueError):
            return False
    return a == b


def check(key: str, answer: Any) -> bool:
    """Compare ``answer`` with exercise ``key``'s solution; print a short verdict, wrapped
    to 88 columns (with the hint when the answer is wrong), and return it. ``None`` means
    no answer yet."""
    ex = _get(key)
    if answer is None:
        print(f"Exercise {key}: no answer yet (replace None with yours).")
        return False
    ok = _close(answer, ex.solve(), ex.rtol)
    verdict = (f"Exercise {key}: correct." if ok else
               f"Exercise {key}: not yet." + (f" Hint: {ex.hint}" if ex.hint else ""))
    print(textwrap.fill(verdict, width=88, subsequent_indent="  "))
    return ok


def prompt(key: str) -> str:
    return _get(key).prompt


def solution(key: str) -> Any:
    """The expected answer (for instructors and tests)."""
    return _get(key).solve()


def keys(chapter: int | None = None) -> list[str]:
    ks = sorted(_REGISTRY, key=lambda k: tuple(int(p) for p in k.split(".")))
    return ks if chapter is None else [k for k in ks if k.split(".")[0] == str(chapter)]


# chapters register their exercises on import
from . import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ch10, ch11, ch12, ch13, ch14, ch15  # noqa: E402,F401,E501
