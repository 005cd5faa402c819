"""Exercises of chapter 3. See book/03*."""
from . import exercise  # noqa: F401
