"""One error type for bad recipes: it names the field, the value and what would be valid."""

from __future__ import annotations

from typing import Any


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RecipeError(ValueError):
    """A merge recipe that cannot be built; raised before any weights are loaded."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}: got {_short(value)}; expected {expected}")
