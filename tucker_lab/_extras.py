"""Optional dependencies: import one, or say which extra of ``tucker-lab`` brings it.

The core install (``pip install tucker-lab``) has the layers, caches, conversions and tensor
tools; plotting, widgets, datasets, Triton and transformers come with extras (pyproject.toml).
Every module that needs one imports it through :func:`require`, so the message naming the
extra is written once, here.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str, what: str) -> ModuleType:
    """``importlib.import_module(module)``, or an ImportError that names ``extra`` and the pip
    command installing it. ``what`` is what needs it ("plots", "load_pretrained", ...)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        # Any ImportError counts, not only a missing top-level package: a missing dependency
        # of the optional package is fixed by the same command. The original stays chained.
        missing = (e.name or module).split(".")[0]
        raise ImportError(
            f"{what} needs the optional extra '{extra}' ({missing} is missing). Install it with "
            f"pip install 'tucker-lab[{extra}]' (from a clone: pip install -e '.[{extra}]').",
            name=missing) from e
