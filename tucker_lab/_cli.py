"""argparse types shared by the command-line tools: a bad value is an argparse error
(usage, message, exit code 2), never a traceback or a silently wrong table."""
from __future__ import annotations

import argparse
import math


def _int_at_least(lo: int):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}; got {s!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}; got {v}")
        return v
    parse.__doc__ = f"An integer >= {lo}."
    return parse


positive_int = _int_at_least(1)
nonnegative_int = _int_at_least(0)


def positive_float(s: str) -> float:
    """A finite number > 0."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {s!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0; got {s}")
    return v


def positive_int_list(s: str) -> list[int]:
    """Comma-separated integers >= 1, at least one: "1024,4096"."""
    items = [p.strip() for p in s.split(",") if p.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 1 (e.g. 1,8); got {s!r}")
    try:
        return [positive_int(p) for p in items]
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"each value {e}") from None


def choice_list(allowed) -> callable:
    """A type for comma-separated names, each one of ``allowed``."""
    allowed = tuple(allowed)

    def parse(s: str) -> list[str]:
        items = [p.strip() for p in s.split(",") if p.strip()]
        bad = [p for p in items if p not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"must be comma-separated values from {', '.join(allowed)}; "
                                             f"got {s!r}" + (f" (unknown: {', '.join(bad)})" if bad else ""))
        return items
    return parse
