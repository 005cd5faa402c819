"""Exercises of chapter 7. See book/07*."""
from . import exercise  # noqa: F401
