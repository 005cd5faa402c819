"""Exercises of chapter 11. See book/11*."""
from . import exercise  # noqa: F401
