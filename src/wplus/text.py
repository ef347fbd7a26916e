"""Small helpers for the sentences wplus prints."""

from __future__ import annotations

__all__ = ["plural"]


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``n`` and ``noun`` agreeing in number: ``plural(1, "pair") == "1 pair"``, ``plural(2, "pair") == "2 pairs"``;
    ``many`` is the plural of irregular nouns (``plural(3, "entry", "entries")``)."""
    return f"{n} {noun if n == 1 else many or noun + 's'}"
