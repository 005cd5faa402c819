"""Exercises of chapter 5. See book/05*."""
from . import exercise  # noqa: F401
