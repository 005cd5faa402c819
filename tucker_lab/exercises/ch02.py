"""Exercises of chapter 2. See book/02*."""
from . import exercise  # noqa: F401
