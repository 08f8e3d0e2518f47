"""Text helpers shared by the process layer's workflows."""

from __future__ import annotations


def clip(text: str, limit: int = 2000) -> str:
    """Text cut to at most limit characters (an exception's detail, a reason, a subject)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
