"""Wording shared by the failure checkers' one-line explanations (plurals, lists, chains)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

# Long lists in one-line explanations are cut to this many items ("and 12 more").
LIST_LIMIT = 5


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def listing(items: Sequence[str]) -> str:
    if len(items) <= LIST_LIMIT:
        return ", ".join(items)
    return f"{', '.join(items[:LIST_LIMIT])} and {len(items) - LIST_LIMIT} more"


def arrow(chain: Sequence[str]) -> str:
    """``a → b → c``, eliding the middle of a long chain."""
    if len(chain) > 6:
        chain = [*chain[:3], "…", *chain[-2:]]
    return " → ".join(chain)


def number(x: Fraction | float) -> str:
    return f"{float(x):.4g}"


def percent(x: Fraction | float | None) -> str:
    return "∞%" if x is None else f"{float(x) * 100:.4g}%"


__all__ = ["LIST_LIMIT", "arrow", "listing", "number", "percent", "plural"]
