"""Exercises of chapter 6. See book/06*."""
from . import exercise  # noqa: F401
